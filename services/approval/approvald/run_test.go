package approvald_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/api"
	"github.com/grantline/grantline/pkg/auth"
	"github.com/grantline/grantline/pkg/config"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/natsembed"
	"github.com/grantline/grantline/pkg/natstest"
	"github.com/grantline/grantline/pkg/pgtest"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/services/approval/approvald"
)

// TestRun starts the service the way grantline-approval does (Config with its signing key from the
// environment, trust file, OIDC, PostgreSQL, NATS with its monitoring endpoint), reviews a request
// through it, and stops it.
func TestRun(t *testing.T) {
	ctx := context.Background()
	ns, err := natsembed.Start(natsembed.Options{Dir: t.TempDir(), Port: -1, HTTPPort: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	_, js := natstest.Connect(t, ns.ClientURL())
	if err := eventstore.Provision(ctx, js, eventstore.DefaultSettings); err != nil {
		t.Fatal(err)
	}

	signers := map[events.Service]*events.Signer{}
	var all []*events.Signer
	for _, svc := range events.Services {
		signers[svc], _ = events.GenerateSigner(svc, string(svc)+"-run")
		all = append(all, signers[svc])
	}
	trust := filepath.Join(t.TempDir(), "trust.json")
	if err := os.WriteFile(trust, events.NewTrustFile(time.Now().Add(-time.Minute), all...).Marshal(), 0o600); err != nil {
		t.Fatal(err)
	}

	dir, err := auth.LoadDirectory("../../../examples/directory.yaml")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	idp := httptest.NewServer(mux)
	t.Cleanup(idp.Close)
	issuer, err := auth.OpenDevIssuer(t.TempDir(), idp.URL+"/dev/oidc", "grantline", dir)
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("/dev/oidc/", http.StripPrefix("/dev/oidc", issuer.Handler()))

	cfg := approvald.Defaults()
	if err := config.Parse(&cfg, []string{
		"GRANTLINE_NATS_URL=" + ns.ClientURL(), "GRANTLINE_NATS_MONITOR_URLS=http://" + ns.MonitorAddr().String(),
		"GRANTLINE_HTTP_ADDR=127.0.0.1:0", "GRANTLINE_DATABASE_URL=" + pgtest.New(t), "GRANTLINE_TRUST_FILE=" + trust,
		"GRANTLINE_CATALOGUE=../../../examples/catalogue.yaml",
		"GRANTLINE_OIDC_ISSUER=" + idp.URL + "/dev/oidc", "GRANTLINE_OIDC_AUDIENCE=grantline",
		"GRANTLINE_SIGNING_KEY=" + string(signers[events.Approval].MarshalKeyFile()),
	}); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- approvald.Run(runCtx, cfg, slog.New(slog.NewJSONHandler(logs, nil))) }()
	t.Cleanup(func() { stop(); <-done })

	var base string
	poll.Until(t, 20*time.Second, "the service to listen", func() bool {
		select {
		case err := <-done:
			t.Fatalf("Run ended: %v\n%s", err, logs.String())
		default:
		}
		if l := logs.lines(map[string]any{"msg": "ops server listening"}); len(l) > 0 {
			base = "http://" + l[0]["addr"].(string)
			return true
		}
		return false
	})
	poll.Until(t, 20*time.Second, "/readyz", func() bool {
		resp, err := api.Client(t).Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	// A request from intake and policy, approved through the running service.
	w := &world{js: js, stores: map[events.Service]*eventstore.Store{}}
	for _, svc := range []events.Service{events.Intake, events.Policy, events.Approval} {
		verifier, _ := events.NewVerifier(events.NewTrustFile(time.Now().Add(-time.Minute), all...))
		if w.stores[svc], err = eventstore.Open(ctx, js, eventstore.Config{Signer: signers[svc], Verifier: verifier, Durability: eventstore.EmbeddedProbe(ns)}); err != nil {
			t.Fatal(err)
		}
	}
	id := w.submit(t, alice, "payments-admin", false)
	w.decide(t, id, time.Now().Add(time.Hour), false, owners)
	tok, _ := issuer.Mint("bob", time.Hour)
	req, _ := http.NewRequest("POST", base+"/v1/requests/"+id+"/reviews", strings.NewReader(approveBody))
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := api.Client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || w.load(t, id).Request.Status() != events.StatusApproved {
		t.Fatalf("review through the running service: %d", resp.StatusCode)
	}

	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after stop: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	done <- nil // for the clean-up
}
