// Package intaked runs the intake service: its configuration, New, which builds the service for the
// skeleton (pkg/ops) from that configuration, and Run, the service as a process of its own.
package intaked

import (
	"time"

	"github.com/grantline/grantline/pkg/config"
)

// Config is the intake service's configuration, read from the environment by config.Parse; each
// field's tag names its variable (`grantline-intake --help` lists them with their defaults).
type Config struct {
	config.Base
	config.Signing
	config.OIDC
	Catalogue    string      `env:"GRANTLINE_CATALOGUE,notEmpty" help:"the entitlement catalogue (YAML)"`
	Integrations string      `env:"GRANTLINE_INTEGRATIONS" help:"the integrations file; empty: no integration intake"`
	ReaderGroups config.List `env:"GRANTLINE_READER_GROUPS" envDefault:"auditors,security" help:"groups that may read every request, comma-separated"`
	Replicas     int         `env:"GRANTLINE_REPLICAS" envDefault:"1" validate:"positive" help:"replicas of intake's key-value bucket (3 in production)"`
	// Submission limits, per replica (see package throttle): a token bucket per requester over
	// HTTP and per integration over NATS.
	SubmitBurst            int           `env:"GRANTLINE_SUBMIT_BURST" envDefault:"30" help:"submissions one requester may make at once over HTTP; 0: no limit"`
	SubmitEvery            time.Duration `env:"GRANTLINE_SUBMIT_EVERY" envDefault:"2s" validate:"positive" help:"after the burst, one more submission per requester every this long"`
	IntegrationSubmitBurst int           `env:"GRANTLINE_INTEGRATION_SUBMIT_BURST" envDefault:"500" help:"submissions one integration may make at once; 0: no limit"`
	IntegrationSubmitEvery time.Duration `env:"GRANTLINE_INTEGRATION_SUBMIT_EVERY" envDefault:"20ms" validate:"positive" help:"after the burst, one more submission per integration every this long"`
}

// Defaults is the configuration before the environment is read: intake listens on :8081.
func Defaults() Config { return Config{Base: config.Base{HTTPAddr: ":8081"}} }
