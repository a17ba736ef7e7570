package consumer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/pkg/topology"
)

func TestRequestKey(t *testing.T) {
	id := events.NewID()
	cases := []struct {
		name, subject, want string
	}{
		{"an event belongs to its request", events.NATSSubject(id, events.TypeReviewed), id},
		{"a fired timer belongs to its request", topology.TimerFired(id, topology.TimerExpiry), id},
		{"an integration's request belongs to none yet", topology.IntegrationRequests("crm"), ""},
		{"an outbox entry belongs to none", topology.BucketKey(topology.NotifyOutboxBucket, "email.x"), ""},
		{"a subject with an unknown event type belongs to none", "grantline.events." + id + ".nonsense", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := RequestKey(tc.subject); got != tc.want {
				t.Fatalf("RequestKey(%q) = %q, want %q", tc.subject, got, tc.want)
			}
		})
	}
}

// requests are n messages <label>-1 … <label>-n for each request, interleaved across the requests:
// every request's first, then every request's second, …
func requests(n int, labels map[string]string) []published {
	var out []published
	for i := 1; i <= n; i++ {
		for label, id := range labels {
			out = append(out, published{events.NATSSubject(id, events.TypeReviewed), label + "-" + string(rune('0'+i))})
		}
	}
	return out
}

// journal records, per request, the deliveries its handler started and finished, and whether two of
// one request's ever ran at once.
type journal struct {
	mu       sync.Mutex
	started  map[string][]string
	finished map[string][]string
	active   map[string]int
	overlap  []string
}

func newJournal() *journal {
	return &journal{started: map[string][]string{}, finished: map[string][]string{}, active: map[string]int{}}
}

func (j *journal) start(msg jetstream.Msg) (finish func()) {
	key, data := RequestKey(msg.Subject()), string(msg.Data())
	j.mu.Lock()
	defer j.mu.Unlock()
	j.started[key] = append(j.started[key], data)
	if j.active[key]++; j.active[key] > 1 {
		j.overlap = append(j.overlap, data)
	}
	return func() {
		j.mu.Lock()
		defer j.mu.Unlock()
		j.active[key]--
		j.finished[key] = append(j.finished[key], data)
	}
}

func (j *journal) read(f func(j *journal)) {
	j.mu.Lock()
	defer j.mu.Unlock()
	f(j)
}

// TestOneRequestAtATimeManyRequestsAtOnce: while request A's first delivery is held, none of A's later
// deliveries starts, and request B's all complete; once A's is released, A's run one by one in order.
func TestOneRequestAtATimeManyRequestsAtOnce(t *testing.T) {
	a, b := events.NewID(), events.NewID()
	spec := Spec{Stream: topology.EventsStream, Durable: "test", FilterSubjects: []string{events.AllSubjects}, Concurrency: 8}
	release := make(chan struct{})
	j := newJournal()
	h := startOn(t, spec, requests(3, map[string]string{"a": a, "b": b}), func(ctx context.Context, msg jetstream.Msg) error {
		defer j.start(msg)()
		if string(msg.Data()) == "a-1" {
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	poll.Until(t, 20*time.Second, "request B handled while A's first delivery is held", func() bool {
		var n int
		j.read(func(j *journal) { n = len(j.finished[b]) })
		return n == 3
	})
	j.read(func(j *journal) {
		if !slices.Equal(j.started[a], []string{"a-1"}) {
			t.Fatalf("request A started %v while its first delivery was held", j.started[a])
		}
	})
	close(release)
	poll.Until(t, 20*time.Second, "every delivery handled and acknowledged", func() bool {
		var n int
		j.read(func(j *journal) { n = len(j.finished[a]) })
		ack, pend := consumerPending(t, h.js, topology.EventsStream)
		return n == 3 && ack == 0 && pend == 0
	})
	j.read(func(j *journal) {
		if len(j.overlap) > 0 {
			t.Fatalf("deliveries %v started while another of their request ran", j.overlap)
		}
		for key, want := range map[string][]string{a: {"a-1", "a-2", "a-3"}, b: {"b-1", "b-2", "b-3"}} {
			if !slices.Equal(j.started[key], want) || !slices.Equal(j.finished[key], want) {
				t.Fatalf("request %s started %v and finished %v, want %v", key, j.started[key], j.finished[key], want)
			}
		}
	})
}

// TestKeyedRetriesAndDeadLettersPerMessage: a failing delivery is retried with its backoff and
// dead-lettered on its own; its request's other deliveries and other requests are handled meanwhile.
func TestKeyedRetriesAndDeadLettersPerMessage(t *testing.T) {
	a, b := events.NewID(), events.NewID()
	spec := Spec{Stream: topology.EventsStream, Durable: "test", FilterSubjects: []string{events.AllSubjects},
		MaxDeliveries: 3, Backoff: func(int) time.Duration { return 10 * time.Millisecond }}
	var mu sync.Mutex
	calls := map[string]int{}
	j := newJournal()
	h := startOn(t, spec, requests(2, map[string]string{"a": a, "b": b}), func(ctx context.Context, msg jetstream.Msg) error {
		defer j.start(msg)()
		data := string(msg.Data())
		mu.Lock()
		calls[data]++
		n := calls[data]
		mu.Unlock()
		switch {
		case data == "a-1":
			return errors.New("always fails")
		case data == "a-2" && n == 1:
			return errors.New("fails once")
		}
		return nil
	})
	poll.Until(t, 20*time.Second, "a-1 dead-lettered and the rest handled", func() bool {
		ack, pend := consumerPending(t, h.js, topology.EventsStream)
		return len(h.dlq(t)) == 1 && ack == 0 && pend == 0
	})
	dl := h.dlq(t)[0]
	if string(dl.Data) != "a-1" || dl.Header.Get(HeaderReason) != "failed 3 deliveries, last: always fails" {
		t.Fatalf("dead letter %q with reason %q", dl.Data, dl.Header.Get(HeaderReason))
	}
	mu.Lock()
	defer mu.Unlock()
	if want := map[string]int{"a-1": 3, "a-2": 2, "b-1": 1, "b-2": 1}; !maps.Equal(calls, want) {
		t.Fatalf("handler calls %v, want %v", calls, want)
	}
	j.read(func(j *journal) {
		if len(j.overlap) > 0 {
			t.Fatalf("deliveries %v started while another of their request ran", j.overlap)
		}
	})
}

// TestShutdownHandsBackWhatWaits: stopping starts nothing that waits; a handler still running when the
// grace period ends is interrupted; both deliveries go back to the server, and the next start handles
// each once (in the order the server redelivers them).
func TestShutdownHandsBackWhatWaits(t *testing.T) {
	a := events.NewID()
	spec := Spec{Stream: topology.EventsStream, Durable: "test", FilterSubjects: []string{events.AllSubjects}, ShutdownGrace: 200 * time.Millisecond}
	j := newJournal()
	h := startOn(t, spec, requests(2, map[string]string{"a": a}), func(ctx context.Context, msg jetstream.Msg) error {
		defer j.start(msg)()
		if string(msg.Data()) == "a-1" {
			<-ctx.Done() // still working when the grace period ends
			return ctx.Err()
		}
		return nil
	})
	poll.Until(t, 20*time.Second, "a-1 running and a-2 fetched behind it", func() bool {
		ack, _ := consumerPending(t, h.js, topology.EventsStream)
		var started []string
		j.read(func(j *journal) { started = slices.Clone(j.started[a]) })
		return ack == 2 && slices.Equal(started, []string{"a-1"})
	})
	h.stop(t)
	j.read(func(j *journal) {
		if !slices.Equal(j.started[a], []string{"a-1"}) {
			t.Fatalf("by shutdown, request A started %v; want a-1 only", j.started[a])
		}
		j.started, j.finished = map[string][]string{}, map[string][]string{}
	})

	h.run(t, func(ctx context.Context, msg jetstream.Msg) error { defer j.start(msg)(); return nil })
	poll.Until(t, 20*time.Second, "both handled by the next start", func() bool {
		ack, pend := consumerPending(t, h.js, topology.EventsStream)
		var finished []string
		j.read(func(j *journal) { finished = slices.Clone(j.finished[a]) })
		return ack == 0 && pend == 0 && len(finished) == 2
	})
	j.read(func(j *journal) {
		if got := slices.Sorted(slices.Values(j.finished[a])); !slices.Equal(got, []string{"a-1", "a-2"}) {
			t.Fatalf("the next start handled %v, want a-1 and a-2 once each", j.finished[a])
		}
	})
}

// fakeMsg is a delivery of stream sequence seq on subject, recording how it was settled.
type fakeMsg struct {
	jetstream.Msg
	subject   string
	seq       uint64
	delivered uint64
	settled   *[]string
}

func (m *fakeMsg) Subject() string { return m.subject }
func (m *fakeMsg) Data() []byte    { return []byte(fmt.Sprintf("%d#%d", m.seq, m.delivered)) }
func (m *fakeMsg) Metadata() (*jetstream.MsgMetadata, error) {
	return &jetstream.MsgMetadata{Sequence: jetstream.SequencePair{Stream: m.seq}, NumDelivered: m.delivered}, nil
}
func (m *fakeMsg) Ack() error { *m.settled = append(*m.settled, "ack "+string(m.Data())); return nil }

// TestRedeliveriesWaitingInLine: a redelivery of a message still waiting takes its place; one of the
// message being handled (it ran past the ack wait) is acknowledged with it, not handled again.
func TestRedeliveriesWaitingInLine(t *testing.T) {
	subject := events.NATSSubject(events.NewID(), events.TypeReviewed)
	var mu sync.Mutex
	var handled, settled []string
	running := make(chan struct{})
	release := make(chan struct{})
	k := newKeyed(4, func(msg jetstream.Msg) Action {
		if string(msg.Data()) == "1#1" {
			close(running)
			<-release
		}
		mu.Lock()
		defer mu.Unlock()
		handled = append(handled, string(msg.Data()))
		return Ack
	}, func(jetstream.Msg) { t.Error("nothing is handed back before stopping") })
	msg := func(seq, delivered uint64) jetstream.Msg {
		return &fakeMsg{subject: subject, seq: seq, delivered: delivered, settled: &settled}
	}
	k.dispatch(msg(1, 1))
	<-running
	k.dispatch(msg(2, 1))
	k.dispatch(msg(1, 2)) // 1 ran past the ack wait
	k.dispatch(msg(2, 2)) // so did 2, waiting behind it
	mu.Lock()
	settledEarly := slices.Clone(settled)
	mu.Unlock()
	close(release)
	k.wait()
	if len(settledEarly) != 0 {
		t.Fatalf("settled %v before the first delivery finished", settledEarly)
	}
	if want := []string{"1#1", "2#2"}; !slices.Equal(handled, want) {
		t.Fatalf("handled %v, want %v", handled, want)
	}
	if want := []string{"ack 1#2"}; !slices.Equal(settled, want) {
		t.Fatalf("settled %v beside the handled deliveries, want %v", settled, want)
	}
}
