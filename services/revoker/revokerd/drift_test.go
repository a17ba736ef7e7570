package revokerd_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/grantline/grantline/pkg/connector/postgres"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/natstest"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/pkg/targettest"
	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/services/revoker/reconcile"
)

// The drift tests list the whole PostgreSQL server, whose roles every test of the package shares: each
// begins by dropping what earlier tests left that looks like Grantline's, and none runs in parallel.

// clearTarget drops every grantline_* role and grant login on the target server.
func clearTarget(t testing.TB, e *env) {
	t.Helper()
	ctx := context.Background()
	hs, err := e.PG.Holdings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		name := strings.TrimPrefix(h.Ref, "role ")
		if _, err := e.Target.Exec(ctx, "DROP ROLE IF EXISTS "+pgx.Identifier{name}.Sanitize()); err != nil {
			t.Fatalf("drop %s: %v", name, err)
		}
	}
}

// dba runs statements on the target as a DBA would, by hand.
func dba(t *testing.T, e *env, statements ...string) {
	t.Helper()
	for _, sql := range statements {
		if _, err := e.Target.Exec(context.Background(), sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// revokeEarly asks for request id's early revocation, as its requester would, and waits for the revoker.
func (e *env) revokeEarly(t *testing.T, id string) {
	t.Helper()
	requester := e.Load(t, id).Request.Submitted().Requester.ID
	e.Append(t, events.Revoker, id, events.Draft{Payload: events.RevocationRequested{By: requester, Reason: events.RevokeEarly},
		Actor: requester, CausationID: "revocation-requested"})
	e.WaitFor(t, id, 30*time.Second, "the early revocation", revoked)
}

func reconcileOnce(t *testing.T, e *env) reconcile.Summary {
	t.Helper()
	sum, err := e.revoke.Reconciler(e.Log).Reconcile(context.Background())
	if err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	return sum
}

// driftOf is the drift recorded on request (or finding) id.
func driftOf(t *testing.T, e *env, id string) []events.DriftDetected {
	t.Helper()
	return e.Load(t, id).Request.Drift()
}

// TestReconcileCleanTargetFindsNothing: live grants of a person and a service account, and grants
// revoked at the target as recorded: the reconciler lists them and records nothing.
func TestReconcileCleanTargetFindsNothing(t *testing.T) {
	e := newEnv(t)
	clearTarget(t, e)
	person := e.Granted(t, targettest.Request{Requester: someone("engineers"), Entitlement: "analytics-read", Duration: time.Hour})
	login := e.Granted(t, targettest.Request{Requester: someone("engineers"), Subject: targettest.SvcReporting,
		Entitlement: "reporting-db-credential", Duration: time.Hour})
	gone := e.Granted(t, targettest.Request{Requester: someone("engineers"), Entitlement: "payments-admin", Duration: time.Hour})
	e.revokeEarly(t, gone)

	sum := reconcileOnce(t, e)
	if sum.Holdings != 2 || sum != (reconcile.Summary{Holdings: 2}) {
		t.Fatalf("reconcile of a clean target: %+v, want the two live grants listed and nothing else", sum)
	}
	for _, id := range []string{person, login, gone} {
		if d := driftOf(t, e, id); len(d) != 0 {
			t.Fatalf("drift recorded on %s: %+v", id, d)
		}
	}
	if n := e.driftEvents(t); n != 0 {
		t.Fatalf("%d drift_detected events in the stream", n)
	}
}

// driftEvents counts the drift_detected events in the evidence stream, findings included.
func (e *env) driftEvents(t *testing.T) uint64 {
	t.Helper()
	return natstest.Stored(t, e.JS, topology.EventsStream, events.NATSSubject("*", events.TypeDriftDetected))
}

// TestReconcileFindsDriftPlantedByHand: a DBA drops a live grant's role, re-adds a revoked grant's
// membership, re-creates a revoked service account's login, and adds a grantline_* role of their own.
// The next reconcile finds each: the missing access is recorded, the access back after revocation is
// recorded and revoked again (reason drift, observed absent), the stray role becomes a finding with the
// target's evidence. The reconcile after that finds nothing new.
func TestReconcileFindsDriftPlantedByHand(t *testing.T) {
	e := newEnv(t)
	clearTarget(t, e)
	alice, bob := someone("engineers"), someone("engineers")
	dropped := e.Granted(t, targettest.Request{Requester: alice, Entitlement: "analytics-read", Duration: time.Hour})
	readded := e.Granted(t, targettest.Request{Requester: bob, Entitlement: "payments-admin", Duration: time.Hour})
	login := e.Granted(t, targettest.Request{Requester: someone("engineers"), Subject: targettest.SvcReporting,
		Entitlement: "reporting-db-credential", Duration: time.Hour})
	untouched := e.Granted(t, targettest.Request{Requester: someone("engineers"), Entitlement: "analytics-read", Duration: time.Hour})
	e.revokeEarly(t, readded)
	e.revokeEarly(t, login)
	loginRole := postgres.LoginRole(targettest.SvcReporting.ID, login)
	stray := "grantline_hotfix_" + strings.ToLower(events.NewID()[20:])
	dba(t, e,
		"DROP ROLE "+ident(postgres.GrantRole(dropped)),
		"CREATE ROLE "+ident(postgres.GrantRole(readded))+" NOLOGIN IN ROLE payments_admin",
		"GRANT "+ident(postgres.GrantRole(readded))+" TO "+ident(bob.ID),
		"CREATE ROLE "+ident(loginRole)+" LOGIN PASSWORD 'by-hand' IN ROLE reporting_read",
		"CREATE ROLE "+ident(stray)+" NOLOGIN IN ROLE payments_admin",
		"GRANT "+ident(stray)+" TO "+ident(alice.ID),
	)

	sum := reconcileOnce(t, e)
	want := reconcile.Summary{Holdings: 4, Missing: 1, AfterRevocation: 2, RevokedAgain: 2, Unexplained: 1}
	if sum != want {
		t.Fatalf("reconcile: %+v, want %+v", sum, want)
	}

	// The role a DBA dropped: recorded as missing, observed absent, for the owners.
	if d := driftOf(t, e, dropped); len(d) != 1 || d[0].Kind != events.DriftMissing || d[0].Observed.Present ||
		d[0].Action != events.DriftRecorded || d[0].Observed.Detail["grant_role"] != postgres.GrantRole(dropped) {
		t.Fatalf("drift of the dropped grant role: %+v", d)
	}
	if r := e.Load(t, dropped).Request; r.Status() != events.StatusGranted || !r.AccessMissing() {
		t.Fatalf("the grant with missing access is %s (missing %v)", r.Status(), r.AccessMissing())
	}

	// The access back after revocation: recorded with the target's evidence, revoked again.
	for _, tc := range []struct {
		id, role, member, holder string
	}{
		{readded, postgres.GrantRole(readded), bob.ID, bob.ID},
		{login, loginRole, "", loginRole},
	} {
		r := e.Load(t, tc.id).Request
		d := r.Drift()
		if len(d) != 1 || d[0].Kind != events.DriftAfterRevocation || !d[0].Observed.Present || d[0].Action != events.DriftRevoke ||
			d[0].TargetRef != "role "+tc.role {
			t.Fatalf("drift of %s: %+v", tc.role, d)
		}
		if rv := r.Revoked(); r.Status() != events.StatusRevoked || r.DriftRevocationDue() || rv.Reason != events.RevokeDrift || rv.Observed.Present {
			t.Fatalf("%s after the reconcile: %s, revoked %+v", tc.role, r.Status(), rv)
		}
		if e.Holds(t, tc.holder, "payments_admin") || e.Holds(t, tc.holder, "reporting_read") {
			t.Fatalf("%s still holds the role after the revocation again", tc.holder)
		}
	}
	if exists, _, _ := e.Login(t, loginRole); exists {
		t.Fatal("the login re-created by hand survived the revocation again")
	}

	// The stray role: a finding of its own, with the target's evidence, left in place for people.
	finding := events.FindingID(postgres.Name, "role "+stray)
	f := e.Load(t, finding).Request
	if d := f.Drift(); f.Status() != events.StatusFinding || len(d) != 1 || d[0].Kind != events.DriftUnexplained ||
		d[0].Observed.Detail["grant_role"] != stray || d[0].Observed.Detail["member"] != alice.ID || d[0].Observed.Detail["role"] != "payments_admin" {
		t.Fatalf("finding %s: %s %+v", finding, f.Status(), d)
	}
	if !e.Holds(t, alice.ID, stray) {
		t.Fatal("the reconciler removed access it cannot explain; that is for people to decide")
	}
	if r := e.Load(t, untouched).Request; len(r.Drift()) != 0 {
		t.Fatalf("drift recorded on an untouched grant: %+v", r.Drift())
	}

	before := e.driftEvents(t)
	if sum := reconcileOnce(t, e); sum != (reconcile.Summary{Holdings: 2}) {
		t.Fatalf("the next reconcile: %+v, want the untouched grant and the stray role listed, nothing recorded", sum)
	}
	if after := e.driftEvents(t); after != before {
		t.Fatalf("the next reconcile appended %d drift events", after-before)
	}
}

// TestReconcileRunsOnItsTimer: with a reconcile interval, the revoker arms its timer at start and
// reconciles each time it fires, so a stray role planted while it runs becomes a finding on its own.
func TestReconcileRunsOnItsTimer(t *testing.T) {
	e := newEnv(t, func(e *env) { e.revoke.ReconcileEvery = time.Second }, revokerOff)
	clearTarget(t, e)
	e.startRevoker(t)
	stray := "grantline_manual_" + strings.ToLower(events.NewID()[20:])
	dba(t, e, "CREATE ROLE "+ident(stray)+" NOLOGIN IN ROLE analytics_read")
	finding := events.FindingID(postgres.Name, "role "+stray)
	e.WaitFor(t, finding, 30*time.Second, "the stray role's finding", func(r *events.Request) bool { return r.Status() == events.StatusFinding })
	poll.Until(t, 30*time.Second, "a second reconcile, on the timer the first one set", func() bool {
		return strings.Count(e.Logs.String(), `"msg":"reconciled"`) >= 2
	})
	if n := e.Count(t, finding, events.TypeDriftDetected); n != 1 {
		t.Fatalf("the finding holds %d events, want 1", n)
	}
}
