// Command grantline-console runs the web console; its configuration is documented on consoled.Config.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/grantline/grantline/pkg/telemetry"
	"github.com/grantline/grantline/services/console/consoled"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := telemetry.NewLogger(os.Stderr, "console", slog.LevelInfo)
	cfg, err := consoled.ConfigFromEnv(os.Getenv)
	if err == nil {
		err = consoled.Run(ctx, cfg, log)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "grantline-console:", err)
		os.Exit(1)
	}
}
