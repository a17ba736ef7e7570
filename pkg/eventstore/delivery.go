package eventstore

import (
	"context"
	"fmt"
	"sort"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/events"
)

// Delivery is an event a reaction's consumer received from the evidence stream, decoded and verified
// on its own by the store that received it (Receive): its signature, that its key's service may emit
// its type, its source and its subject. Its link to the request's earlier events is checked where a
// reaction decides on it (AtDelivery, React).
type Delivery struct {
	RequestID string
	// Seq is the event's stream sequence.
	Seq   uint64
	Event events.Event
	// record is the event as stored, when Receive built the delivery: what a fold appends.
	record *events.Record
}

// Receive decodes and verifies an event delivered from GRANTLINE_EVENTS, once, so a reaction can rely
// on what it was delivered. An error (a *events.Violation for an event no service of the trust file
// wrote, or a malformed message) means no retry will change the outcome.
func (s *Store) Receive(msg jetstream.Msg) (Delivery, error) {
	meta, err := msg.Metadata()
	if err != nil {
		return Delivery{}, fmt.Errorf("delivery metadata: %w", err)
	}
	id, _, err := events.ParseNATSSubject(msg.Subject())
	if err != nil {
		return Delivery{}, err
	}
	rec := events.Record{Seq: meta.Sequence.Stream, Subject: msg.Subject(), Body: msg.Data(),
		Signature: msg.Headers().Get(events.SignatureHeader), StoredAt: meta.Timestamp.UTC()}
	ev, _, err := s.verify(rec, 1)
	if err != nil {
		return Delivery{}, err
	}
	return Delivery{RequestID: id, Seq: rec.Seq, Event: ev, record: &rec}, nil
}

// At is the delivery of l's i-th event, as if it had been delivered again.
func (l *Loaded) At(i int) Delivery {
	return Delivery{RequestID: l.ID, Seq: l.Records[i].Seq, Event: l.Events[i]}
}

// AtDelivery returns the request as of delivered event d, at least: a complete, verified prefix of its
// chain that ends with d or goes beyond it. If the store holds the request and d links to its head,
// d is folded onto it without a read (and so is a first event, onto nothing); if it holds the request
// at d or later, that is the answer. Otherwise (not held, or d does not link: events in between the
// store has not seen, or a stream that is not what Grantline wrote) the request is loaded, at least up
// to d. An event the loaded chain does not hold at d's sequence is reported as a *events.Violation:
// it was stored outside the request's chain, and no reaction may act on it.
func (s *Store) AtDelivery(ctx context.Context, d Delivery) (*Loaded, error) {
	held, head := s.cache.get(d.RequestID)
	if held == nil {
		held, head = &Loaded{ID: d.RequestID}, events.GenesisHash(d.RequestID)
	}
	switch {
	case d.Seq <= held.LastSeq && held.holds(d):
		return held, nil
	case d.Seq > held.LastSeq && d.Event.PrevHash == head && d.record != nil:
		evs := append(held.Events, d.Event)
		req, err := events.Fold(d.RequestID, evs)
		if err == nil {
			next := &Loaded{ID: d.RequestID, Records: append(held.Records, *d.record), Events: evs, Request: req, LastSeq: d.Seq}
			s.cache.put(next)
			return next, nil
		}
		// The aggregate refuses a verified, linked event: let a load of the stream say so.
	}
	l, err := s.reload(ctx, d.RequestID, d.Seq)
	if err != nil {
		return nil, err
	}
	if !l.holds(d) {
		// Its position is where it stands in the stream among the request's chained events.
		position := 1 + sort.Search(len(l.Records), func(i int) bool { return l.Records[i].Seq >= d.Seq })
		return nil, &events.Violation{Position: position, Seq: d.Seq, RequestID: d.RequestID, EventID: d.Event.ID,
			Kind: events.ViolationChainBroken, Detail: "the delivered event is not in the request's chain"}
	}
	return l, nil
}

// holds reports whether l holds delivered event d at its stream sequence.
func (l *Loaded) holds(d Delivery) bool {
	i := sort.Search(len(l.Records), func(i int) bool { return l.Records[i].Seq >= d.Seq })
	return i < len(l.Records) && l.Records[i].Seq == d.Seq && l.Events[i].ID == d.Event.ID
}
