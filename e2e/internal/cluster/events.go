package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/topology"
)

// eventsTimeout bounds Events, retries included.
const eventsTimeout = 30 * time.Second

// Events reads request id's events from the evidence stream, as an auditor would: in stream order,
// each verified against the trust file (signature, the emitting service's right to the type, the hash
// chain). A request with no events yet has none; a stream that fails verification is an error.
//
// It reads with batched direct gets, which any replica answers and which cost the cluster nothing
// else, so an event appended a moment ago may not be there yet: wait for an event by reading again.
// A read that fails (a node restarting, no answer in time) is retried until eventsTimeout.
func (c *Cluster) Events(ctx context.Context, id string) ([]events.Event, error) {
	ctx, cancel := context.WithTimeout(ctx, eventsTimeout)
	defer cancel()
	for {
		recs, err := c.records(ctx, id)
		if err == nil {
			evs, err := c.secrets.verifier.VerifyAll(recs)
			if err != nil {
				return nil, fmt.Errorf("events of %s fail verification: %w", id, err)
			}
			return evs, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("read events of %s: %w", id, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// records reads every stored event of request id, a page of batched direct gets at a time.
func (c *Cluster) records(ctx context.Context, id string) ([]events.Record, error) {
	const page = 256
	var recs []events.Record
	for from := uint64(1); ; {
		msgs, err := jetstreamext.GetBatch(ctx, c.js, topology.EventsStream, page,
			jetstreamext.GetBatchSubject(events.RequestFilter(id)), jetstreamext.GetBatchSeq(from))
		if err != nil {
			return nil, err
		}
		n := 0
		for msg, err := range msgs {
			if errors.Is(err, jetstreamext.ErrNoMessages) {
				break
			}
			if err != nil {
				return nil, err
			}
			recs = append(recs, events.Record{Seq: msg.Sequence, Subject: msg.Subject, Body: msg.Data,
				Signature: msg.Header.Get(events.SignatureHeader), StoredAt: msg.Time})
			from = msg.Sequence + 1
			n++
		}
		if n < page {
			return recs, nil
		}
	}
}
