package consumer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/poll"
)

// ledger is what a batch handler applied: each batch it committed, in order. A batch that failed
// applied nothing, as a rolled-back transaction.
type ledger struct {
	mu      sync.Mutex
	batches [][]string
}

func (l *ledger) commit(msgs []jetstream.Msg) {
	var batch []string
	for _, m := range msgs {
		batch = append(batch, string(m.Data()))
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.batches = append(l.batches, batch)
}

// applied is every delivery applied, in the order applied.
func (l *ledger) applied() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Concat(l.batches...)
}

func (l *ledger) largest() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, b := range l.batches {
		n = max(n, len(b))
	}
	return n
}

func numbered(n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("msg-%d", i))
	}
	return out
}

func without(s []string, drop string) []string {
	return slices.DeleteFunc(slices.Clone(s), func(x string) bool { return x == drop })
}

// startBatch is start for a BatchHandler.
func startBatch(t *testing.T, spec Spec, n int, h BatchHandler) *harness {
	t.Helper()
	hs := provisionIntake(t, spec, n)
	hs.runBatch(t, h)
	return hs
}

// TestBatchesApplyEverythingOnceInOrder: every delivery is applied once, in stream order, in batches
// of more than one and at most BatchSize.
func TestBatchesApplyEverythingOnceInOrder(t *testing.T) {
	var l ledger
	h := startBatch(t, Spec{BatchSize: 16}, 200, func(ctx context.Context, msgs []jetstream.Msg) error {
		l.commit(msgs)
		return nil
	})
	poll.Until(t, 20*time.Second, "all 200 applied and acknowledged", func() bool {
		a, p := pending(t, h.js)
		return len(l.applied()) == 200 && a == 0 && p == 0
	})
	if got := l.applied(); !slices.Equal(got, numbered(200)) {
		t.Fatalf("applied %v", got)
	}
	if n := l.largest(); n < 2 || n > 16 {
		t.Fatalf("largest batch %d, want 2 to 16", n)
	}
}

// TestPoisonInABatchIsSetAsideAlone: a batch holding a delivery that can never be handled fails; its
// deliveries are handled again one at a time, the poison one is dead-lettered with its own reason,
// and every other one is applied once, in order.
func TestPoisonInABatchIsSetAsideAlone(t *testing.T) {
	var l ledger
	var batchFailures sync.Map
	h := startBatch(t, Spec{}, 40, func(ctx context.Context, msgs []jetstream.Msg) error {
		for _, m := range msgs {
			if string(m.Data()) == "msg-17" {
				batchFailures.Store(len(msgs), true)
				return Permanent(errors.New("forged signature"))
			}
		}
		l.commit(msgs)
		return nil
	})
	poll.Until(t, 20*time.Second, "msg-17 dead-lettered and the rest applied", func() bool {
		a, p := pending(t, h.js)
		return len(h.dlq(t)) == 1 && len(l.applied()) == 39 && a == 0 && p == 0
	})
	if got := l.applied(); !slices.Equal(got, without(numbered(40), "msg-17")) {
		t.Fatalf("applied %v", got)
	}
	dl := h.dlq(t)[0]
	if string(dl.Data) != "msg-17" || dl.Header.Get(HeaderReason) != "permanent: forged signature" {
		t.Fatalf("dead letter %q with reason %q", dl.Data, dl.Header.Get(HeaderReason))
	}
	if _, alone := batchFailures.Load(1); !alone {
		t.Fatal("msg-17 was never handled alone")
	}
}

// TestFailedDeliveryInABatchIsRetriedWithItsBackoff: a delivery that fails once fails its batch; the
// others are applied one at a time, and it is retried after its backoff, alone, and applied.
func TestFailedDeliveryInABatchIsRetriedWithItsBackoff(t *testing.T) {
	var l ledger
	var mu sync.Mutex
	var retried []int
	h := startBatch(t, Spec{Backoff: func(delivered int) time.Duration {
		mu.Lock()
		retried = append(retried, delivered)
		mu.Unlock()
		return 10 * time.Millisecond
	}}, 40, func(ctx context.Context, msgs []jetstream.Msg) error {
		for _, m := range msgs {
			meta, _ := m.Metadata()
			if string(m.Data()) == "msg-5" && meta.NumDelivered == 1 {
				return errors.New("database busy")
			}
		}
		l.commit(msgs)
		return nil
	})
	poll.Until(t, 20*time.Second, "all 40 applied and acknowledged", func() bool {
		a, p := pending(t, h.js)
		return len(l.applied()) == 40 && a == 0 && p == 0
	})
	got := l.applied()
	if !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(numbered(40)))) {
		t.Fatalf("applied %v", got)
	}
	// Only msg-5 waited for its redelivery: the others kept their order around it.
	if !slices.Equal(without(got, "msg-5"), without(numbered(40), "msg-5")) {
		t.Fatalf("applied %v", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(retried, []int{1}) {
		t.Fatalf("backoff asked for deliveries %v, want msg-5's first only", retried)
	}
	if n := len(h.dlq(t)); n != 0 {
		t.Fatalf("%d dead letters", n)
	}
}

// TestBatchCutShortIsHandedBack: a batch still running when the grace period ends is not
// acknowledged: each of its deliveries goes back to the server and reaches the next run.
func TestBatchCutShortIsHandedBack(t *testing.T) {
	var mu sync.Mutex
	var first []string
	cut := make(chan struct{})
	h := startBatch(t, Spec{ShutdownGrace: 100 * time.Millisecond}, 30, func(ctx context.Context, msgs []jetstream.Msg) error {
		mu.Lock()
		if first == nil {
			for _, m := range msgs {
				first = append(first, string(m.Data()))
			}
			close(cut)
		}
		mu.Unlock()
		<-ctx.Done() // still working when the grace period ends
		return ctx.Err()
	})
	<-cut
	h.stop(t)

	var l ledger
	redelivered := map[string]bool{}
	h.runBatch(t, func(ctx context.Context, msgs []jetstream.Msg) error {
		for _, m := range msgs {
			if meta, _ := m.Metadata(); meta.NumDelivered > 1 {
				mu.Lock()
				redelivered[string(m.Data())] = true
				mu.Unlock()
			}
		}
		l.commit(msgs)
		return nil
	})
	poll.Until(t, 20*time.Second, "all 30 applied and acknowledged", func() bool {
		a, p := pending(t, h.js)
		return len(l.applied()) == 30 && a == 0 && p == 0
	})
	mu.Lock()
	defer mu.Unlock()
	for _, m := range first {
		if !redelivered[m] {
			t.Fatalf("%s of the batch cut short was not redelivered (first batch %v)", m, first)
		}
	}
	if n := len(h.dlq(t)); n != 0 {
		t.Fatalf("%d dead letters", n)
	}
}
