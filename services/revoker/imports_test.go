package revoker_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestImportsNoOtherService: the revoker is fulfilment's peer, not its client. Nothing it builds or
// tests with comes from another service's module: what the two share (connectors, credentials, stream
// scans, manual tasks, the test world) lives in pkg, and they meet only on the stream.
func TestImportsNoOtherService(t *testing.T) {
	const own, services = "github.com/grantline/grantline/services/revoker", "github.com/grantline/grantline/services/"
	cmd := exec.Command("go", "list", "-deps", "-test", "-f", "{{.ImportPath}}", "./...")
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("go list: %v\n%s", err, stderr)
	}
	var deps []string
	for line := range strings.Lines(string(out)) {
		// A test variant is listed as "path [path.test]"; an external test package as path_test.
		p, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		deps = append(deps, strings.TrimSuffix(strings.TrimSuffix(p, ".test"), "_test"))
	}
	if !slices.Contains(deps, own+"/revokerd") || !slices.Contains(deps, "github.com/grantline/grantline/pkg/connector") {
		t.Fatalf("go list did not list the revoker's packages and their dependencies:\n%s", out)
	}
	for _, p := range deps {
		if strings.HasPrefix(p, services) && p != own && !strings.HasPrefix(p, own+"/") {
			t.Errorf("the revoker depends on %s, another service's package", p)
		}
	}
}
