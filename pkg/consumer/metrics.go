package consumer

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/grantline/grantline/pkg/telemetry"
)

// metrics are one durable consumer's, each labelled with its durable name. In Prometheus:
//
//	grantline_consumer_deliveries_total{durable,outcome}   deliveries settled: ack, retry, dead-letter
//	grantline_consumer_redeliveries_total{durable}         deliveries after the first of a message
//	grantline_consumer_handle_duration_seconds{durable}    handler time per delivery
//	grantline_consumer_pending{durable}                    messages not yet delivered (the lag)
//	grantline_consumer_ack_pending{durable}                delivered, not yet acknowledged
//
// The two gauges are read from the server's consumer info at each scrape, so a consumer that stopped
// fetching still shows its lag growing.
type metrics struct {
	durable      metric.MeasurementOption
	deliveries   metric.Int64Counter
	redeliveries metric.Int64Counter
	duration     metric.Float64Histogram
	registration metric.Registration
}

func newMetrics(provider metric.MeterProvider, durable string, cons jetstream.Consumer) (*metrics, error) {
	m := provider.Meter("grantline/consumer")
	mt := &metrics{durable: metric.WithAttributes(attribute.String("durable", durable))}
	var err error
	if mt.deliveries, err = m.Int64Counter("grantline_consumer_deliveries",
		metric.WithDescription("deliveries settled, by durable consumer and outcome (ack, retry, dead-letter)")); err != nil {
		return nil, err
	}
	if mt.redeliveries, err = m.Int64Counter("grantline_consumer_redeliveries",
		metric.WithDescription("deliveries of a message after its first, by durable consumer")); err != nil {
		return nil, err
	}
	mt.duration = telemetry.LatencyHistogram(provider, "grantline/consumer", "grantline_consumer_handle_duration",
		"time a handler took for one delivery, by durable consumer")
	pending, err := m.Int64ObservableGauge("grantline_consumer_pending",
		metric.WithDescription("messages the durable consumer has not delivered yet: its lag"))
	if err != nil {
		return nil, err
	}
	ackPending, err := m.Int64ObservableGauge("grantline_consumer_ack_pending",
		metric.WithDescription("messages delivered to the durable consumer and not yet acknowledged"))
	if err != nil {
		return nil, err
	}
	mt.registration, err = m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		info, err := cons.Info(ctx)
		if err != nil {
			// A scrape without the gauges beats a failed one; the broker's own alerts cover it.
			return nil
		}
		o.ObserveInt64(pending, int64(info.NumPending), mt.durable)
		o.ObserveInt64(ackPending, int64(info.NumAckPending), mt.durable)
		return nil
	}, pending, ackPending)
	if err != nil {
		return nil, err
	}
	return mt, nil
}

func (m *metrics) handled(ctx context.Context, took time.Duration) {
	m.duration.Record(ctx, took.Seconds(), m.durable)
}

func (m *metrics) delivered(ctx context.Context, delivered int, a Action) {
	m.deliveries.Add(ctx, 1, m.durable, metric.WithAttributes(attribute.String("outcome", a.String())))
	if delivered > 1 {
		m.redeliveries.Add(ctx, 1, m.durable)
	}
}

func (m *metrics) close() { _ = m.registration.Unregister() }
