package eventstore

import (
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/events"
)

// Delivery is an event as a reaction's consumer received it from the evidence stream.
type Delivery struct {
	RequestID string
	// Seq is the event's stream sequence: pass it to UpdateFrom so the decision sees this event.
	Seq   uint64
	Event events.Event
}

// ParseDelivery decodes an event delivered from GRANTLINE_EVENTS. It does not verify the signature:
// the reaction's UpdateFrom loads and verifies the whole request, this event included. An error means
// the message is not a well-formed event and no retry will change that.
func ParseDelivery(msg jetstream.Msg) (Delivery, error) {
	meta, err := msg.Metadata()
	if err != nil {
		return Delivery{}, fmt.Errorf("delivery metadata: %w", err)
	}
	id, _, err := events.ParseNATSSubject(msg.Subject())
	if err != nil {
		return Delivery{}, err
	}
	ev, err := events.Decode(msg.Data())
	if err != nil {
		return Delivery{}, err
	}
	if ev.Subject != id {
		return Delivery{}, fmt.Errorf("event for request %s stored under %s", ev.Subject, msg.Subject())
	}
	return Delivery{RequestID: id, Seq: meta.Sequence.Stream, Event: ev}, nil
}
