// Package natsjs reads the evidence stream for the read side, and only reads: eventstore.Open needs a
// signing key (a store appends), which a projection and a query API have no business holding, so this
// reader gets the raw stored events itself — the same batched direct gets as eventstore.Load for one
// request, and an ordered consumer for the whole stream — and leaves verification to query.Verify
// against the trust file.
package natsjs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/services/query"
	"github.com/grantline/grantline/services/query/projection"
)

// Reader reads GRANTLINE_EVENTS.
type Reader struct {
	JS jetstream.JetStream
	// RequestTimeout bounds each round trip; defaults to 5s.
	RequestTimeout time.Duration
}

// loadBatch is how many events one direct-get round trip returns; a request has tens of events.
const loadBatch = 256

// staleRetries is how often a read that misses a known sequence is retried before ErrStale.
const staleRetries = 6

// Records returns request id's stored events in stream order with their signatures and storage times,
// unverified, including at least stream sequence atLeast: a replica that is behind is asked again a few
// times, then query.ErrStale. A request with no events has none.
func (r *Reader) Records(ctx context.Context, id string, atLeast uint64) ([]events.Record, error) {
	if !events.ValidRequestID(id) {
		return nil, fmt.Errorf("read request %q: not a request ID", id)
	}
	for attempt := range staleRetries {
		if attempt > 0 {
			if err := wait(ctx, time.Duration(attempt*attempt)*5*time.Millisecond); err != nil {
				return nil, err
			}
		}
		recs, err := r.read(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("read request %s: %w", id, err)
		}
		if len(recs) > 0 && recs[len(recs)-1].Seq >= atLeast || atLeast == 0 {
			return recs, nil
		}
	}
	return nil, fmt.Errorf("read request %s: want stream sequence %d: %w", id, atLeast, query.ErrStale)
}

func (r *Reader) read(ctx context.Context, id string) ([]events.Record, error) {
	var recs []events.Record
	next := uint64(1)
	for {
		more, err := r.readBatch(ctx, id, next, &recs)
		if err != nil || !more {
			return recs, err
		}
		next = recs[len(recs)-1].Seq + 1
	}
}

func (r *Reader) readBatch(ctx context.Context, id string, from uint64, recs *[]events.Record) (more bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout())
	defer cancel()
	batch, err := jetstreamext.GetBatch(ctx, r.JS, topology.EventsStream, loadBatch,
		jetstreamext.GetBatchSeq(from), jetstreamext.GetBatchSubject(events.RequestFilter(id)))
	if err != nil {
		return false, err
	}
	for msg, err := range batch {
		if errors.Is(err, jetstreamext.ErrNoMessages) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		*recs = append(*recs, events.Record{Seq: msg.Sequence, Subject: msg.Subject, Body: msg.Data,
			Signature: msg.Header.Get(events.SignatureHeader), StoredAt: msg.Time})
		more = msg.Header.Get("Nats-Num-Pending") != "0"
	}
	return more, nil
}

// Follow sends every stored event from stream sequence from on to out, in stream order, until ctx ends.
// It reads with an ordered consumer (see package projection for why), which the client library
// recreates from the last delivered sequence whenever it misses a heartbeat or a sequence.
func (r *Reader) Follow(ctx context.Context, from uint64, out chan<- projection.Delivery) error {
	cons, err := r.JS.OrderedConsumer(ctx, topology.EventsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.AllSubjects}, DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq: max(from, 1),
	})
	if err != nil {
		return fmt.Errorf("follow the evidence stream: %w", err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(512))
	if err != nil {
		return fmt.Errorf("follow the evidence stream: %w", err)
	}
	stopped := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			it.Stop()
		case <-stopped:
		}
	}()
	defer close(stopped)
	defer it.Stop()
	for {
		msg, err := it.Next()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			return fmt.Errorf("follow the evidence stream: %w", err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("follow the evidence stream: %w", err)
		}
		select {
		case out <- projection.Delivery{Record: events.Record{Seq: meta.Sequence.Stream, Subject: msg.Subject(), Body: msg.Data(),
			Signature: msg.Headers().Get(events.SignatureHeader), StoredAt: meta.Timestamp}}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// LastSeq is the stream sequence of the last stored event (0 for an empty stream).
func (r *Reader) LastSeq(ctx context.Context) (uint64, error) {
	st, err := r.JS.Stream(ctx, topology.EventsStream)
	if err != nil {
		return 0, fmt.Errorf("open the evidence stream: %w", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("evidence stream info: %w", err)
	}
	return info.State.LastSeq, nil
}

func (r *Reader) timeout() time.Duration {
	if r.RequestTimeout > 0 {
		return r.RequestTimeout
	}
	return 5 * time.Second
}

func wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
