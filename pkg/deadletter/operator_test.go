package deadletter_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/consumer"
	"github.com/grantline/grantline/pkg/deadletter"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/natstest"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/pkg/topology"
)

// world is a consumer "test" on the intake stream whose handler fails until fixed, with one message.
type world struct {
	js       jetstream.JetStream
	fixed    atomic.Bool
	mu       sync.Mutex
	handled  []uint64 // the stream sequence of each successful handling
	attempts atomic.Int32
}

const durable = "test"

func newWorld(t *testing.T) *world {
	t.Helper()
	ns := natstest.RunServer(t)
	_, js := natstest.Connect(t, ns.ClientURL())
	ctx := context.Background()
	if err := eventstore.Provision(ctx, js, eventstore.DefaultSettings); err != nil {
		t.Fatal(err)
	}
	w := &world{js: js}
	if _, err := js.Publish(ctx, "grantline.intake.test.0", []byte("msg-0")); err != nil {
		t.Fatal(err)
	}
	spec := consumer.Spec{Stream: topology.IntakeStream, Durable: durable, FilterSubjects: []string{"grantline.intake.test.>"},
		MaxDeliveries: 2, Backoff: func(int) time.Duration { return 10 * time.Millisecond }}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- consumer.Run(runCtx, js, spec, func(_ context.Context, msg jetstream.Msg) error {
			w.attempts.Add(1)
			if !w.fixed.Load() || string(msg.Data()) != "msg-0" || msg.Subject() != "grantline.intake.test.0" {
				return errors.New("target down")
			}
			meta, err := msg.Metadata()
			if err != nil {
				return err
			}
			w.mu.Lock()
			w.handled = append(w.handled, meta.Sequence.Stream)
			w.mu.Unlock()
			return nil
		}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return w
}

func (w *world) letters(t *testing.T) []deadletter.Letter {
	t.Helper()
	l, err := deadletter.List(context.Background(), w.js)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func (w *world) handledSeqs() []uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]uint64(nil), w.handled...)
}

// replaysSettled reports whether the replay consumer has nothing left to deliver or awaiting an answer.
func (w *world) replaysSettled(t *testing.T) bool {
	c, err := w.js.Consumer(context.Background(), topology.DLQStream, topology.ReplayConsumer(durable).Durable)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	return err == nil && info.NumAckPending == 0 && info.NumPending == 0
}

// TestReplayHandsTheOriginalToItsConsumerOnce: a message whose handler failed until its target came
// back is listed with why and where from; once the target is fixed, a replay gives the consumer the
// original from its stream, handled once, without a new message in that stream; a second replay is
// refused and changes nothing.
func TestReplayHandsTheOriginalToItsConsumerOnce(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	poll.Until(t, 20*time.Second, "the failing message dead-lettered", func() bool { return len(w.letters(t)) == 1 })

	l := w.letters(t)[0]
	if l.Consumer != durable || l.Stream != topology.IntakeStream || l.StreamSeq != 1 || l.Subject != "grantline.intake.test.0" ||
		l.Deliveries != 2 || l.Reason != "failed 2 deliveries, last: target down" || string(l.Data) != "msg-0" || l.Replayed != nil {
		t.Fatalf("dead letter %+v", l)
	}
	got, err := deadletter.Get(ctx, w.js, l.Seq)
	if err != nil || got.Reason != l.Reason || got.StreamSeq != 1 {
		t.Fatalf("get: %+v, %v", got, err)
	}

	w.fixed.Store(true)
	if _, err := deadletter.Replay(ctx, w.js, l.Seq, "dave", "target is back"); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 20*time.Second, "the replay handled", func() bool { return len(w.handledSeqs()) == 1 && w.replaysSettled(t) })
	if seqs := w.handledSeqs(); seqs[0] != 1 {
		t.Fatalf("the replay was handled as stream sequence %d, want the original's 1", seqs[0])
	}

	if _, err := deadletter.Replay(ctx, w.js, l.Seq, "erin", "again"); !errors.Is(err, deadletter.ErrAlreadyReplayed) {
		t.Fatalf("a second replay: %v, want ErrAlreadyReplayed", err)
	}
	listed := w.letters(t)
	if len(listed) != 1 || listed[0].Replayed == nil || listed[0].Replayed.Actor != "dave" || listed[0].Replayed.Note != "target is back" {
		t.Fatalf("after the replay the list shows %+v", listed)
	}
	// A replay request the runner would still act on would show here; none is left, and the handler
	// ran once more in all.
	if !w.replaysSettled(t) || len(w.handledSeqs()) != 1 {
		t.Fatalf("the second replay had an effect: handled %v", w.handledSeqs())
	}
	st, err := w.js.Stream(ctx, topology.IntakeStream)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := st.Info(ctx); err != nil || info.State.Msgs != 1 {
		t.Fatalf("the replay published into the original's stream: %+v, %v", info.State, err)
	}
}

// TestReplayThatFailsAgainIsSetAsideAnew: a replay whose handler still fails is retried like any
// delivery and then set aside as a new dead letter naming the one replayed; discarding both leaves
// records of who and why, and nothing to list.
func TestReplayThatFailsAgainIsSetAsideAnew(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	poll.Until(t, 20*time.Second, "the failing message dead-lettered", func() bool { return len(w.letters(t)) == 1 })
	first := w.letters(t)[0]
	if _, err := deadletter.Replay(ctx, w.js, first.Seq, "dave", "try once more"); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 20*time.Second, "the failed replay set aside", func() bool { return len(w.letters(t)) == 2 })
	again := w.letters(t)[1]
	if again.ReplayOf != first.Seq || again.StreamSeq != first.StreamSeq || again.Deliveries != 2 {
		t.Fatalf("the second dead letter %+v, want a replay of %d", again, first.Seq)
	}
	if n := w.attempts.Load(); n != 4 {
		t.Fatalf("%d attempts, want 2 deliveries and 2 of the replay", n)
	}

	for _, l := range []deadletter.Letter{first, again} {
		if _, err := deadletter.Discard(ctx, w.js, l.Seq, "dave", "target retired"); err != nil {
			t.Fatal(err)
		}
		if _, err := deadletter.Get(ctx, w.js, l.Seq); !errors.Is(err, deadletter.ErrNotFound) {
			t.Fatalf("dead letter %d after its discard: %v", l.Seq, err)
		}
	}
	if left := w.letters(t); len(left) != 0 {
		t.Fatalf("discarded dead letters still listed: %+v", left)
	}
	st, err := w.js.Stream(ctx, topology.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := st.GetLastMsgForSubject(ctx, topology.DeadLetterDiscard(durable, strconv.FormatUint(first.Seq, 10)))
	if err != nil || rec.Header.Get(consumer.HeaderActor) != "dave" || rec.Header.Get(consumer.HeaderNote) != "target retired" ||
		rec.Header.Get(consumer.HeaderReason) != first.Reason {
		t.Fatalf("discard record %+v, %v", rec, err)
	}
	if _, err := deadletter.Replay(ctx, w.js, first.Seq, "dave", "too late"); !errors.Is(err, deadletter.ErrNotFound) {
		t.Fatalf("replay of a discarded dead letter: %v", err)
	}
	if _, err := deadletter.Discard(ctx, w.js, first.Seq, "dave", ""); err == nil {
		t.Fatal("a discard without a reason was accepted")
	}
}
