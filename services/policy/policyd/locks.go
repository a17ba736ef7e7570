package policyd

import (
	"context"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/streamscan"
)

// lockIndex keeps every lock in memory for the decisions (policy.CoveringLocks). It is brought up to
// date before each decision: the stream leader says which lock event is the last; only when one came
// after what the index holds does it scan the lock subjects and reload the locks they touched. Locks
// are few and rarely change, so a decision usually costs two small reads of the leader.
type lockIndex struct {
	js    jetstream.JetStream
	store *eventstore.Store

	mu      sync.Mutex
	locks   map[string]*events.Lock
	through uint64 // the stream sequence of the last lock event folded
}

func newLockIndex(js jetstream.JetStream, st *eventstore.Store) *lockIndex {
	return &lockIndex{js: js, store: st, locks: map[string]*events.Lock{}}
}

// current returns every lock as of now (placed before the call, at least); an error means the
// decision must wait and be retried, never that there are no locks.
func (x *lockIndex) current(ctx context.Context) ([]*events.Lock, error) {
	last, err := x.store.LastLockEvent(ctx)
	if err != nil {
		return nil, err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if last > x.through {
		touched := map[string]bool{}
		err := streamscan.Events(ctx, x.js, []events.Type{events.TypeLockPlaced, events.TypeLockRemoved},
			func(id string, _ events.Type, seq uint64) error {
				if seq > x.through {
					touched[id] = true
				}
				return nil
			})
		if err != nil {
			return nil, fmt.Errorf("read the locks: %w", err)
		}
		for id := range touched {
			l, err := x.store.LoadLock(ctx, id)
			if err != nil {
				return nil, err
			}
			x.locks[id] = l.Lock
		}
		x.through = last
	}
	out := make([]*events.Lock, 0, len(x.locks))
	for _, l := range x.locks {
		out = append(out, l)
	}
	return out, nil
}
