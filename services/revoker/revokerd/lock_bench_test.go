package revokerd_test

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/consumer"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/manualtask"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/pkg/targettest"
	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/services/revoker"
)

// BenchmarkLockRevocation measures how long one person with N active grants on PostgreSQL (200 by
// default; -benchtime=Nx sets it) keeps any of them once security locks them: from the lock stored to
// each grant's revoked, as the server stored them. Beside it, on the same server before the lock, the
// raw appends the job needs (rawLockAppends).
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
	raw := rawLockAppends(b, e, n)
	revocations := counter(b, e.JS, topology.EventsStream, events.NATSSubject("*", events.TypeRevoked))
	before := revocations()
	b.ResetTimer()
	started := time.Now()
	lock := placeLock(b, e, `{"scope":{"kind":"user","id":"`+person.ID+`"},"reason":"benchmark"}`)
	poll.Until(b, 10*time.Minute, "every grant revoked", func() bool { return revocations() == before+uint64(n) })
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
	b.ReportMetric(ms(raw), "raw-ms")
	b.ReportMetric(float64(took)/float64(raw), "x-raw")
	b.ReportMetric(0, "ns/op")
}

// rawLockAppends times, for n other granted requests, the two appends a lock's revocation makes on
// each, in the revoker's order and concurrency but without its reading, deciding or target calls:
// revocation_requested on each in turn (as Lock asks), and revoked on each as soon as it is asked,
// consumer.DefaultConcurrency at once (as the revocations consumer revokes). The grants are of the manual
// mainframe-operator, which the revoker leaves to a person, so that it does not race the appends.
func rawLockAppends(b *testing.B, e *env, n int) time.Duration {
	b.Helper()
	person := someone("engineers")
	ids := make([]string, n)
	each(n, 8, func(i int) {
		ids[i] = e.Approved(b, targettest.Request{Requester: person, Entitlement: "mainframe-operator", Duration: time.Hour})
		e.Append(b, events.Fulfilment, ids[i], events.Draft{Payload: events.Granted{Connector: manualtask.Connector,
			TargetRef: "mainframe-operator", Observed: events.Observed{Present: true}, ExpiresAt: time.Now().Add(time.Hour),
			Fulfiller: fulfilment}, Actor: fulfilment, CausationID: "test-grant"})
	})
	if b.Failed() {
		b.FailNow()
	}
	lockID := events.NewID()
	began := time.Now()
	asked := make(chan string, n)
	var revoking sync.WaitGroup
	for range consumer.DefaultConcurrency {
		revoking.Go(func() {
			for id := range asked {
				e.Append(b, events.Revoker, id, events.Draft{Payload: events.Revoked{Reason: events.RevokeLocked,
					Observed: events.Observed{Present: false}}, Actor: revoker.Revoker, CausationID: "revoked"})
			}
		})
	}
	for _, id := range ids {
		e.Append(b, events.Revoker, id, events.Draft{Payload: events.RevocationRequested{By: "carol", Reason: events.RevokeLocked,
			LockID: lockID, Note: "benchmark"}, Actor: "carol", CausationID: "lock:" + lockID})
		asked <- id
	}
	close(asked)
	revoking.Wait()
	took := time.Since(began)
	if b.Failed() {
		b.FailNow()
	}
	return took
}
