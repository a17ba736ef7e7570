// Command grantline-fulfilment runs the fulfilment service; its configuration is documented on
// fulfilmentd.Config.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/grantline/grantline/pkg/telemetry"
	"github.com/grantline/grantline/services/fulfilment/fulfilmentd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := telemetry.NewLogger(os.Stderr, "fulfilment", slog.LevelInfo)
	telemetry.InstallPropagator()
	cfg, err := fulfilmentd.ConfigFromEnv(os.Getenv)
	if err == nil {
		err = fulfilmentd.Run(ctx, cfg, log)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "grantline-fulfilment:", err)
		os.Exit(1)
	}
}
