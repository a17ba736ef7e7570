// Package approvald runs the approval service: its configuration from the environment, the
// collaborators (Deps) that `grantline dev` can also build in process, and Run, which serves the HTTP
// API and runs the reactions until the context ends.
package approvald

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/grantline/grantline/pkg/brokeraccess"
)

// Config is the approval service's configuration. Every field comes from the environment variable
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
	// HTTPAddr: GRANTLINE_HTTP_ADDR (default :8083) serves the API, /livez, /readyz and /metrics.
	HTTPAddr string
	// DatabaseURL: GRANTLINE_DATABASE_URL, the PostgreSQL database of the review inbox (required), such
	// as postgres://approval:secret@db:5432/approval. The inbox is a projection: an empty database is
	// filled from the stream.
	DatabaseURL string
	// TrustFile: GRANTLINE_TRUST_FILE, the keys of every service (required).
	TrustFile string
	// The signing key comes from GRANTLINE_SIGNING_KEY or GRANTLINE_SIGNING_KEY_FILE (see
	// events.SignerFromEnv); it must be the approval service's.

	// OIDCIssuer, OIDCAudience: GRANTLINE_OIDC_ISSUER, GRANTLINE_OIDC_AUDIENCE (required).
	OIDCIssuer, OIDCAudience string
	// OIDCJWKSURL: GRANTLINE_OIDC_JWKS_URL (optional; default: discovery at the issuer).
	OIDCJWKSURL string
	// OIDCGroupsClaim: GRANTLINE_OIDC_GROUPS_CLAIM (default groups).
	OIDCGroupsClaim string
}

// ConfigFromEnv reads Config through getenv (os.Getenv in production) and reports every missing
// variable at once.
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
		HTTPAddr:        or("GRANTLINE_HTTP_ADDR", ":8083"),
		DatabaseURL:     getenv("GRANTLINE_DATABASE_URL"),
		TrustFile:       getenv("GRANTLINE_TRUST_FILE"),
		OIDCIssuer:      getenv("GRANTLINE_OIDC_ISSUER"),
		OIDCAudience:    getenv("GRANTLINE_OIDC_AUDIENCE"),
		OIDCJWKSURL:     getenv("GRANTLINE_OIDC_JWKS_URL"),
		OIDCGroupsClaim: or("GRANTLINE_OIDC_GROUPS_CLAIM", "groups"),
	}
	var errs []error
	for _, req := range []struct{ name, v string }{
		{"GRANTLINE_DATABASE_URL", c.DatabaseURL}, {"GRANTLINE_TRUST_FILE", c.TrustFile},
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
	return c, errors.Join(errs...)
}

// LogValue shows the configuration with the database password masked, for the start-up log line.
func (c Config) LogValue() slog.Value {
	db := c.DatabaseURL
	if u, err := url.Parse(db); err == nil && u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
		db = u.String()
	}
	return slog.GroupValue(
		slog.String("nats_url", c.NATSURL), slog.Any("nats_monitor_urls", c.NATSMonitorURLs), slog.String("nats_nkey_file", c.NATSNKeyFile),
		slog.String("http_addr", c.HTTPAddr), slog.String("database_url", db), slog.String("trust_file", c.TrustFile),
		slog.String("oidc_issuer", c.OIDCIssuer), slog.String("oidc_audience", c.OIDCAudience),
		slog.String("oidc_jwks_url", c.OIDCJWKSURL), slog.String("oidc_groups_claim", c.OIDCGroupsClaim))
}
