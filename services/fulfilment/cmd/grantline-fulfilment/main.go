// Command grantline-fulfilment runs the fulfilment service; `grantline-fulfilment --help` lists its
// configuration (fulfilmentd.Config).
package main

import (
	"os"

	"github.com/grantline/grantline/pkg/ops"
	"github.com/grantline/grantline/services/fulfilment/fulfilmentd"
)

func main() { os.Exit(ops.Main("fulfilment", fulfilmentd.Defaults(), fulfilmentd.Run)) }
