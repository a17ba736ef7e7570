// Package checkpointerd runs the checkpointer: its configuration, New, which builds it for the
// skeleton (pkg/ops) from that configuration, and Run, the checkpointer as a process of its own.
package checkpointerd

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/grantline/grantline/pkg/checkpoint"
	"github.com/grantline/grantline/pkg/config"
)

// Config is the checkpointer's configuration, read from the environment by config.Parse; each field's
// tag names its variable (`grantline-checkpointer --help` lists them with their defaults). It signs
// no event: its key signs checkpoints only, and the trust file lists it under checkpoints.
type Config struct {
	config.Base
	KeyFile     string        `env:"GRANTLINE_CHECKPOINT_KEY_FILE,notEmpty" help:"the checkpointer's signed-note key (grantline deploy secrets writes signing/checkpointer.key)"`
	Every       int           `env:"GRANTLINE_CHECKPOINT_EVERY" envDefault:"1000" validate:"positive" help:"most events one checkpoint adds"`
	Interval    time.Duration `env:"GRANTLINE_CHECKPOINT_INTERVAL" envDefault:"10s" validate:"positive" help:"longest a new event waits for its checkpoint"`
	WitnessDir  string        `env:"GRANTLINE_WITNESS_DIR" help:"directory (a mounted bucket the operator cannot rewrite) that receives every checkpoint as a file; none when empty"`
	WitnessURLs config.List   `env:"GRANTLINE_WITNESS_URLS" help:"HTTP witnesses that countersign every checkpoint (grantline witness serve), comma-separated"`
}

// maxEvery keeps a record (32 bytes of leaf hash per event, in base64) well under NATS's 1 MiB payload.
const maxEvery = 8192

// Defaults is the configuration before the environment is read: the checkpointer listens on :8089.
func Defaults() Config { return Config{Base: config.Base{HTTPAddr: ":8089"}} }

// Check refuses a key file that holds no signer key, too many events per checkpoint, and witness URLs
// that are not http(s) URLs.
func (c Config) Check() error {
	var errs []error
	if c.KeyFile != "" {
		if _, err := checkpoint.LoadSigner(c.KeyFile); err != nil {
			errs = append(errs, fmt.Errorf("GRANTLINE_CHECKPOINT_KEY_FILE: %w", err))
		}
	}
	if c.Every > maxEvery {
		errs = append(errs, fmt.Errorf("GRANTLINE_CHECKPOINT_EVERY must be at most %d, not %d", maxEvery, c.Every))
	}
	for _, u := range c.WitnessURLs {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			errs = append(errs, fmt.Errorf("GRANTLINE_WITNESS_URLS: %q is not an http(s) URL", u))
		}
	}
	return errors.Join(errs...)
}
