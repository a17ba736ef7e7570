package targets

import (
	"context"

	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/grantline/grantline/pkg/connector"
)

// Errors counts failed connector calls, by connector, operation (grant, revoke) and error class
// (connector.ClassOf): grantline_connector_errors_total. Its zero value counts nothing.
type Errors struct{ counter metric.Int64Counter }

// NewErrors returns the counter in meter (none when meter is nil).
func NewErrors(meter metric.MeterProvider) Errors {
	if meter == nil {
		return Errors{}
	}
	c, err := meter.Meter("grantline/connector").Int64Counter("grantline_connector_errors",
		metric.WithDescription("failed connector calls, by connector, operation and error class"))
	if err != nil {
		return Errors{}
	}
	return Errors{c}
}

// Record counts err, if any, as a failed operation of connector name.
func (e Errors) Record(ctx context.Context, name, operation string, err error) {
	if err == nil || e.counter == nil {
		return
	}
	e.counter.Add(ctx, 1, metric.WithAttributes(attribute.String("connector", name), attribute.String("operation", operation),
		attribute.String("class", connector.ClassOf(err))))
}

// breakerGauge records each target's circuit breaker state (the PostgreSQL target's, each webhook
// target's) as grantline_circuit_state{target}: 0 closed, 1 half-open, 2 open (gobreaker's order).
func breakerGauge(meter metric.MeterProvider) metric.Int64Gauge {
	if meter == nil {
		return noop.Int64Gauge{}
	}
	g, err := meter.Meter("grantline/connector").Int64Gauge("grantline_circuit_state",
		metric.WithDescription("a target's circuit breaker: 0 closed, 1 half-open, 2 open"))
	if err != nil {
		return noop.Int64Gauge{}
	}
	return g
}

func recordBreaker(g metric.Int64Gauge, target string, state gobreaker.State) {
	g.Record(context.Background(), int64(state), metric.WithAttributes(attribute.String("target", target)))
}
