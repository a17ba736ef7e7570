// Package e2e holds the black-box end-to-end tests of a whole Grantline deployment on containers
// (internal/cluster): people act over the services' HTTP APIs and the command line, an integration over
// NATS, and each scenario checks the request's verified events and what the target database shows.
//
// One deployment serves every test: TestMain starts it (about a minute) and removes it afterwards.
// Run with `make e2e`, which builds the images first.
package e2e

import (
	"os"
	"testing"

	"github.com/grantline/grantline/e2e/internal/cluster"
)

// deployment is the deployment every test runs against.
var deployment *cluster.Cluster

func TestMain(m *testing.M) { os.Exit(cluster.RunTests(m, "e2e", "../examples", &deployment)) }
