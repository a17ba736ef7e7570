// Package notifierd runs the notifier: its configuration from the environment, the collaborators
// (Deps) that `grantline dev` can also build in process, and Run, which serves the Slack interaction
// endpoint and runs the pipeline until the context ends.
package notifierd

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/grantline/grantline/pkg/brokeraccess"
)

// Config is the notifier's configuration. Every field comes from the environment variable named in
// its comment.
type Config struct {
	// NATSURL: GRANTLINE_NATS_URL (default nats://127.0.0.1:4222); comma-separated for a cluster.
	NATSURL string
	// NATSNKeyFile: GRANTLINE_NATS_NKEY_FILE, the NKey seed of the notifier's NATS user (optional).
	NATSNKeyFile string
	// HTTPAddr: GRANTLINE_HTTP_ADDR (default :8087) serves POST /v1/slack/interactions, /livez,
	// /readyz and /metrics.
	HTTPAddr string
	// TrustFile: GRANTLINE_TRUST_FILE, the keys of every service, to verify what is read (required).
	TrustFile string
	// DirectoryFile, CatalogueFile, RoutingFile: GRANTLINE_DIRECTORY_FILE (people, their groups and
	// e-mail addresses), GRANTLINE_CATALOGUE_FILE and GRANTLINE_NOTIFICATIONS_FILE (the routing file
	// beside it) (all required).
	DirectoryFile, CatalogueFile, RoutingFile string
	// Replicas: GRANTLINE_REPLICAS, replicas of the notifier's buckets (default 1).
	Replicas int
	// Hold: GRANTLINE_NOTIFY_HOLD, how long e-mail and Slack messages wait to coalesce (default 2s).
	Hold time.Duration

	// SMTP: GRANTLINE_SMTP_HOST, GRANTLINE_SMTP_PORT (default 25), GRANTLINE_SMTP_FROM,
	// GRANTLINE_SMTP_USERNAME, GRANTLINE_SMTP_PASSWORD, GRANTLINE_SMTP_REQUIRE_TLS (true|false).
	// Without a host, nobody is mailed.
	SMTPHost, SMTPFrom, SMTPUsername, SMTPPassword string
	SMTPPort                                       int
	SMTPRequireTLS                                 bool

	// Slack: GRANTLINE_SLACK_TOKEN (the bot token; without it, nobody is told on Slack),
	// GRANTLINE_SLACK_API_URL (default Slack's), GRANTLINE_SLACK_SIGNING_SECRET (without it, the
	// interaction endpoint is not served).
	SlackToken, SlackAPIURL, SlackSigningSecret string

	// Acting for reviewers from Slack: GRANTLINE_APPROVAL_URL (the approval service or the gateway),
	// GRANTLINE_OIDC_TOKEN_URL (the identity provider's token endpoint), GRANTLINE_OIDC_AUDIENCE,
	// GRANTLINE_NOTIFIER_CLIENT_ID (default grantline-notifier), GRANTLINE_NOTIFIER_CLIENT_SECRET.
	// Required with the signing secret.
	ApprovalURL, TokenURL, Audience, ClientID, ClientSecret string

	// Getenv reads the webhook secrets, from the variables the routing file names (secret_env).
	Getenv func(string) string
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
		NATSURL: or("GRANTLINE_NATS_URL", "nats://127.0.0.1:4222"), NATSNKeyFile: getenv("GRANTLINE_NATS_NKEY_FILE"),
		HTTPAddr: or("GRANTLINE_HTTP_ADDR", ":8087"), TrustFile: getenv("GRANTLINE_TRUST_FILE"),
		DirectoryFile: getenv("GRANTLINE_DIRECTORY_FILE"), CatalogueFile: getenv("GRANTLINE_CATALOGUE_FILE"),
		RoutingFile: getenv("GRANTLINE_NOTIFICATIONS_FILE"),
		SMTPHost:    getenv("GRANTLINE_SMTP_HOST"), SMTPFrom: or("GRANTLINE_SMTP_FROM", "Grantline <grantline@localhost>"),
		SMTPUsername: getenv("GRANTLINE_SMTP_USERNAME"), SMTPPassword: getenv("GRANTLINE_SMTP_PASSWORD"),
		SlackToken: getenv("GRANTLINE_SLACK_TOKEN"), SlackAPIURL: getenv("GRANTLINE_SLACK_API_URL"),
		SlackSigningSecret: getenv("GRANTLINE_SLACK_SIGNING_SECRET"),
		ApprovalURL:        getenv("GRANTLINE_APPROVAL_URL"), TokenURL: getenv("GRANTLINE_OIDC_TOKEN_URL"),
		Audience: or("GRANTLINE_OIDC_AUDIENCE", "grantline"), ClientID: or("GRANTLINE_NOTIFIER_CLIENT_ID", "grantline-notifier"),
		ClientSecret: getenv("GRANTLINE_NOTIFIER_CLIENT_SECRET"), Getenv: getenv,
	}
	var errs []error
	required := []struct{ name, v string }{
		{"GRANTLINE_TRUST_FILE", c.TrustFile}, {"GRANTLINE_DIRECTORY_FILE", c.DirectoryFile},
		{"GRANTLINE_CATALOGUE_FILE", c.CatalogueFile}, {"GRANTLINE_NOTIFICATIONS_FILE", c.RoutingFile},
	}
	if c.SlackSigningSecret != "" {
		required = append(required, struct{ name, v string }{"GRANTLINE_APPROVAL_URL", c.ApprovalURL},
			struct{ name, v string }{"GRANTLINE_OIDC_TOKEN_URL", c.TokenURL},
			struct{ name, v string }{"GRANTLINE_NOTIFIER_CLIENT_SECRET", c.ClientSecret},
			struct{ name, v string }{"GRANTLINE_SLACK_TOKEN", c.SlackToken})
	}
	for _, r := range required {
		if r.v == "" {
			errs = append(errs, fmt.Errorf("%s is required", r.name))
		}
	}
	var err error
	if c.Replicas, err = strconv.Atoi(or("GRANTLINE_REPLICAS", "1")); err != nil || c.Replicas < 1 {
		errs = append(errs, errors.New("GRANTLINE_REPLICAS must be a positive number"))
	}
	if c.SMTPPort, err = strconv.Atoi(or("GRANTLINE_SMTP_PORT", "25")); err != nil || c.SMTPPort <= 0 {
		errs = append(errs, errors.New("GRANTLINE_SMTP_PORT must be a port number"))
	}
	if c.SMTPRequireTLS, err = strconv.ParseBool(or("GRANTLINE_SMTP_REQUIRE_TLS", "false")); err != nil {
		errs = append(errs, errors.New("GRANTLINE_SMTP_REQUIRE_TLS must be true or false"))
	}
	if c.Hold, err = time.ParseDuration(or("GRANTLINE_NOTIFY_HOLD", "2s")); err != nil || c.Hold < 0 {
		errs = append(errs, errors.New("GRANTLINE_NOTIFY_HOLD must be a duration such as 2s"))
	}
	if c.NATSNKeyFile != "" {
		if _, err := brokeraccess.PublicKeyOf(c.NATSNKeyFile); err != nil {
			errs = append(errs, fmt.Errorf("GRANTLINE_NATS_NKEY_FILE: %w", err))
		}
	}
	return c, errors.Join(errs...)
}

// LogValue shows the configuration with its secrets masked, for the start-up log line.
func (c Config) LogValue() slog.Value {
	mask := func(s string) string {
		if s == "" {
			return ""
		}
		return "xxxxx"
	}
	return slog.GroupValue(
		slog.String("nats_url", c.NATSURL), slog.String("nats_nkey_file", c.NATSNKeyFile), slog.String("http_addr", c.HTTPAddr),
		slog.String("trust_file", c.TrustFile), slog.String("directory_file", c.DirectoryFile),
		slog.String("catalogue_file", c.CatalogueFile), slog.String("notifications_file", c.RoutingFile),
		slog.Int("replicas", c.Replicas), slog.Duration("hold", c.Hold),
		slog.String("smtp_host", c.SMTPHost), slog.Int("smtp_port", c.SMTPPort), slog.String("smtp_from", c.SMTPFrom),
		slog.String("smtp_username", c.SMTPUsername), slog.String("smtp_password", mask(c.SMTPPassword)),
		slog.Bool("smtp_require_tls", c.SMTPRequireTLS), slog.String("slack_token", mask(c.SlackToken)),
		slog.String("slack_api_url", c.SlackAPIURL), slog.String("slack_signing_secret", mask(c.SlackSigningSecret)),
		slog.String("approval_url", c.ApprovalURL), slog.String("oidc_token_url", c.TokenURL), slog.String("oidc_audience", c.Audience),
		slog.String("client_id", c.ClientID), slog.String("client_secret", mask(c.ClientSecret)))
}
