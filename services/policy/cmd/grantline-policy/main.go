// Command grantline-policy is the policy service: it decides each submitted access request with the
// Rego policy bundle and records the decision. `grantline-policy --help` lists its configuration
// (policyd.Config).
package main

import (
	"os"

	"github.com/grantline/grantline/pkg/ops"
	"github.com/grantline/grantline/services/policy/policyd"
)

func main() { os.Exit(ops.Main("policy", policyd.Defaults(), policyd.Run)) }
