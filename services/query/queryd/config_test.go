package queryd_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/services/query/queryd"
)

// TestConfigFromEnv: defaults, every missing variable reported at once, and a schema name that could
// not be one refused.
func TestConfigFromEnv(t *testing.T) {
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	full := map[string]string{
		"GRANTLINE_DATABASE_URL": "postgres://query:secret@db/grantline", "GRANTLINE_TRUST_FILE": "trust.json",
		"GRANTLINE_CATALOGUE": "catalogue.yaml", "GRANTLINE_OIDC_ISSUER": "https://id.example", "GRANTLINE_OIDC_AUDIENCE": "grantline",
	}
	c, err := queryd.ConfigFromEnv(env(full))
	if err != nil {
		t.Fatal(err)
	}
	want := queryd.Config{NATSURL: "nats://127.0.0.1:4222", NATSMonitorURLs: []string{"http://127.0.0.1:8222"}, HTTPAddr: ":8086",
		DatabaseURL: full["GRANTLINE_DATABASE_URL"], Schema: "readside", TrustFile: "trust.json", Catalogue: "catalogue.yaml",
		OIDCIssuer: "https://id.example", OIDCAudience: "grantline", OIDCGroupsClaim: "groups", AuditorGroups: []string{"auditors", "security"}}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Fatalf("defaults (-want +got):\n%s", diff)
	}
	if strings.Contains(c.LogValue().String(), "secret") {
		t.Fatalf("the log line shows the database password: %s", c.LogValue())
	}

	_, err = queryd.ConfigFromEnv(env(map[string]string{"GRANTLINE_QUERY_SCHEMA": "Read-Side"}))
	for _, name := range []string{"GRANTLINE_DATABASE_URL", "GRANTLINE_TRUST_FILE", "GRANTLINE_CATALOGUE",
		"GRANTLINE_OIDC_ISSUER", "GRANTLINE_OIDC_AUDIENCE", "GRANTLINE_QUERY_SCHEMA"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("a configuration without %s: %v", name, err)
		}
	}

	full["GRANTLINE_AUDITOR_GROUPS"] = " auditors , compliance,"
	full["GRANTLINE_QUERY_SCHEMA"] = "readside_v2"
	if c, err = queryd.ConfigFromEnv(env(full)); err != nil || !cmp.Equal(c.AuditorGroups, []string{"auditors", "compliance"}) || c.Schema != "readside_v2" {
		t.Fatalf("auditor groups %v, schema %q (%v)", c.AuditorGroups, c.Schema, err)
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
	good, bad := filepath.Join(dir, "query.nk"), filepath.Join(dir, "not-a-seed.nk")
	if err := os.WriteFile(good, brokeraccess.SeedFile(seed), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{
		"GRANTLINE_DATABASE_URL": "postgres://query@db/grantline", "GRANTLINE_TRUST_FILE": "trust.json",
		"GRANTLINE_CATALOGUE": "catalogue.yaml", "GRANTLINE_OIDC_ISSUER": "https://id.example", "GRANTLINE_OIDC_AUDIENCE": "grantline",
	}
	for path, ok := range map[string]bool{good: true, bad: false, filepath.Join(dir, "missing.nk"): false} {
		vars["GRANTLINE_NATS_NKEY_FILE"] = path
		c, err := queryd.ConfigFromEnv(func(k string) string { return vars[k] })
		switch {
		case ok && (err != nil || c.NATSNKeyFile != path):
			t.Errorf("with the seed file %s: %v, nkey file %q", path, err, c.NATSNKeyFile)
		case !ok && (err == nil || !strings.Contains(err.Error(), "GRANTLINE_NATS_NKEY_FILE")):
			t.Errorf("with %s: %v, want the variable named", path, err)
		}
	}
}
