package eventstore

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/natsembed"
	"github.com/grantline/grantline/pkg/natstest"
	"github.com/grantline/grantline/pkg/topology"
)

func openConfig(t *testing.T, probe SyncProbe) Config {
	t.Helper()
	s, err := events.GenerateSigner(events.Intake, "intake-test")
	if err != nil {
		t.Fatal(err)
	}
	v, err := events.NewVerifier(events.NewTrustFile(time.Now(), s))
	if err != nil {
		t.Fatal(err)
	}
	return Config{Signer: s, Verifier: v, Durability: probe}
}

// TestStartupRefusesMisconfiguredEvidence: each row is an evidence stream someone created by hand with
// one promise broken; neither provisioning nor a service start may accept it.
func TestStartupRefusesMisconfiguredEvidence(t *testing.T) {
	cases := []struct {
		name   string
		break_ func(*jetstream.StreamConfig)
		says   string
	}{
		{"deletes allowed", func(c *jetstream.StreamConfig) { c.DenyDelete = false }, "deletes are allowed"},
		{"purges allowed", func(c *jetstream.StreamConfig) { c.DenyPurge = false }, "purges are allowed"},
		{"rollup on", func(c *jetstream.StreamConfig) { c.AllowRollup, c.DenyPurge = true, false }, "rollups are allowed"},
		{"max age set", func(c *jetstream.StreamConfig) { c.MaxAge = 365 * 24 * time.Hour }, "max_age must be 0"},
		{"old evidence discarded when full", func(c *jetstream.StreamConfig) { c.Discard = jetstream.DiscardOld }, "discard must be new"},
		{"message limit", func(c *jetstream.StreamConfig) { c.MaxMsgs = 1_000_000 }, "message limit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns := natstest.RunServer(t)
			_, js := natstest.Connect(t, ns.ClientURL())
			ctx := context.Background()
			cfg := StreamConfigs(DefaultSettings)[0]
			tc.break_(&cfg)
			if _, err := js.CreateStream(ctx, cfg); err != nil {
				t.Fatalf("create the broken stream: %v", err)
			}
			err := Provision(ctx, js, DefaultSettings)
			var mis *MisconfiguredError
			if !errors.As(err, &mis) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("Provision = %v, want a misconfiguration saying %q", err, tc.says)
			}
			if _, err := Open(ctx, js, openConfig(t, EmbeddedProbe(ns))); !errors.Is(err, ErrMisconfigured) {
				t.Fatalf("Open = %v, want ErrMisconfigured", err)
			}
			info, _ := js.Stream(ctx, topology.EventsStream)
			if got := info.CachedInfo().Config; got.DenyDelete != cfg.DenyDelete || got.MaxAge != cfg.MaxAge {
				t.Fatal("provisioning changed a misconfigured evidence stream instead of refusing it")
			}
		})
	}
}

func TestStartupRefusesMissingStreams(t *testing.T) {
	ns := natstest.RunServer(t)
	_, js := natstest.Connect(t, ns.ClientURL())
	if _, err := Open(context.Background(), js, openConfig(t, EmbeddedProbe(ns))); !errors.Is(err, ErrMisconfigured) {
		t.Fatalf("Open on a server without streams = %v, want ErrMisconfigured", err)
	}
}

func TestStartupRefusesLazyFsync(t *testing.T) {
	lazy, err := natsembed.Start(natsembed.Options{Dir: t.TempDir(), Port: -1, HTTPPort: -1, LazySync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lazy.Shutdown(); lazy.WaitForShutdown() })
	_, js := natstest.Connect(t, lazy.ClientURL())
	ctx := context.Background()
	if err := Provision(ctx, js, DefaultSettings); err != nil {
		t.Fatal(err)
	}
	monitor := fmt.Sprintf("http://%s", lazy.MonitorAddr())
	for name, probe := range map[string]SyncProbe{
		"embedded":   EmbeddedProbe(lazy),
		"monitoring": MonitorProbe(http.DefaultClient, monitor),
	} {
		if _, err := Open(ctx, js, openConfig(t, probe)); !errors.Is(err, ErrNotDurable) {
			t.Errorf("%s probe: Open = %v, want ErrNotDurable", name, err)
		}
	}

	durable, err := natsembed.Start(natsembed.Options{Dir: t.TempDir(), Port: -1, HTTPPort: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { durable.Shutdown(); durable.WaitForShutdown() })
	if err := CheckDurability(ctx, MonitorProbe(http.DefaultClient, fmt.Sprintf("http://%s", durable.MonitorAddr()))); err != nil {
		t.Fatalf("a server that fsyncs every write was refused: %v", err)
	}
}
