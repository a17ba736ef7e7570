// Package consoled runs the web console: its configuration, the collaborators (Deps) that build it,
// New, which builds the service for the skeleton (pkg/ops) from that configuration, and Run, the
// console as a process of its own.
package consoled

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/grantline/grantline/pkg/config"
	"github.com/grantline/grantline/services/console/apiclient"
	"github.com/grantline/grantline/services/console/session"
)

// Config is the console's configuration, read from the environment by config.Parse; each field's tag
// names its variable (`grantline-console --help` lists them with their defaults). The console signs
// nothing and reads no event from NATS, where it keeps only its sessions; it checks the evidence it
// shows auditors against the trust file. Its OIDC audience is its client ID at the issuer, which must
// be the audience the services accept: it sends people's ID tokens to them.
type Config struct {
	config.Base
	config.OIDC
	// PublicURL is the console's origin as browsers reach it: sign-in comes back to it, and forms
	// are accepted from it only.
	PublicURL string `env:"GRANTLINE_CONSOLE_PUBLIC_URL,notEmpty" help:"the console's origin as browsers reach it, such as https://grantline.example.com (plain http on localhost only)"`
	APIURL    string `env:"GRANTLINE_API_URL" help:"one origin serving every service's API (the gateway), such as http://gateway:8080; the per-service URLs take precedence"`
	// The per-service URLs, for a console that reaches each service directly.
	IntakeURL     string `env:"GRANTLINE_INTAKE_URL" help:"intake's API, when not at GRANTLINE_API_URL"`
	ApprovalURL   string `env:"GRANTLINE_APPROVAL_URL" help:"approval's API, when not at GRANTLINE_API_URL"`
	FulfilmentURL string `env:"GRANTLINE_FULFILMENT_URL" help:"fulfilment's API, when not at GRANTLINE_API_URL"`
	RevokerURL    string `env:"GRANTLINE_REVOKER_URL" help:"the revoker's API, when not at GRANTLINE_API_URL"`
	QueryURL      string `env:"GRANTLINE_QUERY_URL" help:"the read side's API, when not at GRANTLINE_API_URL"`
	Catalogue     string `env:"GRANTLINE_CATALOGUE,notEmpty" help:"the entitlement catalogue people browse (YAML)"`
	// SessionKeyFile seals the sessions in their bucket (ReadSessionKey); every replica needs the same.
	SessionKeyFile string        `env:"GRANTLINE_CONSOLE_SESSION_KEY_FILE,notEmpty" help:"file of the key that seals sessions: 32 random bytes, raw or as 64 hex digits (the same on every replica)"`
	SessionTTL     time.Duration `env:"GRANTLINE_CONSOLE_SESSION_TTL" envDefault:"8h" validate:"positive" help:"the longest a session lasts; it also ends with the person's token"`
	Replicas       int           `env:"GRANTLINE_REPLICAS" envDefault:"1" validate:"positive" help:"replicas of the session bucket (3 in production)"`
}

// Defaults is the configuration before the environment is read: the console listens on :8087.
func Defaults() Config { return Config{Base: config.Base{HTTPAddr: ":8087"}} }

// API says where the services are: GRANTLINE_API_URL, with each service's own URL where one is set.
func (c Config) API() apiclient.Config {
	urls := map[apiclient.Service]string{}
	for s, u := range map[apiclient.Service]string{apiclient.Intake: c.IntakeURL, apiclient.Approval: c.ApprovalURL,
		apiclient.Fulfilment: c.FulfilmentURL, apiclient.Revoker: c.RevokerURL, apiclient.Query: c.QueryURL} {
		if u != "" {
			urls[s] = u
		}
	}
	return apiclient.Config{BaseURL: c.APIURL, ServiceURLs: urls}
}

// Check refuses a public URL that would send session cookies in clear over a network, a service
// without a URL, and a session key file that holds no key.
func (c Config) Check() error {
	var errs []error
	if c.PublicURL != "" {
		if _, err := session.CookiesFor(c.PublicURL); err != nil {
			errs = append(errs, fmt.Errorf("GRANTLINE_CONSOLE_PUBLIC_URL: %w", err))
		}
	}
	api := c.API()
	if api.BaseURL == "" && len(api.ServiceURLs) == 0 {
		errs = append(errs, errors.New("GRANTLINE_API_URL is required (or each service's own URL, such as GRANTLINE_INTAKE_URL)"))
	} else if _, err := apiclient.New(api); err != nil {
		errs = append(errs, fmt.Errorf("GRANTLINE_API_URL or the per-service URLs: %w", err))
	}
	if c.SessionKeyFile != "" {
		if _, err := ReadSessionKey(c.SessionKeyFile); err != nil {
			errs = append(errs, fmt.Errorf("GRANTLINE_CONSOLE_SESSION_KEY_FILE: %w", err))
		}
	}
	return errors.Join(errs...)
}

// ReadSessionKey reads a session key file: session.KeySize raw bytes, or that many bytes in hex (with
// surrounding white space, as secrets often carry). It fails for an unreadable file or one that holds
// neither.
func ReadSessionKey(path string) ([]byte, error) {
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
