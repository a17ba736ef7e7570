// Command grantline-query runs the read side: the query API and the projection of the evidence stream
// into PostgreSQL. "grantline-query rebuild SCHEMA" rebuilds the read side from sequence 1 into SCHEMA
// beside the live one, and "grantline-query compare SCHEMA" checks the two agree. The configuration is
// documented on queryd.Config.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/grantline/grantline/pkg/telemetry"
	"github.com/grantline/grantline/services/query/queryd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := telemetry.NewLogger(os.Stderr, "query", slog.LevelInfo)
	telemetry.InstallPropagator()
	cfg, err := queryd.ConfigFromEnv(os.Getenv)
	if err == nil {
		err = queryd.Command(ctx, cfg, os.Args[1:], os.Stdout, log)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "grantline-query:", err)
		os.Exit(1)
	}
}
