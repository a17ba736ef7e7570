package telemetry

import (
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// latencyBuckets are the bucket boundaries, in seconds, of every latency histogram: from the few
// milliseconds a decision takes to the hour a revocation may wait for a target that is down, so that
// one dashboard reads them all and an alert's threshold falls on a boundary (1 s, 5 s, 60 s).
func latencyBuckets() metric.HistogramOption {
	return metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
}

// LatencyHistogram is the histogram name (in seconds, with latencyBuckets) of scope in provider. A nil
// provider, or an instrument the SDK refuses, gives one that records nothing: a metric must never stop
// the work it measures.
func LatencyHistogram(provider metric.MeterProvider, scope, name, description string) metric.Float64Histogram {
	if provider == nil {
		return noop.Float64Histogram{}
	}
	h, err := provider.Meter(scope).Float64Histogram(name, metric.WithUnit("s"), metric.WithDescription(description), latencyBuckets())
	if err != nil {
		return noop.Float64Histogram{}
	}
	return h
}
