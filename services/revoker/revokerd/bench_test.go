package revokerd_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/connector"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/services/fulfilment/fulfilmenttest"
)

// storedAt is when the server stored request id's last event of type typ.
func storedAt(b *testing.B, e *env, id string, typ events.Type) time.Time {
	b.Helper()
	l := e.Load(b, id)
	for i := len(l.Events) - 1; i >= 0; i-- {
		if l.Events[i].Type == typ {
			return l.Records[i].StoredAt
		}
	}
	b.Fatalf("request %s has no %s event", id, typ.Name())
	return time.Time{}
}

// baseline is the same run's cost of the cheapest thing a reaction does: one raw Store.Update that
// appends one event to a new request.
func baseline(b *testing.B, e *env, n int) []time.Duration {
	b.Helper()
	out := make([]time.Duration, 0, n)
	for range n {
		id := events.NewID()
		s := events.Submitted{Requester: fulfilmenttest.Alice, Subject: events.RequestSubject{Kind: events.SubjectHuman, ID: "alice"},
			Entitlement: "analytics-read", Justification: "baseline", DurationSeconds: 60, Channel: "http"}
		s.RequestDigest = s.Digest()
		began := time.Now()
		if _, err := e.Stores[events.Intake].Update(context.Background(), id, func(*events.Request) ([]events.Draft, error) {
			return []events.Draft{{Payload: s, Actor: "alice"}}, nil
		}); err != nil {
			b.Fatal(err)
		}
		out = append(out, time.Since(began))
	}
	return out
}

// report adds p50 and p99 of measured and of the baseline, and their ratio, to the benchmark's output.
func report(b *testing.B, what string, measured, base []time.Duration) {
	slices.Sort(measured)
	slices.Sort(base)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	p50, p99 := percentile(measured, .5), percentile(measured, .99)
	b50, b99 := percentile(base, .5), percentile(base, .99)
	b.ReportMetric(ms(p50), what+"-p50-ms")
	b.ReportMetric(ms(p99), what+"-p99-ms")
	b.ReportMetric(ms(b50), "update-p50-ms")
	b.ReportMetric(ms(b99), "update-p99-ms")
	b.ReportMetric(float64(p50)/float64(b50), "p50-x-update")
	b.ReportMetric(float64(p99)/float64(b99), "p99-x-update")
	b.ReportMetric(0, "ns/op") // the latencies are the result, not the loop's pace
}

// BenchmarkApprovedToGranted measures, from the server's stored times, how long fulfilment takes from
// the event that allows a request (auto_approved) to the granted event, granting on PostgreSQL, one
// request at a time; beside it, a raw Store.Update in the same run.
func BenchmarkApprovedToGranted(b *testing.B) {
	e := newEnv(b)
	var lat []time.Duration
	for b.Loop() {
		id := e.Submit(b, fulfilmenttest.Request{Requester: someone("engineers"), Entitlement: "analytics-read", Duration: time.Hour})
		e.Allow(b, id)
		e.WaitFor(b, id, 20*time.Second, "the grant", granted)
		lat = append(lat, storedAt(b, e, id, events.TypeGranted).Sub(storedAt(b, e, id, events.TypePolicyDecided)))
	}
	b.StopTimer()
	report(b, "granted", lat, baseline(b, e, max(len(lat), 20)))
}

// BenchmarkExpiryToRevoked measures, from the server's stored times, how long the revoker takes from
// an expiry timer firing to the revoked event (appending expired, revoking on PostgreSQL, inspecting,
// appending revoked); beside it, a raw Store.Update in the same run.
func BenchmarkExpiryToRevoked(b *testing.B) {
	e := newEnv(b)
	st, err := e.JS.Stream(context.Background(), topology.TimersStream)
	if err != nil {
		b.Fatal(err)
	}
	var lat []time.Duration
	for b.Loop() {
		id := e.Approved(b, fulfilmenttest.Request{Requester: someone("engineers"), Entitlement: "analytics-read", Duration: time.Second})
		e.WaitFor(b, id, 20*time.Second, "the revocation", revoked)
		fired, err := st.GetLastMsgForSubject(context.Background(), topology.TimerFired(id, topology.TimerExpiry))
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, storedAt(b, e, id, events.TypeRevoked).Sub(fired.Time))
	}
	b.StopTimer()
	report(b, "revoked", lat, baseline(b, e, max(len(lat), 20)))
}

// BenchmarkExpiryDrain measures how long a revoker that starts after N grants expired at the same
// instant takes to revoke them all (arming, firing, expired, revoke on PostgreSQL, revoked).
// N is 200 by default; -benchtime=Nx sets it (e.g. -benchtime=10000x for the 10k drain).
func BenchmarkExpiryDrain(b *testing.B) {
	n := max(b.N, 200)
	e := newEnv(b, fulfilmentOff, revokerOff)
	ent, _ := e.Catalogue.Entitlement("analytics-read")
	ids := make([]string, n)
	obs := make([]events.Observed, n)
	// A handful of grants per person, as in life (one person holding thousands of grant roles makes
	// every pg_has_role walk them all).
	people := make([]events.Principal, (n+9)/10)
	for i := range people {
		people[i] = someone("engineers")
	}
	began := time.Now()
	each(n, 8, func(i int) {
		who := people[i/10]
		ids[i] = e.Submit(b, fulfilmenttest.Request{Requester: who, Entitlement: "analytics-read", Duration: time.Hour})
		e.Allow(b, ids[i])
		var err error
		if obs[i], err = e.PG.Grant(context.Background(), connector.Grant{ID: ids[i], Entitlement: ent,
			Subject: events.RequestSubject{Kind: events.SubjectHuman, ID: who.ID}}); err != nil {
			b.Error(err)
		}
	})
	if b.Failed() {
		b.FailNow()
	}
	// Recording the grants costs about a third of that; all expire together once they are recorded.
	expires := time.Now().Add(time.Since(began)*2/3 + 2*time.Second)
	each(n, 8, func(i int) {
		e.Append(b, events.Fulfilment, ids[i], events.Draft{Payload: events.Granted{Connector: "postgres", TargetRef: "bench",
			Observed: obs[i], ExpiresAt: expires, Fulfiller: "service:fulfilment"}, CausationID: "bench"})
	})
	poll.Until(b, time.Until(expires)+5*time.Second, "the expiry", func() bool { return time.Now().After(expires.Add(time.Second)) })

	revocations := counter(b, e.JS, topology.EventsStream, events.NATSSubject("*", events.TypeRevoked))
	b.ResetTimer()
	started := time.Now()
	e.startRevoker(b)
	poll.Until(b, 30*time.Minute, "every revocation", func() bool { return revocations() == uint64(n) })
	took := time.Since(started)
	b.StopTimer()
	if left := e.GrantRoles(b, ids...); left != 0 {
		b.Fatalf("%d grants left on the target", left)
	}
	// Each revocation's lag behind the revoker's start (the expiry itself had passed already).
	lags := make([]time.Duration, 0, n)
	for _, id := range ids {
		lags = append(lags, storedAt(b, e, id, events.TypeRevoked).Sub(started))
	}
	slices.Sort(lags)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(percentile(lags, .5)), "lag-p50-ms")
	b.ReportMetric(ms(percentile(lags, .99)), "lag-p99-ms")
	b.ReportMetric(ms(lags[n-1]), "lag-max-ms")
	b.ReportMetric(float64(n), "grants")
	b.ReportMetric(took.Seconds(), "drain-s")
	b.ReportMetric(float64(n)/took.Seconds(), "revocations/s")
	b.ReportMetric(0, "ns/op")
}
