package fulfilmentd_test

import (
	"context"
	"encoding/json/v2"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/connector"
	"github.com/grantline/grantline/pkg/connector/postgres"
	"github.com/grantline/grantline/pkg/consumer"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/manualtask"
	"github.com/grantline/grantline/pkg/pgtest"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/pkg/targettest"
	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/services/fulfilment"
	"github.com/grantline/grantline/services/fulfilment/fulfilmentd"
	"github.com/grantline/grantline/services/fulfilment/httpapi"
	"github.com/grantline/grantline/services/fulfilment/reaction"
	"github.com/grantline/grantline/services/fulfilment/taskindex"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

const examples = "../../../examples"

// world is the test world with fulfilment's task index.
type world struct {
	*targettest.World
	Tasks *taskindex.Index
}

func newWorld(t testing.TB) *world {
	t.Helper()
	w := &world{World: targettest.New(t, examples)}
	var err error
	if w.Tasks, err = taskindex.Open(context.Background(), w.JS, 1); err != nil {
		t.Fatal(err)
	}
	return w
}

// deps is the fulfilment service over w with connectors (the world's PostgreSQL target by default).
func deps(w *world, conns connector.Set) fulfilmentd.Deps {
	if conns == nil {
		conns = connector.Set{postgres.Name: w.PG}
	}
	return fulfilmentd.Deps{JS: w.JS, Store: w.Stores[events.Fulfilment], Catalogue: w.Catalogue, Auth: w.Auth,
		Connectors: conns, Credentials: w.Credentials, Tasks: w.Tasks, Now: time.Now}
}

// start serves d's routes on the world's mux and runs its reactions until the test ends.
func start(t testing.TB, w *world, d fulfilmentd.Deps) {
	t.Helper()
	d.Routes(w.Mux, w.Log)
	targettest.Run(t, func(ctx context.Context) error { return d.Consume(ctx, w.Log) })
}

// someone is a person of their own (PostgreSQL roles are shared by every test of the package).
func someone(group string) events.Principal {
	return events.Principal{ID: "p-" + strings.ToLower(events.NewID()[18:]), Groups: []string{group}}
}

func granted(r *events.Request) bool { return r.Status() == events.StatusGranted }

// TestGrantsOnPostgres: an auto-approved and an emergency request are granted on the target, which
// shows the role afterwards and not before, and granted records what the target showed.
func TestGrantsOnPostgres(t *testing.T) {
	w := newWorld(t)
	start(t, w, deps(w, nil))
	cases := []struct {
		name        string
		entitlement string
		role        string
		emergency   bool
	}{
		{"analytics-read, auto-approved", "analytics-read", "analytics_read", false},
		{"payments-admin, break-glass", "payments-admin", "payments_admin", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			who := someone("engineers")
			if w.Holds(t, who.ID, tc.role) {
				t.Fatal("holds the role before the grant")
			}
			id := w.Approved(t, targettest.Request{Requester: who, Entitlement: tc.entitlement, Duration: time.Hour, Emergency: tc.emergency})
			trigger := w.Load(t, id)
			r := w.WaitFor(t, id, 20*time.Second, "the grant", granted)
			g := r.Grant()
			if g.Connector != postgres.Name || g.Fulfiller != fulfilment.Fulfiller || !g.Observed.Present ||
				g.Observed.Detail["role"] != tc.role || g.Observed.Detail["member"] != who.ID || g.CredentialFingerprint != "" {
				t.Fatalf("granted %+v", g)
			}
			if d := g.ExpiresAt.Sub(r.GrantedAt()); d <= 0 || d > time.Hour {
				t.Fatalf("expires %s after the grant, want within the effective hour", d)
			}
			l := w.Load(t, id)
			if ev := l.Events[len(l.Events)-1]; ev.CausationID != trigger.Events[len(trigger.Events)-1].ID {
				t.Fatalf("granted caused by %q, want the decision %q", ev.CausationID, trigger.Events[len(trigger.Events)-1].ID)
			}
			if !w.Holds(t, who.ID, tc.role) || w.Memberships(t, who.ID, postgres.GrantRole(id)) != 1 {
				t.Fatal("the target does not show the grant")
			}
		})
	}
}

// TestAccessFromALaterTime: requests approved before the start they asked for are granted only once
// policy has checked them at that start, and not at all when the check no longer allows them.
func TestAccessFromALaterTime(t *testing.T) {
	w := newWorld(t)
	start(t, w, deps(w, nil))
	from := time.Now().Add(time.Second)
	stays, leaves := someone("engineers"), someone("engineers")
	kept := w.Approved(t, targettest.Request{Requester: stays, Entitlement: "analytics-read", Duration: time.Hour, StartAt: &from})
	dropped := w.Approved(t, targettest.Request{Requester: leaves, Entitlement: "analytics-read", Duration: time.Hour, StartAt: &from})
	poll.Until(t, 10*time.Second, "the requested start", func() bool { return time.Now().After(from) })
	// Fulfilment has seen both approvals by now, and granted neither: policy has not checked them yet.
	idle(t, w)
	for _, id := range []string{kept, dropped} {
		if r := w.Load(t, id).Request; r.Grant() != nil || !r.StartCheckDue() {
			t.Fatalf("%s: granted %v before its start check", id, r.Grant())
		}
	}
	check := func(id string, c events.StartChecked) {
		c.GroupsFrom, c.PolicyRevision, c.InputDigest = events.GroupsFromDirectory, "sha256:test", "sha256:test"
		w.Append(t, events.Policy, id, events.Draft{Payload: c, CausationID: "start-check"})
	}
	check(kept, events.StartChecked{Allowed: true, Outcome: events.OutcomeAutoApproved, Reasons: []string{"still an engineer"},
		RequesterGroups: stays.Groups})
	check(dropped, events.StartChecked{Outcome: events.OutcomeApprovalRequired, Reasons: []string{"no longer an engineer"},
		Stages: []events.Stage{{Name: "owners", Groups: []string{"analytics-owners"}, MinApprovals: 1}}, RequesterGroups: []string{}})

	r := w.WaitFor(t, kept, 20*time.Second, "the grant after the start check", granted)
	if r.GrantedAt().Before(from) || !w.Holds(t, stays.ID, "analytics_read") {
		t.Fatalf("granted at %s (start %s); the target shows it: %v", r.GrantedAt(), from, w.Holds(t, stays.ID, "analytics_read"))
	}
	idle(t, w)
	if r := w.Load(t, dropped).Request; r.Status() != events.StatusDenied || r.Grant() != nil || w.Holds(t, leaves.ID, "analytics_read") {
		t.Fatalf("the request no longer allowed at its start is %s, grant %v", r.Status(), r.Grant())
	}
}

// idle waits until fulfilment's grant consumer has handled everything delivered to it.
func idle(t *testing.T, w *world) {
	t.Helper()
	poll.Until(t, 20*time.Second, "fulfilment to have handled every event", func() bool {
		c, err := w.JS.Consumer(context.Background(), topology.FulfilmentGrants.Stream, topology.FulfilmentGrants.Durable)
		if err != nil {
			return false
		}
		info, err := c.Info(context.Background())
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	})
}

// TestCredentialRetrievedOnceByTheRightPerson: a login for svc-reporting is issued with VALID UNTIL its
// expiry; its password is handed out once, to the requester or an owner of the account, and appears
// in no event, timer, dead letter or log line.
func TestCredentialRetrievedOnceByTheRightPerson(t *testing.T) {
	w := newWorld(t)
	start(t, w, deps(w, nil))
	cases := []struct {
		name      string
		requester events.Principal
		strangers []string
		first     string
		then      []string
	}{
		{"the requester takes it", targettest.Alice, []string{"erin", "dave", "carol"}, "alice", []string{"bob", "alice", "frank"}},
		{"an owner of the account takes it", targettest.Alice, []string{"erin"}, "bob", []string{"alice"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := w.Approved(t, targettest.Request{Requester: tc.requester, Subject: targettest.SvcReporting,
				Entitlement: "reporting-db-credential", Duration: time.Hour})
			login := postgres.LoginRole("svc-reporting", id)
			if exists, _, _ := w.Login(t, login); exists {
				t.Fatal("the login exists before the grant")
			}
			g := w.WaitFor(t, id, 20*time.Second, "the grant", granted).Grant()
			exists, canLogin, until := w.Login(t, login)
			if !exists || !canLogin || until == nil || until.Sub(g.ExpiresAt).Abs() > time.Microsecond || !w.Holds(t, login, "reporting_read") {
				t.Fatalf("pg_roles shows %v %v %v for the login, want it valid until %s", exists, canLogin, until, g.ExpiresAt)
			}
			if !strings.HasPrefix(g.CredentialFingerprint, "sha256:") || g.Observed.Detail["login_role"] != login {
				t.Fatalf("granted %+v", g)
			}
			path := "/v1/requests/" + id + "/credential"
			if status, _ := w.Call(t, "GET", path, "", ""); status != http.StatusUnauthorized {
				t.Fatalf("without a token: %d", status)
			}
			// Strangers may not see the request, so it does not exist for them: the answer is the one
			// for an unknown ID, and says nothing of the grant's state.
			unknown := events.NewID()
			for _, user := range tc.strangers {
				status, body := w.Call(t, "GET", path, user, "")
				_, absent := w.Call(t, "GET", "/v1/requests/"+unknown+"/credential", user, "")
				if status != http.StatusNotFound || strings.ReplaceAll(string(body), id, unknown) != string(absent) {
					t.Fatalf("%s: %d %s, want the 404 of an unknown request: %s", user, status, body, absent)
				}
			}
			status, body := w.Call(t, "GET", path, tc.first, "")
			var cred httpapi.Credential
			if status != http.StatusOK || json.Unmarshal(body, &cred) != nil {
				t.Fatalf("%s: %d %s", tc.first, status, body)
			}
			if cred.Username != login || len(cred.Password) < 32 || fulfilment.Fingerprint(cred.Password) != g.CredentialFingerprint {
				t.Fatalf("credential %s for %s does not match the grant", cred.Username, login)
			}
			for _, user := range tc.then {
				status, body := w.Call(t, "GET", path, user, "")
				if status != http.StatusGone || !strings.Contains(string(body), "credential-gone") {
					t.Fatalf("%s after retrieval: %d %s, want 410", user, status, body)
				}
			}
			for _, stream := range []string{topology.EventsStream, topology.TimersStream, topology.DLQStream, topology.BucketStream(topology.CredentialsBucket), topology.BucketStream(topology.TasksBucket)} {
				for _, b := range w.StreamBodies(t, stream) {
					if strings.Contains(string(b), cred.Password) {
						t.Fatalf("the password is in %s", stream)
					}
				}
			}
			if strings.Contains(w.Logs.String(), cred.Password) {
				t.Fatal("the password is in the logs")
			}
			if !strings.Contains(w.Logs.String(), `"credential retrieved"`) {
				t.Fatal("the retrieval was not logged")
			}
		})
	}
}

// TestManualTask: a manual entitlement opens a grant task for its fulfiller groups; the list shows it to
// them only; a person who may not complete it is refused; an operator's completion with evidence is
// the grant.
func TestManualTask(t *testing.T) {
	w := newWorld(t)
	start(t, w, deps(w, nil))
	id := w.Submit(t, targettest.Request{Requester: targettest.Alice, Entitlement: "mainframe-operator", Duration: time.Hour})
	w.Approve(t, id, targettest.Carol)
	r := w.WaitFor(t, id, 20*time.Second, "the grant task", func(r *events.Request) bool { return len(r.Tasks()) == 1 })
	task := r.Tasks()[0]
	if task.TaskID != manualtask.ID(id, events.TaskGrant) || task.Purpose != events.TaskGrant || task.FulfillerGroups[0] != "operations" {
		t.Fatalf("task %+v", task)
	}
	list := func(user string) []httpapi.TaskView {
		status, body := w.Call(t, "GET", "/v1/tasks", user, "")
		var l httpapi.TaskList
		if status != http.StatusOK || json.Unmarshal(body, &l) != nil {
			t.Fatalf("list as %s: %d %s", user, status, body)
		}
		return l.Tasks
	}
	if got := list("dave"); len(got) != 1 || got[0].ID != task.TaskID || !got[0].MayComplete || got[0].RequestID != id ||
		got[0].CompleteURL != "/v1/tasks/"+task.TaskID+"/complete" {
		t.Fatalf("dave's tasks: %+v", got)
	}
	for _, user := range []string{"alice", "erin", "carol"} {
		if got := list(user); len(got) != 0 {
			t.Fatalf("%s sees tasks %+v", user, got)
		}
	}
	path := "/v1/tasks/" + task.TaskID + "/complete"
	for _, tc := range []struct {
		user, body string
		status     int
	}{
		// erin is neither in operations nor among those who see the request here: for her the task
		// does not exist. alice sees her request, so she is told why she may not.
		{"erin", `{"evidence":"done"}`, http.StatusNotFound},
		{"alice", `{"evidence":"done"}`, http.StatusForbidden},
		{"dave", `{"evidence":""}`, http.StatusUnprocessableEntity},
		{"dave", `{"evidence":"done","fulfiller":"carol"}`, http.StatusBadRequest},
		{"dave", `{"evidence":"profile OPER granted to alice, CHG-991"}`, http.StatusOK},
		{"dave", `{"evidence":"profile OPER granted to alice, CHG-991"}`, http.StatusOK}, // a retry
		{"carol", `{"evidence":"me too"}`, http.StatusNotFound},
	} {
		if status, body := w.Call(t, "POST", path, tc.user, tc.body); status != tc.status {
			t.Fatalf("%s completing with %s: %d %s, want %d", tc.user, tc.body, status, body, tc.status)
		}
	}
	g := w.Load(t, id).Request.Grant()
	if g == nil || g.Fulfiller != "dave" || g.Connector != fulfilment.Manual || g.TaskID != task.TaskID ||
		g.Observed.Detail["evidence"] != "profile OPER granted to alice, CHG-991" {
		t.Fatalf("granted %+v", g)
	}
	if got := list("dave"); len(got) != 0 {
		t.Fatalf("the completed task is still listed: %+v", got)
	}

	// Alice ends it early: fulfilment opens the revoke task and lists it, to be completed at the
	// revoker, which alone may record the revocation; fulfilment's route refuses it.
	w.Append(t, events.Revoker, id, events.Draft{Payload: events.RevocationRequested{By: "alice", Reason: events.RevokeEarly, Note: "done"},
		Actor: "alice", CausationID: "revocation-requested"})
	revokeTask := manualtask.ID(id, events.TaskRevoke)
	var got []httpapi.TaskView
	poll.Until(t, 20*time.Second, "the revoke task in dave's list", func() bool { got = list("dave"); return len(got) == 1 })
	if got[0].ID != revokeTask || got[0].Purpose != events.TaskRevoke || !got[0].MayComplete || got[0].ContinuedBy != "" ||
		!strings.HasPrefix(got[0].Instructions, "Remove ") || got[0].CompleteURL != "/v1/revoke-tasks/"+revokeTask+"/complete" {
		t.Fatalf("dave's tasks: %+v", got)
	}
	status, body := w.Call(t, "POST", "/v1/tasks/"+revokeTask+"/complete", "dave", `{"evidence":"profile removed"}`)
	if status != http.StatusNotFound || !strings.Contains(string(body), got[0].CompleteURL) {
		t.Fatalf("completing the revoke task at fulfilment: %d %s, want 404 naming %s", status, body, got[0].CompleteURL)
	}
	if r := w.Load(t, id).Request; r.Status() != events.StatusGranted {
		t.Fatalf("fulfilment changed the request: %s", r.Status())
	}
}

// TestRevokeTaskNamesTheExtension (issue 16): alice's manual grant is extended, and the extension is
// granted by hand. When the first grant's revocation comes due, its revoke task names the extension
// (continued_by, in the event and the list) and tells the fulfiller to keep the access, not remove it.
func TestRevokeTaskNamesTheExtension(t *testing.T) {
	w := newWorld(t)
	start(t, w, deps(w, nil))
	grantByHand := func(id string) {
		t.Helper()
		w.Approve(t, id, targettest.Carol)
		w.WaitFor(t, id, 20*time.Second, "the grant task", func(r *events.Request) bool { return len(r.Tasks()) == 1 })
		path := "/v1/tasks/" + manualtask.ID(id, events.TaskGrant) + "/complete"
		if status, body := w.Call(t, "POST", path, "dave", `{"evidence":"profile OPER granted to alice"}`); status != http.StatusOK {
			t.Fatalf("completing the grant task of %s: %d %s", id, status, body)
		}
	}
	first := w.Submit(t, targettest.Request{Requester: targettest.Alice, Entitlement: "mainframe-operator", Duration: time.Hour})
	grantByHand(first)
	extension := w.Submit(t, targettest.Request{Requester: targettest.Alice, Entitlement: "mainframe-operator", Duration: time.Hour, Extends: first})
	grantByHand(extension)

	w.Append(t, events.Revoker, first, events.Draft{Payload: events.RevocationRequested{By: "alice", Reason: events.RevokeEarly, Note: "done"},
		Actor: "alice", CausationID: "revocation-requested"})
	r := w.WaitFor(t, first, 20*time.Second, "the revoke task", func(r *events.Request) bool { return len(r.Tasks()) == 2 })
	if task := r.Tasks()[1]; task.Purpose != events.TaskRevoke || task.ContinuedBy != extension ||
		!strings.Contains(task.Instructions, "Request "+extension+" extends this grant") || !strings.Contains(task.Instructions, "keep mainframe-operator") {
		t.Fatalf("the first grant's revoke task: %+v, want it continued by %s", task, extension)
	}
	status, body := w.Call(t, "GET", "/v1/tasks", "dave", "")
	var l httpapi.TaskList
	if status != http.StatusOK || json.Unmarshal(body, &l) != nil {
		t.Fatalf("list: %d %s", status, body)
	}
	if len(l.Tasks) != 1 || l.Tasks[0].RequestID != first || l.Tasks[0].ContinuedBy != extension {
		t.Fatalf("dave's tasks: %+v, want the first grant's revoke task continued by %s", l.Tasks, extension)
	}
}

// TestTaskIndexRebuilt: the task index loses an open task; at its next start fulfilment finds it in
// the stream and lists it again.
func TestTaskIndexRebuilt(t *testing.T) {
	w := newWorld(t)
	d := deps(w, nil)
	d.Routes(w.Mux, w.Log)
	stop := targettest.Run(t, func(ctx context.Context) error { return d.Consume(ctx, w.Log) })
	id := w.Submit(t, targettest.Request{Requester: targettest.Alice, Entitlement: "mainframe-operator", Duration: time.Hour})
	w.Approve(t, id, targettest.Carol)
	w.WaitFor(t, id, 20*time.Second, "the grant task", func(r *events.Request) bool { return len(r.Tasks()) == 1 })
	stop()
	taskID := manualtask.ID(id, events.TaskGrant)
	if err := w.Tasks.Remove(context.Background(), taskID); err != nil {
		t.Fatal(err)
	}
	listed := func() bool {
		status, body := w.Call(t, "GET", "/v1/tasks", "dave", "")
		return status == http.StatusOK && strings.Contains(string(body), taskID)
	}
	if listed() {
		t.Fatal("the task is listed after it left the index")
	}
	targettest.Run(t, func(ctx context.Context) error { return d.Consume(ctx, w.Log) })
	poll.Until(t, 20*time.Second, "the task to be listed again", listed)
}

// crashing is the PostgreSQL connector with a hook after each real grant: an error from it is what
// fulfilment sees, as if the process had died between the grant and the append.
type crashing struct {
	*postgres.Connector
	grants atomic.Int32
	after  func(g connector.Grant, n int32) error
}

func (c *crashing) Grant(ctx context.Context, g connector.Grant) (events.Observed, error) {
	obs, err := c.Connector.Grant(ctx, g)
	n := c.grants.Add(1)
	if err == nil && c.after != nil {
		err = c.after(g, n)
	}
	return obs, err
}

// exactlyOne checks that request id ended with one granted event and one grant on the target.
func exactlyOne(t *testing.T, w *world, id string) {
	t.Helper()
	if n := w.Count(t, id, events.TypeGranted); n != 1 {
		t.Fatalf("%d granted events, want 1", n)
	}
	if n := w.GrantRoles(t, id); n != 1 {
		t.Fatalf("%d grants on the target, want 1", n)
	}
	if n := w.Count(t, id, events.TypeFulfilmentFailed); n != 0 {
		t.Fatalf("%d fulfilment_failed events", n)
	}
}

// TestExactlyOneGrant: a crash between the grant and the append, a delivery redelivered after its
// append, and two replicas on one consumer (and both handling the same delivery at once) each end with
// one grant on the target and one granted event.
func TestExactlyOneGrant(t *testing.T) {
	t.Run("a crash between the grant and the append", func(t *testing.T) {
		w := newWorld(t)
		conn := &crashing{Connector: w.PG, after: func(_ connector.Grant, n int32) error {
			if n == 1 {
				return errors.New("process died after granting, before appending")
			}
			return nil
		}}
		start(t, w, deps(w, connector.Set{postgres.Name: conn}))
		id := w.Approved(t, targettest.Request{Requester: someone("engineers"), Entitlement: "analytics-read", Duration: time.Hour})
		w.WaitFor(t, id, 20*time.Second, "the grant after the redelivery", granted)
		exactlyOne(t, w, id)
		if n := conn.grants.Load(); n != 2 {
			t.Fatalf("%d grant calls, want 2 (the crashed one and the redelivery)", n)
		}
	})

	t.Run("a delivery redelivered after its append", func(t *testing.T) {
		w := newWorld(t)
		conn := &crashing{Connector: w.PG}
		d := deps(w, connector.Set{postgres.Name: conn})
		h := d.Reactions(w.Log)
		var deliveries atomic.Int32
		targettest.Run(t, func(ctx context.Context) error {
			return consumer.Run(ctx, w.JS, reaction.FulfilSpec(), func(ctx context.Context, msg jetstream.Msg) error {
				err := h.Fulfil(ctx, msg)
				if deliveries.Add(1) == 1 && err == nil {
					return errors.New("process died after appending, before acknowledging")
				}
				return err
			}, w.Log)
		})
		id := w.Approved(t, targettest.Request{Requester: someone("engineers"), Entitlement: "analytics-read", Duration: time.Hour})
		w.WaitFor(t, id, 20*time.Second, "the grant", granted)
		poll.Until(t, 20*time.Second, "the redelivery", func() bool { return deliveries.Load() >= 2 })
		exactlyOne(t, w, id)
		if n := conn.grants.Load(); n != 1 {
			t.Fatalf("%d grant calls, want 1: the redelivery must find the grant recorded", n)
		}
	})

	t.Run("two replicas on one consumer", func(t *testing.T) {
		w := newWorld(t)
		var replicas []*reaction.Reactions
		for range 2 {
			d := deps(w, nil)
			replicas = append(replicas, d.Reactions(w.Log))
			targettest.Run(t, func(ctx context.Context) error { return d.Consume(ctx, w.Log) })
		}
		var ids []string
		for range 12 {
			ids = append(ids, w.Approved(t, targettest.Request{Requester: someone("engineers"), Entitlement: "analytics-read", Duration: time.Hour}))
		}
		// And both replicas handling one delivery at the same moment, as after a redelivery to the
		// other replica while the first is still at work.
		raced := w.Submit(t, targettest.Request{Requester: someone("engineers"), Entitlement: "payments-admin", Duration: time.Hour})
		w.Allow(t, raced)
		l := w.Load(t, raced)
		delivery := eventstore.Delivery{RequestID: raced, Seq: l.LastSeq, Event: l.Events[len(l.Events)-1]}
		var wg sync.WaitGroup
		for _, h := range replicas {
			wg.Go(func() {
				if err := h.Handle(context.Background(), delivery, 1); err != nil {
					t.Errorf("replica: %v", err)
				}
			})
		}
		wg.Wait()
		for _, id := range append(ids, raced) {
			w.WaitFor(t, id, 30*time.Second, "the grant", granted)
			exactlyOne(t, w, id)
		}
	})
}

// TestWithdrawnWhileGrantingIsUndone: the requester withdraws between the grant on the target and the
// append; fulfilment finds the request closed and removes what it granted.
func TestWithdrawnWhileGrantingIsUndone(t *testing.T) {
	w := newWorld(t)
	conn := &crashing{Connector: w.PG}
	conn.after = func(g connector.Grant, _ int32) error {
		w.Append(t, events.Intake, g.ID, events.Draft{Payload: events.Withdrawn{Reason: "not needed after all"}, Actor: g.Subject.ID})
		return nil
	}
	start(t, w, deps(w, connector.Set{postgres.Name: conn}))
	who := someone("engineers")
	id := w.Approved(t, targettest.Request{Requester: who, Entitlement: "analytics-read", Duration: time.Hour})
	w.WaitFor(t, id, 20*time.Second, "the withdrawal", func(r *events.Request) bool { return r.Status() == events.StatusWithdrawn })
	poll.Until(t, 20*time.Second, "the grant to be undone", func() bool { return w.GrantRoles(t, id) == 0 })
	if w.Holds(t, who.ID, "analytics_read") || w.Count(t, id, events.TypeGranted) != 0 {
		t.Fatal("a withdrawn request kept its grant")
	}
}

// TestFailuresAreRecorded: what no retry can fix ends the request at once; a target refusing
// connections for longer than the retry time ends it too, as failed with the reason and the attempts,
// instead of leaving it approved for ever with its delivery in the dead-letter stream.
func TestFailuresAreRecorded(t *testing.T) {
	w := newWorld(t)
	onlyAnalytics, err := postgres.New(w.Target, map[string]string{"analytics-read": "analytics_read"})
	if err != nil {
		t.Fatal(err)
	}
	refusing, err := postgres.New(refusingPool(t), map[string]string{"analytics-read": "analytics_read"})
	if err != nil {
		t.Fatal(err)
	}
	d := deps(w, connector.Set{postgres.Name: onlyAnalytics})
	d.RetryFor = 3 * time.Second
	start(t, w, d)

	unmapped := w.Approved(t, targettest.Request{Requester: someone("engineers"), Entitlement: "payments-admin", Duration: time.Hour})
	r := w.WaitFor(t, unmapped, 20*time.Second, "the permanent failure", func(r *events.Request) bool { return r.Status() == events.StatusFailed })
	if f := r.Failure(); !f.Permanent || f.ErrorClass != postgres.ClassNoMapping || f.Attempts != 1 {
		t.Fatalf("failure %+v", f)
	}

	down := newWorld(t)
	d = deps(down, connector.Set{postgres.Name: refusing})
	d.RetryFor = 3 * time.Second
	start(t, down, d)
	stuck := down.Approved(t, targettest.Request{Requester: someone("engineers"), Entitlement: "analytics-read", Duration: time.Hour})
	r = down.WaitFor(t, stuck, 30*time.Second, "the request to fail once the retry time is over", func(r *events.Request) bool {
		return r.Status() == events.StatusFailed
	})
	if f := r.Failure(); f.Permanent || f.ErrorClass != postgres.ClassUnavailable || f.Attempts < 2 || !strings.Contains(f.Message, "refused") {
		t.Fatalf("failure %+v", f)
	}
	for _, b := range down.StreamBodies(t, topology.DLQStream) {
		if strings.Contains(string(b), stuck) {
			t.Fatal("a request that failed in the open was also set aside in the dead-letter stream")
		}
	}
}

// refusingPool is a pool on a loopback port bound by the test but never listened on: every connection
// is refused, and no other process (a parallel test's server) can take the port meanwhile, as it could
// a port picked and released.
func refusingPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	pool, err := pgxpool.New(context.Background(), "postgres://postgres@"+addr+"/target?sslmode=disable&connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// TestListingDoesNotDropATaskAboutToOpen: fulfilment indexes a task just before it appends
// task_opened; a listing in between must leave the candidate in the index, or the task would never be
// listed once it opens (seen as a task that never appeared, under load).
func TestListingDoesNotDropATaskAboutToOpen(t *testing.T) {
	w := newWorld(t)
	d := deps(w, nil)
	d.Routes(w.Mux, w.Log)
	id := w.Submit(t, targettest.Request{Requester: targettest.Alice, Entitlement: "mainframe-operator", Duration: time.Hour})
	w.Approve(t, id, targettest.Carol)
	taskID := manualtask.ID(id, events.TaskGrant)
	candidate := taskindex.Task{ID: taskID, RequestID: id, Purpose: events.TaskGrant, FulfillerGroups: []string{"operations"},
		DueAt: time.Now().Add(time.Hour), Entitlement: "mainframe-operator", Requester: "alice", Subject: "alice"}
	if err := w.Tasks.Put(context.Background(), candidate); err != nil {
		t.Fatal(err)
	}
	if status, body := w.Call(t, "GET", "/v1/tasks", "dave", ""); status != http.StatusOK || strings.Contains(string(body), taskID) {
		t.Fatalf("a task not opened yet was listed: %d %s", status, body)
	}
	left, err := w.Tasks.For(context.Background(), []string{"operations"})
	if err != nil || len(left) != 1 || left[0].ID != taskID {
		t.Fatalf("the listing dropped the candidate from the index: %v %+v", err, left)
	}
	targettest.Run(t, func(ctx context.Context) error { return d.Consume(ctx, w.Log) })
	poll.Until(t, 20*time.Second, "the task to be listed once it opens", func() bool {
		status, body := w.Call(t, "GET", "/v1/tasks", "dave", "")
		return status == http.StatusOK && strings.Contains(string(body), taskID)
	})
}
