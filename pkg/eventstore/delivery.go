package eventstore

import (
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/events"
)

// Delivery is an event a reaction's consumer received from the evidence stream, decoded and verified
// on its own by the store that received it (Receive): its signature, that its key's service may emit
// its type, its source and its subject. Its link to the request's earlier events is checked where a
// reaction decides on it.
type Delivery struct {
	RequestID string
	// Seq is the event's stream sequence: pass it to UpdateFrom so the decision sees this event.
	Seq   uint64
	Event events.Event
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
	hash := events.ChainHash(rec.Body)
	ev, err := s.verifier.Verify(rec, 1)
	if err != nil {
		return Delivery{}, err
	}
	// A load that meets this record again need not check its signature a second time.
	s.verified.add(verifiedKey(rec, hash))
	return Delivery{RequestID: id, Seq: rec.Seq, Event: ev}, nil
}
