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

// Grant is a granted event: its request and its stream sequence.
type Grant struct {
	RequestID string
	Seq       uint64
}

// LiveGrants returns the requests granted and not revoked so far, in the order of their grants, from
// the headers of the granted and revoked subjects: what a caller then loads to see which still hold
// access (a revocation may be under way).
func LiveGrants(ctx context.Context, js jetstream.JetStream) ([]string, error) {
	live, _, err := LiveGrantsFrom(ctx, js, 0)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(live))
	for i, g := range live {
		ids[i] = g.RequestID
	}
	return ids, nil
}

// LiveGrantsFrom is LiveGrants over the events stored at stream sequence from or later (0 and 1 are the
// beginning), with each grant's sequence, so that a caller that keeps how far it has scanned reads only
// what came since; a grant revoked within that range is not returned. It holds the grants not yet
// revoked at each point of the scan, which is as many as were live at once then, not the history. It
// returns through, the sequence of the last granted or revoked event read (0 if none): every one up to
// it was read. Not the stream's last sequence: the scan's consumer may sit on a replica behind the
// leader, and what it reads is a prefix of the stream, complete only up to what it delivered.
func LiveGrantsFrom(ctx context.Context, js jetstream.JetStream, from uint64) (live []Grant, through uint64, err error) {
	granted := map[string]uint64{}
	var order []Grant
	err = scan(ctx, js, []events.Type{events.TypeGranted, events.TypeRevoked}, from, func(id string, t events.Type, seq uint64) error {
		if t == events.TypeGranted {
			granted[id] = seq
			order = append(order, Grant{RequestID: id, Seq: seq})
		} else {
			delete(granted, id)
		}
		through = seq
		// Compact the order now and then, so that it too holds only what is live.
		if len(order) > 2*len(granted)+1024 {
			order = keepLive(order, granted)
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return keepLive(order, granted), through, nil
}

// keepLive keeps, in place, the grants of order that granted still holds at their sequence.
func keepLive(order []Grant, granted map[string]uint64) []Grant {
	out := order[:0]
	for _, g := range order {
		if seq, ok := granted[g.RequestID]; ok && seq == g.Seq {
			out = append(out, g)
		}
	}
	return out
}
