// Command grantline-checkpointer keeps the evidence stream's checkpoints: signed Merkle tree heads in
// GRANTLINE_CHECKPOINTS, countersigned by witnesses. `grantline-checkpointer --help` lists its
// configuration (checkpointerd.Config).
package main

import (
	"os"

	"github.com/grantline/grantline/pkg/ops"
	"github.com/grantline/grantline/services/checkpointer/checkpointerd"
)

func main() {
	os.Exit(ops.Main("checkpointer", checkpointerd.Defaults(), checkpointerd.Run))
}
