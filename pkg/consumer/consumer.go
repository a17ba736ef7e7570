// Package consumer runs a service's reactions: a durable JetStream pull consumer shared by all
// replicas of the service, handlers running with bounded concurrency but one at a time per request
// (RequestKey), and one table (Dispose) deciding ack, retry with delay, hold while a dependency is down,
// or dead-letter. A message that keeps failing ends in GRANTLINE_DLQ with the reason, never silently
// dropped; a message whose dependency is down waits for it, however long that takes.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"

	"github.com/grantline/grantline/pkg/telemetry"
	"github.com/grantline/grantline/pkg/topology"
)

// Headers the runner adds to a dead-lettered copy: why, and where the original is (its stream, its
// sequence there, its subject, the consumer that gave up on it, after how many deliveries).
const (
	HeaderReason     = "Grantline-Dlq-Reason"
	HeaderStream     = "Grantline-Dlq-Stream"
	HeaderSeq        = "Grantline-Dlq-Stream-Seq"
	HeaderSubject    = "Grantline-Dlq-Subject"
	HeaderConsumer   = "Grantline-Dlq-Consumer"
	HeaderDeliveries = "Grantline-Dlq-Deliveries"
	// HeaderReplayOf is on a dead letter set aside again after a replay: the sequence of the dead
	// letter whose replay failed.
	HeaderReplayOf = "Grantline-Dlq-Replay-Of"
)

// Headers of the operator's records in GRANTLINE_DLQ (a replay request, a discard), besides the
// origin headers copied from the dead letter they are about.
const (
	// HeaderEntry is the sequence of the dead letter in GRANTLINE_DLQ.
	HeaderEntry = "Grantline-Dlq-Entry"
	// HeaderActor is who asked for the replay or the discard.
	HeaderActor = "Grantline-Dlq-Actor"
	// HeaderNote is why.
	HeaderNote = "Grantline-Dlq-Note"
)

// Spec configures one durable consumer.
type Spec struct {
	Stream         string
	Durable        string
	FilterSubjects []string
	// MaxDeliveries bounds the attempts before dead-lettering; defaults to 5. A failure marked
	// Unavailable never counts against it: such a message is held until its dependency is back.
	MaxDeliveries int
	// AckWait is how long the server waits without news of a delivery before it delivers it again;
	// defaults to DefaultAckWait. The runner keeps every delivery it holds in progress (a heartbeat a
	// third of AckWait apart), so AckWait bounds how long what a replica that died held waits, not how
	// long a handler may take.
	AckWait time.Duration
	// HandleTimeout bounds how long one handler run is kept in progress; past it the run is taken as
	// hung and the server delivers the message again after AckWait, as for a crash. Defaults to
	// DefaultHandleTimeout. Waiting (for a slot, in a request's line, in a batch, or while a dependency
	// is down) does not count.
	HandleTimeout time.Duration
	// Concurrency is how many handlers run at once in this replica, each on a different request
	// (RequestKey); defaults to DefaultConcurrency. The consumer lets twice as many deliveries be
	// unacknowledged (MaxAckPending), so the next ones are already fetched when a handler finishes.
	Concurrency int
	// Backoff is the redelivery delay after a failure; defaults to 250ms doubling up to 30s.
	Backoff func(delivered int) time.Duration
	// BatchSize bounds the deliveries one batch of RunBatch holds; defaults to DefaultBatchSize. The
	// consumer fetches that many at a time (at least DefaultConcurrency) and lets twice as many be
	// unacknowledged. Run ignores it.
	BatchSize int
	// ShutdownGrace is how long in-flight handlers may finish after the context ends; defaults to 10s.
	ShutdownGrace time.Duration
	// SetAside, if set, runs before a message is dead-lettered, whatever the reason (a permanent
	// error, the last failed delivery, a handler that never answered): it undoes what earlier
	// attempts left behind for a message that will not be handled again (policy releases an
	// emergency's reservation). Like a failed dead-letter copy, an error redelivers the message
	// later, so the message is never set aside with its side effects still in place.
	SetAside Handler
	// Stall, when set, tracks the messages held because a dependency is unavailable, for readiness.
	Stall *Stall
	// Meter receives the consumer's metrics (see newMetrics); nil records none.
	Meter metric.MeterProvider
}

// Defaults of a Spec's AckWait and HandleTimeout.
const (
	DefaultAckWait       = 5 * time.Second
	DefaultHandleTimeout = 30 * time.Second
)

// DefaultConcurrency is a Spec's Concurrency when it sets none. A reaction spends most of its time
// waiting on NATS round trips, and requests are independent, so many run at once.
const DefaultConcurrency = 64

func (s *Spec) defaults() error {
	if s.Stream == "" || s.Durable == "" || len(s.FilterSubjects) == 0 {
		return errors.New("consumer spec needs a stream, a durable name and filter subjects")
	}
	if s.MaxDeliveries <= 0 {
		s.MaxDeliveries = 5
	}
	if s.AckWait <= 0 {
		s.AckWait = DefaultAckWait
	}
	if s.HandleTimeout <= 0 {
		s.HandleTimeout = DefaultHandleTimeout
	}
	if s.Concurrency <= 0 {
		s.Concurrency = DefaultConcurrency
	}
	if s.Backoff == nil {
		s.Backoff = ExponentialBackoff(250*time.Millisecond, 30*time.Second)
	}
	if s.ShutdownGrace <= 0 {
		s.ShutdownGrace = 10 * time.Second
	}
	if s.Meter == nil {
		s.Meter = noop.NewMeterProvider()
	}
	return nil
}

// Handler handles one delivery. Its error goes through Dispose; wrap it with Permanent or RetryAfter to
// steer that. Handlers must be idempotent: a message can be delivered more than once.
type Handler func(ctx context.Context, msg jetstream.Msg) error

// Run creates or updates the durable consumer and handles its messages until ctx ends, then stops
// fetching, lets in-flight handlers finish within the grace period, hands back what was fetched but not
// started, and returns. Beside it, it consumes the operator's replay requests for the durable
// (topology.ReplayConsumer): each hands the original message, read from its stream at its sequence,
// to the same handler. It returns an error only if the consumers cannot be set up or consumed.
//
// Deliveries of one request (RequestKey) are handled one at a time, in delivery order; a handler that
// runs past HandleTimeout therefore holds its request's later deliveries, including its own
// redelivery, until it returns.
func Run(ctx context.Context, js jetstream.JetStream, spec Spec, h Handler, log *slog.Logger) error {
	if err := spec.defaults(); err != nil {
		return err
	}
	r := &runner{js: js, spec: spec, handle: h, log: log.With("consumer", spec.Durable)}
	return r.consume(ctx, spec.Concurrency, func(handlerCtx context.Context) dispatcher {
		return newKeyed(spec.Concurrency, func(msg jetstream.Msg) Action { return r.deliver(handlerCtx, msg) }, r.handBack)
	})
}

// dispatcher takes the deliveries from the consume callback, which calls dispatch in delivery order,
// to the handlers.
type dispatcher interface {
	dispatch(msg jetstream.Msg)
	// stop starts nothing more and hands back what was fetched but not started.
	stop()
	// wait returns once no handler runs.
	wait()
}

// consume creates or updates the durable consumer, fetching window deliveries at a time with up to
// twice that unacknowledged, and its replay consumer, feeds both to the dispatcher made for the
// handlers' context until ctx ends, keeping what it holds in progress (holding), and then shuts down
// in order: stop fetching, hand back what waits, let running handlers finish within the grace period,
// then end their context and wait for them.
func (r *runner) consume(ctx context.Context, window int, newDispatcher func(handlerCtx context.Context) dispatcher) error {
	spec := r.spec
	r.stopping = ctx.Done()
	// MaxDeliver stays unlimited on the server: the runner itself dead-letters after MaxDeliveries, so a
	// message whose handler crashed the process every time is set aside with a reason instead of being
	// dropped by the server without a trace.
	cons, err := r.js.CreateOrUpdateConsumer(ctx, spec.Stream, jetstream.ConsumerConfig{
		Durable: spec.Durable, FilterSubjects: spec.FilterSubjects, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: spec.AckWait, MaxDeliver: -1, MaxAckPending: 2 * window,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("consumer %s: %w", spec.Durable, err)
	}
	if r.metrics, err = newMetrics(spec.Meter, spec.Durable, cons); err != nil {
		return fmt.Errorf("consumer %s: metrics: %w", spec.Durable, err)
	}
	defer r.metrics.close()
	handlerCtx, stopHandlers := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHandlers()

	r.holding = newHolding(spec.AckWait, spec.HandleTimeout, r.log)
	stopBeating, beating := make(chan struct{}), make(chan struct{})
	go func() { r.holding.beat(stopBeating); close(beating) }()
	// The heartbeats go on until no handler runs: what is held is held until settled.
	defer func() { close(stopBeating); <-beating }()
	d := newDispatcher(handlerCtx)
	fed := make(chan struct{})
	go func() { r.holding.feed(d.dispatch); close(fed) }()
	// shutDown, once d is stopped and nothing more is taken, hands back what waits and waits for the
	// handlers, ending their context if they run past the grace period.
	shutDown := func() {
		r.holding.close()
		finished := make(chan struct{})
		go func() { <-fed; d.wait(); close(finished) }()
		select {
		case <-finished:
		case <-time.After(spec.ShutdownGrace):
			stopHandlers()
			<-finished
		}
	}
	// A replayed original goes through the same dispatcher, in its request's line like any delivery.
	replayCC, err := Replays(ctx, r.js, spec.Stream, spec.Durable, spec.AckWait, spec.Backoff, r.log, r.holding.take)
	if err != nil {
		d.stop()
		shutDown()
		return err
	}
	cc, err := cons.Consume(r.holding.take, jetstream.PullMaxMessages(window), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		r.log.Warn("consume", telemetry.KeyError, err.Error())
	}))
	if err != nil {
		d.stop()
		replayCC.Stop()
		<-replayCC.Closed()
		shutDown()
		return fmt.Errorf("consumer %s: consume: %w", spec.Durable, err)
	}

	<-ctx.Done()
	d.stop()
	cc.Stop()
	replayCC.Stop()
	<-cc.Closed()
	<-replayCC.Closed()
	shutDown()
	return nil
}

type runner struct {
	js     jetstream.JetStream
	spec   Spec
	handle Handler
	log    *slog.Logger
	// stopping closes when Run's context ends: a held message is handed back then, not waited on.
	stopping <-chan struct{}
	// metrics and holding are set up with the consumer (consume).
	metrics *metrics
	holding *holding
}

// deliver runs the handler for one message (from the durable, or an original an operator replays),
// carries out the disposition and returns its action.
func (r *runner) deliver(ctx context.Context, msg jetstream.Msg) Action {
	meta, err := msg.Metadata()
	if err != nil {
		r.log.Error("message without metadata", telemetry.KeyError, err.Error())
		_ = msg.Term()
		return DeadLetter
	}
	delivered := int(meta.NumDelivered)
	// The span continues the trace of whatever stored the message (an append's traceparent), so one
	// request's path reads as one trace across the services.
	ctx, span := telemetry.Tracer("pkg/consumer").Start(telemetry.Extract(ctx, msg.Headers()), r.spec.Durable+" process",
		trace.WithSpanKind(trace.SpanKindConsumer))
	defer span.End()
	if span.IsRecording() {
		span.SetAttributes(attribute.String("messaging.system", "nats"), attribute.String("messaging.consumer.group.name", r.spec.Durable),
			attribute.String("messaging.destination.name", msg.Subject()), attribute.Int("messaging.nats.delivered", delivered))
	}
	log := r.log.With("subject", msg.Subject(), "stream_seq", meta.Sequence.Stream, "delivered", delivered)

	var d Disposition
	if delivered > r.spec.MaxDeliveries {
		// Earlier deliveries never came back with an answer: the process died or the handler hung past
		// HandleTimeout.
		d = Disposition{Action: DeadLetter, Reason: fmt.Sprintf("no answer after %d deliveries (process died or handler exceeded its timeout)", delivered-1)}
	} else {
		start := time.Now()
		d = r.handleHolding(ctx, msg, meta.Sequence.Stream, delivered, log)
		r.metrics.handled(ctx, time.Since(start))
	}
	r.metrics.delivered(ctx, delivered, d.Action)

	span.SetAttributes(attribute.String("grantline.disposition", d.Action.String()))
	if d.Action != Ack {
		span.SetStatus(codes.Error, d.Reason)
	}
	switch d.Action {
	case Ack:
		err = msg.Ack()
	case Retry:
		log.Warn("retry", "delay", d.Delay.String(), telemetry.KeyError, d.Reason)
		err = msg.NakWithDelay(d.Delay)
	case DeadLetter:
		err = r.setAside(ctx, msg)
		if err == nil {
			err = r.deadLetter(ctx, msg, meta, d.Reason)
		}
		if err != nil {
			// Never drop it: if the dead-letter copy failed, let the server deliver it again.
			log.Error("dead-letter failed; will redeliver", telemetry.KeyError, err.Error())
			err = msg.NakWithDelay(r.spec.Backoff(delivered))
			break
		}
		log.Error("dead-lettered", "reason", d.Reason)
		err = msg.TermWithReason(d.Reason)
	}
	if err != nil {
		log.Warn("settle message", "action", d.Action.String(), telemetry.KeyError, err.Error())
	}
	return d.Action
}

// handBack returns a delivery fetched but not started when stopping began, for another replica (or
// this one's next start) to handle at once, as Dispose does for a handler interrupted by shutdown.
func (r *runner) handBack(msg jetstream.Msg) {
	if err := msg.Nak(); err != nil {
		r.log.Warn("hand back message", "subject", msg.Subject(), telemetry.KeyError, err.Error())
	}
}

// setAside runs the spec's SetAside, if any, panics included as errors.
func (r *runner) setAside(ctx context.Context, msg jetstream.Msg) (err error) {
	if r.spec.SetAside == nil {
		return nil
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("set-aside panic: %v", p)
		}
	}()
	if err := r.spec.SetAside(ctx, msg); err != nil {
		return fmt.Errorf("before setting aside: %w", err)
	}
	return nil
}

// handleHolding runs the handler and returns its disposition; while that is Hold it keeps the message
// (kept in progress like any it holds, so the server does not hand it to anyone else) and runs the
// handler again after the delay. A stop while holding hands the message back at once.
func (r *runner) handleHolding(ctx context.Context, msg jetstream.Msg, seq uint64, delivered int, log *slog.Logger) Disposition {
	defer r.spec.Stall.Release(seq)
	for attempt := delivered; ; attempt++ {
		r.holding.running(true, msg)
		err := r.safeHandle(ctx, msg)
		r.holding.running(false, msg)
		d := Dispose(err, attempt, r.spec.MaxDeliveries, r.spec.Backoff)
		if d.Action != Hold {
			return d
		}
		r.spec.Stall.Hold(seq, d.Reason)
		log.Warn("hold", "attempt", attempt, "delay", d.Delay.String(), telemetry.KeyError, d.Reason)
		if !r.wait(ctx, d.Delay) {
			return Disposition{Action: Retry, Reason: "shutting down"}
		}
	}
}

// wait waits d, and reports false if the runner stops first.
func (r *runner) wait(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-r.stopping:
		return false
	case <-ctx.Done():
		return false
	}
}

// safeHandle turns a handler panic into an error, so one bad message cannot take the replica down.
func (r *runner) safeHandle(ctx context.Context, msg jetstream.Msg) error {
	return unpanic(func() error { return r.handle(ctx, msg) })
}

// unpanic runs f and returns its error, or its panic as an error.
func unpanic(f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panic: %v", p)
		}
	}()
	return f()
}

// deadLetter copies msg to grantline.dlq.<durable> with the reason and where it came from. The message
// ID makes a repeated attempt for the same delivery store one copy; a replay that fails again is a
// delivery of its own, set aside as a new dead letter that names the one replayed.
func (r *runner) deadLetter(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata, reason string) error {
	dl := nats.NewMsg(topology.DeadLetter(r.spec.Durable))
	dl.Data = msg.Data()
	for k, vs := range msg.Headers() {
		// The server's own headers (Nats-Msg-Id, Nats-Expected-Stream on stored events, the scheduler's
		// on fired timers) would make the server refuse or misread the copy; only ours travel.
		if strings.HasPrefix(k, "Nats-") {
			continue
		}
		for _, v := range vs {
			dl.Header.Add(k, v)
		}
	}
	dl.Header.Set(HeaderReason, reason)
	dl.Header.Set(HeaderStream, meta.Stream)
	dl.Header.Set(HeaderSeq, strconv.FormatUint(meta.Sequence.Stream, 10))
	dl.Header.Set(HeaderSubject, msg.Subject())
	dl.Header.Set(HeaderConsumer, r.spec.Durable)
	dl.Header.Set(HeaderDeliveries, strconv.FormatUint(meta.NumDelivered, 10))
	id := fmt.Sprintf("dlq:%s:%s:%d", r.spec.Durable, meta.Stream, meta.Sequence.Stream)
	if entry, ok := ReplayOf(msg); ok {
		dl.Header.Set(HeaderReplayOf, entry)
		id += ":replay:" + entry
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := r.js.PublishMsg(ctx, dl, jetstream.WithMsgID(id))
	return err
}
