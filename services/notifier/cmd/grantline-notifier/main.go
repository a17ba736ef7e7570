// Command grantline-notifier runs the notifier; its configuration is documented on notifierd.Config.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/grantline/grantline/pkg/telemetry"
	"github.com/grantline/grantline/services/notifier/notifierd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := telemetry.NewLogger(os.Stderr, "notifier", slog.LevelInfo)
	telemetry.InstallPropagator()
	cfg, err := notifierd.ConfigFromEnv(os.Getenv)
	if err == nil {
		err = notifierd.Run(ctx, cfg, log)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "grantline-notifier:", err)
		os.Exit(1)
	}
}
