package approvald_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

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
