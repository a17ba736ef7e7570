package audit

import (
	"runtime"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/events"
)

// TestVerifierMemoryPerRequest: what a verification holds once a history's requests have ended grows
// by less per request than their folded aggregates took (1,310 B each in this history before closed
// requests were kept as compressed snapshots, about 1,000 B after): a closed request keeps its chain
// head and a compressed snapshot, not the aggregate.
func TestVerifierMemoryPerRequest(t *testing.T) {
	retained := func(n int) uint64 {
		trust, recs := syntheticHistory(t, n)
		v := NewVerifier(trust, Options{Now: time.Now(), ExpectFirstSeq: 1})
		if r, err := v.Run(sliceSource(recs), 1); err != nil || !r.Clean() {
			t.Fatalf("%v %+v", err, r.Findings)
		}
		recs = nil
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(v)
		v = nil
		runtime.GC()
		runtime.ReadMemStats(&before)
		return after.HeapAlloc - min(after.HeapAlloc, before.HeapAlloc)
	}
	small, large := retained(2000), retained(4000)
	perRequest := float64(large-min(large, small)) / 2000
	t.Logf("verifier holds %d B after 2000 requests, %d B after 4000: %.0f B per request", small, large, perRequest)
	if perRequest > 1200 {
		t.Errorf("the verifier holds %.0f B per finished request, want at most 1200", perRequest)
	}
}

// TestClosedRequestIsReleased: a request that has ended is kept as a snapshot, and what it restores
// to is the request as folded, so an event that may still follow is judged as before.
func TestClosedRequestIsReleased(t *testing.T) {
	trust, recs := syntheticHistory(t, 1)
	v := NewVerifier(trust, Options{Now: time.Now(), ExpectFirstSeq: 1})
	if r, err := v.Run(sliceSource(recs), 1); err != nil || !r.Clean() {
		t.Fatalf("%v %+v", err, r.Findings)
	}
	id := v.order[0]
	if st := v.requests[id]; st.req != nil || len(st.snap) == 0 {
		t.Fatalf("the revoked request is held whole (%v) or without a snapshot (%d B)", st.req != nil, len(st.snap))
	}
	r := v.Request(id)
	if r == nil || r.Status() != events.StatusRevoked || r.Grant() == nil || r.Revoked() == nil {
		t.Fatalf("restored %+v, want the revoked request with its grant and revocation", r)
	}
}
