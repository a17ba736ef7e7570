package consumer

import (
	"context"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/grantline/grantline/pkg/telemetry"
)

// BatchHandler handles deliveries together, as one unit of work (a projection's one transaction):
// nil means every one of them is done and they are acknowledged together. An error says only that the
// unit failed: the runner then hands the deliveries to the handler again one at a time, in delivery
// order, and each one's error goes through Dispose on its own, so one delivery that cannot be handled
// is retried or dead-lettered alone while the others are applied. Like a Handler it must be
// idempotent, and a batch that failed may have been applied.
type BatchHandler func(ctx context.Context, msgs []jetstream.Msg) error

// DefaultBatchSize is a Spec's BatchSize when it sets none.
const DefaultBatchSize = 256

// RunBatch is Run for a BatchHandler: one batch at a time, of up to spec.BatchSize deliveries already
// fetched (a batch does not wait to fill). A delivery that was delivered before (a retry, or one whose
// batch never answered) is handled alone, so a failing delivery fails no batch twice. Shutdown is
// Run's: the batch in flight finishes within the grace period, the rest is handed back.
func RunBatch(ctx context.Context, js jetstream.JetStream, spec Spec, h BatchHandler, log *slog.Logger) error {
	if err := spec.defaults(); err != nil {
		return err
	}
	if spec.BatchSize <= 0 {
		spec.BatchSize = DefaultBatchSize
	}
	alone := func(ctx context.Context, msg jetstream.Msg) error { return h(ctx, []jetstream.Msg{msg}) }
	r := &runner{js: js, spec: spec, handle: alone, log: log.With("consumer", spec.Durable)}
	// Fetching no fewer than DefaultConcurrency keeps small batches from costing a pull round trip each.
	return r.consume(ctx, max(spec.BatchSize, DefaultConcurrency), func(handlerCtx context.Context) dispatcher {
		b := &batcher{r: r, together: func(msgs []jetstream.Msg) error {
			ctx, span := r.batchSpan(handlerCtx, msgs)
			defer span.End()
			r.holding.running(true, msgs...)
			defer r.holding.running(false, msgs...)
			err := unpanic(func() error { return h(ctx, msgs) })
			if err != nil {
				span.SetStatus(codes.Error, err.Error())
			}
			return err
		},
			alone: func(msg jetstream.Msg) { r.deliver(handlerCtx, msg) },
			size:  spec.BatchSize, waiting: make(chan jetstream.Msg, spec.BatchSize),
			stopping: make(chan struct{}), done: make(chan struct{})}
		go b.loop()
		return b
	})
}

// batchSpan starts the span of one batch. A batch belongs to as many traces as it holds requests, so
// its span starts a trace of its own, linked to the trace each delivery carries.
func (r *runner) batchSpan(ctx context.Context, msgs []jetstream.Msg) (context.Context, trace.Span) {
	ctx, span := telemetry.Tracer("pkg/consumer").Start(ctx, r.spec.Durable+" process batch", trace.WithNewRoot(),
		trace.WithSpanKind(trace.SpanKindConsumer))
	if span.IsRecording() {
		span.SetAttributes(attribute.String("messaging.consumer.group.name", r.spec.Durable), attribute.Int("messaging.batch.message_count", len(msgs)))
		for _, msg := range msgs {
			if sc := trace.SpanContextFromContext(telemetry.Extract(ctx, msg.Headers())); sc.IsValid() {
				span.AddLink(trace.Link{SpanContext: sc})
			}
		}
	}
	return ctx, span
}

// batcher handles what the consume callback fetched in batches, one batch at a time.
type batcher struct {
	r *runner
	// together runs the handler over a batch; alone handles one delivery and settles it.
	together func([]jetstream.Msg) error
	alone    func(jetstream.Msg)
	size     int
	// waiting holds what was fetched and not yet taken into a batch.
	waiting  chan jetstream.Msg
	stopping chan struct{}
	// done is closed once the loop has returned.
	done chan struct{}
}

func (b *batcher) dispatch(msg jetstream.Msg) {
	select {
	case <-b.stopping:
		b.r.handBack(msg)
		return
	default:
	}
	select {
	case b.waiting <- msg:
	case <-b.stopping:
		b.r.handBack(msg)
	}
}

func (b *batcher) stop() { close(b.stopping) }

func (b *batcher) wait() { <-b.done }

func (b *batcher) loop() {
	defer close(b.done)
	for {
		select {
		case <-b.stopping:
			for {
				select {
				case msg := <-b.waiting:
					b.r.handBack(msg)
				default:
					return
				}
			}
		case msg := <-b.waiting:
			batch := []jetstream.Msg{msg}
		fill:
			for len(batch) < b.size {
				select {
				case msg := <-b.waiting:
					batch = append(batch, msg)
				default:
					break fill
				}
			}
			b.handle(batch)
		}
	}
}

// handle handles batch in delivery order: its first deliveries together, each redelivery (or
// operator's replay) alone in its place.
func (b *batcher) handle(batch []jetstream.Msg) {
	var first []jetstream.Msg
	for _, msg := range batch {
		_, replay := ReplayOf(msg)
		if meta, err := msg.Metadata(); err == nil && meta.NumDelivered == 1 && !replay {
			first = append(first, msg)
			continue
		}
		b.handleTogether(first)
		first = nil
		b.alone(msg)
	}
	b.handleTogether(first)
}

// handleTogether runs the handler over msgs at once and acknowledges them all, or, if it fails, hands
// them to it again one at a time.
func (b *batcher) handleTogether(msgs []jetstream.Msg) {
	switch len(msgs) {
	case 0:
		return
	case 1:
		b.alone(msgs[0])
		return
	}
	if err := b.together(msgs); err != nil {
		b.r.log.Warn("batch failed; handling its deliveries one at a time", "deliveries", len(msgs), telemetry.KeyError, err.Error())
		for _, msg := range msgs {
			b.alone(msg)
		}
		return
	}
	for _, msg := range msgs {
		b.r.metrics.delivered(context.Background(), 1, Ack)
		if err := msg.Ack(); err != nil {
			b.r.log.Warn("settle message", "action", Ack.String(), "subject", msg.Subject(), telemetry.KeyError, err.Error())
		}
	}
}
