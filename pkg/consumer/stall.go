package consumer

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Stall tracks the messages a consumer holds because a dependency is unavailable (see Unavailable), or
// where a projection of its own stopped (Hold, Release). Its Check is the projection's readiness
// check: a projection that cannot write is not ready, even while the rest of its service is. The zero
// value is ready; a nil *Stall tracks nothing.
type Stall struct {
	mu    sync.Mutex
	held  map[uint64]string // stream sequence → why it is held
	since time.Time         // when the stall began: the first hold while none was held
}

// Hold records that the message at stream sequence seq is held for reason.
func (s *Stall) Hold(seq uint64, reason string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held == nil {
		s.held = map[uint64]string{}
	}
	if len(s.held) == 0 {
		s.since = time.Now()
	}
	s.held[seq] = reason
}

// Release records that the message at seq is held no more.
func (s *Stall) Release(seq uint64) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.held, seq)
}

// Check fails while any message is held, saying since when and why.
func (s *Stall) Check(context.Context) error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for seq, reason := range s.held {
		return fmt.Errorf("waiting since %s at stream sequence %d (%d held): %s", s.since.UTC().Format(time.RFC3339), seq, len(s.held), reason)
	}
	return nil
}
