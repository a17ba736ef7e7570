package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/consumer"
	"github.com/grantline/grantline/pkg/telemetry"
)

// Metadata the subscriber puts on each message, and that handlers may set for its settlement.
const (
	// metaSubject is the NATS subject the message was stored under.
	metaSubject = "nats_subject"
	// metaSeq is its stream sequence.
	metaSeq = "stream_seq"
	// metaDelivered counts deliveries, 1 for the first.
	metaDelivered = "delivered"
	// metaOperation is a key-value bucket's operation header (KV-Operation: DEL or PURGE for a
	// removal, absent for a put).
	metaOperation = "kv_operation"
	// metaRetryAfter, set by a handler that fails, is the earliest redelivery it wants (a duration).
	metaRetryAfter = "retry_after"
	// metaReplayOf is, on an operator's replay of a dead letter, that dead letter's sequence in
	// GRANTLINE_DLQ (consumer.ReplayOf).
	metaReplayOf = "replay_of"
)

// kvOperationHeader marks a key-value removal (DEL or PURGE) on a bucket's stream; nats.go keeps its
// name unexported.
const kvOperationHeader = "KV-Operation"

// source is a durable JetStream consumer that a subscriber reads from.
type source struct {
	Stream, Durable string
	Filters         []string
	// AckWait is how long a message may be held before the server delivers it again; it bounds how
	// long a replica that died holds anything up.
	AckWait time.Duration
	// MaxInFlight is how many messages are handled at once in this replica.
	MaxInFlight int
	// Backoff is the redelivery delay after a failed delivery, unless the handler set metaRetryAfter.
	Backoff func(delivered int) time.Duration
}

// subscriber is watermill's Subscriber over a durable JetStream pull consumer: shared by every
// replica, explicitly acknowledged, with a redelivery delay chosen per failure. It exists because the
// NATS adapter of watermill cannot be told what this needs (see docs/architecture.md): the stream
// sequence of each message (a reaction loads its request at least that far), a nak with a delay
// chosen by the handler, a consumer on a key-value bucket's stream, and a consumer whose configuration
// is created once by the service that owns it rather than per subscription.
type subscriber struct {
	js  jetstream.JetStream
	src source
	log *slog.Logger

	mu      sync.Mutex
	stops   []func()
	running sync.WaitGroup
}

func newSubscriber(js jetstream.JetStream, src source, log *slog.Logger) *subscriber {
	return &subscriber{js: js, src: src, log: log.With("consumer", src.Durable)}
}

// Subscribe creates or updates the durable consumer and returns the messages it delivers, one at a
// time per free slot, until ctx ends or Close is called; the channel is then closed once no message
// is left in flight. The operator's replays of the durable's dead letters (consumer.Replays) come the
// same way. topic is the watermill topic the router subscribes to; the source says what is read.
func (s *subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	cons, err := s.js.CreateOrUpdateConsumer(ctx, s.src.Stream, jetstream.ConsumerConfig{
		Durable: s.src.Durable, FilterSubjects: s.src.Filters, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: s.src.AckWait, MaxDeliver: -1, MaxAckPending: max(s.src.MaxInFlight*4, 64),
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", s.src.Durable, err)
	}
	ctx, stop := context.WithCancel(ctx)
	s.mu.Lock()
	s.stops = append(s.stops, stop)
	s.mu.Unlock()

	out := make(chan *message.Message)
	slots := make(chan struct{}, s.src.MaxInFlight)
	var inflight sync.WaitGroup
	take := func(m jetstream.Msg) {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return // not taken: the server delivers it again after AckWait
		}
		inflight.Go(func() {
			defer func() { <-slots }()
			s.deliver(ctx, m, out)
		})
	}
	replays, err := consumer.Replays(ctx, s.js, s.src.Stream, s.src.Durable, s.src.AckWait, s.src.Backoff, s.log, take)
	if err != nil {
		stop()
		return nil, err
	}
	cc, err := cons.Consume(take, jetstream.PullMaxMessages(s.src.MaxInFlight), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		s.log.Warn("consume", telemetry.KeyError, err.Error())
	}))
	if err != nil {
		stop()
		replays.Stop()
		<-replays.Closed()
		return nil, fmt.Errorf("consumer %s: %w", s.src.Durable, err)
	}
	s.running.Go(func() {
		<-ctx.Done()
		cc.Stop()
		replays.Stop()
		<-cc.Closed()
		<-replays.Closed()
		inflight.Wait()
		close(out)
	})
	return out, nil
}

// deliver hands one message to the router and settles it with the server once the handler acked or
// nacked it. If ctx ends first (the process stops) the message is left unsettled, as a process that
// died would leave it: the server delivers it again after AckWait.
func (s *subscriber) deliver(ctx context.Context, m jetstream.Msg, out chan<- *message.Message) {
	meta, err := m.Metadata()
	if err != nil {
		s.log.Error("message without metadata", telemetry.KeyError, err.Error())
		_ = m.Term()
		return
	}
	// The UUID names the delivery in the dead-letter copy's message ID: a replay that fails again is set
	// aside as a copy of its own.
	uuid := fmt.Sprintf("%s:%d", meta.Stream, meta.Sequence.Stream)
	entry, replay := consumer.ReplayOf(m)
	if replay {
		uuid += ":replay:" + entry
	}
	msg := message.NewMessage(uuid, m.Data())
	if replay {
		msg.Metadata.Set(metaReplayOf, entry)
	}
	msg.Metadata.Set(metaSubject, m.Subject())
	msg.Metadata.Set(metaSeq, strconv.FormatUint(meta.Sequence.Stream, 10))
	msg.Metadata.Set(metaDelivered, strconv.FormatUint(meta.NumDelivered, 10))
	if op := m.Headers().Get(kvOperationHeader); op != "" {
		msg.Metadata.Set(metaOperation, op)
	}
	msg.SetContext(telemetry.Extract(ctx, m.Headers()))
	select {
	case out <- msg:
	case <-ctx.Done():
		return
	}
	select {
	case <-msg.Acked():
		err = m.Ack()
	case <-msg.Nacked():
		err = m.NakWithDelay(s.redeliverAfter(msg, int(meta.NumDelivered)))
	case <-ctx.Done():
		return
	}
	if err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
		s.log.Warn("settle message", "subject", m.Subject(), telemetry.KeyError, err.Error())
	}
}

func (s *subscriber) redeliverAfter(msg *message.Message, delivered int) time.Duration {
	if d, err := time.ParseDuration(msg.Metadata.Get(metaRetryAfter)); err == nil && d > 0 {
		return d
	}
	return s.src.Backoff(delivered)
}

// Close stops every subscription and waits until their channels are closed.
func (s *subscriber) Close() error {
	s.mu.Lock()
	for _, stop := range s.stops {
		stop()
	}
	s.mu.Unlock()
	s.running.Wait()
	return nil
}

// delivered is how many times msg was delivered, from its metadata.
func delivered(msg *message.Message) int {
	n, _ := strconv.Atoi(msg.Metadata.Get(metaDelivered))
	return n
}

// retryAfter asks the subscriber to deliver msg again no sooner than d.
func retryAfter(msg *message.Message, d time.Duration) {
	if d > 0 {
		msg.Metadata.Set(metaRetryAfter, d.String())
	}
}
