// Command grantline-intake runs the intake service; its configuration is documented on intaked.Config.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/grantline/grantline/pkg/telemetry"
	"github.com/grantline/grantline/services/intake/intaked"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := telemetry.NewLogger(os.Stderr, "intake", slog.LevelInfo)
	telemetry.InstallPropagator()
	cfg, err := intaked.ConfigFromEnv(os.Getenv)
	if err == nil {
		err = intaked.Run(ctx, cfg, log)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "grantline-intake:", err)
		os.Exit(1)
	}
}
