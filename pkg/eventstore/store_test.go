package eventstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/natstest"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/pkg/telemetry"
	"github.com/grantline/grantline/pkg/topology"
)

func TestAppendAndLoad(t *testing.T) {
	w, _ := singleNode(t)
	ctx := context.Background()
	id := w.pendingRequest(t, 2)
	l, err := w.stores[events.Approval].Load(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if l.Request.Status() != events.StatusPendingApproval || len(l.Events) != 2 || l.LastSeq == 0 {
		t.Fatalf("loaded %s with %d events at seq %d", l.Request.Status(), len(l.Events), l.LastSeq)
	}
	if l.Events[0].Source != "/grantline/intake" || l.Events[1].Source != "/grantline/policy" {
		t.Fatalf("sources %s, %s", l.Events[0].Source, l.Events[1].Source)
	}
	empty, err := w.stores[events.Intake].Load(ctx, events.NewID())
	if err != nil || len(empty.Events) != 0 || empty.LastSeq != 0 {
		t.Fatalf("a request with no events: %v, %+v", err, empty)
	}
}

func TestLoadReadsPastOneBatch(t *testing.T) {
	w, _ := singleNode(t)
	ctx := context.Background()
	n := loadBatch + 40
	id := w.pendingRequest(t, n+1)
	cur, err := w.stores[events.Approval].Load(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	// Append in batches of 50 so the request outgrows one direct-get reply.
	for i := 0; i < n; i += 50 {
		var drafts []events.Draft
		for j := i; j < min(i+50, n); j++ {
			drafts = append(drafts, reviewBy(fmt.Sprintf("reviewer-%03d", j), cur.Request.Submitted().RequestDigest))
		}
		if cur, err = w.stores[events.Approval].Append(ctx, cur, drafts...); err != nil {
			t.Fatalf("append batch at %d: %v", i, err)
		}
	}
	l, err := w.stores[events.Approval].Load(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Events) != n+2 || l.LastSeq != cur.LastSeq {
		t.Fatalf("loaded %d events up to seq %d, want %d up to %d", len(l.Events), l.LastSeq, n+2, cur.LastSeq)
	}
}

func TestAtomicBatchIsAllOrNothing(t *testing.T) {
	w, _ := singleNode(t)
	ctx := context.Background()
	id := w.pendingRequest(t, 3)
	stale, _ := w.stores[events.Approval].Load(ctx, id)
	digest := stale.Request.Submitted().RequestDigest
	if _, err := w.stores[events.Approval].Append(ctx, stale, reviewBy("carol", digest)); err != nil {
		t.Fatal(err)
	}
	_, err := w.stores[events.Approval].Append(ctx, stale, reviewBy("dave", digest), reviewBy("erin", digest))
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("a batch on a stale version = %v, want ErrConflict", err)
	}
	l, _ := w.stores[events.Approval].Load(ctx, id)
	if len(l.Events) != 3 {
		t.Fatalf("%d events after a refused batch, want 3", len(l.Events))
	}
}

func TestAppendRefusesIllegalEvents(t *testing.T) {
	w, _ := singleNode(t)
	ctx := context.Background()
	id := w.pendingRequest(t, 1)
	cur, _ := w.stores[events.Approval].Load(ctx, id)
	_, err := w.stores[events.Approval].Append(ctx, cur, events.Draft{Payload: events.Approved{Approvers: []string{"carol"}}})
	if !errors.Is(err, events.ErrRefused) {
		t.Fatalf("approved without reviews = %v, want ErrRefused", err)
	}
	l, _ := w.stores[events.Approval].Load(ctx, id)
	if len(l.Events) != 2 {
		t.Fatalf("a refused event reached the stream")
	}
}

func TestSameMessageIDIsANoOp(t *testing.T) {
	w, _ := singleNode(t)
	ctx := context.Background()
	id := w.pendingRequest(t, 5)
	cur, _ := w.stores[events.Approval].Load(ctx, id)
	d := reviewBy("carol", cur.Request.Submitted().RequestDigest)
	d.MsgID = "approval:http-review-1"
	after, err := w.stores[events.Approval].Append(ctx, cur, d)
	if err != nil {
		t.Fatal(err)
	}
	// The same message again, on the current version: the server recognises the ID and stores nothing.
	again := reviewBy("dave", cur.Request.Submitted().RequestDigest)
	again.MsgID = d.MsgID
	if _, err := w.stores[events.Approval].Append(ctx, after, again); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("re-append with the same message ID = %v, want ErrDuplicate", err)
	}
	l, _ := w.stores[events.Approval].Load(ctx, id)
	if len(l.Events) != 3 {
		t.Fatalf("%d events, want 3", len(l.Events))
	}
}

func TestRedeliveredReactionAppendsOnce(t *testing.T) {
	w, _ := singleNode(t)
	ctx := context.Background()
	id := w.pendingRequest(t, 5)
	react := func(r *events.Request) ([]events.Draft, error) {
		d := reviewBy("carol", r.Submitted().RequestDigest)
		d.CausationID = "evt-01"
		return []events.Draft{d}, nil
	}
	for delivery := range 3 {
		u, err := w.stores[events.Approval].Update(ctx, id, react)
		if err != nil {
			t.Fatal(err)
		}
		want := []events.Type{events.TypeReviewed}
		if delivery > 0 {
			want = nil
		}
		if got := typesOf(u.Appended); !slices.Equal(got, want) {
			t.Fatalf("delivery %d appended %v, want %v", delivery+1, got, want)
		}
	}
	// Beyond the server's duplicate window the message ID no longer helps; the causation still does.
	l, err := w.stores[events.Approval].Update(ctx, id, func(r *events.Request) ([]events.Draft, error) {
		d := reviewBy("carol", r.Submitted().RequestDigest)
		d.CausationID, d.MsgID = "evt-01", "a-fresh-id-after-the-window"
		return []events.Draft{d}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Events) != 3 || len(l.Appended) != 0 {
		t.Fatalf("%d events after four deliveries of one reaction, the last appending %d; want 3 and 0", len(l.Events), len(l.Appended))
	}
}

func typesOf(evs []events.Event) []events.Type {
	var out []events.Type
	for _, ev := range evs {
		out = append(out, ev.Type)
	}
	return out
}

// TestTamperingIsDetectedOnLoad publishes straight into the stream, the way a writer that bypasses the
// event store (or holds a stolen key) would, and checks that Load reports position and kind.
func TestTamperingIsDetectedOnLoad(t *testing.T) {
	cases := []struct {
		name string
		// forge returns the message to publish after the two good events; head is the chain head.
		forge    func(w *world, id, head string) *nats.Msg
		position int
		kind     events.ViolationKind
	}{
		{"a body byte changed", func(w *world, id, head string) *nats.Msg {
			m := forged(t, w, id, head, events.Intake, events.Withdrawn{}, "alice")
			m.Data = []byte(strings.Replace(string(m.Data), `"alice"`, `"alicf"`, 1))
			return m
		}, 3, events.ViolationBadSignature},
		{"an approval signed by intake's key", func(w *world, id, head string) *nats.Msg {
			m := forged(t, w, id, head, events.Approval, events.Approved{Approvers: []string{"bob"}}, "bob")
			m.Header.Set(events.SignatureHeader, w.signers[events.Intake].Sign(m.Data))
			return m
		}, 3, events.ViolationTypeNotAllowed},
		{"a wrong prevhash", func(w *world, id, _ string) *nats.Msg {
			return forged(t, w, id, "sha256:feed", events.Intake, events.Withdrawn{}, "alice")
		}, 3, events.ViolationChainBroken},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w, _ := singleNode(t)
			ctx := context.Background()
			id := w.pendingRequest(t, 1)
			l, _ := w.stores[events.Intake].Load(ctx, id)
			if _, err := w.js.PublishMsg(ctx, tc.forge(w, id, events.ChainHash(l.Records[1].Body))); err != nil {
				t.Fatal(err)
			}
			assertViolation(t, w, id, tc.position, tc.kind)
		})
	}

	t.Run("an append without the compare-and-set", func(t *testing.T) {
		w, _ := singleNode(t)
		ctx := context.Background()
		id := w.pendingRequest(t, 1)
		stale, _ := w.stores[events.Approval].Load(ctx, id)
		if _, err := w.stores[events.Approval].Append(ctx, stale, reviewBy("carol", stale.Request.Submitted().RequestDigest)); err != nil {
			t.Fatal(err)
		}
		// A second writer on the stale view, publishing without the expectation header, forks the chain.
		m := forged(t, w, id, stale.head(), events.Intake, events.Withdrawn{}, "alice")
		if _, err := w.js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
		assertViolation(t, w, id, 4, events.ViolationChainBroken)
	})
}

func forged(t *testing.T, w *world, id, head string, svc events.Service, p events.Payload, actor string) *nats.Msg {
	t.Helper()
	env, body, err := events.Draft{Payload: p, Actor: actor}.Seal(id, svc, time.Now(), head)
	if err != nil {
		t.Fatal(err)
	}
	m := nats.NewMsg(events.NATSSubject(id, env.Type))
	m.Data = body
	m.Header.Set(events.SignatureHeader, w.signers[svc].Sign(body))
	return m
}

func assertViolation(t *testing.T, w *world, id string, position int, kind events.ViolationKind) {
	t.Helper()
	_, err := w.stores[events.Intake].Load(context.Background(), id)
	var v *events.Violation
	if !errors.As(err, &v) {
		t.Fatalf("Load = %v, want a violation", err)
	}
	if v.Position != position || v.Kind != kind {
		t.Fatalf("violation %s at %d, want %s at %d: %v", v.Kind, v.Position, kind, position, err)
	}
}

// race has reviewers approve one request concurrently through Update, retrying only errors that are not
// conflicts (a node going away mid-publish), and checks that every reviewer landed exactly once, in an
// unbroken chain, one version each. disrupt runs once a third of the reviewers are in.
func race(t *testing.T, w *world, reviewers int, disrupt func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	id := w.pendingRequest(t, reviewers+1)
	store := w.stores[events.Approval]
	var wg sync.WaitGroup
	var mu sync.Mutex
	done, transient := 0, 0
	var highest uint64
	kinds := map[string]int{}
	var disruptOnce sync.Once
	errs := make(chan error, reviewers)
	for i := range reviewers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			who := fmt.Sprintf("reviewer-%03d", i)
			for ctx.Err() == nil {
				l, err := store.Update(ctx, id, func(r *events.Request) ([]events.Draft, error) {
					return []events.Draft{reviewBy(who, r.Submitted().RequestDigest)}, nil
				})
				if err == nil {
					mu.Lock()
					highest = max(highest, l.LastSeq)
					mu.Unlock()
					break
				}
				if errors.Is(err, events.ErrRefused) {
					errs <- fmt.Errorf("%s: %w", who, err)
					return
				}
				mu.Lock()
				transient++
				kinds[errorKind(err)]++
				mu.Unlock()
			}
			mu.Lock()
			done++
			if done == reviewers/3 && disrupt != nil {
				disruptOnce.Do(func() { go disrupt() })
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("%v (transient errors so far: %v)", err, kinds)
	}
	if t.Failed() {
		t.FailNow()
	}
	var l *Loaded
	poll.Until(t, 30*time.Second, "a load after the race", func() bool {
		var err error
		l, err = store.LoadAtLeast(ctx, id, highest)
		return err == nil
	})
	if got := len(l.Events); got != reviewers+2 {
		t.Fatalf("%d events, want %d (2 + one per reviewer)", got, reviewers+2)
	}
	seen := map[string]int{}
	for v, ev := range l.Events[2:] {
		rv := ev.Payload.(events.Reviewed)
		if prev, dup := seen[rv.Reviewer.ID]; dup {
			t.Fatalf("%s won versions %d and %d", rv.Reviewer.ID, prev+3, v+3)
		}
		seen[rv.Reviewer.ID] = v
	}
	if len(seen) != reviewers {
		t.Fatalf("%d distinct reviewers landed, want %d", len(seen), reviewers)
	}
	for i := 1; i < len(l.Records); i++ {
		if l.Records[i].Seq <= l.Records[i-1].Seq {
			t.Fatalf("stream sequences out of order at %d", i)
		}
	}
	t.Logf("%d reviewers, %d transient errors retried: %v", reviewers, transient, kinds)
}

// errorKind shortens an error to its class for the race summary.
func errorKind(err error) string {
	switch {
	case errors.Is(err, ErrConflict):
		return "conflict"
	case errors.Is(err, ErrStale):
		return "stale"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return "timeout"
	}
	msg := err.Error()
	return msg[max(0, len(msg)-60):]
}

func TestConcurrentUpdatesSingleNode(t *testing.T) {
	w, _ := singleNode(t)
	race(t, w, 48, nil)
}

func TestConcurrentUpdatesCluster(t *testing.T) {
	c := natstest.RunCluster(t)
	_, js := natstest.Connect(t, c.ClientURLs())
	w := newWorld(t, js, EmbeddedProbe(c.Nodes...), StreamSettings{Replicas: 3, EventsMaxBytes: 1 << 30})
	race(t, w, 24, nil)
}

func TestConcurrentUpdatesAcrossLeaderKill(t *testing.T) {
	c := natstest.RunCluster(t)
	_, js := natstest.Connect(t, c.ClientURLs())
	w := newWorld(t, js, EmbeddedProbe(c.Nodes...), StreamSettings{Replicas: 3, EventsMaxBytes: 1 << 30})
	leader := streamLeader(t, js)
	race(t, w, 30, func() { c.Stop(leader) })
	if c.Node(leader) != nil {
		t.Fatalf("the stream leader %s was never stopped", leader)
	}
	if now := streamLeader(t, js); now == leader {
		t.Fatalf("leadership did not move off %s", leader)
	}
}

func streamLeader(t *testing.T, js jetstream.JetStream) string {
	t.Helper()
	var leader string
	poll.Until(t, 30*time.Second, "a stream leader", func() bool {
		st, err := js.Stream(context.Background(), topology.EventsStream)
		if err != nil {
			return false
		}
		info, err := st.Info(context.Background())
		if err != nil || info.Cluster == nil {
			return false
		}
		leader = info.Cluster.Leader
		return leader != ""
	})
	return leader
}

// TestLastSeqIsTheStreams: LastSeq is 0 on an empty stream, and after each append the sequence of the
// event just stored, whichever request it is of.
func TestLastSeqIsTheStreams(t *testing.T) {
	w, _ := singleNode(t)
	ctx := context.Background()
	st := w.stores[events.Intake]
	if last, err := st.LastSeq(ctx); err != nil || last != 0 {
		t.Fatalf("empty stream: LastSeq %d, %v; want 0", last, err)
	}
	for _, who := range []string{"alice", "bob"} {
		l, err := st.Update(ctx, events.NewID(), func(*events.Request) ([]events.Draft, error) {
			return []events.Draft{{Payload: submitted(who), Actor: who}}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if last, err := st.LastSeq(ctx); err != nil || last != l.LastSeq {
			t.Fatalf("after %s's request: LastSeq %d, %v; want %d", who, last, err, l.LastSeq)
		}
	}
}

func TestAppendCarriesTheTrace(t *testing.T) {
	w, _ := singleNode(t)
	telemetry.InstallPropagator()
	traceID, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	spanID, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: traceID, SpanID: spanID, TraceFlags: trace.FlagsSampled}))
	id := events.NewID()
	l, err := w.stores[events.Intake].Update(ctx, id, func(*events.Request) ([]events.Draft, error) {
		return []events.Draft{{Payload: submitted("alice"), Actor: "alice"}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	if got := l.Events[0].TraceParent; got != want {
		t.Fatalf("event traceparent %q, want %q", got, want)
	}
	st, _ := w.js.Stream(ctx, topology.EventsStream)
	raw, err := st.GetMsg(ctx, l.LastSeq)
	if err != nil {
		t.Fatal(err)
	}
	if got := raw.Header.Get("traceparent"); got != want {
		t.Fatalf("header traceparent %q, want %q", got, want)
	}
}

// TestReaderLoadsButNeverAppends: a store opened without a signing key (the notifier's) loads and
// verifies a request like any other, and refuses to append to it.
func TestReaderLoadsButNeverAppends(t *testing.T) {
	w, _ := singleNode(t)
	ctx := context.Background()
	id := w.pendingRequest(t, 2)
	r, err := OpenReader(ctx, w.js, w.stores[events.Approval].verifier)
	if err != nil {
		t.Fatal(err)
	}
	l, err := r.Load(ctx, id)
	if err != nil || l.Request.Status() != events.StatusPendingApproval || len(l.Events) != 2 {
		t.Fatalf("reader loaded %+v, %v", l, err)
	}
	if _, err := r.Append(ctx, l, events.Draft{Payload: events.Withdrawn{}, Actor: "alice"}); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("a reader appended: %v", err)
	}
	if after, err := r.Load(ctx, id); err != nil || len(after.Events) != 2 {
		t.Fatalf("after a refused append: %d events, %v", len(after.Events), err)
	}
}
