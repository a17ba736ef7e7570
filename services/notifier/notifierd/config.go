// Package notifierd runs the notifier: its configuration, the collaborators (Deps) that `grantline
// dev` can also build in process, New, which builds the service for the skeleton (pkg/ops) from that
// configuration, and Run, the service as a process of its own.
package notifierd

import (
	"errors"
	"strings"
	"time"

	"github.com/grantline/grantline/pkg/config"
)

// Config is the notifier's configuration, read from the environment by config.Parse; each field's tag
// names its variable (`grantline-notifier --help` lists them with their defaults). The notifier signs
// nothing and needs no signing key; every event it reads is verified against the trust file.
type Config struct {
	config.Base
	// Directory, Catalogue and Routing are what the rules read: people (with their groups and e-mail
	// addresses), the entitlements, and the routing file kept beside the catalogue.
	Directory string `env:"GRANTLINE_DIRECTORY,notEmpty" help:"the people: ids, groups and e-mail addresses (YAML)"`
	Catalogue string `env:"GRANTLINE_CATALOGUE,notEmpty" help:"the entitlement catalogue (YAML)"`
	Routing   string `env:"GRANTLINE_NOTIFICATIONS,notEmpty" help:"the routing file beside the catalogue: channels per person and group, webhooks, reminders, escalation (YAML)"`
	// Replicas of the notifier's buckets.
	Replicas int `env:"GRANTLINE_REPLICAS" envDefault:"1" validate:"positive" help:"replicas of the notifier's key-value buckets"`
	// Hold is how long e-mail and Slack messages wait for others to the same person (one digest).
	Hold time.Duration `env:"GRANTLINE_NOTIFY_HOLD" envDefault:"2s" validate:"positive" help:"how long e-mail and Slack messages wait to go out as one digest per person"`

	SMTP  SMTP
	Slack Slack
	// WebhookSecrets are the HMAC secrets of the routing file's webhooks, by name.
	WebhookSecrets Secrets `env:"GRANTLINE_WEBHOOK_SECRETS" secret:"true" help:"each webhook's HMAC secret: name=secret, comma-separated"`
}

// Secrets are secrets by name, written name=secret,name=secret.
type Secrets map[string]string

// UnmarshalText reads name=secret pairs separated by commas.
func (s *Secrets) UnmarshalText(b []byte) error {
	out := Secrets{}
	for pair := range strings.SplitSeq(string(b), ",") {
		if strings.TrimSpace(pair) == "" {
			continue
		}
		name, secret, ok := strings.Cut(pair, "=")
		if name = strings.TrimSpace(name); !ok || name == "" || secret == "" {
			return errors.New("want name=secret, comma-separated")
		}
		out[name] = secret
	}
	*s = out
	return nil
}

// SMTP is the mail relay; without a host nobody is mailed.
type SMTP struct {
	Host       string `env:"GRANTLINE_SMTP_HOST" help:"the SMTP relay; empty: nobody is mailed"`
	Port       int    `env:"GRANTLINE_SMTP_PORT" envDefault:"25" validate:"positive" help:"the SMTP relay's port"`
	From       string `env:"GRANTLINE_SMTP_FROM" envDefault:"Grantline <grantline@localhost>" help:"the sender of the notifier's mail"`
	Username   string `env:"GRANTLINE_SMTP_USERNAME" help:"SMTP AUTH user, when the relay asks for one"`
	Password   string `env:"GRANTLINE_SMTP_PASSWORD" secret:"true" help:"SMTP AUTH password"`
	RequireTLS bool   `env:"GRANTLINE_SMTP_REQUIRE_TLS" envDefault:"false" help:"refuse to send without STARTTLS"`
}

// Slack is the Slack app: its bot token for messages, and for approving from Slack its signing
// secret and what the notifier needs to act for the person who pressed (an RFC 8693 token exchange
// at the identity provider, then the approval service's API).
type Slack struct {
	Token         string `env:"GRANTLINE_SLACK_TOKEN" secret:"true" help:"the Slack bot token (xoxb-…); empty: nobody is told on Slack"`
	APIURL        string `env:"GRANTLINE_SLACK_API_URL" help:"Slack's Web API base URL, ending in /api/; empty: Slack's own"`
	SigningSecret string `env:"GRANTLINE_SLACK_SIGNING_SECRET" secret:"true" help:"the Slack app's signing secret; empty: approving from Slack is off"`
	ApprovalURL   string `env:"GRANTLINE_APPROVAL_URL" help:"where the approval service's API answers (or the gateway); with the signing secret"`
	TokenURL      string `env:"GRANTLINE_OIDC_TOKEN_URL" help:"the identity provider's token endpoint, for the token exchange; with the signing secret"`
	Audience      string `env:"GRANTLINE_OIDC_AUDIENCE" envDefault:"grantline" help:"the audience the services accept"`
	ClientID      string `env:"GRANTLINE_NOTIFIER_CLIENT_ID" envDefault:"grantline-notifier" help:"the notifier's client at the identity provider"`
	ClientSecret  string `env:"GRANTLINE_NOTIFIER_CLIENT_SECRET" secret:"true" help:"the notifier's client secret; with the signing secret"`
}

// Defaults is the configuration before the environment is read: the notifier listens on :8088.
func Defaults() Config { return Config{Base: config.Base{HTTPAddr: ":8088"}} }

// Check refuses approving from Slack without what it takes: the bot token (to update the message),
// the approval service, the token endpoint and the notifier's client secret.
func (c Config) Check() error {
	if c.Slack.SigningSecret == "" {
		return nil
	}
	var errs []error
	for _, r := range []struct{ name, v string }{{"GRANTLINE_SLACK_TOKEN", c.Slack.Token}, {"GRANTLINE_APPROVAL_URL", c.Slack.ApprovalURL},
		{"GRANTLINE_OIDC_TOKEN_URL", c.Slack.TokenURL}, {"GRANTLINE_NOTIFIER_CLIENT_SECRET", c.Slack.ClientSecret}} {
		if r.v == "" {
			errs = append(errs, errors.New(r.name+" is required with GRANTLINE_SLACK_SIGNING_SECRET"))
		}
	}
	return errors.Join(errs...)
}
