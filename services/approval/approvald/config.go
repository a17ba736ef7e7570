// Package approvald runs the approval service: its configuration, the collaborators (Deps) with their
// routes and consumers, New, which builds the service for the skeleton (pkg/ops) from that
// configuration, and Run, the service as a process of its own.
package approvald

import "github.com/grantline/grantline/pkg/config"

// Config is the approval service's configuration, read from the environment by config.Parse; each
// field's tag names its variable (`grantline-approval --help` lists them with their defaults).
type Config struct {
	config.Base
	config.Signing
	config.OIDC
	// DatabaseURL holds the review inbox, a projection: an empty database is filled from the stream.
	DatabaseURL string `env:"GRANTLINE_DATABASE_URL,notEmpty" help:"the PostgreSQL database of the review inbox, such as postgres://approval:secret@db:5432/approval"`
	// Catalogue names each entitlement's owners, who see its requests (pkg/visibility).
	Catalogue string `env:"GRANTLINE_CATALOGUE,notEmpty" help:"the entitlement catalogue (YAML)"`
	// CampaignAdminGroups open access reviews and see every campaign.
	CampaignAdminGroups config.List `env:"GRANTLINE_CAMPAIGN_ADMIN_GROUPS" envDefault:"security" help:"groups that open access reviews (certification campaigns) and see every campaign, comma-separated"`
}

// Defaults is the configuration before the environment is read: approval listens on :8083.
func Defaults() Config { return Config{Base: config.Base{HTTPAddr: ":8083"}} }
