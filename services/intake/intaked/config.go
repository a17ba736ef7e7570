// Package intaked runs the intake service: its configuration from the environment, and Run, which
// serves the HTTP API and consumes integration CloudEvents until the context ends.
package intaked

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/grantline/grantline/pkg/brokeraccess"
)

// Config is the intake service's configuration. Every field comes from the environment variable named
// in its comment.
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
	// HTTPAddr: GRANTLINE_HTTP_ADDR (default :8081) serves the API, /livez, /readyz and /metrics.
	HTTPAddr string
	// Catalogue: GRANTLINE_CATALOGUE, the entitlement catalogue (required).
	Catalogue string
	// Integrations: GRANTLINE_INTEGRATIONS, the integrations file (optional: no integration intake).
	Integrations string
	// TrustFile: GRANTLINE_TRUST_FILE, the keys of every service (required).
	TrustFile string
	// The signing key comes from GRANTLINE_SIGNING_KEY or GRANTLINE_SIGNING_KEY_FILE (see events.SignerFromEnv).

	// OIDCIssuer, OIDCAudience: GRANTLINE_OIDC_ISSUER, GRANTLINE_OIDC_AUDIENCE (required).
	OIDCIssuer, OIDCAudience string
	// OIDCJWKSURL: GRANTLINE_OIDC_JWKS_URL (optional; default: discovery at the issuer).
	OIDCJWKSURL string
	// OIDCGroupsClaim: GRANTLINE_OIDC_GROUPS_CLAIM (default groups).
	OIDCGroupsClaim string
	// ReaderGroups: GRANTLINE_READER_GROUPS, groups that may read every request (default auditors,security).
	ReaderGroups []string
	// Replicas: GRANTLINE_REPLICAS, replicas of intake's key-value bucket (default 1).
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
		HTTPAddr:        or("GRANTLINE_HTTP_ADDR", ":8081"),
		Catalogue:       getenv("GRANTLINE_CATALOGUE"),
		Integrations:    getenv("GRANTLINE_INTEGRATIONS"),
		TrustFile:       getenv("GRANTLINE_TRUST_FILE"),
		OIDCIssuer:      getenv("GRANTLINE_OIDC_ISSUER"),
		OIDCAudience:    getenv("GRANTLINE_OIDC_AUDIENCE"),
		OIDCJWKSURL:     getenv("GRANTLINE_OIDC_JWKS_URL"),
		OIDCGroupsClaim: or("GRANTLINE_OIDC_GROUPS_CLAIM", "groups"),
		ReaderGroups:    strings.Split(or("GRANTLINE_READER_GROUPS", "auditors,security"), ","),
	}
	var errs []error
	for name, v := range map[string]string{"GRANTLINE_CATALOGUE": c.Catalogue, "GRANTLINE_TRUST_FILE": c.TrustFile,
		"GRANTLINE_OIDC_ISSUER": c.OIDCIssuer, "GRANTLINE_OIDC_AUDIENCE": c.OIDCAudience} {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is required", name))
		}
	}
	if c.NATSNKeyFile != "" {
		if _, err := brokeraccess.PublicKeyOf(c.NATSNKeyFile); err != nil {
			errs = append(errs, fmt.Errorf("GRANTLINE_NATS_NKEY_FILE: %w", err))
		}
	}
	replicas, err := strconv.Atoi(or("GRANTLINE_REPLICAS", "1"))
	if err != nil || replicas < 1 {
		errs = append(errs, errors.New("GRANTLINE_REPLICAS must be a positive number"))
	}
	c.Replicas = replicas
	return c, errors.Join(errs...)
}
