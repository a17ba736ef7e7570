package targettest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/events"
)

// StoredAt is when the server stored request id's last event of type typ: benchmarks measure a
// reaction between two stored times, so neither the test's clock nor its polling counts.
func (w *World) StoredAt(t testing.TB, id string, typ events.Type) time.Time {
	t.Helper()
	l := w.Load(t, id)
	for i := len(l.Events) - 1; i >= 0; i-- {
		if l.Events[i].Type == typ {
			return l.Records[i].StoredAt
		}
	}
	t.Fatalf("request %s has no %s event", id, typ.Name())
	return time.Time{}
}

// UpdateBaseline is the same run's cost of the cheapest thing a reaction does, n times: one raw
// Store.Update that appends one event to a new request.
func (w *World) UpdateBaseline(t testing.TB, n int) []time.Duration {
	t.Helper()
	out := make([]time.Duration, 0, n)
	for range n {
		id := events.NewID()
		s := events.Submitted{Requester: Alice, Subject: events.RequestSubject{Kind: events.SubjectHuman, ID: "alice"},
			Entitlement: "analytics-read", Justification: "baseline", DurationSeconds: 60, Channel: "http"}
		s.RequestDigest = s.Digest()
		began := time.Now()
		if _, err := w.Stores[events.Intake].Update(context.Background(), id, func(*events.Request) ([]events.Draft, error) {
			return []events.Draft{{Payload: s, Actor: "alice"}}, nil
		}); err != nil {
			t.Fatal(err)
		}
		out = append(out, time.Since(began))
	}
	return out
}

// ReportAgainstBaseline adds p50 and p99 of measured and of base (UpdateBaseline), and their ratio, to
// the benchmark's output; the loop's own pace is reported as 0 ns/op, since the latencies are the
// result.
func ReportAgainstBaseline(b *testing.B, what string, measured, base []time.Duration) {
	slices.Sort(measured)
	slices.Sort(base)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	p50, p99 := Percentile(measured, .5), Percentile(measured, .99)
	b50, b99 := Percentile(base, .5), Percentile(base, .99)
	b.ReportMetric(ms(p50), what+"-p50-ms")
	b.ReportMetric(ms(p99), what+"-p99-ms")
	b.ReportMetric(ms(b50), "update-p50-ms")
	b.ReportMetric(ms(b99), "update-p99-ms")
	b.ReportMetric(float64(p50)/float64(b50), "p50-x-update")
	b.ReportMetric(float64(p99)/float64(b99), "p99-x-update")
	b.ReportMetric(0, "ns/op")
}

// Percentile is the q-quantile of sorted durations (nearest rank); 0 for none.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}
