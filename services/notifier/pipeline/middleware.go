package pipeline

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/sony/gobreaker/v2"

	"github.com/grantline/grantline/services/notifier/channel"
	"github.com/grantline/grantline/services/notifier/natskv"
)

// breakers is a circuit breaker per delivery target over sony/gobreaker/v2, as a watermill handler
// middleware. Watermill's own CircuitBreaker middleware wraps one breaker (gobreaker v1) around the
// whole handler: one failing webhook would stop every other. Here each target trips on its own.
type breakers struct {
	failures uint32
	open     time.Duration
	onState  func(target string, from, to gobreaker.State)

	mu sync.Mutex
	m  map[string]*gobreaker.CircuitBreaker[struct{}]
}

func (b *breakers) breaker(target string) *gobreaker.CircuitBreaker[struct{}] {
	b.mu.Lock()
	defer b.mu.Unlock()
	if cb, ok := b.m[target]; ok {
		return cb
	}
	cb := gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name: target, Timeout: b.open,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= b.failures },
		// A refusal is the target working; a busy claim or a stopping process says nothing about it.
		IsSuccessful: func(err error) bool { return err == nil || channel.IsPermanent(err) },
		IsExcluded: func(err error) bool {
			return errors.Is(err, errBusy) || errors.Is(err, context.Canceled)
		},
		OnStateChange: func(name string, from, to gobreaker.State) {
			if b.onState != nil {
				b.onState(name, from, to)
			}
		},
	})
	b.m[target] = cb
	return cb
}

// middleware runs the handler through the breaker of the target a message goes to (named by target).
// While the breaker is open the handler is not run: the message comes back when the breaker lets a
// trial call through, and nothing is claimed or lost meanwhile.
func (b *breakers) middleware(target func(*message.Message) string) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			var out []*message.Message
			_, err := b.breaker(target(msg)).Execute(func() (struct{}, error) {
				var err error
				out, err = h(msg)
				return struct{}{}, err
			})
			if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
				retryAfter(msg, b.open)
			}
			return out, err
		}
	}
}

// sentRecord is the watermill Deduplicator's repository over the sent record: a delivery is a
// duplicate when its notification was sent already (then its outbox entry is removed as it is
// recognised). It never records anything itself: only a send does, so a delivery that failed is not
// taken for a duplicate when it comes back.
type sentRecord struct {
	buckets *natskv.Buckets
}

// IsDuplicate reports whether the notification of outbox key was sent ("" is never a duplicate).
func (s sentRecord) IsDuplicate(ctx context.Context, key string) (bool, error) {
	i := strings.LastIndexByte(key, '.')
	if key == "" || i < 0 {
		return false, nil
	}
	sent, err := s.buckets.Sent.IsSent(ctx, key[i+1:])
	if sent && err == nil {
		_ = s.buckets.Outbox.Remove(ctx, key)
	}
	return sent, err
}

// outboxKey is the Deduplicator's key factory: the outbox key of a delivery, "" for the bucket's own
// removal markers (which must not be "removed" again).
func outboxKey(msg *message.Message) (string, error) {
	if msg.Metadata.Get(metaOperation) != "" || len(msg.Payload) == 0 {
		return "", nil
	}
	key, _ := natskv.KeyOfSubject(msg.Metadata.Get(metaSubject))
	return key, nil
}
