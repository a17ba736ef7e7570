// Package fulfilmentd runs the fulfilment service: its configuration, the collaborators (Deps) with
// their routes and consumers, New, which builds the service for the skeleton (pkg/ops) from that
// configuration, and Run, the service as a process of its own.
package fulfilmentd

import (
	"time"

	"github.com/grantline/grantline/pkg/config"
	"github.com/grantline/grantline/pkg/connector/targets"
	"github.com/grantline/grantline/pkg/credential"
)

// Config is the fulfilment service's configuration, read from the environment by config.Parse; each
// field's tag names its variable (`grantline-fulfilment --help` lists them with their defaults).
type Config struct {
	config.Base
	config.Signing
	config.OIDC
	// Targets are the systems fulfilment grants on (the revoker reads the same variables).
	Targets   targets.Config
	Catalogue string `env:"GRANTLINE_CATALOGUE,notEmpty" help:"the entitlement catalogue (YAML)"`
	// CredentialKey encrypts issued credentials while they await retrieval (credential.ParseKey).
	CredentialKey string        `env:"GRANTLINE_CREDENTIAL_KEY,notEmpty" secret:"true" help:"AES-256-GCM key of issued credentials: 32 bytes in standard base64 (openssl rand -base64 32)"`
	TaskDue       time.Duration `env:"GRANTLINE_TASK_DUE" envDefault:"4h" validate:"positive" help:"how long people have for a manual task"`
	RetryFor      time.Duration `env:"GRANTLINE_FULFILMENT_RETRY_FOR" envDefault:"15m" validate:"positive" help:"how long a grant is retried while the target fails transiently, before the request is recorded failed"`
	Replicas      int           `env:"GRANTLINE_REPLICAS" envDefault:"1" validate:"positive" help:"replicas of the service's key-value buckets (3 in production)"`
}

// Defaults is the configuration before the environment is read: fulfilment listens on :8084.
func Defaults() Config { return Config{Base: config.Base{HTTPAddr: ":8084"}} }

// Check refuses a credential key that is not one.
func (c Config) Check() error {
	_, err := credential.ParseKey(c.CredentialKey)
	return err
}
