// Command grantline-approval runs the approval service; `grantline-approval --help` lists its
// configuration (approvald.Config).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/grantline/grantline/pkg/ops"
	"github.com/grantline/grantline/services/approval/approvald"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := ops.Main(ctx, "approval", approvald.Defaults(), approvald.Run)
	stop()
	os.Exit(code)
}
