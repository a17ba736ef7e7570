// Command grantline-approval runs the approval service; `grantline-approval --help` lists its
// configuration (approvald.Config).
package main

import (
	"os"

	"github.com/grantline/grantline/pkg/ops"
	"github.com/grantline/grantline/services/approval/approvald"
)

func main() { os.Exit(ops.Main("approval", approvald.Defaults(), approvald.Run)) }
