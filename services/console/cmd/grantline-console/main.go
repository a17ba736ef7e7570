// Command grantline-console runs the web console; `grantline-console --help` lists its configuration
// (consoled.Config).
package main

import (
	"os"

	"github.com/grantline/grantline/pkg/ops"
	"github.com/grantline/grantline/services/console/consoled"
)

func main() { os.Exit(ops.Main("console", consoled.Defaults(), consoled.Run)) }
