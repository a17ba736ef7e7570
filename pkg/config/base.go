package config

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/grantline/grantline/pkg/auth"
	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/telemetry"
)

// Base is what every service's configuration holds. Its HTTPAddr has no default of its own: each
// service sets its port before Parse (intake :8081 … query :8086, the console :8087, the notifier
// :8088, the checkpointer :8089).
type Base struct {
	NATS      NATS
	TrustFile string `env:"GRANTLINE_TRUST_FILE,notEmpty" help:"the trust file: each service's public keys and the event types it may emit"`
	HTTPAddr  string `env:"GRANTLINE_HTTP_ADDR" help:"address of the API and of /livez, /readyz and /metrics"`
	// PprofAddr turns on net/http/pprof on a listener of its own (ops.PprofAddrEnv); bind it to loopback.
	PprofAddr string `env:"GRANTLINE_PPROF_ADDR" help:"address of Go's profiling endpoints, off when empty (bind to loopback)"`
	// OTLPEndpoint turns tracing on (ops.Run): spans of HTTP requests, reactions, appends and connector calls.
	OTLPEndpoint    string        `env:"GRANTLINE_OTLP_ENDPOINT" help:"base URL of an OTLP/HTTP trace receiver, such as http://otel-collector:4318; tracing is off when empty"`
	LogLevel        slog.Level    `env:"GRANTLINE_LOG_LEVEL" envDefault:"info" help:"least severe log level written: debug, info, warn or error"`
	StartTimeout    time.Duration `env:"GRANTLINE_START_TIMEOUT" envDefault:"1m" validate:"positive" help:"how long start-up keeps retrying while NATS, its streams or what the service opens (its database, targets) do not answer"`
	ShutdownTimeout time.Duration `env:"GRANTLINE_SHUTDOWN_TIMEOUT" envDefault:"15s" validate:"positive" help:"bound of the orderly stop: consumers drain, HTTP finishes, connections close"`
	// AckWait is the service's consumers' (consumer.Spec.AckWait, through ops.Host).
	AckWait time.Duration `env:"GRANTLINE_ACK_WAIT" envDefault:"5s" validate:"positive" help:"how long NATS waits without news of a delivery before another replica gets it: what a replica that died held waits this long (live ones keep theirs in progress)"`
}

// NATS is where the broker is and how the service authenticates to it.
type NATS struct {
	URL string `env:"GRANTLINE_NATS_URL" envDefault:"nats://127.0.0.1:4222" help:"NATS servers, comma-separated for a cluster"`
	// MonitorURLs are asked, at start, whether every server fsyncs each write (eventstore.MonitorProbe).
	MonitorURLs List   `env:"GRANTLINE_NATS_MONITOR_URLS" envDefault:"http://127.0.0.1:8222" help:"each server's monitoring endpoint, comma-separated; start-up checks every server fsyncs each write"`
	NKeyFile    string `env:"GRANTLINE_NATS_NKEY_FILE" help:"NKey seed of the service's NATS user; without it the connection carries no credentials"`
	// Timeout bounds each NATS round trip of the event store (eventstore.Config.RequestTimeout).
	Timeout time.Duration `env:"GRANTLINE_NATS_TIMEOUT" envDefault:"5s" validate:"positive" help:"bound of each NATS round trip of the event store"`
}

// check refuses a key file that holds no NATS user seed before the service tries to connect with it.
func (n NATS) check() error {
	if n.NKeyFile == "" {
		return nil
	}
	if _, err := brokeraccess.PublicKeyOf(n.NKeyFile); err != nil {
		return fmt.Errorf("%s: %w", brokeraccess.EnvNKeyFile, err)
	}
	return nil
}

// NewLogger returns the service's JSON logger on w at the configured level (telemetry.NewLogger).
func (b Base) NewLogger(w io.Writer, service string) *slog.Logger {
	return telemetry.NewLogger(w, service, b.LogLevel)
}

// Signing is where a service that signs events finds its ed25519 key: the key file's contents or its
// path (events.EnvSigningKey, events.EnvSigningKeyFile); the first wins when both are set.
type Signing struct {
	Key     string `env:"GRANTLINE_SIGNING_KEY" secret:"true" help:"the service's signing key file's contents; or set GRANTLINE_SIGNING_KEY_FILE"`
	KeyFile string `env:"GRANTLINE_SIGNING_KEY_FILE" help:"path of the service's signing key file (one of the two is required)"`
}

// Getenv answers events.SignerFromEnv's questions from s, so the key comes from the configuration
// that was parsed rather than from the process environment again.
func (s Signing) Getenv(name string) string {
	switch name {
	case events.EnvSigningKey:
		return s.Key
	case events.EnvSigningKeyFile:
		return s.KeyFile
	}
	return ""
}

// Signer loads the key and refuses one that is not svc's.
func (s Signing) Signer(svc events.Service) (*events.Signer, error) {
	return events.SignerFromEnv(s.Getenv, svc)
}

// check refuses a missing or unreadable key before start; whose key it is, Signer checks.
func (s Signing) check() error {
	var err error
	switch {
	case s.Key != "":
		if _, err = events.ParseSigner([]byte(s.Key)); err != nil {
			return fmt.Errorf("%s is not a signing key file: %w", events.EnvSigningKey, err)
		}
	case s.KeyFile != "":
		if _, err = events.LoadSigner(s.KeyFile); err != nil {
			return fmt.Errorf("%s: %w", events.EnvSigningKeyFile, err)
		}
	default:
		return fmt.Errorf("%s or %s is required", events.EnvSigningKey, events.EnvSigningKeyFile)
	}
	return nil
}

// OIDC is how a service with an HTTP API checks bearer tokens.
type OIDC struct {
	Issuer      string `env:"GRANTLINE_OIDC_ISSUER,notEmpty" help:"the identity provider's issuer URL; tokens must name it exactly"`
	Audience    string `env:"GRANTLINE_OIDC_AUDIENCE,notEmpty" help:"the audience tokens must carry"`
	JWKSURL     string `env:"GRANTLINE_OIDC_JWKS_URL" help:"where the issuer's signing keys are; empty: OIDC discovery at the issuer"`
	GroupsClaim string `env:"GRANTLINE_OIDC_GROUPS_CLAIM" envDefault:"groups" help:"the token claim that lists the caller's groups"`
	// KeyRefetchInterval bounds what tokens naming unknown key IDs can cost the identity provider.
	KeyRefetchInterval time.Duration `env:"GRANTLINE_OIDC_KEY_REFETCH_INTERVAL" envDefault:"10s" help:"least time between two fetches of the issuer's keys for tokens naming a key ID not held (after a burst of two)"`
}

// Verifier returns the bearer-token verifier these settings describe (auth.NewVerifier).
func (o OIDC) Verifier(ctx context.Context) (*auth.Verifier, error) {
	v, err := auth.NewVerifier(ctx, auth.Config{Issuer: o.Issuer, Audience: o.Audience, GroupsClaim: o.GroupsClaim, JWKSURL: o.JWKSURL,
		KeyRefetchInterval: o.KeyRefetchInterval})
	if err != nil {
		return nil, fmt.Errorf("oidc: %w", err)
	}
	return v, nil
}
