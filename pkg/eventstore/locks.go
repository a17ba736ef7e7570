package eventstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/grantline/grantline/pkg/events"
)

// ErrNotARequest means the ID asked for as a request's is a lock's or a campaign's: to a caller of a
// request's route it is no request at all.
var ErrNotARequest = errors.New("the ID is a lock's or a campaign's, not a request's")

// LoadedLock is a lock read from the evidence: its verified events and the aggregate folded from them.
type LoadedLock struct {
	loaded *Loaded
	// Lock is the folded lock; empty (LockStatusNone) for an ID with no events.
	Lock *events.Lock
}

// LastSeq is the stream sequence of the lock's last event, 0 for none.
func (l *LoadedLock) LastSeq() uint64 { return l.loaded.LastSeq }

// Events are the lock's verified events in order.
func (l *LoadedLock) Events() []events.Event { return l.loaded.Events }

// LoadLock reads lock id as Load reads a request (every event verified and chained from the lock ID's
// genesis; ErrStale while the replica that answered is behind the leader) and folds it into its Lock.
// A lock event the aggregate refuses returns the *events.RefusedError.
func (s *Store) LoadLock(ctx context.Context, id string) (*LoadedLock, error) {
	l, lock, err := loadFolded(ctx, s, "lock", id, events.FoldLock)
	if err != nil {
		return nil, err
	}
	return &LoadedLock{loaded: l, Lock: lock}, nil
}

// DecideLock returns the events to append to the lock as it is now, or none; an error stops UpdateLock
// with that error.
type DecideLock func(l *events.Lock) ([]events.Draft, error)

// UpdateLock is load → decide → append for one lock, as Update is for a request: the append is a
// compare-and-set on the lock's whole subject space, the lock must accept every draft first, and
// another writer's append makes it load and decide again, at most MaxAttempts times. It returns the
// lock as it stands after the append.
func (s *Store) UpdateLock(ctx context.Context, id string, decide DecideLock) (*LoadedLock, error) {
	l, lock, err := updateFolded(ctx, s, "lock", id, events.FoldLock, decide)
	if err != nil {
		return nil, err
	}
	return &LoadedLock{loaded: l, Lock: lock}, nil
}

// LastLockEvent is the stream sequence of the last lock event stored, as the stream leader knows it (0
// for none): a reader that has folded the locks up to it knows every lock placed or removed so far.
// It reads the last message of wildcard subjects, which makes the leader visit every request's
// subject: fit for a start-up, not for every decision (see LastSeq).
func (s *Store) LastLockEvent(ctx context.Context) (uint64, error) {
	var last uint64
	for _, t := range []events.Type{events.TypeLockPlaced, events.TypeLockRemoved} {
		seq, err := s.leaderLastOf(ctx, events.NATSSubject("*", t))
		if err != nil {
			return 0, fmt.Errorf("ask the stream leader about the locks: %w", err)
		}
		last = max(last, seq)
	}
	return last, nil
}
