// Command grantline-intake runs the intake service; `grantline-intake --help` lists its configuration
// (intaked.Config).
package main

import (
	"os"

	"github.com/grantline/grantline/pkg/ops"
	"github.com/grantline/grantline/services/intake/intaked"
)

func main() { os.Exit(ops.Main("intake", intaked.Defaults(), intaked.Run)) }
