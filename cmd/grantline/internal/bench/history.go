package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/grantline/grantline/cmd/grantline/internal/devmode"
	"github.com/grantline/grantline/cmd/grantline/internal/synthetic"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/natsembed"
	"github.com/grantline/grantline/pkg/topology"
)

// historyCommand is `grantline bench history`.
func historyCommand(stdout, stderr io.Writer) *cobra.Command {
	var (
		store, serve string
		requests     int
		seed         uint64
		interval     time.Duration
	)
	cmd := &cobra.Command{
		Use:   "history",
		Short: "Write a realistic, signed and chained history of N requests into a fresh store",
		Long: `Writes --requests requests into a fresh JetStream store under --store, laid out as grantline dev lays
out its data directory: the signing keys and trust file in keys/ (created if missing), the store in nats/.
Requests take every path (auto-approved, staged approvals, rejections, denials, emergencies with their
post-reviews, early revocations, failed fulfilments, failed revocation attempts then revoked), one
submitted every --interval, their events interleaved in time order, each accepted by the request
aggregate, signed by its service's key and chained before it is published. Every grant in it has ended,
so audit verify reports nothing. Publishes are asynchronous and the server does not fsync each write
(the store is a fixture, written once); it is flushed when the command ends.

With --serve the store stays served on that address afterwards until interrupted, for audit verify,
the read side or a benchmark to read.`,
		Example: `  grantline bench history --requests 100000 --store /tmp/history --serve 127.0.0.1:4333
  grantline audit verify --nats nats://127.0.0.1:4333 --trust /tmp/history/keys/trust.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return writeHistory(cmd.Context(), stdout, stderr, store, serve, synthetic.Config{Requests: requests, Seed: seed, Interval: interval})
		},
	}
	f := cmd.Flags()
	f.StringVar(&store, "store", "", "directory of the new store (required; its nats/ must hold no events)")
	f.IntVar(&requests, "requests", 10000, "requests in the history")
	f.Uint64Var(&seed, "seed", 1, "seed of the stories and people chosen (the same seed, the same stories for the same people; IDs, times and signatures differ)")
	f.DurationVar(&interval, "interval", 100*time.Millisecond, "time between two submissions in the history")
	f.StringVar(&serve, "serve", "", "host:port to serve the store on once it is written, until interrupted")
	_ = cmd.MarkFlagRequired("store")
	return cmd
}

func writeHistory(ctx context.Context, stdout, stderr io.Writer, store, serve string, cfg synthetic.Config) error {
	keys, err := devmode.EnsureKeys(filepath.Join(store, "keys"))
	if err != nil {
		return err
	}
	opts := natsembed.Options{Dir: filepath.Join(store, "nats"), Host: "127.0.0.1", Port: -1, LazySync: true}
	if serve != "" {
		host, port, err := net.SplitHostPort(serve)
		if err != nil {
			return fmt.Errorf("--serve: %w", err)
		}
		if opts.Host, opts.Port = host, 0; port != "" {
			if opts.Port, err = strconv.Atoi(port); err != nil {
				return fmt.Errorf("--serve: port %q: %w", port, err)
			}
		}
	}
	ns, err := natsembed.Start(opts)
	if err != nil {
		return err
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(8192))
	if err != nil {
		return err
	}
	if err := eventstore.Provision(ctx, js, eventstore.DefaultSettings); err != nil {
		return err
	}
	st, err := js.Stream(ctx, topology.EventsStream)
	if err != nil {
		return err
	}
	if n := st.CachedInfo().State.Msgs; n > 0 {
		return fmt.Errorf("%s already holds %d events: a history is written into a fresh store", opts.Dir, n)
	}
	cfg.Signers = keys.Signers
	cfg.End = time.Now().Add(-6 * time.Hour)
	began := time.Now()
	cfg.Progress = func(evs, reqs int) {
		if time.Since(began) >= 5*time.Second {
			began = began.Add(5 * time.Second)
			fmt.Fprintf(stderr, "wrote %d events of %d requests\n", evs, reqs)
		}
	}
	res, err := synthetic.Write(ctx, js, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Wrote %d events of %d requests in %s: %.0f requests/s, %.0f events/s\n", res.Events, res.Requests,
		res.Elapsed.Round(time.Millisecond), float64(res.Requests)/res.Elapsed.Seconds(), float64(res.Events)/res.Elapsed.Seconds())
	for _, story := range synthetic.Stories {
		fmt.Fprintf(stdout, "  %-18s %d\n", story, res.Stories[story])
	}
	fmt.Fprintf(stdout, "Store %s, trust file %s\n", opts.Dir, keys.TrustFile)
	if serve == "" {
		return nil
	}
	fmt.Fprintf(stdout, "Serving it on %s until interrupted\n", ns.ClientURL())
	<-ctx.Done()
	if errors.Is(ctx.Err(), context.Canceled) {
		return nil
	}
	return ctx.Err()
}
