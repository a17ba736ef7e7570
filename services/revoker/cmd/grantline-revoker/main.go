// Command grantline-revoker runs the revoker; its configuration is documented on revokerd.Config.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/grantline/grantline/pkg/telemetry"
	"github.com/grantline/grantline/services/revoker/revokerd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := telemetry.NewLogger(os.Stderr, "revoker", slog.LevelInfo)
	telemetry.InstallPropagator()
	cfg, err := revokerd.ConfigFromEnv(os.Getenv)
	if err == nil {
		err = revokerd.Run(ctx, cfg, log)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "grantline-revoker:", err)
		os.Exit(1)
	}
}
