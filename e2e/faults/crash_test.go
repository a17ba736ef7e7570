package faults

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/events"
)

// The crashes: a service SIGKILLed with work in hand and started again. What it held comes back after
// the consumers' short ack wait (pkg/consumer keeps what a live replica holds in progress), so the work
// is done seconds after the kill rather than after a long ack wait. The tests assert correctness only;
// the lags are logged (docs/resilience.md records them), under a ceiling far above the goal that only
// a lost delivery would reach.
const (
	crashGrants = 40
	// crashStalled of them are stalled on the target when the revoker is killed, so that some are
	// certainly in its hands then: fewer than its connector's pool (4 connections on two cores), which
	// the stalled revocations hold while they wait.
	crashStalled = 2
	// crashRevokedFirst are revoked before the kill, the rest expire about then.
	crashRevokedFirst = 8
	crashExpiry       = "15s"
	crashBody         = `{"entitlement":"analytics-read","duration":"` + crashExpiry + `","justification":"crash scenario"}`
	// crashCeiling bounds the wait for the work held at the kill: several ack waits, far below the
	// 30 s ack wait it took before.
	crashCeiling = time.Minute
)

// TestRevokerKilledMidRevocation SIGKILLs the revoker while it revokes many grants expiring within
// a second or two of each other (two held on the target by their grant roles' locks, so some are in
// its hands), starts it again, and checks that every grant is revoked once and is gone from the target.
// It logs, for the grants not yet revoked at the kill, how long after the kill, after the restart and
// after their expiry they were revoked.
func TestRevokerKilledMidRevocation(t *testing.T) {
	logsOnFailure(t)
	ctx := t.Context()
	alice := personOf(t, "alice")
	ids := submitGranted(t, alice, crashGrants)

	roles := grantRoles(t, ids)
	stalled := ids[:crashStalled] // the first to expire
	var releases []func(context.Context) error
	release := func() {
		for _, r := range releases {
			_ = r(context.Background())
		}
		releases = nil
	}
	t.Cleanup(release)
	for _, id := range stalled {
		r, err := deployment.StallRole(ctx, roles[id])
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, r)
	}
	// Expired is recorded when the first attempt fails: the batch of their second finds the stalled
	// ones busy, and they are in the revoker's hands, retried one at a time.
	awaitEvent(t, stalled, events.TypeExpired, time.Minute)
	awaitEvent(t, ids[crashStalled:crashStalled+crashRevokedFirst], events.TypeRevoked, time.Minute)

	// What is not revoked once the revoker is dead is what the kill held up.
	var held []string
	killed, restarted := crash(t, revokerContainer, func() {
		revoked, err := requestsWith(ctx, events.TypeRevoked)
		if err != nil {
			t.Fatal(err)
		}
		held = slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return revoked[id] })
		release()
	})
	awaitEvent(t, ids, events.TypeRevoked, crashCeiling)
	logLags(t, "revoked", held, events.TypeRevoked, killed, restarted)
	var sinceExpiry []time.Duration
	for _, id := range held {
		sinceExpiry = append(sinceExpiry, storedAt(t, id, events.TypeRevoked).Sub(expiryOf(t, id)))
	}
	t.Logf("%d revoked after their expiry: %s", len(held), summary(sinceExpiry))
	// One revoked each; expired only for those whose first attempt failed (the stalled ones surely).
	checkOnce(t, ids, roles, events.TypeRevoked)
	checkOnce(t, stalled, roles, events.TypeExpired)
}

// TestFulfilmentKilledMidGrant SIGKILLs a fulfilment replica while it holds grants waiting on the
// target, lifts the stall, starts it again, and checks that every request is granted once (one role
// each on the target) and, once expired, revoked. It logs how long after the kill and the restart
// the held grants were made.
func TestFulfilmentKilledMidGrant(t *testing.T) {
	logsOnFailure(t)
	ctx := t.Context()
	alice := personOf(t, "alice")
	release, err := deployment.StallRole(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	released := false
	lift := func() {
		if !released {
			released = true
			_ = release(context.Background())
		}
	}
	t.Cleanup(lift)
	var ids []string
	for range crashGrants {
		ids = append(ids, alice.submit(crashBody))
	}
	inFlight := (&faultRun{t: t}).awaitInFlight(ctx, crashGrants)
	t.Logf("%d deliveries in flight on %s when killed", inFlight, fulfilConsumer)

	killed, restarted := crash(t, fulfilmentContainer, lift)
	awaitEvent(t, ids, events.TypeGranted, crashCeiling)
	logLags(t, "granted", ids, events.TypeGranted, killed, restarted)
	awaitEvent(t, ids, events.TypeRevoked, time.Minute)
	checkOnce(t, ids, grantRoles(t, ids), events.TypeGranted, events.TypeRevoked)
}

// submitGranted submits n requests for alice that expire after crashExpiry and waits until each is
// granted.
func submitGranted(t *testing.T, alice person, n int) []string {
	t.Helper()
	var ids []string
	for range n {
		ids = append(ids, alice.submit(crashBody))
	}
	awaitEvent(t, ids, events.TypeGranted, time.Minute)
	return ids
}

// crash SIGKILLs container, runs then (lifting what held the work), starts it again and returns when
// it was killed and when it was ready again. The container is started again however the test ends.
func crash(t *testing.T, container string, then func()) (killed, restarted time.Time) {
	t.Helper()
	ctx := t.Context()
	if err := deployment.Kill(ctx, container); err != nil {
		t.Fatal(err)
	}
	killed = time.Now()
	started := false
	t.Cleanup(func() {
		if !started {
			if err := deployment.Start(context.Background(), container); err != nil {
				t.Errorf("start %s again: %v", container, err)
			}
		}
	})
	then()
	if err := deployment.Start(ctx, container); err != nil {
		t.Fatal(err)
	}
	started = true
	restarted = time.Now()
	t.Logf("%s SIGKILLed, ready again %s later", container, restarted.Sub(killed).Round(time.Millisecond))
	return killed, restarted
}

// grantRoles are the grant roles of ids on the target, from their granted events.
func grantRoles(t *testing.T, ids []string) map[string]string {
	t.Helper()
	ev, err := readEvidence(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	roles := map[string]string{}
	for _, id := range ids {
		granted := of(ev[id], events.TypeGranted)
		if len(granted) == 0 {
			t.Fatalf("%s has no granted event: %s", id, lifecycle(ev[id]))
		}
		roles[id] = granted[0].ev.Payload.(events.Granted).Observed.Detail["grant_role"]
	}
	return roles
}

// logLags logs, over ids, how long after killed and after restarted their event of type typ was stored.
func logLags(t *testing.T, what string, ids []string, typ events.Type, killed, restarted time.Time) {
	t.Helper()
	var afterKill, afterRestart []time.Duration
	for _, id := range ids {
		at := storedAt(t, id, typ)
		afterKill = append(afterKill, at.Sub(killed))
		afterRestart = append(afterRestart, max(at.Sub(restarted), 0))
	}
	t.Logf("%d %s after the kill: %s", len(ids), what, summary(afterKill))
	t.Logf("%d %s after the restart: %s", len(ids), what, summary(afterRestart))
}

// summary is the p50, p99 and maximum of ds.
func summary(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	ds = slices.Sorted(slices.Values(ds))
	return fmt.Sprintf("p50 %s, p99 %s, max %s", percentile(ds, 50).Round(time.Millisecond), percentile(ds, 99).Round(time.Millisecond),
		ds[len(ds)-1].Round(time.Millisecond))
}

// checkOnce fails t unless each of ids has exactly one event of each of types and its grant role is no
// longer on the target.
func checkOnce(t *testing.T, ids []string, roles map[string]string, types ...events.Type) {
	t.Helper()
	ev, err := readEvidence(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		for _, typ := range types {
			if n := len(of(ev[id], typ)); n != 1 {
				t.Errorf("%s has %d %s events: %s", id, n, typ.Name(), lifecycle(ev[id]))
			}
		}
	}
	members, err := deployment.RoleMembers(t.Context(), targetRole)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if _, ok := members[roles[id]]; ok {
			t.Errorf("%s's grant role %s is still on the target", id, roles[id])
		}
	}
}
