package eventstore

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/natstest"
	"github.com/grantline/grantline/pkg/topology"
)

// skewedReader stands in front of a store's reader and answers as replicas behind, ahead or lying
// would: skewLasts changes what the multi-last read returns, skewSubject what reads of one literal
// subject return. While lagging is positive, each multi-last read (one per load attempt) answers as a
// replica that holds the stream only up to sequence lagUpTo, and the reads of that attempt likewise.
// Wildcard reads (the ones Load falls back to) are counted; while behindWildcard is positive they
// answer as a replica that has not seen the request at all.
type skewedReader struct {
	reader
	skewLasts   func(recs []events.Record) []events.Record
	skewSubject func(recs []events.Record) []events.Record

	lagging        atomic.Int64
	lagUpTo        atomic.Uint64
	laggingNow     atomic.Bool
	laggingLoads   atomic.Int64
	behindWildcard atomic.Int64
	wildcardReads  atomic.Int64
	lastsReads     atomic.Int64
}

// watch puts a skewedReader in front of st's reader.
func watch(st *Store) *skewedReader {
	r := &skewedReader{reader: st.reader}
	st.reader = r
	return r
}

// lag makes the next n loads answer as a replica that holds the stream up to seq.
func (r *skewedReader) lag(n int64, seq uint64) {
	r.lagUpTo.Store(seq)
	r.lagging.Store(n)
}

func (r *skewedReader) lastOfEach(ctx context.Context, filter string) ([]events.Record, error) {
	r.lastsReads.Add(1)
	r.laggingNow.Store(r.lagging.Add(-1) >= 0)
	if r.laggingNow.Load() {
		r.laggingLoads.Add(1)
		// What a replica at lagUpTo holds as the last event of each subject.
		all, _, err := r.reader.next(ctx, filter, 1, loadBatch)
		if err != nil {
			return nil, err
		}
		last := map[string]events.Record{}
		for _, rec := range all {
			if rec.Seq <= r.lagUpTo.Load() {
				last[rec.Subject] = rec
			}
		}
		return slices.Collect(maps.Values(last)), nil
	}
	recs, err := r.reader.lastOfEach(ctx, filter)
	if err != nil || r.skewLasts == nil {
		return recs, err
	}
	return r.skewLasts(recs), nil
}

func (r *skewedReader) next(ctx context.Context, filter string, from uint64, n int) ([]events.Record, bool, error) {
	wildcard := strings.HasSuffix(filter, ".>")
	if wildcard {
		r.wildcardReads.Add(1)
		if r.behindWildcard.Add(-1) >= 0 {
			return nil, false, nil
		}
	}
	recs, more, err := r.reader.next(ctx, filter, from, n)
	if err != nil {
		return recs, more, err
	}
	if r.laggingNow.Load() {
		var held []events.Record
		for _, rec := range recs {
			if rec.Seq <= r.lagUpTo.Load() {
				held = append(held, rec)
			}
		}
		return held, false, nil
	}
	if wildcard || r.skewSubject == nil {
		return recs, more, nil
	}
	return r.skewSubject(recs), more, nil
}

// without drops the records at the given stream sequences.
func without(seqs ...uint64) func([]events.Record) []events.Record {
	return func(recs []events.Record) []events.Record {
		var out []events.Record
		for _, rec := range recs {
			if !slices.Contains(seqs, rec.Seq) {
				out = append(out, rec)
			}
		}
		return out
	}
}

// stored is what a test compares loads by: each event's stream sequence, subject and body.
type stored struct {
	Seq     uint64
	Subject string
	Body    string
}

func storedOf(recs []events.Record) []stored {
	out := make([]stored, len(recs))
	for i, r := range recs {
		out[i] = stored{r.Seq, r.Subject, string(r.Body)}
	}
	return out
}

func seqsOf(l *Loaded) []uint64 {
	out := make([]uint64, len(l.Records))
	for i, r := range l.Records {
		out[i] = r.Seq
	}
	return out
}

// reviewed appends n reviews to request id, one per Update, and returns the request after the last.
func (w *world) reviewed(t *testing.T, id string, n int) *Loaded {
	t.Helper()
	var l *Loaded
	for range n {
		u, err := w.stores[events.Approval].Update(context.Background(), id, func(r *events.Request) ([]events.Draft, error) {
			return []events.Draft{reviewBy(nextReviewer(), r.Submitted().RequestDigest)}, nil
		})
		if err != nil {
			t.Fatalf("review %s: %v", id, err)
		}
		l = u.Loaded
	}
	return l
}

// TestLoadInterleavedRequests builds requests whose events of several types interleave with each
// other's and with unrelated traffic, and checks that every load returns exactly the events appended,
// in stream order, from the per-subject reads alone.
func TestLoadInterleavedRequests(t *testing.T) {
	w, _ := singleNode(t)
	ctx := context.Background()
	const requests, reviews = 12, 5
	ids := make([]string, requests)
	want := make([]*Loaded, requests)
	for i := range ids {
		ids[i] = w.pendingRequest(t, 100)
	}
	noise := func() {
		// Another request's events in between, unsigned: loads of ids never read them.
		m := nats.NewMsg(events.NATSSubject(events.NewID(), events.TypeReviewed))
		m.Data = []byte("{}")
		if _, err := w.js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	for range reviews {
		for i, id := range ids {
			want[i] = w.reviewed(t, id, 1)
			noise()
		}
	}

	st := w.stores[events.Revoker]
	r := watch(st)
	for i, id := range ids {
		l, err := st.Load(ctx, id)
		if err != nil {
			t.Fatalf("load %s: %v", id, err)
		}
		if got := storedOf(l.Records); !slices.Equal(got, storedOf(want[i].Records)) {
			t.Fatalf("request %d loaded other events than were appended: seqs %v, want %v", i, seqsOf(l), seqsOf(want[i]))
		}
		if len(l.Events) != reviews+2 || l.LastSeq != want[i].LastSeq || l.Request.Status() != events.StatusPendingApproval {
			t.Fatalf("request %d: %d events up to seq %d, %s; want %d up to %d", i, len(l.Events), l.LastSeq,
				l.Request.Status(), reviews+2, want[i].LastSeq)
		}
	}
	if n := r.wildcardReads.Load(); n != 0 {
		t.Fatalf("%d loads fell back to the wildcard read on a quiet stream", n)
	}
	// The second load of each request verifies its records from the memo: same answer.
	for i, id := range ids {
		l, err := st.Load(ctx, id)
		if err != nil || len(l.Records) != len(want[i].Records) {
			t.Fatalf("reload %s: %v", id, err)
		}
	}
}

// TestLoadRacesWithAppends loads a request over and over while reviewers append to it; every load
// must be some prefix of the final history, never partial in the middle, never an error, and never
// older than a load before it.
func TestLoadRacesWithAppends(t *testing.T) {
	w, _ := singleNode(t)
	ctx := context.Background()
	const writers, each = 3, 15
	id := w.pendingRequest(t, writers*each+1)
	st := w.stores[events.Revoker]
	r := watch(st)

	var loads []*Loaded
	done := make(chan struct{})
	var loader sync.WaitGroup
	loader.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			l, err := st.Load(ctx, id)
			if err != nil {
				t.Errorf("load during appends: %v", err)
				return
			}
			loads = append(loads, l)
		}
	})
	var appenders sync.WaitGroup
	for range writers {
		appenders.Go(func() {
			for landed := 0; landed < each; {
				_, err := w.stores[events.Approval].Update(ctx, id, func(r *events.Request) ([]events.Draft, error) {
					return []events.Draft{reviewBy(nextReviewer(), r.Submitted().RequestDigest)}, nil
				})
				switch {
				case err == nil:
					landed++
				case !errors.Is(err, ErrConflict):
					t.Errorf("review: %v", err)
					return
				}
			}
		})
	}
	appenders.Wait()
	close(done)
	loader.Wait()
	if t.Failed() {
		t.FailNow()
	}

	final, err := st.Load(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(final.Events), writers*each+2; got != want {
		t.Fatalf("%d events in the end, want %d", got, want)
	}
	all := storedOf(final.Records)
	var last uint64
	for i, l := range loads {
		if got := storedOf(l.Records); len(got) > len(all) || !slices.Equal(all[:len(got)], got) {
			t.Fatalf("load %d is not a prefix of the history: seqs %v, history %v", i, seqsOf(l), seqsOf(final))
		}
		if l.LastSeq < last {
			t.Fatalf("load %d went back from seq %d to %d", i, last, l.LastSeq)
		}
		last = l.LastSeq
	}
	t.Logf("%d loads while %d events were appended; %d wildcard reads", len(loads), writers*each, r.wildcardReads.Load())
}

// TestLoadWhenReadsDisagree makes the per-subject reads disagree the way replicas at different points
// would, and checks that Load then returns every event appended, never part of them and never a
// report of tampering: from the union of the reads when it forms one chain, else from the wildcard
// read.
func TestLoadWhenReadsDisagree(t *testing.T) {
	cases := []struct {
		name     string
		skew     func(r *skewedReader, l *Loaded)
		fallback bool
	}{
		{"the last events from a replica behind, a subject from one ahead", func(r *skewedReader, l *Loaded) {
			// As of the second review: its predecessor is missing, so the reviews are read whole.
			r.skewLasts = func(recs []events.Record) []events.Record {
				return append(without(l.LastSeq)(recs), l.Records[3])
			}
		}, false},
		{"the last events from a replica ahead, a subject from one behind", func(r *skewedReader, l *Loaded) {
			r.skewSubject = without(l.Records[4].Seq, l.Records[5].Seq)
		}, true},
		{"a subject read missing an event in the middle", func(r *skewedReader, l *Loaded) {
			r.skewSubject = without(l.Records[3].Seq)
		}, true},
		{"a subject missing from the last events", func(r *skewedReader, l *Loaded) {
			r.skewLasts = without(l.Records[1].Seq)
		}, true},
		{"no replica answers the last events", func(r *skewedReader, _ *Loaded) {
			r.skewLasts = func([]events.Record) []events.Record { return nil }
			r.skewSubject = func([]events.Record) []events.Record { return nil }
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w, _ := singleNode(t)
			ctx := context.Background()
			id := w.pendingRequest(t, 10)
			want := w.reviewed(t, id, 4)
			st := w.stores[events.Revoker]
			r := watch(st)
			tc.skew(r, want)

			l, err := st.Load(ctx, id)
			if tc.name == "no replica answers the last events" {
				// Replicas that have not seen the request, while the leader has it.
				if !errors.Is(err, ErrStale) {
					t.Fatalf("Load = %v, %v; want ErrStale", l, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load = %v, want a complete prefix of the request", err)
			}
			if !slices.Equal(storedOf(want.Records), storedOf(l.Records)) {
				t.Fatalf("loaded other events than were appended: seqs %v, want %v", seqsOf(l), seqsOf(want))
			}
			if fell := r.wildcardReads.Load() > 0; fell != tc.fallback {
				t.Fatalf("fell back to the wildcard read: %v, want %v", fell, tc.fallback)
			}
		})
	}
}

// A request read from replicas that are behind loads as a shorter prefix, never as a broken one; one
// read from replicas that have not seen it at all, while the leader holds its events, is not reported
// as unknown: Load rereads until a replica has it, and says the read is stale if none does. LoadAtLeast
// likewise rereads until a replica has the event the caller knows of.
func TestLoadOfARequestTheRepliersHaveNotSeenYet(t *testing.T) {
	w, _ := singleNode(t)
	ctx := context.Background()
	id := w.pendingRequest(t, 10)
	want := w.reviewed(t, id, 2)
	st := w.stores[events.Revoker]
	r := watch(st)

	r.lag(2, want.Records[0].Seq-1)
	l, err := st.Load(ctx, id)
	if err != nil {
		t.Fatalf("Load = %v, want the request once a replica has it", err)
	}
	if !slices.Equal(storedOf(want.Records), storedOf(l.Records)) || r.laggingLoads.Load() != 2 {
		t.Fatalf("loaded seqs %v after %d lagging reads, want %v after 2", seqsOf(l), r.laggingLoads.Load(), seqsOf(want))
	}
	r.lag(1000, want.Records[0].Seq-1)
	if l, err := st.Load(ctx, id); !errors.Is(err, ErrStale) {
		t.Fatalf("Load from replicas that never see the request = %v, %v; want ErrStale, not an unknown request", l, err)
	}

	r.lag(1000, want.Records[1].Seq)
	if l, err := st.Load(ctx, id); err != nil || !slices.Equal(storedOf(want.Records[:2]), storedOf(l.Records)) {
		t.Fatalf("Load from a replica two events behind = %v; want the first two events", err)
	}
	// The store holds the request as the first Load read it; a store that does not must read.
	st.cache = newRequestCache(DefaultCacheBytes)
	if _, err := st.LoadAtLeast(ctx, id, want.LastSeq); !errors.Is(err, ErrStale) {
		t.Fatalf("LoadAtLeast from replicas that never catch up = %v; want ErrStale, not a shorter request", err)
	}
	r.lag(3, want.Records[1].Seq)
	if l, err := st.LoadAtLeast(ctx, id, want.LastSeq); err != nil || !slices.Equal(storedOf(want.Records), storedOf(l.Records)) {
		t.Fatalf("LoadAtLeast once a replica catches up = %v; want seqs %v", err, seqsOf(want))
	}
}

// TestUpdateOnALaggingReplica decides on loads from a replica that is behind the leader for several
// reads: the compare-and-set refuses the append on the stale prefix, the store asks the leader how far
// the request goes and rereads until a replica has that, and the one review lands on top of the latest
// event, decided on the latest state.
func TestUpdateOnALaggingReplica(t *testing.T) {
	w, _ := singleNode(t)
	ctx := context.Background()
	id := w.pendingRequest(t, 10)
	before := w.reviewed(t, id, 3)
	st := w.stores[events.Approval]
	r := watch(st)
	r.lag(4, before.Records[2].Seq)

	var decidedOn []int
	u, err := st.Update(ctx, id, func(req *events.Request) ([]events.Draft, error) {
		decidedOn = append(decidedOn, req.Version())
		return []events.Draft{reviewBy(nextReviewer(), req.Submitted().RequestDigest)}, nil
	})
	if err != nil {
		t.Fatalf("Update on a lagging replica = %v", err)
	}
	if len(u.Appended) != 1 || len(u.Events) != len(before.Events)+1 || decidedOn[len(decidedOn)-1] != len(before.Events) {
		t.Fatalf("appended %d on top of %d events, decisions on versions %v; want one on top of %d, the last decision on version %d",
			len(u.Appended), len(u.Events)-len(u.Appended), decidedOn, len(before.Events), len(before.Events))
	}
	if decidedOn[0] != 3 || len(decidedOn) != 2 {
		t.Fatalf("decisions on versions %v, want one on the stale prefix (3) and one after the reread", decidedOn)
	}
	after, err := w.stores[events.Intake].Load(ctx, id)
	if err != nil || len(after.Events) != len(before.Events)+1 {
		t.Fatalf("after the update: %v, %d events", err, len(after.Events))
	}
}

// TestVerifyCutChecksTheChainOfKnownRecords checks that records verified before (and so not verified
// again) must still link up: the memo spares the signature, never the chain.
func TestVerifyCutChecksTheChainOfKnownRecords(t *testing.T) {
	w, _ := singleNode(t)
	id := w.pendingRequest(t, 10)
	l := w.reviewed(t, id, 3)
	st := w.stores[events.Revoker]
	if _, err := st.verifyCut(id, l.Records); err != nil {
		t.Fatalf("verify the whole request: %v", err)
	}
	gap := append(append([]events.Record{}, l.Records[:2]...), l.Records[3:]...)
	if _, err := st.verifyCut(id, gap); err == nil {
		t.Fatalf("a cut missing an event in the middle verified from the memo")
	}
	other := w.pendingRequest(t, 10)
	for name, st := range map[string]*Store{"a store that verified them before": st, "a store that never saw them": w.stores[events.Intake]} {
		if _, err := st.verifyCut(other, l.Records); err == nil {
			t.Fatalf("%s: another request's records verified as request %s's", name, other)
		}
	}
}

// deletableWorld is a world on an evidence stream that allows deletes, which no Grantline deployment
// has (Open refuses it), so a test can remove an event the way an operator bypassing the design could.
func deletableWorld(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	ns := natstest.RunServer(t)
	_, js := natstest.Connect(t, ns.ClientURL())
	cfg := StreamConfigs(DefaultSettings)[0]
	cfg.DenyDelete = false
	if _, err := js.CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	w := &world{js: js, signers: map[events.Service]*events.Signer{}, stores: map[events.Service]*Store{}}
	var all []*events.Signer
	for _, svc := range events.Services {
		s, err := events.GenerateSigner(svc, string(svc)+"-test")
		if err != nil {
			t.Fatal(err)
		}
		w.signers[svc] = s
		all = append(all, s)
	}
	verifier, err := events.NewVerifier(events.NewTrustFile(time.Now().Add(-time.Hour), all...))
	if err != nil {
		t.Fatal(err)
	}
	for _, svc := range events.Services {
		if w.stores[svc], err = newStore(js, Config{Signer: w.signers[svc], Verifier: verifier}); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// TestLoadReportsMissingEvents deletes one event of a request and checks that the load reports the
// broken chain where the event is missing, whether its subject held several events or only that one.
func TestLoadReportsMissingEvents(t *testing.T) {
	cases := []struct {
		name     string
		position int // of the deleted event, counted from 1
	}{
		{"a review among several", 4},
		{"the only policy decision", 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := deletableWorld(t)
			ctx := context.Background()
			id := w.pendingRequest(t, 10)
			l := w.reviewed(t, id, 4)
			st := w.stores[events.Revoker]
			if _, err := st.Load(ctx, id); err != nil {
				t.Fatalf("load before the delete: %v", err)
			}
			stream, err := w.js.Stream(ctx, topology.EventsStream)
			if err != nil {
				t.Fatal(err)
			}
			if err := stream.DeleteMsg(ctx, l.Records[tc.position-1].Seq); err != nil {
				t.Fatal(err)
			}
			_, err = st.Load(ctx, id)
			var v *events.Violation
			if !errors.As(err, &v) || v.Kind != events.ViolationChainBroken || v.Position != tc.position {
				t.Fatalf("Load = %v, want a broken chain at event %d", err, tc.position)
			}
		})
	}
}

// TestLoadReportsAnEventShadowedByALaterOne stores a forged review that is not in the chain and then a
// review that links past it, both bypassing the compare-and-set: the last event of every subject
// still forms a valid chain, so only a read that sees every event can tell.
func TestLoadReportsAnEventShadowedByALaterOne(t *testing.T) {
	w, _ := singleNode(t)
	ctx := context.Background()
	id := w.pendingRequest(t, 10)
	l := w.reviewed(t, id, 1)
	st := w.stores[events.Revoker]
	if _, err := st.Load(ctx, id); err != nil {
		t.Fatal(err)
	}
	decoy := forged(t, w, id, "sha256:feed", events.Approval, reviewBy("mallory", l.Request.Submitted().RequestDigest).Payload, "mallory")
	shadow := forged(t, w, id, l.head(), events.Approval, reviewBy("trent", l.Request.Submitted().RequestDigest).Payload, "trent")
	for _, m := range []*nats.Msg{decoy, shadow} {
		if _, err := w.js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	assertViolation(t, w, id, 4, events.ViolationChainBroken)
}

// TestLoadReadsPastAStoredStatusHeader stores a message that looks like the end of a direct-get reply
// (an empty body with a 204 status header) among a request's events: the read must not stop at it.
func TestLoadReadsPastAStoredStatusHeader(t *testing.T) {
	w, _ := singleNode(t)
	ctx := context.Background()
	id := w.pendingRequest(t, 10)
	m := nats.NewMsg(events.NATSSubject(id, events.TypeReviewed))
	m.Header.Set("Status", "204")
	m.Header.Set("Description", "EOB")
	if _, err := w.js.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
	assertViolation(t, w, id, 3, events.ViolationMissingSignature)
}

// TestDirectGetTimesOutRatherThanEndingShort checks that a read whose reply does not come is an error,
// not an empty request.
func TestDirectGetTimesOutRatherThanEndingShort(t *testing.T) {
	ns := natstest.RunServer(t)
	nc, js := natstest.Connect(t, ns.ClientURL())
	r, err := newStreamReader(js, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	// A responder that never answers stands in for a replica that died before replying.
	sub, err := nc.Subscribe(r.apiPrefix+"DIRECT.GET."+topology.EventsStream, func(*nats.Msg) {})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	_, _, err = r.next(context.Background(), "grantline.events.x.>", 1, loadBatch)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("next with no reply = %v, want a deadline error", err)
	}
}

func TestVerifiedSetForgetsTheOldestGeneration(t *testing.T) {
	v := newVerifiedSet()
	key := func(i int) [32]byte { return [32]byte{byte(i), byte(i >> 8), byte(i >> 16)} }
	v.add(key(0))
	v.add(key(1))
	for i := 2; i < verifiedGeneration+1; i++ {
		v.add(key(i))
	}
	// key(0) and key(1) are now in the older generation; asking for key(1) brings it back.
	if !v.has(key(1)) {
		t.Fatalf("a key of the previous generation was forgotten")
	}
	for i := verifiedGeneration + 1; i < 2*verifiedGeneration+1; i++ {
		v.add(key(i))
	}
	if v.has(key(0)) {
		t.Fatalf("a key two generations old is still remembered")
	}
	if !v.has(key(1)) {
		t.Fatalf("a key used in the previous generation was forgotten")
	}
}
