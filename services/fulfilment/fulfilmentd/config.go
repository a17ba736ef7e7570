// Package fulfilmentd runs the fulfilment service: its configuration, the collaborators (Deps) with
// their routes and consumers, New, which builds the service for the skeleton (pkg/ops) from that
// configuration, and Run, the service as a process of its own.
package fulfilmentd

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/grantline/grantline/pkg/config"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/services/fulfilment/connector/postgres"
	"github.com/grantline/grantline/services/fulfilment/connector/webhook"
	"github.com/grantline/grantline/services/fulfilment/credential"
)

// Config is the fulfilment service's configuration, read from the environment by config.Parse; each
// field's tag names its variable (`grantline-fulfilment --help` lists them with their defaults).
type Config struct {
	config.Base
	config.Signing
	config.OIDC
	Targets
	Catalogue string `env:"GRANTLINE_CATALOGUE,notEmpty" help:"the entitlement catalogue (YAML)"`
	// CredentialKey encrypts issued credentials while they await retrieval (credential.ParseKey).
	CredentialKey string        `env:"GRANTLINE_CREDENTIAL_KEY,notEmpty" secret:"true" help:"AES-256-GCM key of issued credentials: 32 bytes in standard base64 (openssl rand -base64 32)"`
	TaskDue       time.Duration `env:"GRANTLINE_TASK_DUE" envDefault:"4h" validate:"positive" help:"how long people have for a manual task"`
	MaxDeliveries int           `env:"GRANTLINE_MAX_DELIVERIES" envDefault:"6" validate:"positive" help:"grant attempts before a transient failure is recorded and the delivery set aside"`
	Replicas      int           `env:"GRANTLINE_REPLICAS" envDefault:"1" validate:"positive" help:"replicas of the service's key-value buckets (3 in production)"`
}

// Defaults is the configuration before the environment is read: fulfilment listens on :8084.
func Defaults() Config { return Config{Base: config.Base{HTTPAddr: ":8084"}} }

// Check refuses a credential key that is not one and a malformed role mapping.
func (c Config) Check() error {
	_, err := credential.ParseKey(c.CredentialKey)
	return errors.Join(err, c.Targets.Check())
}

// Targets are the systems fulfilment grants on and the revoker revokes on, through the same
// connectors (OpenConnectors).
type Targets struct {
	// PGTargetURL's user needs CREATEROLE and ADMIN OPTION on the mapped roles; without it, postgres
	// entitlements fail with no_connector.
	PGTargetURL string `env:"GRANTLINE_PG_TARGET_URL" help:"the PostgreSQL server the postgres connector grants on, such as postgres://grantline:secret@payments-db:5432/payments"`
	// PGRoles maps entitlements to roles (postgres.ParseRoles); one without a role fails with
	// no_role_mapping.
	PGRoles  string `env:"GRANTLINE_PG_ROLES" help:"which role each postgres entitlement grants: entitlement=role,... (analytics-read=analytics_read)"`
	Webhooks string `env:"GRANTLINE_WEBHOOKS" help:"a JSON file of webhook targets (see fulfilmentd.WebhookFile)"`
}

// Check refuses a malformed role mapping.
func (t Targets) Check() error {
	if _, err := postgres.ParseRoles(t.PGRoles); err != nil {
		return fmt.Errorf("GRANTLINE_PG_ROLES: %w", err)
	}
	return nil
}

// WebhookFile is the file named by GRANTLINE_WEBHOOKS. Secrets stay out of it: each target names the
// environment variable holding its HMAC secret (base64).
//
//	{"targets": [{"name": "ticketing", "url": "https://tickets.example/grantline",
//	              "secret_env": "TICKETING_HMAC", "entitlements": ["vpn-admin"]}],
//	 "timeout": "5s", "max_attempts": 3, "breaker_failures": 5, "breaker_open": "30s"}
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

// LoadWebhooks reads the webhook file at path and the secrets it names through getenv.
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
