package postgres_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/natsembed"
	"github.com/grantline/grantline/pkg/natstest"
	"github.com/grantline/grantline/pkg/pgtest"
	"github.com/grantline/grantline/services/query"
	"github.com/grantline/grantline/services/query/internal/querytest"
	"github.com/grantline/grantline/services/query/natsjs"
	"github.com/grantline/grantline/services/query/postgres"
	"github.com/grantline/grantline/services/query/projection"
)

// BenchmarkRebuild measures a rebuild — the whole stream projected from sequence 1 into a fresh
// schema — in events per second, beside three figures measured in the same run on the same events: the
// raw ordered-consumer read of the stream (read_events/s); that read with every event verified and
// folded onto its request's history but nothing written (verify_events/s), which is the least a
// rebuild must do; and the same rebuild writing one event per transaction (one_at_a_time_events/s,
// BatchSize 1), which is what batching saves (batch_speedup).
//
// The stream holds GRANTLINE_BENCH_EVENTS events (default 20000; 1000000 for the figures in
// docs/benchmarks.md), written once before timing by querytest.Bulk to a server without fsync on every
// write (reads do not depend on it).
func BenchmarkRebuild(b *testing.B) {
	ctx := context.Background()
	want := 20000
	if v := os.Getenv("GRANTLINE_BENCH_EVENTS"); v != "" {
		var err error
		if want, err = strconv.Atoi(v); err != nil || want < 5 {
			b.Fatalf("GRANTLINE_BENCH_EVENTS=%q is not a number of events", v)
		}
	}
	ns, err := natsembed.Start(natsembed.Options{Dir: b.TempDir(), Port: -1, LazySync: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	_, js := natstest.Connect(b, ns.ClientURL())
	if err := eventstore.Provision(ctx, js, eventstore.DefaultSettings); err != nil {
		b.Fatal(err)
	}
	signers := map[events.Service]*events.Signer{}
	var all []*events.Signer
	for _, svc := range events.Services {
		s, _ := events.GenerateSigner(svc, string(svc)+"-bench")
		signers[svc], all = s, append(all, s)
	}
	start := time.Now().Add(-24 * time.Hour)
	trust, err := events.NewVerifier(events.NewTrustFile(start.Add(-time.Hour), all...))
	if err != nil {
		b.Fatal(err)
	}
	n, err := querytest.Bulk(ctx, js, signers, start, want/5)
	if err != nil {
		b.Fatal(err)
	}
	reader := &natsjs.Reader{JS: js}
	last, err := reader.LastSeq(ctx)
	if err != nil || last != uint64(n) {
		b.Fatalf("stream holds %d events (%v), want %d", last, err, n)
	}
	pool, err := pgxpool.New(ctx, pgtest.New(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	log := slog.New(slog.NewTextHandler(b.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))

	var read, verify, rebuild, oneAtATime time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		read += timed(b, func() { readAll(b, reader, last) })
		verify += timed(b, func() { verifyAll(b, reader, trust, last) })
		single := freshStore(b, pool, fmt.Sprintf("one_at_a_time_%d", i))
		oneAtATime += timed(b, func() {
			p := &projection.Projector{Source: reader, Sink: single, Verifier: trust, Log: log, BatchSize: 1}
			if err := p.CatchUp(ctx, last); err != nil {
				b.Fatal(err)
			}
		})
		st := freshStore(b, pool, fmt.Sprintf("rebuild_%d", i))
		b.StartTimer()
		rebuild += timed(b, func() {
			p := &projection.Projector{Source: reader, Sink: st, Verifier: trust, Log: log}
			if err := p.CatchUp(ctx, last); err != nil {
				b.Fatal(err)
			}
		})
	}
	total := float64(n * b.N)
	b.ReportMetric(total/rebuild.Seconds(), "events/s")
	b.ReportMetric(total/read.Seconds(), "read_events/s")
	b.ReportMetric(total/verify.Seconds(), "verify_events/s")
	b.ReportMetric(read.Seconds()/rebuild.Seconds(), "ratio_to_read")
	b.ReportMetric(total/oneAtATime.Seconds(), "one_at_a_time_events/s")
	b.ReportMetric(oneAtATime.Seconds()/rebuild.Seconds(), "batch_speedup")
	b.ReportMetric(float64(n), "stream_events")
}

// freshStore migrates schema and returns its store.
func freshStore(b *testing.B, pool *pgxpool.Pool, schema string) *postgres.Store {
	b.Helper()
	if err := postgres.Migrate(context.Background(), pool, schema); err != nil {
		b.Fatal(err)
	}
	st, err := postgres.NewStore(pool, schema)
	if err != nil {
		b.Fatal(err)
	}
	return st
}

func timed(b *testing.B, f func()) time.Duration {
	b.Helper()
	t := time.Now()
	f()
	return time.Since(t)
}

// readAll follows the stream from 1 to last, as the projection's source does, doing nothing else.
func readAll(b *testing.B, r *natsjs.Reader, last uint64) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan projection.Delivery, 256)
	done := make(chan error, 1)
	go func() { done <- r.Follow(ctx, 1, out) }()
	for d := range out {
		if d.Seq >= last {
			cancel()
			<-done
			return
		}
	}
}

// verifyAll follows the stream from 1 to last and verifies and folds each event onto its request's
// history, as the projection does, without writing anything.
func verifyAll(b *testing.B, r *natsjs.Reader, trust *events.Verifier, last uint64) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan projection.Delivery, 256)
	done := make(chan error, 1)
	go func() { done <- r.Follow(ctx, 1, out) }()
	histories := map[string]*query.History{}
	for d := range out {
		id, _, _ := events.ParseNATSSubject(d.Subject)
		h := histories[id]
		if h == nil {
			h = query.NewHistory(trust, id)
			histories[id] = h
		}
		if pr := h.Add(d.Record); pr != nil {
			b.Fatalf("request %s: %v", id, pr)
		}
		if d.Seq >= last {
			cancel()
			<-done
			return
		}
	}
}
