// Package streamscan walks the evidence stream's subjects of some event types from the beginning, for
// start-up sweeps (grants past their expiry, tasks still open) and the drift reconciler's view of which
// grants are live. It reads headers only, with an ordered consumer, and holds one message at a time:
// memory does not grow with the stream.
package streamscan

import (
	"context"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/topology"
)

// Requests calls fn with the request ID and stream sequence of every event of type t stored so far, in
// stream order, and returns fn's first error or the stream's. Events appended while it runs may or may
// not be included.
func Requests(ctx context.Context, js jetstream.JetStream, t events.Type, fn func(requestID string, seq uint64) error) error {
	return Events(ctx, js, []events.Type{t}, func(id string, _ events.Type, seq uint64) error { return fn(id, seq) })
}

// Events calls fn with the request ID, the type and the stream sequence of every event of one of types
// stored so far, in stream order, and returns fn's first error or the stream's. Events appended while
// it runs may or may not be included.
func Events(ctx context.Context, js jetstream.JetStream, types []events.Type, fn func(requestID string, t events.Type, seq uint64) error) error {
	filters, names := make([]string, len(types)), make([]string, len(types))
	for i, t := range types {
		filters[i], names[i] = events.NATSSubject("*", t), t.Name()
	}
	what := strings.Join(names, ", ")
	cons, err := js.OrderedConsumer(ctx, topology.EventsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: filters, DeliverPolicy: jetstream.DeliverAllPolicy, HeadersOnly: true,
	})
	if err != nil {
		return fmt.Errorf("scan %s: %w", what, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("scan %s: %w", what, err)
	}
	if info.NumPending == 0 {
		return nil
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(256))
	if err != nil {
		return fmt.Errorf("scan %s: %w", what, err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("scan %s: %w", what, err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("scan %s: %w", what, err)
		}
		id, t, err := events.ParseNATSSubject(msg.Subject())
		if err != nil {
			return fmt.Errorf("scan %s: %w", what, err)
		}
		if err := fn(id, t, meta.Sequence.Stream); err != nil {
			return err
		}
		if meta.NumPending == 0 {
			return nil
		}
	}
}

// LiveGrants returns the requests granted and not revoked so far, in the order of their grants, from
// the headers of the granted and revoked subjects: what a caller then loads to see which still hold
// access (a revocation may be under way).
func LiveGrants(ctx context.Context, js jetstream.JetStream) ([]string, error) {
	live := map[string]bool{}
	var order []string
	err := Events(ctx, js, []events.Type{events.TypeGranted, events.TypeRevoked}, func(id string, t events.Type, _ uint64) error {
		if t == events.TypeGranted {
			live[id] = true
			order = append(order, id)
		} else {
			delete(live, id)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := order[:0]
	for _, id := range order {
		if live[id] {
			out = append(out, id)
		}
	}
	return out, nil
}
