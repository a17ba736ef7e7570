// Command grantline-approval runs the approval service; its configuration is documented on
// approvald.Config.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/grantline/grantline/pkg/telemetry"
	"github.com/grantline/grantline/services/approval/approvald"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := telemetry.NewLogger(os.Stderr, "approval", slog.LevelInfo)
	telemetry.InstallPropagator()
	cfg, err := approvald.ConfigFromEnv(os.Getenv)
	if err == nil {
		err = approvald.Run(ctx, cfg, log)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "grantline-approval:", err)
		os.Exit(1)
	}
}
