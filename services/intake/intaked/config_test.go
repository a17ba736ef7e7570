package intaked_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/services/intake/intaked"
)

// TestConfigFromEnv: defaults for what may be left out, and every missing or malformed variable
// reported at once.
func TestConfigFromEnv(t *testing.T) {
	vars := map[string]string{
		"GRANTLINE_CATALOGUE": "catalogue.yaml", "GRANTLINE_TRUST_FILE": "trust.json",
		"GRANTLINE_OIDC_ISSUER": "https://id.example", "GRANTLINE_OIDC_AUDIENCE": "grantline",
	}
	c, err := intaked.ConfigFromEnv(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.NATSURL != "nats://127.0.0.1:4222" || c.HTTPAddr != ":8081" || c.Replicas != 1 || c.NATSNKeyFile != "" ||
		strings.Join(c.ReaderGroups, ",") != "auditors,security" {
		t.Fatalf("defaults %+v", c)
	}
	_, err = intaked.ConfigFromEnv(func(k string) string { return map[string]string{"GRANTLINE_REPLICAS": "0"}[k] })
	for _, name := range []string{"GRANTLINE_CATALOGUE", "GRANTLINE_TRUST_FILE", "GRANTLINE_OIDC_ISSUER", "GRANTLINE_OIDC_AUDIENCE", "GRANTLINE_REPLICAS"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("the error does not name %s: %v", name, err)
		}
	}
}

// TestConfigNATSKey: GRANTLINE_NATS_NKEY_FILE names the seed of the service's NATS user; a file that
// holds no user seed, or none at all, is refused before the service starts.
func TestConfigNATSKey(t *testing.T) {
	dir := t.TempDir()
	seed, _, err := brokeraccess.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	good, bad := filepath.Join(dir, "intake.nk"), filepath.Join(dir, "not-a-seed.nk")
	if err := os.WriteFile(good, brokeraccess.SeedFile(seed), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{
		"GRANTLINE_CATALOGUE": "catalogue.yaml", "GRANTLINE_TRUST_FILE": "trust.json",
		"GRANTLINE_OIDC_ISSUER": "https://id.example", "GRANTLINE_OIDC_AUDIENCE": "grantline",
	}
	for path, ok := range map[string]bool{good: true, bad: false, filepath.Join(dir, "missing.nk"): false} {
		vars["GRANTLINE_NATS_NKEY_FILE"] = path
		c, err := intaked.ConfigFromEnv(func(k string) string { return vars[k] })
		switch {
		case ok && (err != nil || c.NATSNKeyFile != path):
			t.Errorf("with the seed file %s: %v, nkey file %q", path, err, c.NATSNKeyFile)
		case !ok && (err == nil || !strings.Contains(err.Error(), "GRANTLINE_NATS_NKEY_FILE")):
			t.Errorf("with %s: %v, want the variable named", path, err)
		}
	}
}
