package eventstore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/natsembed"
	"github.com/grantline/grantline/pkg/natstest"
)

func TestDialOpensTheServicesStore(t *testing.T) {
	ns, err := natsembed.Start(natsembed.Options{Dir: t.TempDir(), Port: -1, HTTPPort: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	_, js := natstest.Connect(t, ns.ClientURL())
	if err := Provision(context.Background(), js, DefaultSettings); err != nil {
		t.Fatal(err)
	}
	intake, _ := events.GenerateSigner(events.Intake, "intake-1")
	trust := filepath.Join(t.TempDir(), "trust.json")
	if err := os.WriteFile(trust, events.NewTrustFile(time.Now().Add(-time.Minute), intake).Marshal(), 0o644); err != nil {
		t.Fatal(err)
	}
	env := func(k string) string {
		if k == events.EnvSigningKey {
			return string(intake.MarshalKeyFile())
		}
		return ""
	}
	cfg := DialConfig{Service: events.Intake, Getenv: env, TrustFile: trust, NATSURL: ns.ClientURL(),
		MonitorURLs: []string{fmt.Sprintf("http://%s", ns.MonitorAddr())}}
	conn, err := Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Store.Load(context.Background(), events.NewID()); err != nil {
		t.Fatalf("load through the dialled store: %v", err)
	}
	cfg.Service = events.Approval
	if _, err := Dial(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "belongs to intake") {
		t.Fatalf("dialling as approval with intake's key = %v, want a refusal", err)
	}
}
