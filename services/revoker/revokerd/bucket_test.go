package revokerd_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/connector"
	"github.com/grantline/grantline/pkg/connector/postgres"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/pkg/targettest"
)

// grantedTogether makes n grants on the target, recorded granted, all expiring at the same whole second
// a few seconds after they are recorded (the running revoker has armed them all by then): one expiry
// timer, one batch.
func grantedTogether(t *testing.T, e *env, n int) (ids []string, expires time.Time) {
	t.Helper()
	ids = make([]string, n)
	obs := make([]events.Observed, n)
	began := time.Now()
	each(n, 4, func(i int) {
		ids[i] = e.Approved(t, targettest.Request{Requester: someone("engineers"), Entitlement: "analytics-read", Duration: time.Hour})
		obs[i], _ = e.grantOnTarget(t, ids[i], began.Add(time.Hour))
	})
	if t.Failed() {
		t.FailNow()
	}
	// Recording costs about a third of that; a whole second, so that all fall due in one.
	expires = time.Now().Add(time.Since(began)*2/3 + 3*time.Second).Truncate(time.Second).Add(time.Second)
	each(n, 4, func(i int) { e.recordGrant(t, ids[i], obs[i], expires, "") })
	if time.Now().After(expires) {
		t.Fatal("the grants were recorded after their expiry; the margin was too short")
	}
	return ids, expires
}

// TestCrashBetweenBucketFireAndRevocation: twenty grants fall due in one second. The revoker takes the
// second's timer, revokes half the grants at the target and is stopped there, mid-batch: nothing is
// recorded, as after a crash. The next revoker gets the same fire again and ends every grant, on the
// target and in the evidence, each with exactly one revoked event (reason expired) and no expired:
// the first attempt that counts succeeded.
func TestCrashBetweenBucketFireAndRevocation(t *testing.T) {
	const n = 20
	crash := &crashing{hung: make(chan struct{})}
	e := newEnv(t, func(e *env) {
		crash.Connector = e.PG
		e.revoke.Connectors = connector.Set{postgres.Name: crash}
		// Only the stop ends the hung batch, not the attempt's own timeout.
		e.revoke.AttemptTimeout = time.Hour
	})
	ids, _ := grantedTogether(t, e, n)
	select {
	case <-crash.hung:
	case <-time.After(30 * time.Second):
		t.Fatal("the revoker never took the second's timer")
	}
	if left := e.GrantRoles(t, ids...); left != n-n/2 {
		t.Fatalf("%d grants left on the target when the revoker crashed, want %d", left, n-n/2)
	}
	e.stopRevoker()
	for _, id := range ids {
		if r := e.Load(t, id).Request; r.Status() != events.StatusGranted || r.RevocationDue() != "" {
			t.Fatalf("the crashed revoker recorded something for %s: %s, due %q", id, r.Status(), r.RevocationDue())
		}
	}

	e.revoke.Connectors = connector.Set{postgres.Name: e.PG}
	e.startRevoker(t)
	for _, id := range ids {
		r := e.WaitFor(t, id, 60*time.Second, "the revocation after the crash", revoked)
		if rv := r.Revoked(); rv.Reason != events.RevokeExpired || rv.Observed.Present {
			t.Fatalf("revoked %+v", rv)
		}
	}
	for _, id := range ids {
		if rv, ex := e.Count(t, id, events.TypeRevoked), e.Count(t, id, events.TypeExpired); rv != 1 || ex != 0 {
			t.Fatalf("%s: %d revoked and %d expired events, want 1 and 0", id, rv, ex)
		}
	}
	if left := e.GrantRoles(t, ids...); left != 0 {
		t.Fatalf("%d grants left on the target", left)
	}
	poll.Until(t, 10*time.Second, "the second's keys to be removed from the expiry index", func() bool { return e.indexed(t) == 0 })
}

// crashing revokes the first half of a batch at the target, then never answers until its context ends,
// like a process that died there; each grant then fails.
type crashing struct {
	*postgres.Connector
	once sync.Once
	hung chan struct{}
}

func (c *crashing) RevokeBatch(ctx context.Context, gs []connector.Grant) []connector.Revocation {
	c.Connector.RevokeBatch(ctx, gs[:len(gs)/2])
	c.once.Do(func() { close(c.hung) })
	<-ctx.Done()
	out := make([]connector.Revocation, len(gs))
	for i := range out {
		out[i].Err = connector.Transient(postgres.ClassUnavailable, ctx.Err())
	}
	return out
}

// TestBatchRevocationOneGrantFails: six grants fall due in one second, and one of their grant roles
// cannot be dropped (it owns a table a DBA gave it). The other five are revoked in the batch, each in
// one event; the one left is recorded expired (the overdue grant shows), retried, recorded
// revocation_failed once the budget is spent, keeps its access meanwhile, and is revoked once the DBA
// takes the table away.
func TestBatchRevocationOneGrantFails(t *testing.T) {
	const n = 6
	e := newEnv(t)
	ids, _ := grantedTogether(t, e, n)
	stuck := ids[2]
	table := "owned_" + strings.ToLower(stuck)
	dba(t, e, "CREATE TABLE "+ident(table)+" (id int)", "ALTER TABLE "+ident(table)+" OWNER TO "+ident(postgres.GrantRole(stuck)))

	for _, id := range ids {
		if id == stuck {
			continue
		}
		e.WaitFor(t, id, 30*time.Second, "the revocation in the batch", revoked)
		if rv, ex := e.Count(t, id, events.TypeRevoked), e.Count(t, id, events.TypeExpired); rv != 1 || ex != 0 {
			t.Fatalf("%s: %d revoked and %d expired events, want 1 and 0", id, rv, ex)
		}
	}
	r := e.WaitFor(t, stuck, 30*time.Second, "revocation_failed", func(r *events.Request) bool { return r.RevocationFailure() != nil })
	if r.Status() != events.StatusGranted || r.RevocationDue() != events.RevokeExpired || e.Count(t, stuck, events.TypeExpired) != 1 ||
		!e.Holds(t, r.Submitted().Subject.ID, "analytics_read") {
		t.Fatalf("the grant that failed: %s, due %q, %d expired; want it recorded overdue and still held",
			r.Status(), r.RevocationDue(), e.Count(t, stuck, events.TypeExpired))
	}

	dba(t, e, "DROP TABLE "+ident(table))
	rv := e.WaitFor(t, stuck, 30*time.Second, "the revocation once the table is gone", revoked).Revoked()
	if rv.Reason != events.RevokeExpired || rv.Observed.Present || e.Count(t, stuck, events.TypeRevoked) != 1 {
		t.Fatalf("revoked %+v", rv)
	}
	if left := e.GrantRoles(t, ids...); left != 0 {
		t.Fatalf("%d grants left on the target", left)
	}
}

// indexed counts the grants' keys in the expiry index (<second>.<request id>.<sequence>), not the
// sweep's mark.
func (e *env) indexed(t testing.TB) int {
	t.Helper()
	lister, err := e.revoke.Expiries.ListKeysFiltered(context.Background(), "*.>")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for range lister.Keys() {
		n++
	}
	return n
}
