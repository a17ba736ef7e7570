// Command grantline-intake runs the intake service; `grantline-intake --help` lists its configuration
// (intaked.Config).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/grantline/grantline/pkg/ops"
	"github.com/grantline/grantline/services/intake/intaked"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := ops.Main(ctx, "intake", intaked.Defaults(), intaked.Run)
	stop()
	os.Exit(code)
}
