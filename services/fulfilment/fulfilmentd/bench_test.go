package fulfilmentd_test

import (
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/targettest"
)

// BenchmarkApprovedToGranted measures, from the server's stored times, how long fulfilment takes from
// the event that allows a request (auto_approved) to the granted event, granting on PostgreSQL, one
// request at a time; beside it, a raw Store.Update in the same run.
func BenchmarkApprovedToGranted(b *testing.B) {
	w := newWorld(b)
	start(b, w, deps(w, nil))
	var lat []time.Duration
	for b.Loop() {
		id := w.Submit(b, targettest.Request{Requester: someone("engineers"), Entitlement: "analytics-read", Duration: time.Hour})
		w.Allow(b, id)
		w.WaitFor(b, id, 20*time.Second, "the grant", granted)
		lat = append(lat, w.StoredAt(b, id, events.TypeGranted).Sub(w.StoredAt(b, id, events.TypePolicyDecided)))
	}
	b.StopTimer()
	targettest.ReportAgainstBaseline(b, "granted", lat, w.UpdateBaseline(b, max(len(lat), 20)))
}
