package ops

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"github.com/grantline/grantline/pkg/config"
	"github.com/grantline/grantline/pkg/telemetry"
)

// Exit codes of a service binary.
const (
	ExitStopped = 0 // stopped after a signal, or printed --help
	ExitFailed  = 1 // could not start, or stopped on a failure
	ExitConfig  = 2 // the configuration is incomplete or malformed
)

// Main is a service binary's main: the whole of it is os.Exit(ops.Main(name, Defaults(), Run)). It
// makes the context that SIGINT or SIGTERM cancels, fills cfg (holding the service's defaults) from
// the environment with config.Parse, or with -h or --help among the arguments prints every variable
// with its default instead, logs the configuration (secrets hidden), runs run with a JSON logger
// named after the service at the configured level, and returns the exit code.
func Main[C interface {
	NewLogger(w io.Writer, service string) *slog.Logger
}](name string, cfg C, run func(context.Context, C, *slog.Logger) error) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return mainWith(ctx, name, cfg, run, os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
}

func mainWith[C interface {
	NewLogger(w io.Writer, service string) *slog.Logger
}](ctx context.Context, name string, cfg C, run func(context.Context, C, *slog.Logger) error, args, environ []string, stdout, stderr io.Writer) int {
	binary := "grantline-" + name
	if slices.ContainsFunc(args, func(a string) bool { return a == "-h" || a == "-help" || a == "--help" }) {
		fmt.Fprintf(stdout, "%s runs the %s service. Its configuration comes from these environment variables:\n\n", binary, name)
		if err := config.Usage(stdout, &cfg); err != nil {
			fmt.Fprintln(stderr, binary+":", err)
			return ExitFailed
		}
		return ExitStopped
	}
	if err := config.Parse(&cfg, environ); err != nil {
		fmt.Fprintf(stderr, "%s: configuration:\n%v\n(%s --help lists every variable)\n", binary, err, binary)
		return ExitConfig
	}
	telemetry.InstallPropagator()
	log := cfg.NewLogger(stderr, name)
	log.Info("starting", "config", config.LogValue(cfg))
	if err := run(ctx, cfg, log); err != nil {
		log.Error("stopped on a failure", telemetry.KeyError, err.Error())
		return ExitFailed
	}
	log.Info("stopped")
	return ExitStopped
}
