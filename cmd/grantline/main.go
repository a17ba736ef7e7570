// Command grantline is Grantline's command line: `grantline dev` runs the whole system on one machine.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/grantline/grantline/cmd/grantline/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
