package policyd

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/config"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/natsembed"
	"github.com/grantline/grantline/pkg/natstest"
	"github.com/grantline/grantline/pkg/poll"
)

// TestRun runs the service as the binary does, configured only through the environment, against a
// NATS server whose durability it checks over HTTP monitoring; it decides a request, serves its ops
// endpoints, and stops cleanly when its context ends.
func TestRun(t *testing.T) {
	ns, err := natsembed.Start(natsembed.Options{Dir: t.TempDir(), Port: -1, HTTPPort: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	_, js := natstest.Connect(t, ns.ClientURL())
	ctx := context.Background()
	if err := eventstore.Provision(ctx, js, eventstore.DefaultSettings); err != nil {
		t.Fatal(err)
	}
	intakeKey, _ := events.GenerateSigner(events.Intake, "intake-1")
	policyKey, _ := events.GenerateSigner(events.Policy, "policy-1")
	trust := events.NewTrustFile(time.Now().Add(-time.Minute), intakeKey, policyKey)
	dir := t.TempDir()
	writeFile(t, dir, "trust.json", string(trust.Marshal()))
	writeFile(t, dir, "policy.key", string(policyKey.MarshalKeyFile()))
	addr := freeAddr(t)
	cfg := Defaults()
	if err := config.Parse(&cfg, []string{
		"GRANTLINE_NATS_URL=" + ns.ClientURL(),
		"GRANTLINE_NATS_MONITOR_URLS=http://" + ns.MonitorAddr().String(),
		"GRANTLINE_CATALOGUE=" + demoCatalogue,
		"GRANTLINE_POLICY_DIR=" + demoBundle,
		"GRANTLINE_TRUST_FILE=" + filepath.Join(dir, "trust.json"),
		"GRANTLINE_SIGNING_KEY_FILE=" + filepath.Join(dir, "policy.key"),
		"GRANTLINE_HTTP_ADDR=" + addr,
	}); err != nil {
		t.Fatal(err)
	}

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- Run(runCtx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	t.Cleanup(func() { cancel(); <-done })

	verifier, _ := events.NewVerifier(trust)
	intake, err := eventstore.Open(ctx, js, eventstore.Config{Signer: intakeKey, Verifier: verifier, Durability: eventstore.EmbeddedProbe(ns)})
	if err != nil {
		t.Fatal(err)
	}
	sub := events.Submitted{Requester: events.Principal{ID: "alice", Groups: []string{"engineers"}},
		Subject: events.RequestSubject{Kind: events.SubjectHuman, ID: "alice"}, Entitlement: "analytics-read",
		Justification: "report", DurationSeconds: 600, Channel: "http"}
	sub.RequestDigest = sub.Digest()
	id := events.NewID()
	if _, err := intake.Update(ctx, id, func(*events.Request) ([]events.Draft, error) {
		return []events.Draft{{Payload: sub, Actor: "alice", CausationID: "http:" + id}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 30*time.Second, "the decision", func() bool {
		l, err := intake.Load(ctx, id)
		return err == nil && l.Request.Decision().Outcome == events.OutcomeAutoApproved
	})

	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz: %d %s", code, body)
	}
	poll.Until(t, 10*time.Second, "the decision in /metrics", func() bool {
		_, body := get("/metrics")
		return strings.Contains(body, `grantline_policy_decisions_total{`) && strings.Contains(body, `outcome="auto_approved"`)
	})

	cancel()
	select {
	case err := <-done:
		done <- err // for the cleanup
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not stop after its context ended")
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
