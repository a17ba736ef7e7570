// Package fulfilmentd runs the fulfilment service: its configuration from the environment, the
// collaborators (Deps) that `grantline dev` can also build in process, and Run, which serves the HTTP
// API and runs the reactions until the context ends.
package fulfilmentd

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/services/fulfilment/connector/postgres"
	"github.com/grantline/grantline/services/fulfilment/connector/webhook"
	"github.com/grantline/grantline/services/fulfilment/credential"
)

// Config is the fulfilment service's configuration. Every field comes from the environment variable
// named in its comment.
type Config struct {
	// NATSURL: GRANTLINE_NATS_URL (default nats://127.0.0.1:4222); comma-separated for a cluster.
	NATSURL string
	// NATSMonitorURLs: GRANTLINE_NATS_MONITOR_URLS, each server's monitoring endpoint, used to prove
	// that every server fsyncs each write (default http://127.0.0.1:8222).
	NATSMonitorURLs []string
	// NATSNKeyFile: GRANTLINE_NATS_NKEY_FILE, the NKey seed of the service's NATS user (brokeraccess).
	// Optional: without it the connection carries no credentials, which only a broker that enforces
	// no permissions accepts.
	NATSNKeyFile string
	// HTTPAddr: GRANTLINE_HTTP_ADDR (default :8084) serves the API, /livez, /readyz and /metrics.
	HTTPAddr string
	// Catalogue: GRANTLINE_CATALOGUE, the entitlement catalogue (required).
	Catalogue string
	// TrustFile: GRANTLINE_TRUST_FILE, the keys of every service (required).
	TrustFile string
	// The signing key comes from GRANTLINE_SIGNING_KEY or GRANTLINE_SIGNING_KEY_FILE (see
	// events.SignerFromEnv); it must be the fulfilment service's.

	// OIDCIssuer, OIDCAudience: GRANTLINE_OIDC_ISSUER, GRANTLINE_OIDC_AUDIENCE (required).
	OIDCIssuer, OIDCAudience string
	// OIDCJWKSURL: GRANTLINE_OIDC_JWKS_URL (optional; default: discovery at the issuer).
	OIDCJWKSURL string
	// OIDCGroupsClaim: GRANTLINE_OIDC_GROUPS_CLAIM (default groups).
	OIDCGroupsClaim string

	// PGTargetURL: GRANTLINE_PG_TARGET_URL, the PostgreSQL server the postgres connector grants on, such
	// as postgres://grantline:secret@payments-db:5432/payments. Its user needs CREATEROLE and ADMIN
	// OPTION on the mapped roles. Optional: without it, postgres entitlements fail with no_connector.
	PGTargetURL string
	// PGRoles: GRANTLINE_PG_ROLES, which role each postgres entitlement grants, as
	// "entitlement=role,..." (e.g. analytics-read=analytics_read,payments-admin=payments_admin,
	// reporting-db-credential=reporting_read). An entitlement without a role fails with no_role_mapping.
	PGRoles map[string]string
	// Webhooks: GRANTLINE_WEBHOOKS, a JSON file of webhook targets (optional; see WebhookFile).
	Webhooks string
	// CredentialKey: GRANTLINE_CREDENTIAL_KEY, 32 bytes in standard base64 (`openssl rand -base64 32`),
	// the AES-256-GCM key of issued credentials while they await retrieval (required).
	CredentialKey []byte
	// TaskDue: GRANTLINE_TASK_DUE, how long people have for a manual task (default 4h).
	TaskDue time.Duration
	// MaxDeliveries: GRANTLINE_MAX_DELIVERIES, grant attempts before a transient failure is recorded and
	// the delivery set aside (default 6).
	MaxDeliveries int
	// Replicas: GRANTLINE_REPLICAS, replicas of the service's key-value buckets (default 1).
	Replicas int
}

// ConfigFromEnv reads Config through getenv (os.Getenv in production) and reports every missing or
// malformed variable at once.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	or := func(k, def string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return def
	}
	c := Config{
		NATSURL:         or("GRANTLINE_NATS_URL", "nats://127.0.0.1:4222"),
		NATSMonitorURLs: strings.Split(or("GRANTLINE_NATS_MONITOR_URLS", "http://127.0.0.1:8222"), ","),
		NATSNKeyFile:    getenv("GRANTLINE_NATS_NKEY_FILE"),
		HTTPAddr:        or("GRANTLINE_HTTP_ADDR", ":8084"),
		Catalogue:       getenv("GRANTLINE_CATALOGUE"),
		TrustFile:       getenv("GRANTLINE_TRUST_FILE"),
		OIDCIssuer:      getenv("GRANTLINE_OIDC_ISSUER"),
		OIDCAudience:    getenv("GRANTLINE_OIDC_AUDIENCE"),
		OIDCJWKSURL:     getenv("GRANTLINE_OIDC_JWKS_URL"),
		OIDCGroupsClaim: or("GRANTLINE_OIDC_GROUPS_CLAIM", "groups"),
		PGTargetURL:     getenv("GRANTLINE_PG_TARGET_URL"),
		Webhooks:        getenv("GRANTLINE_WEBHOOKS"),
	}
	var errs []error
	for _, req := range []struct{ name, v string }{
		{"GRANTLINE_CATALOGUE", c.Catalogue}, {"GRANTLINE_TRUST_FILE", c.TrustFile},
		{"GRANTLINE_OIDC_ISSUER", c.OIDCIssuer}, {"GRANTLINE_OIDC_AUDIENCE", c.OIDCAudience},
		{credential.KeyEnv, getenv(credential.KeyEnv)},
	} {
		if req.v == "" {
			errs = append(errs, fmt.Errorf("%s is required", req.name))
		}
	}
	if c.NATSNKeyFile != "" {
		if _, err := brokeraccess.PublicKeyOf(c.NATSNKeyFile); err != nil {
			errs = append(errs, fmt.Errorf("GRANTLINE_NATS_NKEY_FILE: %w", err))
		}
	}
	var err error
	if v := getenv(credential.KeyEnv); v != "" {
		if c.CredentialKey, err = credential.ParseKey(v); err != nil {
			errs = append(errs, err)
		}
	}
	if c.PGRoles, err = postgres.ParseRoles(getenv("GRANTLINE_PG_ROLES")); err != nil {
		errs = append(errs, fmt.Errorf("GRANTLINE_PG_ROLES: %w", err))
	}
	if c.TaskDue, err = time.ParseDuration(or("GRANTLINE_TASK_DUE", "4h")); err != nil || c.TaskDue <= 0 {
		errs = append(errs, errors.New("GRANTLINE_TASK_DUE must be a positive duration such as 4h"))
	}
	if c.MaxDeliveries, err = strconv.Atoi(or("GRANTLINE_MAX_DELIVERIES", "6")); err != nil || c.MaxDeliveries < 1 {
		errs = append(errs, errors.New("GRANTLINE_MAX_DELIVERIES must be a positive number"))
	}
	if c.Replicas, err = strconv.Atoi(or("GRANTLINE_REPLICAS", "1")); err != nil || c.Replicas < 1 {
		errs = append(errs, errors.New("GRANTLINE_REPLICAS must be a positive number"))
	}
	return c, errors.Join(errs...)
}

// LogValue shows the configuration without secrets, for the start-up log line.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("nats_url", c.NATSURL), slog.Any("nats_monitor_urls", c.NATSMonitorURLs), slog.String("nats_nkey_file", c.NATSNKeyFile),
		slog.String("http_addr", c.HTTPAddr), slog.String("catalogue", c.Catalogue), slog.String("trust_file", c.TrustFile),
		slog.String("oidc_issuer", c.OIDCIssuer), slog.String("oidc_audience", c.OIDCAudience),
		slog.String("pg_target_url", MaskURL(c.PGTargetURL)), slog.Any("pg_roles", c.PGRoles),
		slog.String("webhooks", c.Webhooks), slog.String("credential_key", "xxxxx"),
		slog.Duration("task_due", c.TaskDue), slog.Int("max_deliveries", c.MaxDeliveries), slog.Int("replicas", c.Replicas))
}

// MaskURL replaces the password of a URL with xxxxx.
func MaskURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable)"
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	return u.String()
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
