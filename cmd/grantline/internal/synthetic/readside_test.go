package synthetic

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/natstest"
	"github.com/grantline/grantline/pkg/pgtest"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/services/query/natsjs"
	"github.com/grantline/grantline/services/query/postgres"
	"github.com/grantline/grantline/services/query/projection"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// TestRebuildEqualsLiveReadSide: a read side that followed a randomized generated history as it was
// written (live, holding so little in memory that requests are restored from their stored state all the
// time) holds exactly the rows of a rebuild of the same stream from sequence 1. The test lives beside
// the generator because the generator is the CLI's; GRANTLINE_SCALE_REQUESTS sets the history's size
// (default 2000 requests, about 10,500 events).
func TestRebuildEqualsLiveReadSide(t *testing.T) {
	requests := 2000
	if v := os.Getenv("GRANTLINE_SCALE_REQUESTS"); v != "" {
		var err error
		if requests, err = strconv.Atoi(v); err != nil || requests < 1 {
			t.Fatalf("GRANTLINE_SCALE_REQUESTS=%q is not a number of requests", v)
		}
	}
	ctx := context.Background()
	ns := natstest.RunServer(t)
	_, js := natstest.Connect(t, ns.ClientURL())
	if err := eventstore.Provision(ctx, js, eventstore.DefaultSettings); err != nil {
		t.Fatal(err)
	}
	signers, all := newSigners(t)
	trust, err := events.NewVerifier(events.NewTrustFile(time.Now().Add(-time.Minute), all...))
	if err != nil {
		t.Fatal(err)
	}
	pool := pgtest.NewPool(t)
	store := func(schema string) *postgres.Store {
		if err := postgres.Migrate(ctx, pool, schema); err != nil {
			t.Fatal(err)
		}
		st, err := postgres.NewStore(pool, schema)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	reader := &natsjs.Reader{JS: js}

	live := store("live")
	lctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		p := &projection.Projector{Source: reader, Sink: live, Verifier: trust, Log: log, MaxCacheBytes: 64 << 10}
		done <- p.Run(lctx)
	}()
	t.Cleanup(func() { stop(); <-done })

	seed := uint64(time.Now().UnixNano())
	t.Logf("history seed %d", seed)
	res, err := Write(ctx, js, Config{Requests: requests, Signers: signers, End: time.Now().Add(-24 * time.Hour), Seed: seed, InFlight: 256})
	if err != nil {
		t.Fatal(err)
	}
	last, err := reader.LastSeq(ctx)
	if err != nil || last != uint64(res.Events) {
		t.Fatalf("stream holds %d events (%v), wrote %d", last, err, res.Events)
	}
	poll.Until(t, 5*time.Minute, "the live read side to reach the stream's end", func() bool {
		cp, err := live.Checkpoint(ctx)
		return err == nil && cp >= last
	})

	rebuilt := store("rebuilt")
	p := &projection.Projector{Source: reader, Sink: rebuilt, Verifier: trust, Log: log}
	if err := p.CatchUp(ctx, last); err != nil {
		t.Fatal(err)
	}
	diffs, err := postgres.Compare(ctx, pool, "live", "rebuilt")
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) > 0 {
		t.Fatalf("the live read side differs from the rebuild:\n%s", strings.Join(diffs, "\n"))
	}
	var n, faults int
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM rebuilt.requests), (SELECT count(*) FROM rebuilt.faults)`).Scan(&n, &faults); err != nil {
		t.Fatal(err)
	}
	if n != requests || faults != 0 {
		t.Fatalf("the read side holds %d requests and %d faults, want %d and none", n, faults, requests)
	}
}
