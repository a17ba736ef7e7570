package policyd

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/grantline/grantline/pkg/events"
)

// TestLocksDenyNewRequests: security locks alice, then the analytics-read entitlement; policy denies the
// requests each lock covers from the moment it is stored, naming it, and records it in the input; a
// request no lock covers is decided as before, and a removed lock denies nothing more.
func TestLocksDenyNewRequests(t *testing.T) {
	w := newWorld(t)
	w.serve(t, loadEngine(t, demoBundle), nil)
	ctx := context.Background()
	place := func(scope events.LockScope) string { return w.placeLock(t, scope) }
	denied := func(id, lock string) {
		t.Helper()
		pd := w.decision(t, id)
		if pd.Outcome != events.OutcomeDeny || !strings.Contains(strings.Join(pd.Reasons, "\n"), "locked by "+lock) ||
			!strings.Contains(string(pd.Input), lock) {
			t.Fatalf("decision %s %v, want a deny naming lock %s", pd.Outcome, pd.Reasons, lock)
		}
	}

	if pd := w.decision(t, w.submit(t, ask{who: "alice", entitlement: "analytics-read", minutes: 60})); pd.Outcome != events.OutcomeAutoApproved {
		t.Fatalf("before any lock: %s %v", pd.Outcome, pd.Reasons)
	}
	onAlice := place(events.LockScope{Kind: events.LockUser, ID: "alice"})
	denied(w.submit(t, ask{who: "alice", entitlement: "analytics-read", minutes: 60}), onAlice)
	denied(w.submit(t, ask{who: "alice", entitlement: "payments-admin", minutes: 30, emergency: true}), onAlice)
	if pd := w.decision(t, w.submit(t, ask{who: "frank", entitlement: "analytics-read", minutes: 60})); pd.Outcome != events.OutcomeAutoApproved {
		t.Fatalf("frank, whom no lock covers: %s %v", pd.Outcome, pd.Reasons)
	}
	onAnalytics := place(events.LockScope{Kind: events.LockEntitlement, ID: "analytics-read"})
	denied(w.submit(t, ask{who: "frank", entitlement: "analytics-read", minutes: 60}), onAnalytics)

	if _, err := w.stores[events.Revoker].UpdateLock(ctx, onAnalytics, func(*events.Lock) ([]events.Draft, error) {
		return []events.Draft{{Actor: "sam", Payload: events.LockRemoved{RemovedBy: events.Principal{ID: "sam"}}}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if pd := w.decision(t, w.submit(t, ask{who: "frank", entitlement: "analytics-read", minutes: 60})); pd.Outcome != events.OutcomeAutoApproved {
		t.Fatalf("after the entitlement's lock was removed: %s %v", pd.Outcome, pd.Reasons)
	}
}

// placeLock places a lock on scope as security's carol does, through the revoker's store, and returns
// its ID once its event is stored.
func (w *world) placeLock(t testing.TB, scope events.LockScope) string {
	t.Helper()
	carol := events.Principal{ID: "carol", Groups: []string{"security"}}
	id := events.NewID()
	if _, err := w.stores[events.Revoker].UpdateLock(context.Background(), id, func(*events.Lock) ([]events.Draft, error) {
		return []events.Draft{{Actor: carol.ID, Payload: events.LockPlaced{Scope: scope, Reason: "INC-9", PlacedBy: carol}}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	return id
}

// runLockIndex starts a lock index of the policy service on the world, as Serve does, and returns it
// with its stop, which the test's end calls too.
func (w *world) runLockIndex(t testing.TB) (*lockIndex, func()) {
	t.Helper()
	x := newLockIndex(w.js, w.stores[events.Policy], slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- x.run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("lock index: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return x, stop
}

// TestLockIndexKnowsEveryStoredLock: each lock placed is in the very next answer of the index, without
// waiting for the index to hear of it; a lock placed while the policy service was down is in the first
// answer of the index that follows, and so are those before it.
func TestLockIndexKnowsEveryStoredLock(t *testing.T) {
	knowsEveryStoredLock(t, newWorld(t))
}

// TestLockIndexKnowsEveryStoredLockInACluster: the same on three nodes, where the index's consumer may
// live on a replica behind the stream leader that stored the lock.
func TestLockIndexKnowsEveryStoredLockInACluster(t *testing.T) {
	knowsEveryStoredLock(t, newClusterWorld(t))
}

func knowsEveryStoredLock(t *testing.T, w *world) {
	ctx := context.Background()
	has := func(x *lockIndex, ids ...string) {
		t.Helper()
		locks, err := x.current(ctx)
		if err != nil {
			t.Fatal(err)
		}
		known := map[string]bool{}
		for _, l := range locks {
			if l.Status() == events.LockStatusPlaced {
				known[l.ID()] = true
			}
		}
		for _, id := range ids {
			if !known[id] {
				t.Fatalf("lock %s, just placed, is not in the index's %d locks", id, len(locks))
			}
		}
	}

	x, stop := w.runLockIndex(t)
	var placed []string
	for i := range 20 {
		placed = append(placed, w.placeLock(t, events.LockScope{Kind: events.LockUser, ID: fmt.Sprintf("user-%d", i)}))
		has(x, placed[len(placed)-1])
	}
	stop()

	placed = append(placed, w.placeLock(t, events.LockScope{Kind: events.LockEntitlement, ID: "analytics-read"}))
	restarted, _ := w.runLockIndex(t)
	has(restarted, placed...)
}

// TestLockPlacedWhilePolicyWasDownDenies: a lock placed while the policy service is down denies the
// first request decided after it comes back.
func TestLockPlacedWhilePolicyWasDownDenies(t *testing.T) {
	w := newWorld(t)
	deps := Deps{JS: w.js, Store: w.stores[events.Policy], Catalogue: w.cat, Engine: loadEngine(t, demoBundle)}
	serve := func() func() {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- Serve(ctx, deps, slog.New(slog.DiscardHandler)) }()
		var once sync.Once
		stop := func() {
			once.Do(func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("serve: %v", err)
				}
			})
		}
		t.Cleanup(stop)
		return stop
	}

	stop := serve()
	if pd := w.decision(t, w.submit(t, ask{who: "alice", entitlement: "analytics-read", minutes: 60})); pd.Outcome != events.OutcomeAutoApproved {
		t.Fatalf("before any lock: %s %v", pd.Outcome, pd.Reasons)
	}
	stop()
	lock := w.placeLock(t, events.LockScope{Kind: events.LockUser, ID: "alice"})
	serve()
	pd := w.decision(t, w.submit(t, ask{who: "alice", entitlement: "analytics-read", minutes: 60}))
	if pd.Outcome != events.OutcomeDeny || !strings.Contains(strings.Join(pd.Reasons, "\n"), "locked by "+lock) {
		t.Fatalf("decision %s %v, want a deny naming lock %s", pd.Outcome, pd.Reasons, lock)
	}
}

// TestFenceSharesReads: while a read of the leader is under way, 64 decisions ask; they all share the
// one read made after it, and each is answered by a read that began after it asked.
func TestFenceSharesReads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var reads atomic.Uint64
		release := make(chan struct{})
		f := fence{read: func(context.Context) (uint64, error) {
			n := reads.Add(1)
			if n == 1 {
				<-release
			}
			return n, nil
		}}
		ctx := context.Background()
		first := make(chan uint64, 1)
		go func() {
			seq, _ := f.last(ctx)
			first <- seq
		}()
		synctest.Wait() // the first read is under way

		var wg sync.WaitGroup
		answers := make([]uint64, 64)
		for i := range answers {
			wg.Go(func() { answers[i], _ = f.last(ctx) })
		}
		synctest.Wait() // every decision waits
		close(release)
		wg.Wait()
		if got := <-first; got != 1 {
			t.Errorf("the first asker got read %d, want 1", got)
		}
		for i, a := range answers {
			if a != 2 {
				t.Errorf("decision %d got read %d, want 2 (begun after it asked, shared)", i, a)
			}
		}
		if n := reads.Load(); n != 2 {
			t.Errorf("%d reads, want 2", n)
		}
	})
}

// BenchmarkLockFence times what a decision pays to know the locks, current(), on streams holding 1k
// and 50k requests' subjects (one event each, and one lock), beside the two wildcard reads of the
// leader it replaced (LastLockEvent): the fence's cost must not grow with the requests stored.
func BenchmarkLockFence(b *testing.B) {
	for _, requests := range []int{1_000, 50_000} {
		w := newWorld(b)
		ctx := context.Background()
		w.placeLock(b, events.LockScope{Kind: events.LockUser, ID: "alice"})
		for i := range requests {
			if _, err := w.js.PublishAsync(events.NATSSubject(events.NewID(), events.TypeSubmitted), []byte("{}")); err != nil {
				b.Fatal(err)
			}
			if i%1000 == 999 {
				<-w.js.PublishAsyncComplete()
			}
		}
		<-w.js.PublishAsyncComplete()
		x, _ := w.runLockIndex(b)
		b.Run(fmt.Sprintf("requests=%d/current", requests), func(b *testing.B) {
			for b.Loop() {
				if locks, err := x.current(ctx); err != nil || len(locks) != 1 {
					b.Fatalf("%d locks, %v", len(locks), err)
				}
			}
		})
		b.Run(fmt.Sprintf("requests=%d/LastLockEvent", requests), func(b *testing.B) {
			for b.Loop() {
				if _, err := w.stores[events.Policy].LastLockEvent(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
