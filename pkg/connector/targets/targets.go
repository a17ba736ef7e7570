// Package targets is the configuration of the systems Grantline changes access on, which fulfilment
// (granting) and the revoker (revoking through the connector that granted) share: the variables
// (Config, read once by pkg/config like every other setting) and the connectors they open (Open).
package targets

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel/metric"

	"github.com/grantline/grantline/pkg/connector"
	"github.com/grantline/grantline/pkg/connector/postgres"
	"github.com/grantline/grantline/pkg/connector/webhook"
	"github.com/grantline/grantline/pkg/events"
)

// Config names the target systems; a service's configuration holds it as a field.
type Config struct {
	// PGTargetURL's user needs CREATEROLE and ADMIN OPTION on the mapped roles; without it, postgres
	// entitlements fail with no_connector.
	PGTargetURL string `env:"GRANTLINE_PG_TARGET_URL" help:"the PostgreSQL server the postgres connector grants on, such as postgres://grantline:secret@payments-db:5432/payments"`
	// PGRoles maps entitlements to roles; one without a role fails with no_role_mapping.
	PGRoles  postgres.Roles `env:"GRANTLINE_PG_ROLES" help:"which role each postgres entitlement grants: entitlement=role,... (analytics-read=analytics_read)"`
	Webhooks string         `env:"GRANTLINE_WEBHOOKS" help:"a JSON file of webhook targets (see targets.WebhookFile)"`
}

// Open builds the connectors c names: postgres when a target URL is set (with the role mapping),
// webhook when a targets file is (its secrets read through getenv), each behind circuit breakers and
// traced (connector.Traced); the breakers' changes are logged on log and recorded in meter
// (grantline_circuit_state; nil: not recorded). The returned function closes them. It fails on a target
// it cannot reach or a webhook file it cannot read.
func Open(ctx context.Context, c Config, getenv func(string) string, log *slog.Logger, meter metric.MeterProvider) (connector.Set, func(), error) {
	set := connector.Set{}
	closeAll := func() {}
	breakers := breakerGauge(meter)
	if c.PGTargetURL != "" {
		pg, err := postgres.Open(ctx, c.PGTargetURL, c.PGRoles)
		if err != nil {
			return nil, nil, err
		}
		// Traced outside the breaker, so a call the open breaker refuses is a failed span too.
		set[postgres.Name] = connector.Traced(postgres.Name, connector.Shield(pg, connector.NewBreaker(postgres.Name, 0, 0,
			func(name string, from, to gobreaker.State) {
				log.Warn("target circuit breaker", "target", name, "from", from.String(), "to", to.String())
				recordBreaker(breakers, name, to)
			})))
		closeAll = pg.Close
	}
	if c.Webhooks != "" {
		cfg, err := LoadWebhooks(c.Webhooks, getenv)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		cfg.OnStateChange = func(target string, from, to gobreaker.State) {
			log.Warn("webhook circuit breaker", "target", target, "from", from.String(), "to", to.String())
			recordBreaker(breakers, target, to)
		}
		wh, err := webhook.New(cfg)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		set[webhook.Name] = connector.Traced(webhook.Name, wh)
	}
	return set, closeAll, nil
}

// WebhookFile is the file named by GRANTLINE_WEBHOOKS. Secrets stay out of it: each target names the
// environment variable holding its HMAC secret (base64).
//
//	{"targets": [{"name": "ticketing", "url": "https://tickets.example/grantline",
//	              "secret_env": "TICKETING_HMAC", "entitlements": ["vpn-admin"]}],
//	 "timeout": "5s", "max_attempts": 3, "breaker_failures": 5, "breaker_open": "2s"}
type WebhookFile struct {
	Targets []struct {
		Name         string   `json:"name"`
		URL          string   `json:"url"`
		SecretEnv    string   `json:"secret_env"`
		Entitlements []string `json:"entitlements"`
	} `json:"targets"`
	Timeout         string `json:"timeout,omitempty"`
	MaxAttempts     uint   `json:"max_attempts,omitempty"`
	BreakerFailures uint32 `json:"breaker_failures,omitempty"`
	BreakerOpen     string `json:"breaker_open,omitempty"`
}

// LoadWebhooks reads the webhook file at path, strictly, and the secrets it names through getenv. It
// fails on a file it cannot read or decode, a malformed duration, and a secret that is not base64 of
// at least 16 bytes.
func LoadWebhooks(path string, getenv func(string) string) (webhook.Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return webhook.Config{}, fmt.Errorf("webhook targets: %w", err)
	}
	var f WebhookFile
	if err := events.UnmarshalStrict(b, &f); err != nil {
		return webhook.Config{}, fmt.Errorf("webhook targets %s: %w", path, err)
	}
	cfg := webhook.Config{Targets: map[string]webhook.Target{}, MaxAttempts: f.MaxAttempts, BreakerFailures: f.BreakerFailures}
	for _, d := range []struct {
		s   string
		dst *time.Duration
	}{{f.Timeout, &cfg.Timeout}, {f.BreakerOpen, &cfg.BreakerOpen}} {
		if d.s == "" {
			continue
		}
		if *d.dst, err = time.ParseDuration(d.s); err != nil {
			return webhook.Config{}, fmt.Errorf("webhook targets %s: %w", path, err)
		}
	}
	for _, t := range f.Targets {
		secret, err := base64.StdEncoding.DecodeString(getenv(t.SecretEnv))
		if err != nil || len(secret) < 16 {
			return webhook.Config{}, fmt.Errorf("webhook target %s: %s must hold a base64 secret of at least 16 bytes", t.Name, t.SecretEnv)
		}
		for _, ent := range t.Entitlements {
			cfg.Targets[ent] = webhook.Target{Name: t.Name, URL: t.URL, Secret: secret}
		}
	}
	return cfg, nil
}
