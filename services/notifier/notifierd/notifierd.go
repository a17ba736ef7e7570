package notifierd

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/auth"
	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/httpjson"
	"github.com/grantline/grantline/pkg/ops"
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
	dir, err := auth.LoadDirectory(cfg.Directory)
	if err != nil {
		return Deps{}, err
	}
	cat, err := catalogue.Load(cfg.Catalogue)
	if err != nil {
		return Deps{}, err
	}
	file, err := routing.Load(cfg.Routing)
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

	if cfg.SMTP.Host != "" {
		if d.Senders[notifier.Email], err = email.New(email.Config{Host: cfg.SMTP.Host, Port: cfg.SMTP.Port, From: cfg.SMTP.From,
			Username: cfg.SMTP.Username, Password: cfg.SMTP.Password, RequireTLS: cfg.SMTP.RequireTLS}); err != nil {
			return Deps{}, err
		}
	}
	var slackSender *slackchat.Sender
	if cfg.Slack.Token != "" {
		if slackSender, err = slackchat.New(slackchat.Config{Token: cfg.Slack.Token, APIURL: cfg.Slack.APIURL}); err != nil {
			return Deps{}, err
		}
		d.Senders[notifier.Slack] = slackSender
	}
	if len(file.Webhooks) > 0 {
		targets := map[string]webhook.Target{}
		for _, w := range file.Webhooks {
			secret, ok := cfg.WebhookSecrets[w.Name]
			if !ok {
				return Deps{}, fmt.Errorf("webhook %s has no secret in GRANTLINE_WEBHOOK_SECRETS", w.Name)
			}
			targets[w.Name] = webhook.Target{URL: w.URL, Secret: []byte(secret)}
		}
		if d.Senders[notifier.Webhook], err = webhook.New(webhook.Config{Targets: targets}); err != nil {
			return Deps{}, err
		}
	}
	if cfg.Slack.SigningSecret != "" {
		d.Interactions = &slackapi.Handler{SigningSecret: cfg.Slack.SigningSecret, Replay: buckets.Replay, Person: file.Routing.PersonBySlack,
			Tokens: delegation.Exchanger{TokenURL: cfg.Slack.TokenURL, ClientID: cfg.Slack.ClientID, Secret: cfg.Slack.ClientSecret,
				Audience: cfg.Slack.Audience},
			Approval: &slackapi.Approval{BaseURL: cfg.Slack.ApprovalURL}, Messages: slackSender, Log: log.With("edge", "slack")}
	}
	return d, nil
}

// Routes registers POST /v1/slack/interactions on mux when Slack approvals are configured.
func (d Deps) Routes(mux httpjson.Mux) {
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

// New builds the notifier from cfg on host (a connection as the notifier's user, which signs
// nothing): the trust file, the files the rules read, its buckets and channels. It serves the Slack
// interaction endpoint when configured and runs the pipeline.
func New(ctx context.Context, cfg Config, host ops.Host) (ops.Service, error) {
	verifier, err := events.LoadTrustFile(cfg.TrustFile)
	if err != nil {
		return ops.Service{}, err
	}
	d, err := Build(ctx, cfg, host.Conn.JS, verifier, host.Log)
	if err != nil {
		return ops.Service{}, err
	}
	return ops.Service{Name: "notifier",
		Routes:  func(mux *http.ServeMux) { d.Routes(mux) },
		Consume: func(ctx context.Context) error { return d.Consume(ctx, host.Log) },
	}, nil
}

// Run runs the notifier as a process of its own (grantline-notifier) until ctx ends.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	return ops.Run(ctx, cfg.Base, ops.ReadsAs(brokeraccess.Notifier), log,
		func(ctx context.Context, host ops.Host) (ops.Service, error) { return New(ctx, cfg, host) })
}
