package consumer

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/natstest"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/pkg/topology"
)

// deliveries records each handler run: the message and which delivery of it the run had.
type deliveries struct {
	mu   sync.Mutex
	runs map[string][]uint64
}

func (d *deliveries) record(msgs ...jetstream.Msg) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.runs == nil {
		d.runs = map[string][]uint64{}
	}
	for _, msg := range msgs {
		meta, _ := msg.Metadata()
		d.runs[string(msg.Data())] = append(d.runs[string(msg.Data())], meta.NumDelivered)
	}
}

func (d *deliveries) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.runs)
}

// once fails the test unless each of want ran exactly once, on its first delivery.
func (d *deliveries) once(t *testing.T, want []string) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, m := range want {
		if !slices.Equal(d.runs[m], []uint64{1}) {
			t.Errorf("%s ran on deliveries %v, want once on the first", m, d.runs[m])
		}
	}
	if len(d.runs) != len(want) {
		t.Errorf("%d messages ran, want %d: %v", len(d.runs), len(want), d.runs)
	}
}

// slowWork is what the slow handlers of these tests take: many times their ack wait.
const (
	shortAckWait = 300 * time.Millisecond
	slowWork     = 6 * shortAckWait
)

// TestHeldDeliveriesOutliveAShortAckWait: with an ack wait far shorter than one handler's work, the
// server delivers nothing twice, neither the message being worked on, nor its request's next one
// waiting in line behind it, nor the other requests' waiting for the one slot.
func TestHeldDeliveriesOutliveAShortAckWait(t *testing.T) {
	a, b, c := events.NewID(), events.NewID(), events.NewID()
	spec := Spec{Stream: topology.EventsStream, Durable: "test", FilterSubjects: []string{events.AllSubjects}, AckWait: shortAckWait, Concurrency: 1}
	var d deliveries
	msgs := requests(3, map[string]string{"a": a, "b": b, "c": c})
	h := startOn(t, spec, msgs, func(ctx context.Context, msg jetstream.Msg) error {
		d.record(msg)
		if string(msg.Data())[2] == '1' { // each request's first: slow work
			select {
			case <-time.After(slowWork):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	poll.Until(t, 30*time.Second, "all 9 handled and acknowledged", func() bool {
		ack, pend := consumerPending(t, h.js, topology.EventsStream)
		return d.count() == 9 && ack == 0 && pend == 0
	})
	var want []string
	for _, m := range msgs {
		want = append(want, m.data)
	}
	d.once(t, want)
}

// TestBatchWaitingOutlivesAShortAckWait: what waits behind a slow batch is not delivered again either.
func TestBatchWaitingOutlivesAShortAckWait(t *testing.T) {
	var d deliveries
	var first sync.Once
	h := startBatch(t, Spec{BatchSize: 4, AckWait: shortAckWait}, 12, func(ctx context.Context, msgs []jetstream.Msg) error {
		d.record(msgs...)
		slow := false
		first.Do(func() { slow = true })
		if slow {
			select {
			case <-time.After(slowWork):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	poll.Until(t, 30*time.Second, "all 12 applied and acknowledged", func() bool {
		ack, pend := pending(t, h.js)
		return d.count() == 12 && ack == 0 && pend == 0
	})
	d.once(t, numbered(12))
}

// TestDeliveriesOfADeadConnectionComeBackWithinSeconds: what a replica held when its connection died
// (a SIGKILL, a network partition) is delivered to the other replica after the default ack wait,
// not the handlers' timeout, and handled there once.
func TestDeliveriesOfADeadConnectionComeBackWithinSeconds(t *testing.T) {
	const n = 8
	h := provisionIntake(t, Spec{}, n)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	// Replica one takes every message and never answers; its connection then dies.
	doomedNC, doomedJS := natstest.Connect(t, h.url)
	var held deliveries
	doomedCtx, stopDoomed := context.WithCancel(context.Background())
	doomedDone := make(chan error, 1)
	doomed := h.spec
	doomed.ShutdownGrace = 100 * time.Millisecond
	go func() {
		doomedDone <- Run(doomedCtx, doomedJS, doomed, func(ctx context.Context, msg jetstream.Msg) error {
			held.record(msg)
			<-ctx.Done()
			return ctx.Err()
		}, log)
	}()
	t.Cleanup(func() { stopDoomed(); <-doomedDone })
	poll.Until(t, 20*time.Second, "replica one to hold every message", func() bool { return held.count() == n })

	var handled deliveries
	h.run(t, func(ctx context.Context, msg jetstream.Msg) error { handled.record(msg); return nil })

	killed := time.Now()
	doomedNC.Close()
	poll.Until(t, DefaultHandleTimeout/2, "replica two to handle what replica one held", func() bool {
		ack, pend := pending(t, h.js)
		return handled.count() == n && ack == 0 && pend == 0
	})
	t.Logf("what the dead connection held was handled %s after it died (ack wait %s)", time.Since(killed).Round(time.Millisecond), DefaultAckWait)
	handled.mu.Lock()
	defer handled.mu.Unlock()
	for i := range n {
		if m := fmt.Sprintf("msg-%d", i); !slices.Equal(handled.runs[m], []uint64{2}) {
			t.Errorf("%s ran on deliveries %v on replica two, want once on the second", m, handled.runs[m])
		}
	}
}
