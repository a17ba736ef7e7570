package revokerd_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/services/revoker/revokerd"
)

func TestConfigFromEnv(t *testing.T) {
	vars := map[string]string{
		"GRANTLINE_CATALOGUE": "catalogue.yaml", "GRANTLINE_TRUST_FILE": "trust.json",
		"GRANTLINE_OIDC_ISSUER": "https://idp.example", "GRANTLINE_OIDC_AUDIENCE": "grantline",
	}
	c, err := revokerd.ConfigFromEnv(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != ":8085" || c.AdminGroups[0] != "security" || c.RetryBudget != 5 || c.ReportEvery != 5*time.Minute ||
		c.BackoffCap != time.Minute || c.CredentialKey != nil {
		t.Fatalf("config %+v", c)
	}
	vars["GRANTLINE_REVOKE_BACKOFF_CAP"] = "-1s"
	vars["GRANTLINE_REVOKE_RETRY_BUDGET"] = "none"
	_, err = revokerd.ConfigFromEnv(func(k string) string { return vars[k] })
	for _, want := range []string{"GRANTLINE_REVOKE_BACKOFF_CAP", "GRANTLINE_REVOKE_RETRY_BUDGET"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not name %s: %v", want, err)
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
	good, bad := filepath.Join(dir, "revoker.nk"), filepath.Join(dir, "not-a-seed.nk")
	if err := os.WriteFile(good, brokeraccess.SeedFile(seed), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{
		"GRANTLINE_CATALOGUE": "catalogue.yaml", "GRANTLINE_TRUST_FILE": "trust.json",
		"GRANTLINE_OIDC_ISSUER": "https://idp.example", "GRANTLINE_OIDC_AUDIENCE": "grantline",
	}
	for path, ok := range map[string]bool{good: true, bad: false, filepath.Join(dir, "missing.nk"): false} {
		vars["GRANTLINE_NATS_NKEY_FILE"] = path
		c, err := revokerd.ConfigFromEnv(func(k string) string { return vars[k] })
		switch {
		case ok && (err != nil || c.NATSNKeyFile != path):
			t.Errorf("with the seed file %s: %v, nkey file %q", path, err, c.NATSNKeyFile)
		case !ok && (err == nil || !strings.Contains(err.Error(), "GRANTLINE_NATS_NKEY_FILE")):
			t.Errorf("with %s: %v, want the variable named", path, err)
		}
	}
}
