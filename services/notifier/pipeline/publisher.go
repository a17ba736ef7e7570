package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/consumer"
	"github.com/grantline/grantline/services/notifier/natskv"
)

// outboxPublisher is watermill's Publisher into the outbox bucket: what the planning handlers return
// is stored there before the event that caused it is acknowledged, so a notification is never planned
// and then lost.
type outboxPublisher struct {
	outbox *natskv.Outbox
}

// Publish stores each message (an encoded natskv.Entry) in the outbox; topic is ignored, the entry's
// channel says where it goes.
func (p outboxPublisher) Publish(_ string, msgs ...*message.Message) error {
	for _, m := range msgs {
		e, err := natskv.Decode(m.Payload)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(m.Context(), 10*time.Second)
		err = p.outbox.Put(ctx, e)
		cancel()
		if err != nil {
			return err
		}
	}
	return nil
}

// Close does nothing: the outbox lives as long as the connection.
func (outboxPublisher) Close() error { return nil }

// deadLetters is watermill's Publisher into GRANTLINE_DLQ: the poison queue of every handler. A copy
// keeps the message and says why, where from, and after how many deliveries, in the headers the other
// services' dead letters carry.
type deadLetters struct {
	js     jetstream.JetStream
	stream string
}

// Publish copies each message to topic (grantline.dlq.<durable>).
func (d deadLetters) Publish(topic string, msgs ...*message.Message) error {
	for _, m := range msgs {
		dl := nats.NewMsg(topic)
		dl.Data = m.Payload
		dl.Header.Set(consumer.HeaderReason, m.Metadata.Get(middleware.ReasonForPoisonedKey))
		dl.Header.Set(consumer.HeaderStream, d.stream)
		dl.Header.Set(consumer.HeaderSeq, m.Metadata.Get(metaSeq))
		dl.Header.Set(consumer.HeaderSubject, m.Metadata.Get(metaSubject))
		dl.Header.Set(consumer.HeaderConsumer, m.Metadata.Get(middleware.PoisonedHandlerKey))
		dl.Header.Set(consumer.HeaderDeliveries, m.Metadata.Get(metaDelivered))
		if entry := m.Metadata.Get(metaReplayOf); entry != "" {
			dl.Header.Set(consumer.HeaderReplayOf, entry)
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(m.Context()), 5*time.Second)
		_, err := d.js.PublishMsg(ctx, dl, jetstream.WithMsgID(fmt.Sprintf("dlq:%s:%s", topic, m.UUID)))
		cancel()
		if err != nil {
			return fmt.Errorf("dead-letter %s: %w", m.UUID, err)
		}
	}
	return nil
}

// Close does nothing.
func (deadLetters) Close() error { return nil }
