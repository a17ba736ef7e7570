package eventstore

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/grantline/grantline/pkg/events"
)

// TestLocksAreAppendedAndLoaded: the revoker places a lock and removes it through UpdateLock; a load
// verifies and folds both; the lock refuses what its rules refuse (the locked person removing it)
// before anything reaches the stream; of two concurrent removals exactly one is appended; and a lock
// signed by another service's key does not load.
func TestLocksAreAppendedAndLoaded(t *testing.T) {
	w, _ := singleNode(t)
	ctx := context.Background()
	st := w.stores[events.Revoker]
	id := events.NewID()
	sam := events.Principal{ID: "sam", Groups: []string{"security"}}
	placed, err := st.UpdateLock(ctx, id, func(l *events.Lock) ([]events.Draft, error) {
		return []events.Draft{{Actor: sam.ID, Payload: events.LockPlaced{
			Scope: events.LockScope{Kind: events.LockUser, ID: "mallory"}, Reason: "laptop stolen", PlacedBy: sam}}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if placed.Lock.Status() != events.LockStatusPlaced || placed.LastSeq() == 0 {
		t.Fatalf("placed: %s at %d", placed.Lock.Status(), placed.LastSeq())
	}

	_, err = st.UpdateLock(ctx, id, func(*events.Lock) ([]events.Draft, error) {
		return []events.Draft{{Actor: "mallory", Payload: events.LockRemoved{RemovedBy: events.Principal{ID: "mallory"}}}}, nil
	})
	if !errors.Is(err, events.ErrRefused) {
		t.Fatalf("the locked person removing the lock: %v, want refused", err)
	}

	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, who := range []string{"sam", "rita"} {
		wg.Go(func() {
			_, errs[i] = st.UpdateLock(ctx, id, func(l *events.Lock) ([]events.Draft, error) {
				if l.Status() != events.LockStatusPlaced {
					return nil, errors.New("already removed")
				}
				return []events.Draft{{Actor: who, Payload: events.LockRemoved{RemovedBy: events.Principal{ID: who}}}}, nil
			})
		})
	}
	wg.Wait()
	if (errs[0] == nil) == (errs[1] == nil) {
		t.Fatalf("two removals: %v and %v, want exactly one", errs[0], errs[1])
	}

	loaded, err := w.stores[events.Policy].LoadLock(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Lock.Status() != events.LockStatusRemoved || len(loaded.Events()) != 2 || loaded.Lock.Placed().Reason != "laptop stolen" {
		t.Fatalf("loaded: %s with %d events", loaded.Lock.Status(), len(loaded.Events()))
	}
	// The broker keeps other services from appending a lock; should one be stored anyway, it does not load.
	forged := events.NewID()
	if _, err := w.stores[events.Policy].UpdateLock(ctx, forged, func(*events.Lock) ([]events.Draft, error) {
		return []events.Draft{{Actor: sam.ID, Payload: events.LockPlaced{Scope: events.LockScope{Kind: events.LockUser, ID: "x"}, Reason: "r", PlacedBy: sam}}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	var violation *events.Violation
	if _, err := st.LoadLock(ctx, forged); !errors.As(err, &violation) || violation.Kind != events.ViolationTypeNotAllowed {
		t.Fatalf("a lock signed by policy's key loads: %v", err)
	}
}

// TestALockIsNoRequest: a lock's ID loaded as a request's is no request (ErrNotARequest), not a
// refused history, so a request route answers it as it answers an unknown ID.
func TestALockIsNoRequest(t *testing.T) {
	w, _ := singleNode(t)
	ctx := context.Background()
	id := events.NewID()
	sam := events.Principal{ID: "sam", Groups: []string{"security"}}
	if _, err := w.stores[events.Revoker].UpdateLock(ctx, id, func(*events.Lock) ([]events.Draft, error) {
		return []events.Draft{{Actor: sam.ID, Payload: events.LockPlaced{Scope: events.LockScope{Kind: events.LockUser, ID: "x"}, Reason: "r", PlacedBy: sam}}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.stores[events.Intake].Load(ctx, id); !errors.Is(err, ErrNotARequest) {
		t.Fatalf("loading a lock as a request: %v, want ErrNotARequest", err)
	}
}
