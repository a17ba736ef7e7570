package eventstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/topology"
)

// deliver publishes m straight into the evidence stream (bypassing the store, as a forger would) and
// returns it as a consumer delivers it.
func deliver(t *testing.T, w *world, m *nats.Msg) jetstream.Msg {
	t.Helper()
	ack, err := w.js.PublishMsg(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	return delivered(t, w, ack.Sequence)
}

// delivered returns the event stored at stream sequence seq as a consumer delivers it.
func delivered(t *testing.T, w *world, seq uint64) jetstream.Msg {
	t.Helper()
	ctx := context.Background()
	c, err := w.js.OrderedConsumer(ctx, topology.EventsStream, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: seq})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// TestReceiveVerifiesTheDeliveredEvent checks that a reaction is handed only events a service of the
// trust file may have written, decoded once, with the stream sequence it was stored at.
func TestReceiveVerifiesTheDeliveredEvent(t *testing.T) {
	w, _ := singleNode(t)
	ctx := context.Background()
	id := w.pendingRequest(t, 1)
	l, err := w.stores[events.Approval].Load(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	digest := l.Request.Submitted().RequestDigest
	st := w.stores[events.Fulfilment]

	good := forged(t, w, id, l.head(), events.Approval, reviewBy("carol", digest).Payload, "carol")
	d, err := st.Receive(deliver(t, w, good))
	if err != nil {
		t.Fatalf("Receive of an event approval signed = %v", err)
	}
	if d.RequestID != id || d.Event.Type != events.TypeReviewed || d.Seq <= l.LastSeq || d.Event.PrevHash != l.head() {
		t.Fatalf("Receive = %+v", d)
	}
	// Remembered as verified: a second consumer of the same event, or a load meeting it, decodes it
	// without checking its signature again.
	if !st.verified.has(verifiedKey(*d.record, events.ChainHash(d.record.Body))) {
		t.Fatalf("the delivered record is not remembered as verified")
	}
	if again, err := st.Receive(delivered(t, w, d.Seq)); err != nil || again.Event.ID != d.Event.ID {
		t.Fatalf("Receive of the same event again = %v", err)
	}

	cases := []struct {
		name  string
		forge func() *nats.Msg
		kind  events.ViolationKind
	}{
		{"an approval signed with intake's key", func() *nats.Msg {
			m := forged(t, w, id, l.head(), events.Approval, events.Approved{Approvers: []string{"bob"}}, "bob")
			m.Header.Set(events.SignatureHeader, w.signers[events.Intake].Sign(m.Data))
			return m
		}, events.ViolationTypeNotAllowed},
		{"a body changed after signing", func() *nats.Msg {
			m := forged(t, w, id, l.head(), events.Approval, reviewBy("carol", digest).Payload, "carol")
			m.Data = append(m.Data[:len(m.Data)-1:len(m.Data)-1], ' ', '}')
			return m
		}, events.ViolationBadSignature},
		{"no signature", func() *nats.Msg {
			m := forged(t, w, id, l.head(), events.Approval, reviewBy("carol", digest).Payload, "carol")
			m.Header.Del(events.SignatureHeader)
			return m
		}, events.ViolationMissingSignature},
		{"another request's event under this request's subject", func() *nats.Msg {
			m := forged(t, w, events.NewID(), l.head(), events.Approval, reviewBy("carol", digest).Payload, "carol")
			m.Subject = events.NATSSubject(id, events.TypeReviewed)
			return m
		}, events.ViolationSubjectMismatch},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := st.Receive(deliver(t, w, tc.forge()))
			var v *events.Violation
			if !errors.As(err, &v) || v.Kind != tc.kind {
				t.Fatalf("Receive = %v, want a %s violation", err, tc.kind)
			}
		})
	}
}
