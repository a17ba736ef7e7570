// Package cli holds the grantline command tree.
package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/grantline/grantline/cmd/grantline/internal/bench"
	"github.com/grantline/grantline/cmd/grantline/internal/devmode"
	"github.com/grantline/grantline/pkg/auth"
	"github.com/grantline/grantline/pkg/telemetry"
)

// Execute runs the command line args and returns the process exit code.
func Execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := rootCommand(stdout, stderr)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(stderr, "grantline:", err)
		return 1
	}
	return 0
}

// rootCommand is the whole command tree, writing to stdout and stderr.
func rootCommand(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "grantline",
		Short:         "Access requests as verifiable governance events",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(devCommand(stdout, stderr), requestCommand(stdout), policyCommand(stdout, stderr), auditCommand(stdout, stderr), reviewCommand(stdout), grantCommand(stdout), taskCommand(stdout), revokeCommand(stdout, stderr), lockCommand(stdout), gatewayCommand(stderr))
	root.AddCommand(bench.Command(stdout, stderr))
	root.AddCommand(deployCommand(stdout), streamsCommand(stdout), witnessCommand(stdout, stderr), dlqCommand(stdout, stderr))
	return root
}

func devCommand(stdout, stderr io.Writer) *cobra.Command {
	// A malformed variable is reported when dev runs, not when the CLI is built for another command.
	cfg, cfgErr := devmode.ConfigFromEnv()
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run Grantline on this machine: embedded NATS JetStream, the services and the HTTP API",
		Long: `Runs everything in one process for development and demos: an embedded NATS server with
JetStream (fsync on every write, data under --data-dir, clients on 127.0.0.1:4222 so the nats CLI
can attach), the streams, a signing key per service, and the HTTP API with /livez, /readyz and
/metrics on one origin. Settings come from GRANTLINE_* environment variables; flags override them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfgErr != nil {
				return cfgErr
			}
			// No service attribute here: dev runs several services, and each names itself.
			log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
			telemetry.InstallPropagator()
			return devmode.Run(cmd.Context(), cfg, stdout, log)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for the JetStream store and the dev keys (GRANTLINE_DATA_DIR)")
	f.StringVar(&cfg.HTTPAddr, "http", cfg.HTTPAddr, "address of the HTTP API (GRANTLINE_HTTP_ADDR)")
	f.IntVar(&cfg.NATSPort, "nats-port", cfg.NATSPort, "client port of the embedded NATS server, -1 for any free port (GRANTLINE_NATS_PORT)")
	f.IntVar(&cfg.NATSMonitorPort, "nats-monitor-port", cfg.NATSMonitorPort, "monitoring port of the embedded NATS server, 0 to disable (GRANTLINE_NATS_MONITOR_PORT)")
	f.StringVar(&cfg.Examples, "examples", cfg.Examples, "directory with the demo catalogue, directory, integrations and policies (GRANTLINE_EXAMPLES)")
	f.StringVar(&cfg.Traces, "traces", cfg.Traces, "where the services' spans go: stdout, or an OTLP/HTTP receiver's URL such as http://localhost:4318; off when empty (GRANTLINE_DEV_TRACES)")

	var ttl time.Duration
	token := &cobra.Command{
		Use:   "token <user>",
		Short: "Print a bearer token for a user of the dev directory",
		Long: `Signs a token for a user of the demo directory with the dev issuer's key in --data-dir, the way
the identity provider would. It works while grantline dev runs (or after it ran once with that data
directory), without contacting it.`,
		Example: `  TOKEN=$(grantline dev token alice)
  curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8080/v1/requests/<id>`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := auth.LoadDirectory(filepath.Join(cfg.Examples, "directory.yaml"))
			if err != nil {
				return err
			}
			tok, err := auth.MintFromDir(devmode.OIDCDir(cfg.DataDir), dir, args[0], ttl)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, tok)
			return nil
		},
	}
	token.Flags().DurationVar(&ttl, "ttl", time.Hour, "how long the token is valid")
	token.Flags().StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "the dev data directory (GRANTLINE_DATA_DIR)")
	token.Flags().StringVar(&cfg.Examples, "examples", cfg.Examples, "directory holding directory.yaml (GRANTLINE_EXAMPLES)")
	cmd.AddCommand(token, mailSinkCommand(stdout, stderr))
	return cmd
}
