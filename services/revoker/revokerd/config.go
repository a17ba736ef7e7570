// Package revokerd runs the revoker: its configuration, the collaborators (Deps) with their routes and
// consumers, New, which builds the service for the skeleton (pkg/ops) from that configuration, and
// Run, the service as a process of its own.
package revokerd

import (
	"fmt"
	"time"

	"github.com/grantline/grantline/pkg/config"
	"github.com/grantline/grantline/pkg/connector/targets"
	"github.com/grantline/grantline/pkg/credential"
)

// Config is the revoker's configuration, read from the environment by config.Parse; each field's tag
// names its variable (`grantline-revoker --help` lists them with their defaults).
type Config struct {
	config.Base
	config.Signing
	config.OIDC
	// Targets are the systems fulfilment grants on: a grant is revoked through the connector that
	// granted it.
	Targets     targets.Config
	Catalogue   string      `env:"GRANTLINE_CATALOGUE,notEmpty" help:"the entitlement catalogue (YAML)"`
	AdminGroups config.List `env:"GRANTLINE_REVOKE_ADMIN_GROUPS" envDefault:"security" help:"groups that may revoke any grant early, comma-separated"`
	// LockAdminGroups place, list and remove locks (incident response); never on themselves.
	LockAdminGroups config.List `env:"GRANTLINE_LOCK_ADMIN_GROUPS" envDefault:"security" help:"groups that place, list and remove locks, comma-separated"`
	Replicas        int         `env:"GRANTLINE_REPLICAS" envDefault:"1" validate:"positive" help:"replicas of the revoker's key-value bucket of lock Idempotency-Keys (3 in production)"`
	// CredentialKey, optional here, lets the revoker delete a revoked grant's unretrieved secret at once
	// instead of leaving it to its TTL.
	CredentialKey  string        `env:"GRANTLINE_CREDENTIAL_KEY" secret:"true" help:"fulfilment's credential key; with it, revoked secrets are deleted at once"`
	RetryBudget    int           `env:"GRANTLINE_REVOKE_RETRY_BUDGET" envDefault:"5" validate:"positive" help:"failed attempts of one revocation before revocation_failed is recorded"`
	ReportEvery    time.Duration `env:"GRANTLINE_REVOKE_REPORT_EVERY" envDefault:"5m" validate:"positive" help:"how often revocation_failed is recorded again while a revocation keeps failing"`
	BackoffCap     time.Duration `env:"GRANTLINE_REVOKE_BACKOFF_CAP" envDefault:"1m" validate:"positive" help:"the longest wait between attempts"`
	SLO            time.Duration `env:"GRANTLINE_REVOKE_SLO" envDefault:"30s" validate:"positive" help:"how long after it is due a failing revocation is recorded overdue, whatever the attempts (below audit verify's --revocation-slo)"`
	AttemptTimeout time.Duration `env:"GRANTLINE_REVOKE_ATTEMPT_TIMEOUT" envDefault:"10s" validate:"positive" help:"how long one revocation attempt at the target may take (shorter than GRANTLINE_REVOKE_SLO)"`
	// ReconcileEvery paces the drift reconciler: each run lists the targets and scans the grants.
	ReconcileEvery time.Duration `env:"GRANTLINE_RECONCILE_EVERY" envDefault:"10m" validate:"positive" help:"how often the targets are compared with the evidence (drift detection)"`
}

// Defaults is the configuration before the environment is read: the revoker listens on :8085.
func Defaults() Config { return Config{Base: config.Base{HTTPAddr: ":8085"}} }

// Check refuses a credential key that is not one, and an attempt timeout that is not shorter than
// the SLO (an attempt hanging past the SLO would be cut at it anyway; the setting would mislead).
func (c Config) Check() error {
	if c.AttemptTimeout >= c.SLO {
		return fmt.Errorf("GRANTLINE_REVOKE_ATTEMPT_TIMEOUT (%s) must be shorter than GRANTLINE_REVOKE_SLO (%s)", c.AttemptTimeout, c.SLO)
	}
	if c.CredentialKey == "" {
		return nil
	}
	_, err := credential.ParseKey(c.CredentialKey)
	return err
}
