package connector

import (
	"cmp"
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/telemetry"
)

// Traced returns c with each call that reaches the target (Grant, Revoke, RevokeBatch, Inspect, Holdings) made
// in a span of its own, "<name> grant" and so on, marked failed with the error's class when it
// fails. It answers everything else as c does: it is an Inventory only if c is one, and TargetRef,
// IssuesCredential and the credential's username are c's.
func Traced(name string, c Connector) Connector {
	t := traced{wrapper{c}, name}
	if _, ok := c.(Inventory); ok {
		return tracedInventory{t}
	}
	return t
}

type traced struct {
	wrapper
	name string
}

type tracedInventory struct{ traced }

var _ Inventory = tracedInventory{}

func (t traced) Grant(ctx context.Context, g Grant) (events.Observed, error) {
	return t.call(ctx, "grant", g.ID, func(ctx context.Context) (events.Observed, error) { return t.inner.Grant(ctx, g) })
}

func (t traced) Revoke(ctx context.Context, g Grant) (events.Observed, error) {
	return t.call(ctx, "revoke", g.ID, func(ctx context.Context) (events.Observed, error) { return t.inner.Revoke(ctx, g) })
}

// RevokeBatch is one span, "<name> revoke-batch", with the number of grants and of those that failed,
// marked failed with the first failure's class.
func (t traced) RevokeBatch(ctx context.Context, gs []Grant) []Revocation {
	ctx, span := t.start(ctx, "revoke-batch", "")
	defer span.End()
	out := RevokeAll(ctx, t.inner, gs)
	var first error
	failures := 0
	for _, r := range out {
		if r.Err != nil {
			failures++
			first = cmp.Or(first, r.Err)
		}
	}
	if span.IsRecording() {
		span.SetAttributes(attribute.Int("grantline.grants", len(gs)), attribute.Int("grantline.failures", failures))
	}
	failed(span, first)
	return out
}

func (t traced) Inspect(ctx context.Context, g Grant) (events.Observed, error) {
	return t.call(ctx, "inspect", g.ID, func(ctx context.Context) (events.Observed, error) { return t.inner.Inspect(ctx, g) })
}

func (t tracedInventory) Holdings(ctx context.Context) ([]Holding, error) {
	ctx, span := t.start(ctx, "holdings", "")
	defer span.End()
	hs, err := t.inner.(Inventory).Holdings(ctx)
	failed(span, err)
	return hs, err
}

// call runs op, one call about grant id, in its span.
func (t traced) call(ctx context.Context, op, id string, f func(context.Context) (events.Observed, error)) (events.Observed, error) {
	ctx, span := t.start(ctx, op, id)
	defer span.End()
	obs, err := f(ctx)
	if err == nil && span.IsRecording() {
		span.SetAttributes(attribute.Bool("grantline.observed.present", obs.Present))
	}
	failed(span, err)
	return obs, err
}

// start starts the span of operation op, about grant id unless it is empty. Its attributes are built
// only for a span that records, so a call costs next to nothing while tracing is off.
func (t traced) start(ctx context.Context, op, id string) (context.Context, trace.Span) {
	ctx, span := telemetry.Tracer("pkg/connector").Start(ctx, t.name+" "+op, trace.WithSpanKind(trace.SpanKindClient))
	if span.IsRecording() {
		span.SetAttributes(attribute.String("grantline.connector", t.name))
		if id != "" {
			span.SetAttributes(attribute.String(telemetry.KeyRequestID, id))
		}
	}
	return ctx, span
}

// failed marks span failed with err's class, if err is not nil.
func failed(span trace.Span, err error) {
	if err != nil {
		span.SetAttributes(attribute.String("error.type", ClassOf(err)), attribute.Bool("grantline.permanent", IsPermanent(err)))
		span.SetStatus(codes.Error, err.Error())
	}
}
