// Command grantline-revoker runs the revoker; `grantline-revoker --help` lists its configuration
// (revokerd.Config).
package main

import (
	"os"

	"github.com/grantline/grantline/pkg/ops"
	"github.com/grantline/grantline/services/revoker/revokerd"
)

func main() { os.Exit(ops.Main("revoker", revokerd.Defaults(), revokerd.Run)) }
