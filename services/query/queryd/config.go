// Package queryd runs the read side: its configuration from the environment, the collaborators (Deps)
// that `grantline dev` can also build in process, and Run, which serves the query API and keeps the
// projection up to date until the context ends.
package queryd

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/services/query/postgres"
)

// Config is the query service's configuration. Every field comes from the environment variable named
// in its comment.
type Config struct {
	// NATSURL: GRANTLINE_NATS_URL (default nats://127.0.0.1:4222); comma-separated for a cluster.
	NATSURL string
	// NATSMonitorURLs: GRANTLINE_NATS_MONITOR_URLS, each server's monitoring endpoint, used to prove
	// that every server fsyncs each write (default http://127.0.0.1:8222).
	NATSMonitorURLs []string
	// NATSNKeyFile: GRANTLINE_NATS_NKEY_FILE, the NKey seed of the read side's NATS user, "query"
	// (brokeraccess). Optional: without it the connection carries no credentials, which only a broker
	// that enforces no permissions accepts.
	NATSNKeyFile string
	// HTTPAddr: GRANTLINE_HTTP_ADDR (default :8086) serves the API, /livez, /readyz and /metrics.
	HTTPAddr string
	// DatabaseURL: GRANTLINE_DATABASE_URL, the PostgreSQL database of the read side (required). The read
	// side is a projection: an empty schema is filled from the stream.
	DatabaseURL string
	// Schema: GRANTLINE_QUERY_SCHEMA (default readside), the schema holding the read side's tables; a
	// rebuild goes into another one beside it.
	Schema string
	// TrustFile: GRANTLINE_TRUST_FILE, the keys of every service (required): every event is verified
	// before it is projected or shown. The read side signs nothing and needs no signing key.
	TrustFile string
	// Catalogue: GRANTLINE_CATALOGUE, the entitlement catalogue (required): owners of an entitlement
	// read its requests.
	Catalogue string
	// OIDCIssuer, OIDCAudience: GRANTLINE_OIDC_ISSUER, GRANTLINE_OIDC_AUDIENCE (required).
	OIDCIssuer, OIDCAudience string
	// OIDCJWKSURL: GRANTLINE_OIDC_JWKS_URL (optional; default: discovery at the issuer).
	OIDCJWKSURL string
	// OIDCGroupsClaim: GRANTLINE_OIDC_GROUPS_CLAIM (default groups).
	OIDCGroupsClaim string
	// AuditorGroups: GRANTLINE_AUDITOR_GROUPS, comma-separated groups that read everything (default
	// auditors,security).
	AuditorGroups []string
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
		NATSMonitorURLs: list(or("GRANTLINE_NATS_MONITOR_URLS", "http://127.0.0.1:8222")),
		NATSNKeyFile:    getenv("GRANTLINE_NATS_NKEY_FILE"),
		HTTPAddr:        or("GRANTLINE_HTTP_ADDR", ":8086"),
		DatabaseURL:     getenv("GRANTLINE_DATABASE_URL"),
		Schema:          or("GRANTLINE_QUERY_SCHEMA", postgres.DefaultSchema),
		TrustFile:       getenv("GRANTLINE_TRUST_FILE"),
		Catalogue:       getenv("GRANTLINE_CATALOGUE"),
		OIDCIssuer:      getenv("GRANTLINE_OIDC_ISSUER"),
		OIDCAudience:    getenv("GRANTLINE_OIDC_AUDIENCE"),
		OIDCJWKSURL:     getenv("GRANTLINE_OIDC_JWKS_URL"),
		OIDCGroupsClaim: or("GRANTLINE_OIDC_GROUPS_CLAIM", "groups"),
		AuditorGroups:   list(or("GRANTLINE_AUDITOR_GROUPS", "auditors,security")),
	}
	var errs []error
	for _, req := range []struct{ name, v string }{
		{"GRANTLINE_DATABASE_URL", c.DatabaseURL}, {"GRANTLINE_TRUST_FILE", c.TrustFile},
		{"GRANTLINE_CATALOGUE", c.Catalogue}, {"GRANTLINE_OIDC_ISSUER", c.OIDCIssuer},
		{"GRANTLINE_OIDC_AUDIENCE", c.OIDCAudience},
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
	if !postgres.ValidSchema(c.Schema) {
		errs = append(errs, fmt.Errorf("GRANTLINE_QUERY_SCHEMA %q is not a valid schema name (lower-case letters, digits, underscores)", c.Schema))
	}
	if len(c.AuditorGroups) == 0 {
		errs = append(errs, errors.New("GRANTLINE_AUDITOR_GROUPS names no group"))
	}
	return c, errors.Join(errs...)
}

// list splits a comma-separated value, dropping blanks.
func list(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
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
		slog.String("http_addr", c.HTTPAddr), slog.String("database_url", db), slog.String("schema", c.Schema),
		slog.String("trust_file", c.TrustFile), slog.String("catalogue", c.Catalogue),
		slog.String("oidc_issuer", c.OIDCIssuer), slog.String("oidc_audience", c.OIDCAudience),
		slog.String("oidc_jwks_url", c.OIDCJWKSURL), slog.String("oidc_groups_claim", c.OIDCGroupsClaim),
		slog.Any("auditor_groups", c.AuditorGroups))
}
