package fulfilmentd_test

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/config"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/services/fulfilment/credential"
	"github.com/grantline/grantline/services/fulfilment/fulfilmentd"
)

func env(vars map[string]string) func(string) string { return func(k string) string { return vars[k] } }

// TestConfig: what fulfilment adds to the shared configuration (pkg/config tests the rest): the
// credential key (required, checked, never shown), the targets and the grant settings.
func TestConfig(t *testing.T) {
	key, _ := events.GenerateSigner(events.Fulfilment, "fulfilment-1")
	shared := []string{"GRANTLINE_TRUST_FILE=trust.json", "GRANTLINE_SIGNING_KEY=" + string(key.MarshalKeyFile()),
		"GRANTLINE_OIDC_ISSUER=https://id.example", "GRANTLINE_OIDC_AUDIENCE=grantline", "GRANTLINE_CATALOGUE=catalogue.yaml"}
	c := fulfilmentd.Defaults()
	err := config.Parse(&c, append(shared, credential.KeyEnv+"="+credential.GenerateKey(),
		"GRANTLINE_PG_TARGET_URL=postgres://grantline:hunter2@db/payments", "GRANTLINE_PG_ROLES=analytics-read=analytics_read, payments-admin=payments_admin"))
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != ":8084" || c.TaskDue != 4*time.Hour || c.MaxDeliveries != 6 || c.Replicas != 1 {
		t.Fatalf("defaults %+v", c)
	}
	if shown := config.LogValue(c).String(); strings.Contains(shown, "hunter2") || strings.Contains(shown, c.CredentialKey) {
		t.Fatalf("a secret shows in %s", shown)
	}

	c = fulfilmentd.Defaults()
	err = config.Parse(&c, append(shared, credential.KeyEnv+"=c2hvcnQ=", "GRANTLINE_PG_ROLES=analytics-read", "GRANTLINE_TASK_DUE=soon"))
	want := `GRANTLINE_TASK_DUE="soon" is malformed: unable to parse duration: time: invalid duration "soon"` + "\n" +
		credential.KeyEnv + " must be 32 bytes, got 5\n" + `GRANTLINE_PG_ROLES: role mapping "analytics-read" is not entitlement=role`
	if err == nil || err.Error() != want {
		t.Errorf("Parse = %v, want\n%s", err, want)
	}
	c = fulfilmentd.Defaults()
	if err := config.Parse(&c, shared); err == nil || !strings.HasPrefix(err.Error(), credential.KeyEnv+" is required") {
		t.Errorf("Parse without a credential key = %v", err)
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
