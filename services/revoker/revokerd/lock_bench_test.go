package revokerd_test

import (
	"slices"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/pkg/targettest"
	"github.com/grantline/grantline/pkg/topology"
)

// BenchmarkLockRevocation measures how long one person with N active grants on PostgreSQL (200 by
// default; -benchtime=Nx sets it) keeps any of them once security locks them: from the lock stored to
// each grant's revoked, as the server stored them.
func BenchmarkLockRevocation(b *testing.B) {
	n := max(b.N, 200)
	e := newEnv(b)
	person := someone("engineers")
	ids := make([]string, n)
	each(n, 8, func(i int) {
		ids[i] = e.Granted(b, targettest.Request{Requester: person, Entitlement: "analytics-read", Duration: time.Hour})
	})
	if b.Failed() {
		b.FailNow()
	}
	revocations := counter(b, e.JS, topology.EventsStream, events.NATSSubject("*", events.TypeRevoked))
	b.ResetTimer()
	started := time.Now()
	lock := placeLock(b, e, `{"scope":{"kind":"user","id":"`+person.ID+`"},"reason":"benchmark"}`)
	poll.Until(b, 10*time.Minute, "every grant revoked", func() bool { return revocations() == uint64(n) })
	took := time.Since(started)
	b.StopTimer()
	if left := e.GrantRoles(b, ids...); left != 0 {
		b.Fatalf("%d grants left on the target", left)
	}
	lags := make([]time.Duration, 0, n)
	for _, id := range ids {
		lags = append(lags, e.StoredAt(b, id, events.TypeRevoked).Sub(lock.PlacedAt))
	}
	slices.Sort(lags)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(targettest.Percentile(lags, .5)), "lag-p50-ms")
	b.ReportMetric(ms(targettest.Percentile(lags, .99)), "lag-p99-ms")
	b.ReportMetric(ms(lags[n-1]), "lag-max-ms")
	b.ReportMetric(float64(n), "grants")
	b.ReportMetric(took.Seconds(), "all-revoked-s")
	b.ReportMetric(0, "ns/op")
}
