// Package cli holds the grantline command tree.
package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/grantline/grantline/cmd/grantline/internal/devmode"
	"github.com/grantline/grantline/pkg/telemetry"
)

// Execute runs the command line args and returns the process exit code.
func Execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := &cobra.Command{
		Use:           "grantline",
		Short:         "Access requests as verifiable governance events",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(devCommand(stdout, stderr))
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(stderr, "grantline:", err)
		return 1
	}
	return 0
}

func devCommand(stdout, stderr io.Writer) *cobra.Command {
	cfg := devmode.ConfigFromEnv()
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run Grantline on this machine: embedded NATS JetStream, the services and the HTTP API",
		Long: `Runs everything in one process for development and demos: an embedded NATS server with
JetStream (fsync on every write, data under --data-dir, clients on 127.0.0.1:4222 so the nats CLI
can attach), the streams, a signing key per service, and the HTTP API with /livez, /readyz and
/metrics on one origin. Settings come from GRANTLINE_* environment variables; flags override them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := telemetry.NewLogger(stderr, "grantline-dev", slog.LevelInfo)
			return devmode.Run(cmd.Context(), cfg, stdout, log)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for the JetStream store and the dev keys (GRANTLINE_DATA_DIR)")
	f.StringVar(&cfg.HTTPAddr, "http", cfg.HTTPAddr, "address of the HTTP API (GRANTLINE_HTTP_ADDR)")
	f.IntVar(&cfg.NATSPort, "nats-port", cfg.NATSPort, "client port of the embedded NATS server, -1 for any free port (GRANTLINE_NATS_PORT)")
	f.IntVar(&cfg.NATSMonitorPort, "nats-monitor-port", cfg.NATSMonitorPort, "monitoring port of the embedded NATS server, 0 to disable (GRANTLINE_NATS_MONITOR_PORT)")
	return cmd
}
