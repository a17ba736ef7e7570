// Command grantline-policy is the policy service: it decides each submitted access request with the
// Rego policy bundle and records the decision. It is configured from the environment; see
// policyd.Config.
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/grantline/grantline/pkg/telemetry"
	"github.com/grantline/grantline/services/policy/policyd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	telemetry.InstallPropagator()
	log := telemetry.NewLogger(os.Stderr, "policy", slog.LevelInfo)
	cfg, err := policyd.ConfigFromEnv(os.Getenv)
	if err == nil {
		err = policyd.Run(ctx, cfg, log)
	}
	if err != nil {
		log.Error("policy service failed", telemetry.KeyError, err.Error())
		stop()
		os.Exit(1)
	}
}
