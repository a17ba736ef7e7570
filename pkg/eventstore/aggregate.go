package eventstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/grantline/grantline/pkg/events"
)

// loadFolded reads id as Load reads a request (every event verified and chained from the ID's genesis)
// and folds it with fold, the aggregate's own (a lock's, a campaign's); what names the aggregate in
// errors.
func loadFolded[A any](ctx context.Context, s *Store, what, id string, fold func(string, []events.Event) (A, error)) (*Loaded, A, error) {
	var zero A
	l, err := s.readVerified(ctx, id)
	if err != nil {
		return nil, zero, fmt.Errorf("load %s %s: %w", what, id, err)
	}
	a, err := fold(id, l.Events)
	if err != nil {
		return nil, zero, fmt.Errorf("load %s %s: %w", what, id, err)
	}
	return l, a, nil
}

// updateFolded is load → decide → append for an aggregate other than a request, as Update is for a
// request: the append is a compare-and-set on the aggregate's whole subject space, the aggregate must
// accept every draft first (fold), and another writer's append makes it load and decide again, at most
// MaxAttempts times. It returns what was loaded or appended and the aggregate as it then stands.
func updateFolded[A any](ctx context.Context, s *Store, what, id string, fold func(string, []events.Event) (A, error),
	decide func(A) ([]events.Draft, error)) (*Loaded, A, error) {
	var zero A
	if s.signer == nil {
		return nil, zero, ErrReadOnly
	}
	var lastErr error
	for attempt := range s.maxAttempts {
		if attempt > 0 {
			if err := backoff(ctx, attempt); err != nil {
				return nil, zero, err
			}
		}
		cur, a, err := loadFolded(ctx, s, what, id, fold)
		if err != nil {
			return nil, zero, err
		}
		drafts, err := decide(a)
		if err != nil || len(drafts) == 0 {
			return cur, a, err
		}
		msgs, sealed, now, err := s.seal(ctx, cur, drafts)
		if err != nil {
			return nil, zero, fmt.Errorf("append to %s %s: %w", what, id, err)
		}
		next, err := fold(id, append(append([]events.Event{}, cur.Events...), sealed...))
		if err != nil {
			return nil, zero, fmt.Errorf("append to %s %s: %w", what, id, err)
		}
		stored, err := s.store(ctx, cur, msgs, sealed, now)
		if errors.Is(err, ErrConflict) {
			lastErr = err
			continue
		}
		if err != nil {
			return nil, zero, fmt.Errorf("append to %s %s: %w", what, id, err)
		}
		return stored, next, nil
	}
	return nil, zero, fmt.Errorf("update %s %s: gave up after %d attempts: %w", what, id, s.maxAttempts, lastErr)
}
