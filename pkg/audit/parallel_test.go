package audit

import (
	"crypto/ed25519"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/grantline/grantline/pkg/events"
)

// syntheticHistory is n requests, each submitted, auto-approved, granted, expired and revoked, their
// events interleaved in stream order as a busy deployment stores them, signed by their services' keys.
func syntheticHistory(tb testing.TB, n int) (*events.Verifier, []events.Record) {
	tb.Helper()
	start := time.Now().Add(-24 * time.Hour)
	signers := map[events.Service]*events.Signer{}
	var all []*events.Signer
	for _, svc := range events.Services {
		s, err := events.GenerateSigner(svc, string(svc)+"-1")
		if err != nil {
			tb.Fatal(err)
		}
		signers[svc], all = s, append(all, s)
	}
	trust, err := events.NewVerifier(events.NewTrustFile(start.Add(-time.Hour), all...))
	if err != nil {
		tb.Fatal(err)
	}
	expires := start.Add(600 * time.Second) // within the decided 600 s of every grant, all stored in the first seconds
	sub := events.Submitted{Requester: events.Principal{ID: "alice", Groups: []string{"engineers"}},
		Subject: events.RequestSubject{Kind: events.SubjectHuman, ID: "alice"}, Entitlement: "analytics-read",
		Justification: "synthetic history", DurationSeconds: 600, Channel: "http"}
	sub.RequestDigest = sub.Digest()
	steps := []struct {
		svc events.Service
		p   events.Payload
	}{
		{events.Intake, sub},
		{events.Policy, events.PolicyDecided{Outcome: events.OutcomeAutoApproved, Reasons: []string{"low risk"}, EffectiveDurationSeconds: 600, PolicyRevision: "sha256:p"}},
		{events.Fulfilment, events.Granted{Connector: "postgres", TargetRef: "role analytics_read", Observed: events.Observed{Present: true}, ExpiresAt: expires, Fulfiller: "service:fulfilment"}},
		{events.Revoker, events.Expired{ExpiresAt: expires}},
		{events.Revoker, events.Revoked{Reason: events.RevokeExpired, Observed: events.Observed{Present: false}}},
	}
	ids := make([]string, n)
	heads := make([]string, n)
	for i := range ids {
		ids[i] = events.NewID()
		heads[i] = events.GenesisHash(ids[i])
	}
	var recs []events.Record
	for _, st := range steps {
		for i, id := range ids {
			at := start.Add(time.Duration(len(recs)) * time.Millisecond)
			if st.p.EventType() == events.TypeRevoked || st.p.EventType() == events.TypeExpired {
				at = expires.Add(time.Duration(len(recs)) * time.Millisecond)
			}
			_, body, err := events.Draft{Payload: st.p, Actor: "service:" + string(st.svc)}.Seal(id, st.svc, at, heads[i])
			if err != nil {
				tb.Fatal(err)
			}
			heads[i] = events.ChainHash(body)
			recs = append(recs, events.Record{Seq: uint64(len(recs) + 1), Subject: events.NATSSubject(id, st.p.EventType()),
				Body: body, Signature: signers[st.svc].Sign(body), StoredAt: at})
		}
	}
	return trust, recs
}

func findingKinds(r *Report) []FindingKind {
	var kinds []FindingKind
	for _, f := range r.Findings {
		kinds = append(kinds, f.Kind)
	}
	return kinds
}

func sliceSource(recs []events.Record) Source {
	return func(fn func(events.Record) error) error {
		for _, r := range recs {
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	}
}

// TestParallelFindsWhatSequentialFinds: a history of several batches with tampering planted in its
// middle gives the same report, finding for finding, whether checked one event at a time or by many
// workers; the bad signature is named by its position, stream sequence and request.
func TestParallelFindsWhatSequentialFinds(t *testing.T) {
	trust, recs := syntheticHistory(t, 300) // 1500 events, six batches
	const flipped, dropped = 700, 1100      // positions (from 1) in the untampered history
	recs[flipped-1].Body = append([]byte(nil), recs[flipped-1].Body...)
	recs[flipped-1].Body[len(recs[flipped-1].Body)-3] ^= 1
	recs[900-1], recs[901-1] = recs[901-1], recs[900-1]
	recs = append(recs[:dropped-1:dropped-1], recs[dropped:]...)
	opts := Options{Now: time.Now(), ExpectFirstSeq: 1}

	one := NewVerifier(trust, opts)
	for _, r := range recs {
		one.Add(r)
	}
	want := one.Finish()
	bad := recs[flipped-1]
	requestID, _, _ := events.ParseNATSSubject(bad.Subject)
	if f := want.Findings[0]; f.Kind != FindingKind(events.ViolationBadSignature) || f.Position != flipped || f.Seq != bad.Seq || f.RequestID != requestID {
		t.Fatalf("first finding %+v, want the bad signature at position %d (seq %d, request %s)", f, flipped, bad.Seq, requestID)
	}
	// The flipped body, then the swap (a gap, then a sequence going back), the flipped request's next
	// event (linked to the original bytes), the dropped event, and its request's next event.
	wantKinds := []FindingKind{FindingKind(events.ViolationBadSignature), FindingGap, FindingKind(events.ViolationSequence),
		FindingKind(events.ViolationChainBroken), FindingGap, FindingKind(events.ViolationChainBroken)}
	if kinds := findingKinds(want); !cmp.Equal(kinds, wantKinds) {
		t.Fatalf("sequential findings %v, want %v: %+v", kinds, wantKinds, want.Findings)
	}
	for _, workers := range []int{1, 2, 8} {
		t.Run(fmt.Sprintf("%d workers", workers), func(t *testing.T) {
			got, err := NewVerifier(trust, opts).Run(sliceSource(recs), workers)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("report differs from the sequential one (-sequential +parallel):\n%s", diff)
			}
		})
	}
}

// TestParallelReturnsTheSourceError: a read that fails part-way is reported, not a partial report.
func TestParallelReturnsTheSourceError(t *testing.T) {
	trust, recs := syntheticHistory(t, 100)
	broken := fmt.Errorf("the stream went away")
	src := func(fn func(events.Record) error) error {
		if err := sliceSource(recs[:300])(fn); err != nil {
			return err
		}
		return broken
	}
	if r, err := NewVerifier(trust, Options{Now: time.Now()}).Run(src, 2); err != broken || r != nil {
		t.Fatalf("got report %v, error %v; want no report and %v", r, err, broken)
	}
}

// BenchmarkVerify prints events/s of a whole verification with one worker and with one per core,
// beside one core's raw ed25519 verify rate on the same bodies (the ceiling of a single worker).
func BenchmarkVerify(b *testing.B) {
	trust, recs := syntheticHistory(b, 4000)
	// rate reports events/s, and the process's CPU per event since cpu0: on a shared machine the
	// rate moves with the load, the CPU per event much less.
	rate := func(b *testing.B, events int, cpu0 time.Duration) {
		b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
		b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(events), "cpu_us/event")
	}
	b.Run("raw-ed25519-one-core", func(b *testing.B) {
		pub, priv, _ := ed25519.GenerateKey(nil)
		sigs := make([][]byte, len(recs))
		for i, r := range recs {
			sigs[i] = ed25519.Sign(priv, r.Body)
		}
		n, cpu0 := 0, processCPU(b)
		for b.Loop() {
			for i, r := range recs {
				if !ed25519.Verify(pub, r.Body, sigs[i]) {
					b.Fatal("a valid signature did not verify")
				}
			}
			n += len(recs)
		}
		rate(b, n, cpu0)
	})
	for _, workers := range []int{1, runtime.GOMAXPROCS(0)} {
		b.Run(fmt.Sprintf("workers-%d", workers), func(b *testing.B) {
			n, cpu0 := 0, processCPU(b)
			for b.Loop() {
				r, err := NewVerifier(trust, Options{Now: time.Now(), ExpectFirstSeq: 1}).Run(sliceSource(recs), workers)
				if err != nil || !r.Clean() {
					b.Fatalf("%v %+v", err, r.Findings)
				}
				n += r.Events
			}
			rate(b, n, cpu0)
		})
	}
}

// processCPU is the user and system CPU the process has used so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
