package revokerd_test

import (
	"context"
	"encoding/json/v2"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/connector"
	"github.com/grantline/grantline/pkg/connector/postgres"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/manualtask"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/services/fulfilment/fulfilmenttest"
	"github.com/grantline/grantline/services/fulfilment/httpapi"
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

// TestDemoEntitlementsFromApprovedToRevoked takes each demo entitlement from approved through granted
// to revoked at its expiry, checking the target's real state before the grant, after it and after the
// revocation (for the manual one, the evidence people recorded).
func TestDemoEntitlementsFromApprovedToRevoked(t *testing.T) {
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
			func(events.Principal) events.RequestSubject { return fulfilmenttest.SvcReporting }, false, loginValid("reporting_read"), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			requester := someone("engineers")
			subject := events.RequestSubject{Kind: events.SubjectHuman, ID: requester.ID}
			if tc.subject != nil {
				subject = tc.subject(requester)
			}
			id := e.Submit(t, fulfilmenttest.Request{Requester: requester, Subject: subject, Entitlement: tc.entitlement,
				Duration: 3 * time.Second, Emergency: tc.emergency})
			if tc.holds(t, e, id, subject) {
				t.Fatal("the target shows the access before the grant")
			}
			e.Allow(t, id)
			e.WaitFor(t, id, 20*time.Second, "the grant", granted)
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
			if n := e.Count(t, id, events.TypeExpired); n != 1 {
				t.Fatalf("%d expired events", n)
			}
		})
	}
	t.Run("mainframe-operator: by hand, with evidence", func(t *testing.T) {
		t.Parallel()
		id := e.Submit(t, fulfilmenttest.Request{Requester: fulfilmenttest.Alice, Entitlement: "mainframe-operator", Duration: 3 * time.Second})
		e.Approve(t, id, fulfilmenttest.Carol)
		complete := func(purpose events.TaskPurpose, user, evidence string) {
			t.Helper()
			taskID := manualtask.ID(id, purpose)
			e.WaitFor(t, id, 20*time.Second, "the "+string(purpose)+" task", func(r *events.Request) bool {
				_, open := manualtask.Outstanding(r, purpose)
				return open
			})
			status, body := e.Call(t, "GET", "/v1/tasks", user, "")
			var list httpapi.TaskList
			var path string
			if status != http.StatusOK || json.Unmarshal(body, &list) != nil {
				t.Fatalf("%s's tasks: %d %s, want %s", user, status, body, taskID)
			}
			if path = listed(list, taskID); path == "" {
				t.Fatalf("%s's tasks: %s, want %s", user, body, taskID)
			}
			if status, body := e.Call(t, "POST", path, "alice", `{"evidence":"did it myself"}`); status != http.StatusForbidden {
				t.Fatalf("the requester completing the %s task: %d %s", purpose, status, body)
			}
			if status, body := e.Call(t, "POST", path, user, fmt.Sprintf(`{"evidence":%q}`, evidence)); status != http.StatusOK {
				t.Fatalf("%s completing the %s task: %d %s", user, purpose, status, body)
			}
		}
		complete(events.TaskGrant, "dave", "profile OPER granted to alice, CHG-1")
		if g := e.Load(t, id).Request.Grant(); g == nil || g.Fulfiller != "dave" || g.Observed.Detail["evidence"] != "profile OPER granted to alice, CHG-1" {
			t.Fatalf("granted %+v", g)
		}
		complete(events.TaskRevoke, "dave", "profile OPER removed from alice, CHG-2")
		rv := e.WaitFor(t, id, 20*time.Second, "the revocation", revoked).Revoked()
		if rv.Reason != events.RevokeExpired || rv.Observed.Present || rv.Observed.Detail["completed_by"] != "dave" {
			t.Fatalf("revoked %+v", rv)
		}
	})
}

// listed is where task id is completed, if the list says the caller may; "" if not.
func listed(l httpapi.TaskList, id string) string {
	for _, t := range l.Tasks {
		if t.ID == id && t.MayComplete {
			return t.CompleteURL
		}
	}
	return ""
}

// TestTargetDownYieldsRevocationFailed: the target refuses revocations for longer than the retry
// budget; revocation_failed records the overdue revocation once (not per retry), the revoker keeps
// trying, and revokes once the target is back. Nothing is dead-lettered.
func TestTargetDownYieldsRevocationFailed(t *testing.T) {
	var target *switchable
	e := newEnv(t, func(e *env) {
		target = &switchable{Connector: e.PG}
		target.set(true)
		set := connector.Set{postgres.Name: target}
		e.fulfil.Connectors, e.revoke.Connectors = set, set
	})
	who := someone("engineers")
	id := e.Approved(t, fulfilmenttest.Request{Requester: who, Entitlement: "analytics-read", Duration: 2 * time.Second})
	g := e.WaitFor(t, id, 20*time.Second, "the grant", granted).Grant()
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
}

// TestEarlyRevocation: the requester, an owner of the entitlement or an administrator may end a grant
// early over HTTP (202, then revoked with reason early); anyone else is refused.
func TestEarlyRevocation(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name        string
		requester   events.Principal
		entitlement string
		refused     map[string]int
		by          string
	}{
		{"the requester", fulfilmenttest.Alice, "analytics-read",
			map[string]int{"": http.StatusUnauthorized, "dave": http.StatusForbidden, "erin": http.StatusForbidden, "frank": http.StatusForbidden}, "alice"},
		{"an owner of the entitlement", fulfilmenttest.Alice, "payments-admin", map[string]int{"dave": http.StatusForbidden}, "bob"},
		{"an administrator", fulfilmenttest.Frank, "analytics-read", map[string]int{"alice": http.StatusForbidden}, "carol"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := e.Approved(t, fulfilmenttest.Request{Requester: tc.requester, Entitlement: tc.entitlement, Duration: time.Hour})
			e.WaitFor(t, id, 20*time.Second, "the grant", granted)
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
	pending := e.Submit(t, fulfilmenttest.Request{Requester: fulfilmenttest.Alice, Entitlement: "analytics-read", Duration: time.Hour})
	if status, body := e.Call(t, "POST", "/v1/requests/"+pending+"/revoke", "alice", `{"reason":"x"}`); status != http.StatusConflict {
		t.Fatalf("revoking a request never granted: %d %s", status, body)
	}
	if status, _ := e.Call(t, "POST", "/v1/requests/"+events.NewID()+"/revoke", "alice", `{"reason":"x"}`); status != http.StatusNotFound {
		t.Fatalf("revoking an unknown request: %d", status)
	}
	if status, _ := e.Call(t, "POST", "/v1/requests/"+pending+"/revoke", "alice", `{}`); status != http.StatusUnprocessableEntity {
		t.Fatalf("revoking without a reason: %d", status)
	}
}

// TestFlaggedPostReviewRevokes: security flags a break-glass grant after the fact; the revoker ends it.
func TestFlaggedPostReviewRevokes(t *testing.T) {
	e := newEnv(t)
	who := someone("engineers")
	id := e.Approved(t, fulfilmenttest.Request{Requester: who, Entitlement: "payments-admin", Duration: time.Hour, Emergency: true})
	e.WaitFor(t, id, 20*time.Second, "the grant", granted)
	e.Append(t, events.Approval, id, events.Draft{Payload: events.PostReviewed{Reviewer: fulfilmenttest.Carol,
		Outcome: events.PostReviewFlagged, Reason: "no incident on record"}, Actor: "carol", CausationID: "post-review"})
	r := e.WaitFor(t, id, 20*time.Second, "the revocation", revoked)
	if r.Revoked().Reason != events.RevokeReviewFailed || e.Holds(t, who.ID, "payments_admin") {
		t.Fatalf("revoked %+v", r.Revoked())
	}
}

// TestSweepArmsLostSchedules: the expiry schedules are lost while the revoker is down (the timers
// stream purged); at start it finds the live grants without a schedule and arms them, so they are
// still revoked on time.
func TestSweepArmsLostSchedules(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	who := someone("engineers")
	id := e.Approved(t, fulfilmenttest.Request{Requester: who, Entitlement: "analytics-read", Duration: 4 * time.Second})
	e.WaitFor(t, id, 20*time.Second, "the grant", granted)
	st, err := e.JS.Stream(ctx, topology.TimersStream)
	if err != nil {
		t.Fatal(err)
	}
	schedules := func() uint64 {
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(topology.TimerSchedule(id, topology.TimerExpiry)))
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}
	poll.Until(t, 10*time.Second, "the expiry to be armed", func() bool { return schedules() == 1 })
	e.stopRevoker()
	if err := st.Purge(ctx, jetstream.WithPurgeSubject(topology.TimerSubjects)); err != nil {
		t.Fatal(err)
	}
	if schedules() != 0 {
		t.Fatal("the schedule survived the purge")
	}
	e.startRevoker(t)
	r := e.WaitFor(t, id, 30*time.Second, "the revocation", revoked)
	if r.Revoked().Reason != events.RevokeExpired || e.Holds(t, who.ID, "analytics_read") {
		t.Fatalf("revoked %+v", r.Revoked())
	}
}
