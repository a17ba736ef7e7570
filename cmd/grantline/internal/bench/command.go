package bench

import (
	"errors"
	"io"

	"github.com/spf13/cobra"
)

// Command is `grantline bench`.
func Command(stdout, stderr io.Writer) *cobra.Command {
	cfg := DefaultConfig()
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the whole system: requests/s from submit to granted, latencies, and ratios to the raw ceiling",
		Long: `Starts nats-server (fsync on every write), a private PostgreSQL and every service from --bin-dir as
separate processes, measures the raw ceiling on that server (JetStream publishes, sync and async, and
the event store's load+append loop with its compare-and-set), then drives auto-approved requests for
a population of --people engineers, in turn, through the system: a warm-up, --idle with nothing
submitted (the idle system's CPU), as fast as it takes them (--requests, at most --in-flight at once),
then --rate: half (default) searches, in --keep-up-steps steps of --keep-up-step at a fixed rate, for
the highest rate at which every consumer keeps up (its backlog bounded and not growing) and holds half
of it for --hold; a number of requests/s holds that; max stops after the maximum rate. With --connector postgres it then measures the
connector's cost per grant for one person already holding each of --worst-case grants.

It prints requests/s, submit → decision and submit → granted latencies, consumer lag and whether
every consumer kept up, CPU per granted request of each process (nats-server and all of PostgreSQL's
processes included) and peak memory, and the ratios to the ceiling and to DESIGN §8's targets; --json
prints the same as JSON. Every phase is bounded; everything it started is stopped when it ends or is
interrupted.

Build the binaries first (make binaries); make bench-system does both.`,
		Example: `  grantline bench
  grantline bench --rate 100 --hold 20s
  grantline bench --profile policy,nats-server
  grantline bench --via integration --connector postgres --worst-case 0,100,1000,3000
  grantline bench --json > bench.json
  grantline bench --rate max --compare policy=/tmp/new/grantline-policy`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep, err := Run(cmd.Context(), cfg, stderr)
			if rep != nil && asJSON {
				return errors.Join(err, rep.WriteJSON(stdout))
			}
			if rep != nil {
				rep.Print(stdout)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.BinDir, "bin-dir", cfg.BinDir, "directory holding nats-server and grantline-<service> (make binaries)")
	f.StringVar(&cfg.Examples, "examples", cfg.Examples, "directory holding policies/ (the policy bundle)")
	f.StringVar(&cfg.Via, "via", cfg.Via, "submit over http or integration (CloudEvents on the intake stream)")
	f.StringVar(&cfg.Connector, "connector", cfg.Connector, "fulfil with webhook (a target in the bench) or postgres (a role per grant)")
	f.StringVar(&cfg.Rate, "rate", cfg.Rate, "after the maximum-rate phase: half (of the highest rate every consumer keeps up with), a number of requests/s to hold instead, or max to stop")
	f.IntVar(&cfg.Requests, "requests", cfg.Requests, "requests in the maximum-rate phase")
	f.IntVar(&cfg.InFlight, "in-flight", cfg.InFlight, "requests submitted and not yet granted, at most, in the maximum-rate phase")
	f.DurationVar(&cfg.Hold, "hold", cfg.Hold, "how long the held-rate phase submits")
	f.IntVar(&cfg.KeepUpSteps, "keep-up-steps", cfg.KeepUpSteps, "steps, at most, of the search for the highest rate every consumer keeps up with")
	f.DurationVar(&cfg.KeepUpStep, "keep-up-step", cfg.KeepUpStep, "how long each step of that search submits")
	f.IntVar(&cfg.People, "people", cfg.People, "people the requests are for, in turn (engineers in the bench's directory)")
	f.IntSliceVar(&cfg.WorstCaseHeld, "worst-case", cfg.WorstCaseHeld, "with --connector postgres: grants one person already holds when the connector's cost per grant is measured (empty: skip)")
	f.IntVar(&cfg.WorstCaseGrants, "worst-case-grants", cfg.WorstCaseGrants, "grants (and revocations) timed at each of --worst-case")
	f.IntVar(&cfg.Warmup, "warmup", cfg.Warmup, "unmeasured requests before the first phase")
	f.DurationVar(&cfg.Idle, "idle", cfg.Idle, "how long the idle system's CPU is measured after the warm-up (0: not measured)")
	f.IntVar(&cfg.RawMessages, "raw-messages", cfg.RawMessages, "sync publishes of the raw ceiling (async: five times as many)")
	f.IntVar(&cfg.Updates, "updates", cfg.Updates, "events appended through load+append for the ceiling, with 1 writer and with --update-writers")
	f.IntVar(&cfg.UpdateWriters, "update-writers", cfg.UpdateWriters, "writers of the parallel load+append ceiling")
	f.DurationVar(&cfg.PhaseTimeout, "phase-timeout", cfg.PhaseTimeout, "longest a phase may take, first submission to last grant")
	f.StringSliceVar(&cfg.Profile, "profile", nil, "CPU-profile these processes during the maximum-rate phase: "+
		"intake, policy, approval, fulfilment, revoker, query, nats-server")
	f.StringVar(&cfg.ProfileDir, "profile-dir", "", "where to save the profiles (default: a new directory under the temporary directory)")
	f.StringToStringVar(&cfg.Compare, "compare", nil, "service=binary: also run the maximum-rate phase with that binary of the service, alternating with the usual one")
	f.IntVar(&cfg.CompareRounds, "compare-rounds", cfg.CompareRounds, "rounds of the maximum-rate phase with each binary when comparing")
	f.BoolVar(&cfg.KeepWorkDir, "keep", false, "keep the run's directory: logs, configuration, NATS store")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	cmd.AddCommand(historyCommand(stdout, stderr))
	return cmd
}
