// Command grantline-policy is the policy service: it decides each submitted access request with the
// Rego policy bundle and records the decision. `grantline-policy --help` lists its configuration
// (policyd.Config).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/grantline/grantline/pkg/ops"
	"github.com/grantline/grantline/services/policy/policyd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := ops.Main(ctx, "policy", policyd.Defaults(), policyd.Run)
	stop()
	os.Exit(code)
}
