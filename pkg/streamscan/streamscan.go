// Package streamscan walks the evidence stream's subjects of some event types from the beginning, or
// from a sequence a caller kept, for start-up sweeps (grants past their expiry, tasks still open) and
// the drift reconciler's view of which grants are live. It reads headers only, with an ordered
// consumer, and holds one message at a time: memory does not grow with the stream.
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

// RequestsFrom is Requests over the events stored at stream sequence from or later (0 and 1 are the
// beginning), so that a caller that keeps how far it has scanned reads only what came since. It returns
// through, the sequence up to which every event of type t from from on was passed to fn: the stream's
// last sequence when the scan began, or the last event's passed if one was appended since.
func RequestsFrom(ctx context.Context, js jetstream.JetStream, t events.Type, from uint64, fn func(requestID string, seq uint64) error) (through uint64, err error) {
	// Every event up to the last sequence is in the stream before the consumer is made, so the scan,
	// which ends when nothing is pending, passes each one of type t.
	st, err := js.Stream(ctx, topology.EventsStream)
	if err != nil {
		return 0, fmt.Errorf("scan %s: %w", t.Name(), err)
	}
	through = st.CachedInfo().State.LastSeq
	err = scan(ctx, js, []events.Type{t}, from, func(id string, _ events.Type, seq uint64) error {
		if err := fn(id, seq); err != nil {
			return err
		}
		through = max(through, seq)
		return nil
	})
	if err != nil {
		return 0, err
	}
	return through, nil
}

// Events calls fn with the request ID, the type and the stream sequence of every event of one of types
// stored so far, in stream order, and returns fn's first error or the stream's. Events appended while
// it runs may or may not be included.
func Events(ctx context.Context, js jetstream.JetStream, types []events.Type, fn func(requestID string, t events.Type, seq uint64) error) error {
	return scan(ctx, js, types, 0, fn)
}

// scan is Events from stream sequence from (0 and 1 are the beginning).
func scan(ctx context.Context, js jetstream.JetStream, types []events.Type, from uint64, fn func(requestID string, t events.Type, seq uint64) error) error {
	filters, names := make([]string, len(types)), make([]string, len(types))
	for i, t := range types {
		filters[i], names[i] = events.NATSSubject("*", t), t.Name()
	}
	what := strings.Join(names, ", ")
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: filters, DeliverPolicy: jetstream.DeliverAllPolicy, HeadersOnly: true}
	if from > 1 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, from
	}
	cons, err := js.OrderedConsumer(ctx, topology.EventsStream, cfg)
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
