package revokerd_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/connector"
	"github.com/grantline/grantline/pkg/connector/postgres"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/manualtask"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/pkg/targettest"
	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/services/revoker"
)

// targetState is what the PostgreSQL target shows for one grant, in the terms of its entitlement.
type targetState func(t *testing.T, e *env, id string, subject events.RequestSubject) bool

// holdsRole: the person holds role (pg_auth_members through their grant role, pg_has_role).
func holdsRole(role string) targetState {
	return func(t *testing.T, e *env, id string, s events.RequestSubject) bool {
		has := e.Holds(t, s.ID, role)
		if has != (e.Memberships(t, s.ID, postgres.GrantRole(id)) == 1) {
			t.Fatalf("pg_has_role says %v but pg_auth_members disagrees", has)
		}
		return has
	}
}

// loginValid: the service account's login exists in pg_roles, may log in, and is a member of role.
func loginValid(role string) targetState {
	return func(t *testing.T, e *env, id string, s events.RequestSubject) bool {
		login := postgres.LoginRole(s.ID, id)
		exists, canLogin, until := e.Login(t, login)
		return exists && canLogin && until != nil && until.After(time.Now().Add(-time.Minute)) && e.Holds(t, login, role)
	}
}

// TestDemoEntitlementsRevokedAtExpiry: each demo entitlement with a connector, granted on the target as
// fulfilment would, is revoked at its expiry, checking the target's real state before the grant, after
// it and after the revocation.
func TestDemoEntitlementsRevokedAtExpiry(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name        string
		entitlement string
		subject     func(requester events.Principal) events.RequestSubject
		emergency   bool
		holds       targetState
		destroyed   bool
	}{
		{"analytics-read: a role for a person", "analytics-read", nil, false, holdsRole("analytics_read"), false},
		{"payments-admin: a break-glass role", "payments-admin", nil, true, holdsRole("payments_admin"), false},
		{"reporting-db-credential: a login for a service account", "reporting-db-credential",
			func(events.Principal) events.RequestSubject { return targettest.SvcReporting }, false, loginValid("reporting_read"), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			requester := someone("engineers")
			subject := events.RequestSubject{Kind: events.SubjectHuman, ID: requester.ID}
			if tc.subject != nil {
				subject = tc.subject(requester)
			}
			id := e.Approved(t, targettest.Request{Requester: requester, Subject: subject, Entitlement: tc.entitlement,
				Duration: 3 * time.Second, Emergency: tc.emergency})
			if tc.holds(t, e, id, subject) {
				t.Fatal("the target shows the access before the grant")
			}
			e.grant(t, id, 3*time.Second)
			if !tc.holds(t, e, id, subject) {
				t.Fatal("the target does not show the access after the grant")
			}
			r := e.WaitFor(t, id, 30*time.Second, "the revocation at expiry", revoked)
			if tc.holds(t, e, id, subject) {
				t.Fatal("the target still shows the access after the revocation")
			}
			rv := r.Revoked()
			if rv.Reason != events.RevokeExpired || rv.Observed.Present || rv.CredentialDestroyed != tc.destroyed {
				t.Fatalf("revoked %+v", rv)
			}
			// Revoked at the first attempt: one evidence write, no expired before it.
			if n := e.Count(t, id, events.TypeExpired); n != 0 {
				t.Fatalf("%d expired events for an expiry revoked at once", n)
			}
		})
	}
}

// TestRevokeTaskCompletedAtTheRevoker: mainframe-operator has no API. Dave of operations granted it by
// hand; at its expiry the revoker records expired and changes nothing on a target; fulfilment opens a
// revoke task; the revoker's own route completes it, by someone in the task's groups who neither asked
// for nor approved the access, with evidence, and records revoked with what they observed.
func TestRevokeTaskCompletedAtTheRevoker(t *testing.T) {
	e := newEnv(t)
	id := e.Submit(t, targettest.Request{Requester: targettest.Alice, Entitlement: "mainframe-operator", Duration: 3 * time.Second})
	e.Approve(t, id, targettest.Carol)
	// What fulfilment records for a manual entitlement: the grant task, and dave's completion of it.
	grantTask := manualtask.ID(id, events.TaskGrant)
	e.Append(t, events.Fulfilment, id, events.Draft{Payload: events.TaskOpened{TaskID: grantTask, Purpose: events.TaskGrant,
		FulfillerGroups: []string{"operations"}, DueAt: time.Now().Add(time.Hour)}, Actor: fulfilment, CausationID: "task:grant"})
	e.Append(t, events.Fulfilment, id, events.Draft{Payload: events.Granted{Connector: manualtask.Connector, TargetRef: "mainframe-operator",
		Observed:  events.Observed{Present: true, Detail: map[string]string{"evidence": "profile OPER added, CHG-1"}},
		ExpiresAt: time.Now().Add(3 * time.Second), Fulfiller: "dave", TaskID: grantTask}, Actor: "dave", CausationID: "task:" + grantTask})

	revokeTask := manualtask.ID(id, events.TaskRevoke)
	path := "/v1/revoke-tasks/" + revokeTask + "/complete"
	if status, body := e.Call(t, "POST", path, "dave", `{"evidence":"early"}`); status != http.StatusNotFound {
		t.Fatalf("completing the revoke task before the revocation is due: %d %s", status, body)
	}
	e.WaitFor(t, id, 20*time.Second, "expired", func(r *events.Request) bool { return r.RevocationDue() == events.RevokeExpired })
	// What fulfilment does once the revocation is due: the revoke task for operations.
	e.Append(t, events.Fulfilment, id, events.Draft{Payload: events.TaskOpened{TaskID: revokeTask, Purpose: events.TaskRevoke,
		FulfillerGroups: []string{"operations"}, DueAt: time.Now().Add(time.Hour)}, Actor: fulfilment, CausationID: "task:revoke"})

	for _, tc := range []struct {
		name, path, user, body string
		status                 int
	}{
		{"without a token", path, "", `{"evidence":"done"}`, http.StatusUnauthorized},
		{"by the requester", path, "alice", `{"evidence":"removed it myself"}`, http.StatusForbidden},
		{"by the approver", path, "carol", `{"evidence":"done"}`, http.StatusForbidden},
		{"by someone outside operations who may not see the request: no such task", path, "erin", `{"evidence":"done"}`, http.StatusNotFound},
		{"without evidence", path, "dave", `{"evidence":""}`, http.StatusUnprocessableEntity},
		{"naming who did it", path, "dave", `{"evidence":"done","completed_by":"carol"}`, http.StatusBadRequest},
		{"of the grant task", "/v1/revoke-tasks/" + grantTask + "/complete", "dave", `{"evidence":"done"}`, http.StatusNotFound},
		{"of no task", "/v1/revoke-tasks/" + id + "-other/complete", "dave", `{"evidence":"done"}`, http.StatusNotFound},
		{"by dave, with evidence", path, "dave", `{"evidence":"profile OPER removed from alice, CHG-2"}`, http.StatusOK},
		{"by dave again (a retry)", path, "dave", `{"evidence":"profile OPER removed from alice, CHG-2"}`, http.StatusOK},
		{"by another operator afterwards", path, "frank", `{"evidence":"me too"}`, http.StatusNotFound},
	} {
		if status, body := e.Call(t, "POST", tc.path, tc.user, tc.body); status != tc.status {
			t.Fatalf("completing %s: %d %s, want %d", tc.name, status, body, tc.status)
		}
	}
	r := e.Load(t, id).Request
	rv := r.Revoked()
	if r.Status() != events.StatusRevoked || rv.Reason != events.RevokeExpired || rv.Observed.Present ||
		rv.Observed.Detail["completed_by"] != "dave" || rv.Observed.Detail["evidence"] != "profile OPER removed from alice, CHG-2" {
		t.Fatalf("%s, revoked %+v", r.Status(), rv)
	}
	if n := e.Count(t, id, events.TypeRevoked); n != 1 {
		t.Fatalf("%d revoked events", n)
	}
}

// TestTargetDownYieldsRevocationFailed: the target refuses revocations for longer than the retry
// budget; revocation_failed records the overdue revocation once (not per retry), the revoker keeps
// trying, and revokes once the target is back. Nothing is dead-lettered.
func TestTargetDownYieldsRevocationFailed(t *testing.T) {
	var target *switchable
	e := newEnv(t, func(e *env) {
		target = &switchable{Connector: e.PG}
		target.set(true)
		e.revoke.Connectors = connector.Set{postgres.Name: target}
	})
	who := someone("engineers")
	id := e.Granted(t, targettest.Request{Requester: who, Entitlement: "analytics-read", Duration: 2 * time.Second})
	g := e.Load(t, id).Request.Grant()
	r := e.WaitFor(t, id, 30*time.Second, "revocation_failed", func(r *events.Request) bool { return r.RevocationFailure() != nil })
	f := r.RevocationFailure()
	if f.Attempts < 2 || !f.OverdueSince.Equal(g.ExpiresAt) || f.ErrorClass != postgres.ClassUnavailable || r.Status() != events.StatusGranted {
		t.Fatalf("recorded %+v with status %s, want overdue since %s", f, r.Status(), g.ExpiresAt)
	}
	seen := target.attempts()
	poll.Until(t, 20*time.Second, "more attempts", func() bool { return target.attempts() >= seen+3 })
	if n := e.Count(t, id, events.TypeRevocationFailed); n != 1 {
		t.Fatalf("%d revocation_failed events for one outage, want 1 (then one per report period)", n)
	}
	if !e.Holds(t, who.ID, "analytics_read") {
		t.Fatal("the grant vanished while the target was down")
	}
	target.set(false)
	rv := e.WaitFor(t, id, 30*time.Second, "the revocation once the target is back", revoked).Revoked()
	if rv.Reason != events.RevokeExpired || rv.Observed.Present || e.Holds(t, who.ID, "analytics_read") {
		t.Fatalf("revoked %+v", rv)
	}
	if n := len(e.StreamBodies(t, topology.DLQStream)); n != 0 {
		t.Fatalf("%d dead letters: a revocation must never be set aside", n)
	}
	// The first attempt failed: expired kept the overdue grant visible before the revocation.
	if n := e.Count(t, id, events.TypeExpired); n != 1 {
		t.Fatalf("%d expired events after a failed first attempt, want 1", n)
	}
}

// TestRevocationsGoOnceTheTargetIsBack: grants expire while the target is down, long enough that their
// own backoff has grown past several seconds; the target's circuit breaker opens, probes, and once the
// target answers every waiting revocation is done within a few seconds, not after its backoff.
func TestRevocationsGoOnceTheTargetIsBack(t *testing.T) {
	target := &switchable{}
	target.set(true)
	calls := &counting{}
	e := newEnv(t, func(e *env) {
		target.Connector = e.PG
		calls.Connector = connector.Shield(target, connector.NewBreaker("target", 0, 0, nil))
		e.revoke.Connectors = connector.Set{postgres.Name: calls}
		e.revoke.BackoffCap = time.Minute
	})
	var ids []string
	for range 4 {
		ids = append(ids, e.Granted(t, targettest.Request{Requester: someone("engineers"), Entitlement: "analytics-read", Duration: time.Second}))
	}
	// Six failed attempts each: a backoff of its own would now wait 8 s, then 16 s.
	poll.Until(t, 60*time.Second, "six failed attempts at every revocation", func() bool {
		for _, id := range ids {
			if calls.of(id) < 6 {
				return false
			}
		}
		return true
	})
	target.set(false)
	back := time.Now()
	poll.Until(t, 5*time.Second, "every waiting revocation once the target is back", func() bool {
		for _, id := range ids {
			if !revoked(e.Load(t, id).Request) {
				return false
			}
		}
		return true
	})
	t.Logf("every waiting revocation done %s after the target came back", time.Since(back).Round(time.Millisecond))
}

// counting counts the revocations asked of a connector, by grant.
type counting struct {
	connector.Connector
	mu    sync.Mutex
	calls map[string]int
}

func (c *counting) Revoke(ctx context.Context, g connector.Grant) (events.Observed, error) {
	c.mu.Lock()
	if c.calls == nil {
		c.calls = map[string]int{}
	}
	c.calls[g.ID]++
	c.mu.Unlock()
	return c.Connector.Revoke(ctx, g)
}

func (c *counting) of(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[id]
}

// TestHangingAttemptsAreOverdueByTheClock: every attempt at the target hangs; the revocation is
// recorded overdue once it is past its expiry by the SLO, whatever the attempts, not after the retry
// budget's worth of hung attempts.
func TestHangingAttemptsAreOverdueByTheClock(t *testing.T) {
	const slo = 2 * time.Second
	target := &hanging{}
	e := newEnv(t, func(e *env) {
		target.Connector = e.PG
		e.revoke.Connectors = connector.Set{postgres.Name: target}
		e.revoke.Failures = revoker.FailurePolicy{Budget: 5, Every: time.Hour, SLO: slo}
		e.revoke.AttemptTimeout = 20 * time.Second
	})
	who := someone("engineers")
	id := e.Granted(t, targettest.Request{Requester: who, Entitlement: "analytics-read", Duration: time.Second})
	expires := e.Load(t, id).Request.Grant().ExpiresAt
	e.WaitFor(t, id, 20*time.Second, "revocation_failed", func(r *events.Request) bool { return r.RevocationFailure() != nil })
	var recorded time.Time
	for _, ev := range e.Load(t, id).Events {
		if ev.Type == events.TypeRevocationFailed {
			recorded = ev.Time
		}
	}
	if late := recorded.Sub(expires); late > slo+time.Second {
		t.Fatalf("recorded %s after the expiry; the SLO is %s", late, slo)
	}
	if f := e.Load(t, id).Request.RevocationFailure(); f.Attempts >= 5 || !f.OverdueSince.Equal(expires) {
		t.Fatalf("recorded %+v: want fewer attempts than the budget, overdue since %s", f, expires)
	}
}

// hanging is the PostgreSQL connector whose revocations never answer until their context ends.
type hanging struct{ *postgres.Connector }

func (h *hanging) Revoke(ctx context.Context, _ connector.Grant) (events.Observed, error) {
	<-ctx.Done()
	return events.Observed{}, connector.Transient(postgres.ClassUnavailable, ctx.Err())
}

// RevokeBatch hangs grant by grant.
func (h *hanging) RevokeBatch(ctx context.Context, gs []connector.Grant) []connector.Revocation {
	return connector.RevokeEach(ctx, h, gs)
}

// TestEarlyRevocation: the requester, an owner of the entitlement or an administrator may end a grant
// early over HTTP (202, then revoked with reason early); anyone else is refused, and a caller who may
// not even see the request is told it does not exist (404), as for an unknown ID.
func TestEarlyRevocation(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name        string
		requester   events.Principal
		entitlement string
		refused     map[string]int
		by          string
	}{
		{"the requester", targettest.Alice, "analytics-read",
			map[string]int{"": http.StatusUnauthorized, "dave": http.StatusNotFound, "erin": http.StatusNotFound, "frank": http.StatusNotFound}, "alice"},
		{"an owner of the entitlement", targettest.Alice, "payments-admin", map[string]int{"dave": http.StatusNotFound}, "bob"},
		{"an administrator", targettest.Frank, "analytics-read", map[string]int{"alice": http.StatusNotFound}, "carol"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := e.Granted(t, targettest.Request{Requester: tc.requester, Entitlement: tc.entitlement, Duration: time.Hour})
			path := "/v1/requests/" + id + "/revoke"
			for user, want := range tc.refused {
				if status, body := e.Call(t, "POST", path, user, `{"reason":"mine now"}`); status != want {
					t.Fatalf("%q revoking: %d %s, want %d", user, status, body, want)
				}
			}
			if status, body := e.Call(t, "POST", path, tc.by, `{"reason":"incident closed"}`); status != http.StatusAccepted {
				t.Fatalf("%s revoking: %d %s", tc.by, status, body)
			}
			r := e.WaitFor(t, id, 20*time.Second, "the revocation", revoked)
			if r.Revoked().Reason != events.RevokeEarly || r.Revoked().Observed.Present {
				t.Fatalf("revoked %+v", r.Revoked())
			}
			if e.Holds(t, tc.requester.ID, map[string]string{"analytics-read": "analytics_read", "payments-admin": "payments_admin"}[tc.entitlement]) {
				t.Fatal("the target still shows the role")
			}
			if status, _ := e.Call(t, "POST", path, tc.by, `{"reason":"again"}`); status != http.StatusAccepted {
				t.Fatalf("asking again after the revocation: %d", status)
			}
		})
	}
	pending := e.Submit(t, targettest.Request{Requester: targettest.Alice, Entitlement: "analytics-read", Duration: time.Hour})
	if status, body := e.Call(t, "POST", "/v1/requests/"+pending+"/revoke", "alice", `{"reason":"x"}`); status != http.StatusConflict {
		t.Fatalf("revoking a request never granted: %d %s", status, body)
	}
	unknown := events.NewID()
	if status, _ := e.Call(t, "POST", "/v1/requests/"+unknown+"/revoke", "alice", `{"reason":"x"}`); status != http.StatusNotFound {
		t.Fatalf("revoking an unknown request: %d", status)
	}
	// The request's state (never granted: 409 to alice) is not for dave to learn.
	hidden, hiddenBody := e.Call(t, "POST", "/v1/requests/"+pending+"/revoke", "dave", `{"reason":"x"}`)
	absent, absentBody := e.Call(t, "POST", "/v1/requests/"+unknown+"/revoke", "dave", `{"reason":"x"}`)
	if hidden != http.StatusNotFound || strings.ReplaceAll(string(hiddenBody), pending, unknown) != string(absentBody) {
		t.Fatalf("dave revoking alice's pending request: %d %s; an unknown one: %d %s", hidden, hiddenBody, absent, absentBody)
	}
	if status, _ := e.Call(t, "POST", "/v1/requests/"+pending+"/revoke", "alice", `{}`); status != http.StatusUnprocessableEntity {
		t.Fatalf("revoking without a reason: %d", status)
	}
}

// TestFlaggedPostReviewRevokes: security flags a break-glass grant after the fact; the revoker ends it.
func TestFlaggedPostReviewRevokes(t *testing.T) {
	e := newEnv(t)
	who := someone("engineers")
	id := e.Granted(t, targettest.Request{Requester: who, Entitlement: "payments-admin", Duration: time.Hour, Emergency: true})
	e.Append(t, events.Approval, id, events.Draft{Payload: events.PostReviewed{Reviewer: targettest.Carol,
		Outcome: events.PostReviewFlagged, Reason: "no incident on record"}, Actor: "carol", CausationID: "post-review"})
	r := e.WaitFor(t, id, 20*time.Second, "the revocation", revoked)
	if r.Revoked().Reason != events.RevokeReviewFailed || e.Holds(t, who.ID, "payments_admin") {
		t.Fatalf("revoked %+v", r.Revoked())
	}
}

// TestSweepArmsLostSchedules: while the revoker is down, the expiry timers are lost (the timers stream
// purged), and one grant's key in the expiry index too; at start the revoker wakes the seconds of the
// keys left, finds the live grants made since its last sweep whose key is missing, puts the key back,
// and both grants are still revoked.
func TestSweepArmsLostSchedules(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	who := someone("engineers")
	ids := []string{
		e.Granted(t, targettest.Request{Requester: who, Entitlement: "analytics-read", Duration: 4 * time.Second}),
		e.Granted(t, targettest.Request{Requester: who, Entitlement: "analytics-read", Duration: 5 * time.Second}),
	}
	e.armedKey(t, ids[0])
	lost := e.armedKey(t, ids[1])
	e.stopRevoker()
	e.purgeTimers(t)
	if err := e.revoke.Expiries.Purge(ctx, lost); err != nil {
		t.Fatal(err)
	}
	e.startRevoker(t)
	for _, id := range ids {
		r := e.WaitFor(t, id, 30*time.Second, "the revocation", revoked)
		if r.Revoked().Reason != events.RevokeExpired {
			t.Fatalf("revoked %+v", r.Revoked())
		}
	}
	if e.Holds(t, who.ID, "analytics_read") {
		t.Fatal("the target still shows the access")
	}
}
