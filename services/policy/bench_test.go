package policy_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/grantline/grantline/services/policy"
)

// constant is the baseline policy: a fixed answer, so its evaluation costs only what every evaluation
// costs (canonical input, OPA's query machinery, the shape check).
const constant = `package grantline

decision := {"outcome": "deny", "reasons": ["constant"], "stages": [], "stages_ordered": false,
	"effective_duration_seconds": 0, "approval_window_seconds": 0}
`

// BenchmarkEvaluate measures one evaluation of the demo policy (a payments-admin request: every deny
// rule checked, two stages built) and reports its p50 and p99, beside the p50 and p99 of the constant
// policy on the same input in the same run, and the ratio of the p50s: what the demo rules cost over
// the fixed cost of asking OPA at all.
func BenchmarkEvaluate(b *testing.B) {
	d := loadDemo(b)
	demo := loadEngine(b, demoBundle)
	dir := b.TempDir()
	writeFile(b, dir, "grantline.rego", constant)
	baseline := loadEngine(b, dir)
	in := d.input(ask{who: "alice", entitlement: "payments-admin", minutes: 60})
	ctx := context.Background()

	measure := func(e *policy.Engine) time.Duration {
		start := time.Now()
		if _, err := e.Evaluate(ctx, in); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	var lat []time.Duration
	for b.Loop() {
		lat = append(lat, measure(demo))
	}
	// The baseline runs as many evaluations (at least 200), after the timed loop so it does not count.
	base := make([]time.Duration, max(len(lat), 200))
	for i := range base {
		base[i] = measure(baseline)
	}
	p50, p99 := percentiles(lat)
	b50, b99 := percentiles(base)
	b.ReportMetric(float64(p50.Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(p99.Nanoseconds()), "p99-ns")
	b.ReportMetric(float64(b50.Nanoseconds()), "baseline-p50-ns")
	b.ReportMetric(float64(b99.Nanoseconds()), "baseline-p99-ns")
	b.ReportMetric(float64(p50)/float64(b50), "x-baseline-p50")
}

func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	s := slices.Clone(d)
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return at(0.50), at(0.99)
}
