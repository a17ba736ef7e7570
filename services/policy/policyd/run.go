package policyd

import (
	"context"
	"log/slog"

	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/ops"
	"github.com/grantline/grantline/services/policy"
)

// New builds the policy service from cfg on host: the catalogue, the policy bundle and, if configured,
// the directory its start checks read groups from. It has no API; it runs Serve, which decides every
// submitted request and checks again at its start one that asked for a later start.
func New(ctx context.Context, cfg Config, host ops.Host) (ops.Service, error) {
	cat, err := catalogue.Load(cfg.Catalogue)
	if err != nil {
		return ops.Service{}, err
	}
	engine, err := policy.Load(ctx, cfg.PolicyDir, policy.WithTimeout(cfg.EvalTimeout))
	if err != nil {
		return ops.Service{}, err
	}
	host.Log.Info("policy loaded", "bundle", cfg.PolicyDir, "policy_revision", engine.Revision())
	d := Deps{JS: host.Conn.JS, Store: host.Conn.Store, Catalogue: cat, Engine: engine, MaxDeliveries: cfg.MaxDeliveries,
		StateReplicas: cfg.StateReplicas, Meter: host.Meter, AckWait: host.AckWait}
	if cfg.Directory != "" {
		d.Groups = DirectoryGroups{Path: cfg.Directory}
	}
	return ops.Service{Name: "policy", Consume: func(ctx context.Context) error { return Serve(ctx, d, host.Log) }}, nil
}

// Run runs the policy service as a process of its own (grantline-policy) until ctx ends.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	return ops.Run(ctx, cfg.Base, ops.SignsAs(events.Policy, cfg.Signing), log,
		func(ctx context.Context, host ops.Host) (ops.Service, error) { return New(ctx, cfg, host) })
}
