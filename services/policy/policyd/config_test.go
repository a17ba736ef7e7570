package policyd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/events"
)

// TestConfigNATSKey: GRANTLINE_NATS_NKEY_FILE names the seed of the service's NATS user; a file that
// holds no user seed, or none at all, is refused before the service starts.
func TestConfigNATSKey(t *testing.T) {
	dir := t.TempDir()
	seed, _, err := brokeraccess.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	good, bad := filepath.Join(dir, "policy.nk"), filepath.Join(dir, "not-a-seed.nk")
	if err := os.WriteFile(good, brokeraccess.SeedFile(seed), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	key, _ := events.GenerateSigner(events.Policy, "policy-1")
	vars := map[string]string{
		"GRANTLINE_CATALOGUE": "catalogue.yaml", "GRANTLINE_POLICY_DIR": "policies", "GRANTLINE_TRUST_FILE": "trust.json",
		"GRANTLINE_SIGNING_KEY": string(key.MarshalKeyFile()),
	}
	for path, ok := range map[string]bool{good: true, bad: false, filepath.Join(dir, "missing.nk"): false} {
		vars["GRANTLINE_NATS_NKEY_FILE"] = path
		c, err := ConfigFromEnv(func(k string) string { return vars[k] })
		switch {
		case ok && (err != nil || c.NATSNKeyFile != path):
			t.Errorf("with the seed file %s: %v, nkey file %q", path, err, c.NATSNKeyFile)
		case !ok && (err == nil || !strings.Contains(err.Error(), "GRANTLINE_NATS_NKEY_FILE")):
			t.Errorf("with %s: %v, want the variable named", path, err)
		}
	}
}
