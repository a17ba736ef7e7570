// Command grantline-notifier runs the notifier; `grantline-notifier --help` lists its configuration
// (notifierd.Config).
package main

import (
	"os"

	"github.com/grantline/grantline/pkg/ops"
	"github.com/grantline/grantline/services/notifier/notifierd"
)

func main() { os.Exit(ops.Main("notifier", notifierd.Defaults(), notifierd.Run)) }
