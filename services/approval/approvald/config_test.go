package approvald_test

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/services/approval/approvald"
)

func TestConfigFromEnv(t *testing.T) {
	env := map[string]string{
		"GRANTLINE_DATABASE_URL": "postgres://approval:s3cret@db:5432/approval", "GRANTLINE_TRUST_FILE": "/etc/grantline/trust.json",
		"GRANTLINE_OIDC_ISSUER": "https://id.example", "GRANTLINE_OIDC_AUDIENCE": "grantline",
	}
	cfg, err := approvald.ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NATSURL != "nats://127.0.0.1:4222" || cfg.HTTPAddr != ":8083" || cfg.OIDCGroupsClaim != "groups" || len(cfg.NATSMonitorURLs) != 1 {
		t.Fatalf("defaults %+v", cfg)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("starting", "config", cfg)
	if strings.Contains(buf.String(), "s3cret") || !strings.Contains(buf.String(), "approval:xxxxx@db") {
		t.Fatalf("the database password is not masked: %s", buf.String())
	}

	_, err = approvald.ConfigFromEnv(func(string) string { return "" })
	for _, name := range []string{"GRANTLINE_DATABASE_URL", "GRANTLINE_TRUST_FILE", "GRANTLINE_OIDC_ISSUER", "GRANTLINE_OIDC_AUDIENCE"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("an empty environment does not report %s: %v", name, err)
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
	good, bad := filepath.Join(dir, "approval.nk"), filepath.Join(dir, "not-a-seed.nk")
	if err := os.WriteFile(good, brokeraccess.SeedFile(seed), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{
		"GRANTLINE_DATABASE_URL": "postgres://approval@db/approval", "GRANTLINE_TRUST_FILE": "trust.json",
		"GRANTLINE_OIDC_ISSUER": "https://id.example", "GRANTLINE_OIDC_AUDIENCE": "grantline",
	}
	for path, ok := range map[string]bool{good: true, bad: false, filepath.Join(dir, "missing.nk"): false} {
		vars["GRANTLINE_NATS_NKEY_FILE"] = path
		c, err := approvald.ConfigFromEnv(func(k string) string { return vars[k] })
		switch {
		case ok && (err != nil || c.NATSNKeyFile != path):
			t.Errorf("with the seed file %s: %v, nkey file %q", path, err, c.NATSNKeyFile)
		case !ok && (err == nil || !strings.Contains(err.Error(), "GRANTLINE_NATS_NKEY_FILE")):
			t.Errorf("with %s: %v, want the variable named", path, err)
		}
	}
}
