// Command grantline-fulfilment runs the fulfilment service; `grantline-fulfilment --help` lists its
// configuration (fulfilmentd.Config).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/grantline/grantline/pkg/ops"
	"github.com/grantline/grantline/services/fulfilment/fulfilmentd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := ops.Main(ctx, "fulfilment", fulfilmentd.Defaults(), fulfilmentd.Run)
	stop()
	os.Exit(code)
}
