package eventstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/topology"
)

// receive hands st the event stored at seq, as its consumer would.
func receive(t *testing.T, w *world, st *Store, seq uint64) Delivery {
	t.Helper()
	d, err := st.Receive(delivered(t, w, seq))
	if err != nil {
		t.Fatalf("receive the event at seq %d: %v", seq, err)
	}
	return d
}

// TestReactDecidesOnTheDeliveredEvent follows one request through a reaction's store: each delivered
// event that links to the request the store holds is folded onto it, a decision appends on top of it,
// and the store's own append, delivered back, and a redelivery need no read either.
func TestReactDecidesOnTheDeliveredEvent(t *testing.T) {
	w, _ := singleNode(t)
	ctx := context.Background()
	id := w.pendingRequest(t, 10)
	st := w.stores[events.Approval]
	r := watch(st)

	first := receive(t, w, st, 1)
	u, err := st.React(ctx, first, func(*events.Request) ([]events.Draft, error) { return nil, nil })
	if err != nil || u.Request.Status() != events.StatusSubmitted || len(u.Appended) != 0 {
		t.Fatalf("React to the submission = %v; want the submitted request, nothing appended", err)
	}
	review := func(d Delivery) Decide {
		return func(req *events.Request) ([]events.Draft, error) {
			draft := reviewBy("carol", req.Submitted().RequestDigest)
			draft.CausationID = d.Event.ID
			return []events.Draft{draft}, nil
		}
	}
	decided := receive(t, w, st, 2)
	if u, err = st.React(ctx, decided, review(decided)); err != nil || len(u.Appended) != 1 {
		t.Fatalf("React to the decision = %v; want one review appended", err)
	}
	own := receive(t, w, st, u.LastSeq)
	l, err := st.AtDelivery(ctx, own)
	if err != nil || l.LastSeq != u.LastSeq || len(l.Events) != 3 {
		t.Fatalf("AtDelivery of the store's own review = %v; want the request it appended", err)
	}
	if again, err := st.React(ctx, decided, review(decided)); err != nil || len(again.Appended) != 0 {
		t.Fatalf("redelivered decision = %v; want nothing appended", err)
	}
	if n, m := r.lastsReads.Load(), r.wildcardReads.Load(); n != 0 || m != 0 {
		t.Fatalf("%d per-subject and %d wildcard reads; a reaction that holds the request reads nothing", n, m)
	}

	// Another store holds nothing of the request: it loads once, then folds.
	other := w.stores[events.Fulfilment]
	ro := watch(other)
	if _, err := other.AtDelivery(ctx, receive(t, w, other, 2)); err != nil {
		t.Fatal(err)
	}
	if _, err := other.AtDelivery(ctx, receive(t, w, other, u.LastSeq)); err != nil {
		t.Fatal(err)
	}
	if n := ro.lastsReads.Load(); n != 1 {
		t.Fatalf("%d reads by a store that held nothing, want 1", n)
	}
	if got, err := w.stores[events.Intake].Load(ctx, id); err != nil || len(got.Events) != 3 {
		t.Fatalf("the stream after the reactions: %v", err)
	}
}

// TestReactRefusesWhatTheChainDoesNotVouchFor delivers events that do not link to the request the
// reaction's store holds verified: each time it must reload, find that the stream is not what
// Grantline wrote, and refuse with the violation, never deciding and never appending.
func TestReactRefusesWhatTheChainDoesNotVouchFor(t *testing.T) {
	cases := []struct {
		name string
		// tamper stores what the reaction will be delivered, given the request the store holds;
		// it returns the delivered event's stream sequence.
		tamper func(t *testing.T, w *world, held *Loaded) uint64
	}{
		{"the delivered event links to an event stored outside the chain", func(t *testing.T, w *world, held *Loaded) uint64 {
			digest := held.Request.Submitted().RequestDigest
			decoy := forged(t, w, held.ID, "sha256:feed", events.Approval, reviewBy("mallory", digest).Payload, "mallory")
			publish(t, w, decoy)
			return publish(t, w, forged(t, w, held.ID, events.ChainHash(decoy.Data), events.Approval, reviewBy("trent", digest).Payload, "trent"))
		}},
		{"the delivered event forks the chain the store holds", func(t *testing.T, w *world, held *Loaded) uint64 {
			// Linked to the event before the head, as a writer skipping the compare-and-set would.
			return publish(t, w, forged(t, w, held.ID, events.ChainHash(held.Records[1].Body), events.Intake, events.Withdrawn{}, "alice"))
		}},
		{"the cached prefix was tampered with in the stream", func(t *testing.T, w *world, held *Loaded) uint64 {
			// The head the store holds is deleted and stored again altered; the delivered event links
			// to the altered copy.
			stream, err := w.js.Stream(context.Background(), topology.EventsStream)
			if err != nil {
				t.Fatal(err)
			}
			head := held.Records[len(held.Records)-1]
			if err := stream.DeleteMsg(context.Background(), head.Seq); err != nil {
				t.Fatal(err)
			}
			altered := nats.NewMsg(head.Subject)
			altered.Data = []byte(string(head.Body[:len(head.Body)-2]) + ` }`)
			altered.Header.Set(events.SignatureHeader, head.Signature)
			publish(t, w, altered)
			return publish(t, w, forged(t, w, held.ID, events.ChainHash(altered.Data), events.Intake, events.Withdrawn{}, "alice"))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := deletableWorld(t)
			ctx := context.Background()
			id := w.pendingRequest(t, 10)
			st := w.stores[events.Approval]
			held := w.reviewed(t, id, 1)
			if l, _ := st.cache.get(id); l == nil || l.LastSeq != held.LastSeq {
				t.Fatalf("the store does not hold the request it appended to")
			}
			r := watch(st)
			d := receive(t, w, st, tc.tamper(t, w, held))

			decided := false
			u, err := st.React(ctx, d, func(req *events.Request) ([]events.Draft, error) {
				decided = true
				return []events.Draft{reviewBy(nextReviewer(), req.Submitted().RequestDigest)}, nil
			})
			var v *events.Violation
			if !errors.As(err, &v) || u != nil || decided {
				t.Fatalf("React = %v (decided: %v); want a violation and no decision", err, decided)
			}
			if v.Position < 3 || v.RequestID != id {
				t.Fatalf("violation %v: want it placed in request %s after its two first events", v, id)
			}
			if r.lastsReads.Load() == 0 {
				t.Fatalf("refused without reloading: the store must reload on a link it cannot vouch for")
			}
			if _, err := st.AtDelivery(ctx, d); !errors.As(err, &v) {
				t.Fatalf("AtDelivery after the refusal = %v; want the violation again", err)
			}
		})
	}
}

// publish stores m straight into the evidence stream and returns its stream sequence.
func publish(t *testing.T, w *world, m *nats.Msg) uint64 {
	t.Helper()
	ack, err := w.js.PublishMsg(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// TestCacheForgetsTheLeastRecentlyUsedByWeight fills a small cache with requests of different sizes:
// it stays under its bytes, forgets the request used longest ago first, keeps the later of two
// versions of a request, and never holds a request heavier than all of it.
func TestCacheForgetsTheLeastRecentlyUsedByWeight(t *testing.T) {
	request := func(id string, events_, bodyBytes int, lastSeq uint64) *Loaded {
		l := &Loaded{ID: id, LastSeq: lastSeq}
		for i := range events_ {
			l.Records = append(l.Records, events.Record{Seq: lastSeq - uint64(events_-1-i), Body: make([]byte, bodyBytes)})
			l.Events = append(l.Events, events.Event{})
		}
		return l
	}
	small := weight(request("x", 2, 500, 2))
	c := newRequestCache(3 * small)
	c.put(request("a", 2, 500, 10))
	c.put(request("b", 2, 500, 20))
	c.put(request("c", 2, 500, 30))
	if l, _ := c.get("a"); l == nil { // a is now the most recently used
		t.Fatalf("a forgotten while the cache had room")
	}
	c.put(request("d", 2, 500, 40))
	if l, _ := c.get("b"); l != nil {
		t.Fatalf("b, the least recently used, is still held")
	}
	c.put(request("a", 2, 500, 5))
	if l, _ := c.get("a"); l == nil || l.LastSeq != 10 {
		t.Fatalf("an older version of a replaced the later one")
	}
	c.put(request("heavy", 3, 500, 50)) // a request of three events pushes out two of two
	held := 0
	for _, id := range []string{"a", "c", "d", "heavy"} {
		if l, _ := c.get(id); l != nil {
			held++
		}
	}
	if c.bytes > c.maxBytes || held != 2 {
		t.Fatalf("holds %d requests in %d bytes of %d; want 2 within the bound", held, c.bytes, c.maxBytes)
	}
	c.put(request("huge", 40, 500, 100))
	if l, _ := c.get("huge"); l != nil {
		t.Fatalf("a request heavier than the whole cache is held")
	}
	if l, head := c.get("heavy"); l == nil || head != l.head() {
		t.Fatalf("heavy = %v with head %q; want it held with its head", l != nil, head)
	}
}

// TestCreateReadsNothing creates a request under a fresh ID without reading the stream, and checks that
// a second creation under the same ID (a retried command) is refused by the compare-and-set, reloads
// and appends nothing.
func TestCreateReadsNothing(t *testing.T) {
	w, _ := singleNode(t)
	ctx := context.Background()
	st := w.stores[events.Intake]
	r := watch(st)
	id := events.NewID()
	create := func(req *events.Request) ([]events.Draft, error) {
		if req.Status() != events.StatusNone {
			return nil, nil
		}
		return []events.Draft{{Payload: submitted("alice"), Actor: "alice", CausationID: "http:key-1"}}, nil
	}
	u, err := st.Create(ctx, id, create)
	if err != nil || len(u.Appended) != 1 || u.Request.Status() != events.StatusSubmitted {
		t.Fatalf("Create = %v; want the submission appended", err)
	}
	if n, m := r.lastsReads.Load(), r.wildcardReads.Load(); n != 0 || m != 0 {
		t.Fatalf("Create of a fresh ID read the stream (%d, %d)", n, m)
	}
	again, err := w.stores[events.Intake].Create(ctx, id, create)
	if err != nil || len(again.Appended) != 0 || len(again.Events) != 1 {
		t.Fatalf("Create again = %v; want the request as it was, nothing appended", err)
	}
	if r.lastsReads.Load() == 0 {
		t.Fatalf("the second Create appended nothing without reading: the test tests nothing")
	}
	if l, err := w.stores[events.Approval].Load(ctx, id); err != nil || len(l.Events) != 1 {
		t.Fatalf("the stream after two creations: %v", err)
	}
}

// TestRacingReactionsShareOneCache has several reactions in one store decide on the same delivered
// event at once, each appending a review of its own: the compare-and-set orders them, the cache they
// share never hands one a broken or stale prefix it cannot recover from, and each review lands once.
func TestRacingReactionsShareOneCache(t *testing.T) {
	w, _ := singleNode(t)
	ctx := context.Background()
	id := w.pendingRequest(t, 100)
	st := w.stores[events.Approval]
	d := receive(t, w, st, 2)
	const reactions = 8
	errs := make(chan error, reactions)
	var wg sync.WaitGroup
	for i := range reactions {
		wg.Go(func() {
			u, err := st.React(ctx, d, func(req *events.Request) ([]events.Draft, error) {
				draft := reviewBy(fmt.Sprintf("racer-%d", i), req.Submitted().RequestDigest)
				draft.CausationID = fmt.Sprintf("race-%d", i)
				return []events.Draft{draft}, nil
			})
			if err == nil && len(u.Appended) != 1 {
				err = fmt.Errorf("reaction %d appended %d events", i, len(u.Appended))
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	l, err := w.stores[events.Intake].Load(ctx, id)
	if err != nil || len(l.Events) != 2+reactions {
		t.Fatalf("after the race: %v, %d events; want %d", err, len(l.Events), 2+reactions)
	}
	if held, _ := st.cache.get(id); held == nil || held.LastSeq > l.LastSeq {
		t.Fatalf("the cache holds the request beyond the stream")
	}
}
