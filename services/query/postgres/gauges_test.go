package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/services/query"
	"github.com/grantline/grantline/services/query/internal/querytest"
)

// TestGauges: the counts an SRE's alerts read, at four moments of one history: a request waiting for
// approval, one granted and not revoked (its grant lasts five minutes), one granted and revoked.
func TestGauges(t *testing.T) {
	rs := newReadSide(t)
	st := rs.live(t, "readside")
	w := rs.w
	submitted := w.Clock.Now()
	w.Make().Submit(t, "alice", "payments-admin", false).
		Decide(t, events.OutcomeApprovalRequired, false, querytest.Stage("owners", 1, "payments-owners"))
	active := w.Make().Submit(t, "alice", "analytics-read", false).Decide(t, events.OutcomeAutoApproved, false).Grant(t)
	w.Make().Submit(t, "bob", "analytics-read", false).Decide(t, events.OutcomeAutoApproved, false).Grant(t).Expire(t).Revoke(t)
	rs.caughtUp(t, st)
	expires := w.Load(t, active.ID).Request.Grant().ExpiresAt

	statuses := map[events.Status]int64{events.StatusPendingApproval: 1, events.StatusGranted: 1, events.StatusRevoked: 1}
	for _, tc := range []struct {
		name string
		at   time.Time
		want query.Gauges
	}{
		{"just after", submitted.Add(time.Minute), query.Gauges{ByStatus: statuses, ActiveGrants: 1,
			PendingByAge: map[string]int64{query.PendingUnderHour: 1, query.PendingUnderDay: 0, query.PendingOverDay: 0}}},
		{"the active grant is past its expiry (five minutes)", expires.Add(time.Minute), query.Gauges{ByStatus: statuses,
			ActiveGrants: 1, OverdueRevocations: 1,
			PendingByAge: map[string]int64{query.PendingUnderHour: 1, query.PendingUnderDay: 0, query.PendingOverDay: 0}}},
		{"the approval waits for two hours", submitted.Add(2 * time.Hour), query.Gauges{ByStatus: statuses,
			ActiveGrants: 1, OverdueRevocations: 1,
			PendingByAge: map[string]int64{query.PendingUnderHour: 0, query.PendingUnderDay: 1, query.PendingOverDay: 0}}},
		{"the approval waits for days", submitted.Add(72 * time.Hour), query.Gauges{ByStatus: statuses,
			ActiveGrants: 1, OverdueRevocations: 1,
			PendingByAge: map[string]int64{query.PendingUnderHour: 0, query.PendingUnderDay: 0, query.PendingOverDay: 1}}},
	} {
		got, err := st.Gauges(context.Background(), tc.at)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
}
