package checkpointerd

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/checkpoint"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/ops"
	"github.com/grantline/grantline/pkg/witness"
	"github.com/grantline/grantline/services/checkpointer"
)

// Deps builds the checkpointer's collaborators from cfg: its key, the trust file's checkpoint section
// and the witnesses.
func (c Config) Deps(host ops.Host) (checkpointer.Deps, error) {
	signer, err := checkpoint.LoadSigner(c.KeyFile)
	if err != nil {
		return checkpointer.Deps{}, err
	}
	verifier, err := events.LoadTrustFile(c.TrustFile)
	if err != nil {
		return checkpointer.Deps{}, err
	}
	trust, err := checkpoint.NewTrust(verifier)
	if err != nil {
		return checkpointer.Deps{}, err
	}
	d := checkpointer.Deps{JS: host.Conn.JS, Signer: signer, Trust: trust, Every: c.Every, Interval: c.Interval, Log: host.Log}
	if c.WitnessDir != "" {
		d.Dir = &witness.Dir{Path: c.WitnessDir}
	}
	for _, u := range c.WitnessURLs {
		d.Witnesses = append(d.Witnesses, &witness.Client{URL: u, HTTP: &http.Client{}})
	}
	return d, nil
}

// New builds the checkpointer from cfg on host (a connection as the checkpointer's NATS user, without
// an event store: it signs no event) and resumes from its last checkpoint, refusing an evidence
// stream that is not the one that checkpoint describes. Its Consume checkpoints until the context
// ends.
func New(ctx context.Context, cfg Config, host ops.Host) (ops.Service, error) {
	d, err := cfg.Deps(host)
	if err != nil {
		return ops.Service{}, err
	}
	c, err := checkpointer.New(ctx, d)
	if err != nil {
		return ops.Service{}, err
	}
	return ops.Service{Name: "checkpointer", Consume: c.Run}, nil
}

// Run runs the checkpointer as a process of its own (grantline-checkpointer) until ctx ends.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	return ops.Run(ctx, cfg.Base, ops.ReadsAs(brokeraccess.Checkpointer), log,
		func(ctx context.Context, host ops.Host) (ops.Service, error) { return New(ctx, cfg, host) })
}
