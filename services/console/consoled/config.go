// Package consoled runs the web console: its configuration from the environment, the collaborators
// (Deps) that `grantline dev` can also build in process, and Run, which serves the console until the
// context ends.
package consoled

import (
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/services/console/apiclient"
	"github.com/grantline/grantline/services/console/session"
)

// Config is the console's configuration. Every field comes from the environment variable named in
// its comment.
type Config struct {
	// NATSURL: GRANTLINE_NATS_URL (default nats://127.0.0.1:4222); comma-separated for a cluster. The
	// console keeps only its sessions there.
	NATSURL string
	// NATSNKeyFile: GRANTLINE_NATS_NKEY_FILE, the NKey seed of the console's NATS user (optional, as for
	// every service).
	NATSNKeyFile string
	// HTTPAddr: GRANTLINE_HTTP_ADDR (default :8087) serves the console, /livez, /readyz and /metrics.
	HTTPAddr string
	// PublicURL: GRANTLINE_CONSOLE_URL, the console's origin as browsers reach it (required), such as
	// https://grantline.example.com. Plain http is accepted for localhost only.
	PublicURL string
	// APIURL: GRANTLINE_API_URL, one origin serving every service's API (the gateway). Per service,
	// GRANTLINE_INTAKE_URL, GRANTLINE_APPROVAL_URL, GRANTLINE_FULFILMENT_URL, GRANTLINE_REVOKER_URL
	// and GRANTLINE_QUERY_URL take precedence; every service needs one or the other.
	APIURL      string
	ServiceURLs map[apiclient.Service]string
	// Catalogue: GRANTLINE_CATALOGUE, the entitlement catalogue people browse (required).
	Catalogue string
	// OIDCIssuer: GRANTLINE_OIDC_ISSUER, the identity provider (required).
	OIDCIssuer string
	// OIDCAudience: GRANTLINE_OIDC_AUDIENCE, the console's client ID, which must be the audience the
	// services accept: the console sends people's ID tokens to them (required).
	OIDCAudience string
	// OIDCGroupsClaim: GRANTLINE_OIDC_GROUPS_CLAIM (default groups).
	OIDCGroupsClaim string
	// SessionKey: GRANTLINE_CONSOLE_SESSION_KEY_FILE, a file of 32 random bytes (raw, or 64 hex digits)
	// that seals the sessions; every replica needs the same one (required).
	SessionKey []byte `json:"-"`
	// SessionTTL: GRANTLINE_CONSOLE_SESSION_TTL (default 8h), the longest a session lasts; it also ends
	// with the person's token.
	SessionTTL time.Duration
	// Replicas: GRANTLINE_REPLICAS, replicas of the session bucket (default 1).
	Replicas int
}

// ConfigFromEnv reads Config through getenv (os.Getenv in production) and reports every problem at
// once.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	or := func(k, def string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return def
	}
	c := Config{
		NATSURL:         or("GRANTLINE_NATS_URL", "nats://127.0.0.1:4222"),
		NATSNKeyFile:    getenv(brokeraccess.EnvNKeyFile),
		HTTPAddr:        or("GRANTLINE_HTTP_ADDR", ":8087"),
		PublicURL:       getenv("GRANTLINE_CONSOLE_URL"),
		APIURL:          getenv("GRANTLINE_API_URL"),
		ServiceURLs:     map[apiclient.Service]string{},
		Catalogue:       getenv("GRANTLINE_CATALOGUE"),
		OIDCIssuer:      getenv("GRANTLINE_OIDC_ISSUER"),
		OIDCAudience:    getenv("GRANTLINE_OIDC_AUDIENCE"),
		OIDCGroupsClaim: or("GRANTLINE_OIDC_GROUPS_CLAIM", "groups"),
	}
	var errs []error
	for _, s := range apiclient.Services() {
		if v := getenv("GRANTLINE_" + strings.ToUpper(string(s)) + "_URL"); v != "" {
			c.ServiceURLs[s] = v
		}
	}
	for name, v := range map[string]string{"GRANTLINE_CONSOLE_URL": c.PublicURL, "GRANTLINE_CATALOGUE": c.Catalogue,
		"GRANTLINE_OIDC_ISSUER": c.OIDCIssuer, "GRANTLINE_OIDC_AUDIENCE": c.OIDCAudience} {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is required", name))
		}
	}
	if c.PublicURL != "" {
		if _, err := session.CookiesFor(c.PublicURL); err != nil {
			errs = append(errs, fmt.Errorf("GRANTLINE_CONSOLE_URL: %w", err))
		}
	}
	if _, err := apiclient.New(apiclient.Config{BaseURL: c.APIURL, ServiceURLs: c.ServiceURLs}); err != nil {
		errs = append(errs, fmt.Errorf("GRANTLINE_API_URL or the per-service URLs: %w", err))
	}
	if key, err := ReadSessionKey(getenv("GRANTLINE_CONSOLE_SESSION_KEY_FILE")); err != nil {
		errs = append(errs, fmt.Errorf("GRANTLINE_CONSOLE_SESSION_KEY_FILE: %w", err))
	} else {
		c.SessionKey = key
	}
	var err error
	if c.SessionTTL, err = time.ParseDuration(or("GRANTLINE_CONSOLE_SESSION_TTL", "8h")); err != nil || c.SessionTTL <= 0 {
		errs = append(errs, errors.New("GRANTLINE_CONSOLE_SESSION_TTL must be a positive duration, such as 8h"))
	}
	if c.Replicas, err = strconv.Atoi(or("GRANTLINE_REPLICAS", "1")); err != nil || c.Replicas < 1 {
		errs = append(errs, errors.New("GRANTLINE_REPLICAS must be a positive number"))
	}
	if c.NATSNKeyFile != "" {
		if _, err := brokeraccess.PublicKeyOf(c.NATSNKeyFile); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", brokeraccess.EnvNKeyFile, err))
		}
	}
	return c, errors.Join(errs...)
}

// ReadSessionKey reads a session key file: session.KeySize raw bytes, or that many bytes in hex (with
// surrounding white space, as secrets often carry).
func ReadSessionKey(path string) ([]byte, error) {
	if path == "" {
		return nil, errors.New("is required")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) == session.KeySize {
		return b, nil
	}
	if k, err := hex.DecodeString(strings.TrimSpace(string(b))); err == nil && len(k) == session.KeySize {
		return k, nil
	}
	return nil, fmt.Errorf("%s holds neither %d bytes nor %d hex digits", path, session.KeySize, 2*session.KeySize)
}

// LogValue shows the configuration for the start-up log line; the session key is never shown.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("nats_url", c.NATSURL), slog.String("nats_nkey_file", c.NATSNKeyFile), slog.String("http_addr", c.HTTPAddr),
		slog.String("public_url", c.PublicURL), slog.String("api_url", c.APIURL), slog.Any("service_urls", c.ServiceURLs),
		slog.String("catalogue", c.Catalogue), slog.String("oidc_issuer", c.OIDCIssuer), slog.String("oidc_audience", c.OIDCAudience),
		slog.String("oidc_groups_claim", c.OIDCGroupsClaim), slog.Duration("session_ttl", c.SessionTTL), slog.Int("replicas", c.Replicas))
}
