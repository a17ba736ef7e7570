package fulfilmentd_test

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/services/fulfilment/credential"
	"github.com/grantline/grantline/services/fulfilment/fulfilmentd"
)

func env(vars map[string]string) func(string) string { return func(k string) string { return vars[k] } }

func TestConfigFromEnv(t *testing.T) {
	good := map[string]string{
		"GRANTLINE_CATALOGUE": "catalogue.yaml", "GRANTLINE_TRUST_FILE": "trust.json",
		"GRANTLINE_OIDC_ISSUER": "https://idp.example", "GRANTLINE_OIDC_AUDIENCE": "grantline",
		credential.KeyEnv:         credential.GenerateKey(),
		"GRANTLINE_PG_TARGET_URL": "postgres://grantline:hunter2@db/payments",
		"GRANTLINE_PG_ROLES":      "analytics-read=analytics_read,payments-admin=payments_admin",
	}
	c, err := fulfilmentd.ConfigFromEnv(env(good))
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != ":8084" || c.TaskDue != 4*time.Hour || c.MaxDeliveries != 6 || len(c.CredentialKey) != 32 ||
		c.PGRoles["payments-admin"] != "payments_admin" {
		t.Fatalf("config %+v", c)
	}
	if shown := fulfilmentd.MaskURL(c.PGTargetURL); strings.Contains(shown, "hunter2") {
		t.Fatalf("the target password shows in %s", shown)
	}

	bad := map[string]string{credential.KeyEnv: "c2hvcnQ=", "GRANTLINE_PG_ROLES": "analytics-read", "GRANTLINE_TASK_DUE": "soon"}
	_, err = fulfilmentd.ConfigFromEnv(env(bad))
	for _, want := range []string{"GRANTLINE_CATALOGUE", "GRANTLINE_TRUST_FILE", "GRANTLINE_OIDC_ISSUER", credential.KeyEnv, "GRANTLINE_PG_ROLES", "GRANTLINE_TASK_DUE"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not name %s: %v", want, err)
		}
	}
}

func TestLoadWebhooks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "webhooks.json")
	if err := os.WriteFile(path, []byte(`{"targets":[{"name":"vpn","url":"https://vpn.example/grantline","secret_env":"VPN_HMAC",
		"entitlements":["vpn-admin","vpn-user"]}],"timeout":"2s","breaker_open":"1m"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	secret := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123"))
	cfg, err := fulfilmentd.LoadWebhooks(path, env(map[string]string{"VPN_HMAC": secret}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Targets["vpn-user"].Name != "vpn" || string(cfg.Targets["vpn-admin"].Secret) != "0123456789abcdef0123" ||
		cfg.Timeout != 2*time.Second || cfg.BreakerOpen != time.Minute {
		t.Fatalf("%+v", cfg)
	}
	if _, err := fulfilmentd.LoadWebhooks(path, env(nil)); err == nil || !strings.Contains(err.Error(), "VPN_HMAC") {
		t.Fatalf("a missing secret: %v", err)
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
	good, bad := filepath.Join(dir, "fulfilment.nk"), filepath.Join(dir, "not-a-seed.nk")
	if err := os.WriteFile(good, brokeraccess.SeedFile(seed), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{
		"GRANTLINE_CATALOGUE": "catalogue.yaml", "GRANTLINE_TRUST_FILE": "trust.json",
		"GRANTLINE_OIDC_ISSUER": "https://idp.example", "GRANTLINE_OIDC_AUDIENCE": "grantline",
		credential.KeyEnv: credential.GenerateKey(),
	}
	for path, ok := range map[string]bool{good: true, bad: false, filepath.Join(dir, "missing.nk"): false} {
		vars["GRANTLINE_NATS_NKEY_FILE"] = path
		c, err := fulfilmentd.ConfigFromEnv(func(k string) string { return vars[k] })
		switch {
		case ok && (err != nil || c.NATSNKeyFile != path):
			t.Errorf("with the seed file %s: %v, nkey file %q", path, err, c.NATSNKeyFile)
		case !ok && (err == nil || !strings.Contains(err.Error(), "GRANTLINE_NATS_NKEY_FILE")):
			t.Errorf("with %s: %v, want the variable named", path, err)
		}
	}
}
