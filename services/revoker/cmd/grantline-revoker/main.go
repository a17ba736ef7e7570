// Command grantline-revoker runs the revoker; `grantline-revoker --help` lists its configuration
// (revokerd.Config).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/grantline/grantline/pkg/ops"
	"github.com/grantline/grantline/services/revoker/revokerd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := ops.Main(ctx, "revoker", revokerd.Defaults(), revokerd.Run)
	stop()
	os.Exit(code)
}
