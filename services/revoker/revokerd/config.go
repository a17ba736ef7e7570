// Package revokerd runs the revoker: its configuration from the environment, the collaborators (Deps)
// that `grantline dev` can also build in process, and Run, which serves the HTTP API and runs the
// reactions until the context ends.
package revokerd

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/services/fulfilment/connector/postgres"
	"github.com/grantline/grantline/services/fulfilment/credential"
	"github.com/grantline/grantline/services/fulfilment/fulfilmentd"
)

// Config is the revoker's configuration. Every field comes from the environment variable named in its
// comment.
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
	// HTTPAddr: GRANTLINE_HTTP_ADDR (default :8085) serves the API, /livez, /readyz and /metrics.
	HTTPAddr string
	// Catalogue: GRANTLINE_CATALOGUE, the entitlement catalogue (required).
	Catalogue string
	// TrustFile: GRANTLINE_TRUST_FILE, the keys of every service (required).
	TrustFile string
	// The signing key comes from GRANTLINE_SIGNING_KEY or GRANTLINE_SIGNING_KEY_FILE (see
	// events.SignerFromEnv); it must be the revoker's.

	// OIDCIssuer, OIDCAudience: GRANTLINE_OIDC_ISSUER, GRANTLINE_OIDC_AUDIENCE (required).
	OIDCIssuer, OIDCAudience string
	// OIDCJWKSURL: GRANTLINE_OIDC_JWKS_URL (optional; default: discovery at the issuer).
	OIDCJWKSURL string
	// OIDCGroupsClaim: GRANTLINE_OIDC_GROUPS_CLAIM (default groups).
	OIDCGroupsClaim string
	// AdminGroups: GRANTLINE_REVOKE_ADMIN_GROUPS, groups that may revoke any grant early (default
	// security).
	AdminGroups []string

	// PGTargetURL, PGRoles, Webhooks: GRANTLINE_PG_TARGET_URL, GRANTLINE_PG_ROLES, GRANTLINE_WEBHOOKS, the
	// same targets as fulfilment's (see fulfilmentd.Config); the revoker revokes through the connector
	// that granted.
	PGTargetURL string
	PGRoles     map[string]string
	Webhooks    string
	// CredentialKey: GRANTLINE_CREDENTIAL_KEY (optional here): with it, the revoker deletes a revoked
	// grant's unretrieved secret at once instead of leaving it to its TTL.
	CredentialKey []byte
	// RetryBudget: GRANTLINE_REVOKE_RETRY_BUDGET, failed attempts of one revocation before
	// revocation_failed is recorded (default 5).
	RetryBudget int
	// ReportEvery: GRANTLINE_REVOKE_REPORT_EVERY, how often revocation_failed is recorded again while
	// a revocation keeps failing (default 5m).
	ReportEvery time.Duration
	// BackoffCap: GRANTLINE_REVOKE_BACKOFF_CAP, the longest wait between attempts (default 1m).
	BackoffCap time.Duration
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
		HTTPAddr:        or("GRANTLINE_HTTP_ADDR", ":8085"),
		Catalogue:       getenv("GRANTLINE_CATALOGUE"),
		TrustFile:       getenv("GRANTLINE_TRUST_FILE"),
		OIDCIssuer:      getenv("GRANTLINE_OIDC_ISSUER"),
		OIDCAudience:    getenv("GRANTLINE_OIDC_AUDIENCE"),
		OIDCJWKSURL:     getenv("GRANTLINE_OIDC_JWKS_URL"),
		OIDCGroupsClaim: or("GRANTLINE_OIDC_GROUPS_CLAIM", "groups"),
		AdminGroups:     strings.Split(or("GRANTLINE_REVOKE_ADMIN_GROUPS", "security"), ","),
		PGTargetURL:     getenv("GRANTLINE_PG_TARGET_URL"),
		Webhooks:        getenv("GRANTLINE_WEBHOOKS"),
	}
	var errs []error
	for _, req := range []struct{ name, v string }{
		{"GRANTLINE_CATALOGUE", c.Catalogue}, {"GRANTLINE_TRUST_FILE", c.TrustFile},
		{"GRANTLINE_OIDC_ISSUER", c.OIDCIssuer}, {"GRANTLINE_OIDC_AUDIENCE", c.OIDCAudience},
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
	if c.RetryBudget, err = strconv.Atoi(or("GRANTLINE_REVOKE_RETRY_BUDGET", "5")); err != nil || c.RetryBudget < 1 {
		errs = append(errs, errors.New("GRANTLINE_REVOKE_RETRY_BUDGET must be a positive number"))
	}
	for _, d := range []struct {
		name, def string
		dst       *time.Duration
	}{{"GRANTLINE_REVOKE_REPORT_EVERY", "5m", &c.ReportEvery}, {"GRANTLINE_REVOKE_BACKOFF_CAP", "1m", &c.BackoffCap}} {
		if *d.dst, err = time.ParseDuration(or(d.name, d.def)); err != nil || *d.dst <= 0 {
			errs = append(errs, fmt.Errorf("%s must be a positive duration such as %s", d.name, d.def))
		}
	}
	return c, errors.Join(errs...)
}

// LogValue shows the configuration without secrets, for the start-up log line.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("nats_url", c.NATSURL), slog.Any("nats_monitor_urls", c.NATSMonitorURLs), slog.String("nats_nkey_file", c.NATSNKeyFile),
		slog.String("http_addr", c.HTTPAddr), slog.String("catalogue", c.Catalogue), slog.String("trust_file", c.TrustFile),
		slog.String("oidc_issuer", c.OIDCIssuer), slog.String("oidc_audience", c.OIDCAudience),
		slog.Any("admin_groups", c.AdminGroups), slog.String("pg_target_url", fulfilmentd.MaskURL(c.PGTargetURL)),
		slog.Any("pg_roles", c.PGRoles), slog.String("webhooks", c.Webhooks), slog.Bool("credential_key", c.CredentialKey != nil),
		slog.Int("retry_budget", c.RetryBudget), slog.Duration("report_every", c.ReportEvery), slog.Duration("backoff_cap", c.BackoffCap))
}
