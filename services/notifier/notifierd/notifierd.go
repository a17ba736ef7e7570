package notifierd

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/auth"
	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/ops"
	"github.com/grantline/grantline/pkg/telemetry"
	"github.com/grantline/grantline/services/notifier"
	"github.com/grantline/grantline/services/notifier/channel"
	"github.com/grantline/grantline/services/notifier/channel/email"
	"github.com/grantline/grantline/services/notifier/channel/slackchat"
	"github.com/grantline/grantline/services/notifier/channel/webhook"
	"github.com/grantline/grantline/services/notifier/delegation"
	"github.com/grantline/grantline/services/notifier/lookup"
	"github.com/grantline/grantline/services/notifier/natskv"
	"github.com/grantline/grantline/services/notifier/pipeline"
	"github.com/grantline/grantline/services/notifier/routing"
	"github.com/grantline/grantline/services/notifier/slackapi"
)

// Deps are the notifier's collaborators, built by Build from Config or by `grantline dev` in process.
type Deps struct {
	JS jetstream.JetStream
	// Store reads and verifies requests; it never appends (eventstore.OpenReader).
	Store   *eventstore.Store
	Buckets *natskv.Buckets
	Rules   notifier.Rules
	Senders map[notifier.Channel]channel.Sender
	// Interactions serves Slack's callbacks; nil when Slack approvals are not configured.
	Interactions *slackapi.Handler
	// Pipeline tunes the pipeline; its JS, Store, Rules, Buckets, Senders and Log are filled in.
	Pipeline pipeline.Config
}

// Build reads the directory, catalogue and routing files, opens the notifier's buckets and the
// channels cfg configures, over js with verifier checking what is read.
func Build(ctx context.Context, cfg Config, js jetstream.JetStream, verifier *events.Verifier, log *slog.Logger) (Deps, error) {
	store, err := eventstore.OpenReader(ctx, js, verifier)
	if err != nil {
		return Deps{}, err
	}
	dir, err := auth.LoadDirectory(cfg.DirectoryFile)
	if err != nil {
		return Deps{}, err
	}
	cat, err := catalogue.Load(cfg.CatalogueFile)
	if err != nil {
		return Deps{}, err
	}
	file, err := routing.Load(cfg.RoutingFile)
	if err != nil {
		return Deps{}, err
	}
	buckets, err := natskv.Open(ctx, js, natskv.Settings{Replicas: cfg.Replicas})
	if err != nil {
		return Deps{}, err
	}
	d := Deps{JS: js, Store: store, Buckets: buckets, Senders: map[notifier.Channel]channel.Sender{},
		Rules:    notifier.Rules{Directory: lookup.NewDirectory(dir), Catalogue: lookup.NewCatalogue(cat), Routing: file.Routing},
		Pipeline: pipeline.Config{Hold: cfg.Hold, Owner: "notifier-" + events.NewID()}}

	if cfg.SMTPHost != "" {
		if d.Senders[notifier.Email], err = email.New(email.Config{Host: cfg.SMTPHost, Port: cfg.SMTPPort, From: cfg.SMTPFrom,
			Username: cfg.SMTPUsername, Password: cfg.SMTPPassword, RequireTLS: cfg.SMTPRequireTLS}); err != nil {
			return Deps{}, err
		}
	}
	var slackSender *slackchat.Sender
	if cfg.SlackToken != "" {
		if slackSender, err = slackchat.New(slackchat.Config{Token: cfg.SlackToken, APIURL: cfg.SlackAPIURL}); err != nil {
			return Deps{}, err
		}
		d.Senders[notifier.Slack] = slackSender
	}
	if len(file.Webhooks) > 0 {
		targets := map[string]webhook.Target{}
		for _, w := range file.Webhooks {
			secret := cfg.Getenv(w.SecretEnv)
			if secret == "" {
				return Deps{}, fmt.Errorf("webhook %s: %s is not set", w.Name, w.SecretEnv)
			}
			targets[w.Name] = webhook.Target{URL: w.URL, Secret: []byte(secret)}
		}
		if d.Senders[notifier.Webhook], err = webhook.New(webhook.Config{Targets: targets}); err != nil {
			return Deps{}, err
		}
	}
	if cfg.SlackSigningSecret != "" {
		d.Interactions = &slackapi.Handler{SigningSecret: cfg.SlackSigningSecret, Replay: buckets.Replay, Person: file.Routing.PersonBySlack,
			Tokens:   delegation.Exchanger{TokenURL: cfg.TokenURL, ClientID: cfg.ClientID, Secret: cfg.ClientSecret, Audience: cfg.Audience},
			Approval: &slackapi.Approval{BaseURL: cfg.ApprovalURL}, Messages: slackSender, Log: log.With("edge", "slack")}
	}
	return d, nil
}

// Routes registers POST /v1/slack/interactions on mux when Slack approvals are configured.
func (d Deps) Routes(mux *http.ServeMux) {
	if d.Interactions != nil {
		d.Interactions.Routes(mux)
	}
}

// Consume runs the pipeline until ctx ends.
func (d Deps) Consume(ctx context.Context, log *slog.Logger) error {
	cfg := d.Pipeline
	cfg.JS, cfg.Store, cfg.Rules, cfg.Buckets, cfg.Senders, cfg.Log = d.JS, d.Store, d.Rules, d.Buckets, d.Senders, log
	return pipeline.Run(ctx, cfg)
}

// Run builds the notifier from cfg and serves until ctx ends, then shuts down in reverse order.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	log.Info("starting", "config", cfg)
	verifier, err := events.LoadTrustFile(cfg.TrustFile)
	if err != nil {
		return err
	}
	opts, err := brokeraccess.ClientOptions(brokeraccess.Notifier, cfg.NATSNKeyFile)
	if err != nil {
		return err
	}
	nc, err := nats.Connect(cfg.NATSURL, append(opts, nats.Name("grantline-notifier"), nats.MaxReconnects(-1),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			// A permissions violation means the broker's matrix and this code disagree: loud.
			log.Error("nats", telemetry.KeyError, err.Error())
		}))...)
	if err != nil {
		return fmt.Errorf("connect to nats: %w", err)
	}
	defer func() { _ = nc.Drain() }()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	deps, err := Build(ctx, cfg, js, verifier, log)
	if err != nil {
		return err
	}
	return ops.RunService(ctx, ops.Service{
		Name: "notifier", Addr: cfg.HTTPAddr,
		Checks:  map[string]ops.Check{"nats": ops.NATSCheck(nc)},
		Routes:  deps.Routes,
		Consume: func(ctx context.Context) error { return deps.Consume(ctx, log) },
	}, log)
}
