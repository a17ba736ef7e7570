package natsjs_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/natstest"
	"github.com/grantline/grantline/services/query/natsjs"
	"github.com/grantline/grantline/services/query/projection"
)

// BenchmarkFollowServed is the raw ordered-consumer read a rebuild is measured against: the whole
// evidence stream of the server at GRANTLINE_BENCH_NATS_URL (a generated history served by grantline
// bench history --serve, or nats-server on its store) followed from sequence 1 to its last event with
// nothing else done, in events per second. It is skipped without that variable: it measures a store
// made beforehand, at a scale no test makes.
func BenchmarkFollowServed(b *testing.B) {
	url := os.Getenv("GRANTLINE_BENCH_NATS_URL")
	if url == "" {
		b.Skip("GRANTLINE_BENCH_NATS_URL names no served store")
	}
	ctx := context.Background()
	_, js := natstest.Connect(b, url)
	r := &natsjs.Reader{JS: js}
	last, err := r.LastSeq(ctx)
	if err != nil || last == 0 {
		b.Fatalf("stream's last sequence %d: %v", last, err)
	}
	var took time.Duration
	for b.Loop() {
		start := time.Now()
		fctx, cancel := context.WithCancel(ctx)
		out := make(chan projection.Delivery, 256)
		done := make(chan error, 1)
		go func() { done <- r.Follow(fctx, 1, out) }()
	read:
		for {
			select {
			case d := <-out:
				if d.Seq >= last {
					break read
				}
			case err := <-done:
				b.Fatalf("follow: %v", err)
			}
		}
		took += time.Since(start)
		cancel()
		<-done
	}
	b.ReportMetric(float64(last)*float64(b.N)/took.Seconds(), "events/s")
	b.ReportMetric(float64(last), "stream_events")
}
