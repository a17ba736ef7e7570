// Package queryd runs the read side: its configuration, the collaborators (Deps) with their routes,
// projection, rebuild and comparison, New, which builds the service for the skeleton (pkg/ops) from
// that configuration, and Run and Command, the service as a process of its own.
package queryd

import (
	"fmt"

	"github.com/grantline/grantline/pkg/config"
	"github.com/grantline/grantline/services/query/postgres"
)

// Config is the query service's configuration, read from the environment by config.Parse; each
// field's tag names its variable (`grantline-query --help` lists them with their defaults). The read
// side signs nothing and needs no signing key; every event is verified against the trust file before
// it is projected or shown.
type Config struct {
	config.Base
	config.OIDC
	// DatabaseURL holds the read side, a projection: an empty schema is filled from the stream.
	DatabaseURL string `env:"GRANTLINE_DATABASE_URL,notEmpty" help:"the PostgreSQL database of the read side"`
	// Schema holds the read side's tables; a rebuild goes into another one beside it.
	Schema string `env:"GRANTLINE_QUERY_SCHEMA" envDefault:"readside" help:"the schema of the read side's tables (lower-case letters, digits, underscores)"`
	// Catalogue names each entitlement's owners, who read its requests.
	Catalogue     string      `env:"GRANTLINE_CATALOGUE,notEmpty" help:"the entitlement catalogue (YAML)"`
	AuditorGroups config.List `env:"GRANTLINE_AUDITOR_GROUPS" envDefault:"auditors,security" help:"groups that read everything, comma-separated"`
}

// Defaults is the configuration before the environment is read: the read side listens on :8086.
func Defaults() Config { return Config{Base: config.Base{HTTPAddr: ":8086"}} }

// Check refuses a schema name that could not be one.
func (c Config) Check() error {
	if !postgres.ValidSchema(c.Schema) {
		return fmt.Errorf("GRANTLINE_QUERY_SCHEMA %q is not a valid schema name (lower-case letters, digits, underscores)", c.Schema)
	}
	return nil
}
