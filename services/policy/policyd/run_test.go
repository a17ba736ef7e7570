package policyd

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	env := map[string]string{
		"GRANTLINE_NATS_URL":          ns.ClientURL(),
		"GRANTLINE_NATS_MONITOR_URLS": "http://" + ns.MonitorAddr().String(),
		"GRANTLINE_CATALOGUE":         demoCatalogue,
		"GRANTLINE_POLICY_DIR":        demoBundle,
		"GRANTLINE_TRUST_FILE":        filepath.Join(dir, "trust.json"),
		"GRANTLINE_SIGNING_KEY_FILE":  filepath.Join(dir, "policy.key"),
		"GRANTLINE_HTTP_ADDR":         addr,
	}
	cfg, err := ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil {
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

// TestRunRefusesAServerThatDoesNotFsync: the durability check runs before anything is decided.
func TestRunRefusesAServerThatDoesNotFsync(t *testing.T) {
	ns, err := natsembed.Start(natsembed.Options{Dir: t.TempDir(), Port: -1, HTTPPort: -1, LazySync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	_, js := natstest.Connect(t, ns.ClientURL())
	if err := eventstore.Provision(context.Background(), js, eventstore.DefaultSettings); err != nil {
		t.Fatal(err)
	}
	policyKey, _ := events.GenerateSigner(events.Policy, "policy-1")
	dir := t.TempDir()
	writeFile(t, dir, "trust.json", string(events.NewTrustFile(time.Now(), policyKey).Marshal()))
	cfg := Config{NATSURL: ns.ClientURL(), NATSMonitorURLs: []string{"http://" + ns.MonitorAddr().String()},
		CataloguePath: demoCatalogue, PolicyDir: demoBundle, TrustFile: filepath.Join(dir, "trust.json"), Signer: policyKey,
		HTTPAddr: "127.0.0.1:0", EvalTimeout: time.Second, MaxDeliveries: 5, StateReplicas: 1, NATSTimeout: 5 * time.Second,
		ShutdownTimeout: 5 * time.Second}
	err = Run(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "fsync") {
		t.Fatalf("run on a lazily syncing server: %v", err)
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

// TestConfigFromEnv: defaults for what may be left out, every problem reported at once, and the signing
// key never shown.
func TestConfigFromEnv(t *testing.T) {
	key, _ := events.GenerateSigner(events.Policy, "policy-7")
	other, _ := events.GenerateSigner(events.Approval, "approval-1")
	required := map[string]string{
		"GRANTLINE_CATALOGUE": "catalogue.yaml", "GRANTLINE_POLICY_DIR": "policies", "GRANTLINE_TRUST_FILE": "trust.json",
		"GRANTLINE_SIGNING_KEY": string(key.MarshalKeyFile()),
	}
	with := func(extra map[string]string) map[string]string {
		env := map[string]string{}
		for k, v := range required {
			env[k] = v
		}
		for k, v := range extra {
			env[k] = v
		}
		return env
	}
	tests := []struct {
		name  string
		env   map[string]string
		check func(Config) error
		fails []string // each must appear in the error
	}{
		{name: "the required variables alone take the defaults", env: required, check: func(c Config) error {
			if c.NATSURL != "nats://127.0.0.1:4222" || strings.Join(c.NATSMonitorURLs, ",") != "http://127.0.0.1:8222" ||
				c.HTTPAddr != ":8082" || c.EvalTimeout != 2*time.Second || c.MaxDeliveries != 5 || c.StateReplicas != 1 ||
				c.Signer.KeyID() != "policy-7" {
				return fmt.Errorf("defaults: %s", c)
			}
			return nil
		}},
		{name: "every setting can be changed", env: with(map[string]string{
			"GRANTLINE_NATS_URL": "nats://a:4222,nats://b:4222", "GRANTLINE_NATS_MONITOR_URLS": "http://a:8222, http://b:8222",
			"GRANTLINE_HTTP_ADDR": "127.0.0.1:9000", "GRANTLINE_POLICY_EVAL_TIMEOUT": "500ms", "GRANTLINE_POLICY_MAX_DELIVERIES": "7",
			"GRANTLINE_POLICY_STATE_REPLICAS": "3", "GRANTLINE_NATS_TIMEOUT": "2s", "GRANTLINE_SHUTDOWN_TIMEOUT": "3s",
		}), check: func(c Config) error {
			if len(c.NATSMonitorURLs) != 2 || c.NATSMonitorURLs[1] != "http://b:8222" || c.HTTPAddr != "127.0.0.1:9000" ||
				c.EvalTimeout != 500*time.Millisecond || c.MaxDeliveries != 7 || c.StateReplicas != 3 ||
				c.NATSTimeout != 2*time.Second || c.ShutdownTimeout != 3*time.Second {
				return fmt.Errorf("settings: %s", c)
			}
			return nil
		}},
		{name: "nothing set reports every missing variable", env: map[string]string{},
			fails: []string{"GRANTLINE_CATALOGUE is required", "GRANTLINE_POLICY_DIR is required", "GRANTLINE_TRUST_FILE is required", "no signing key"}},
		{name: "malformed numbers and durations are refused", env: with(map[string]string{
			"GRANTLINE_POLICY_EVAL_TIMEOUT": "2", "GRANTLINE_POLICY_MAX_DELIVERIES": "0", "GRANTLINE_SHUTDOWN_TIMEOUT": "-1s"}),
			fails: []string{"GRANTLINE_POLICY_EVAL_TIMEOUT", "GRANTLINE_POLICY_MAX_DELIVERIES", "GRANTLINE_SHUTDOWN_TIMEOUT"}},
		{name: "another service's key is refused", env: with(map[string]string{"GRANTLINE_SIGNING_KEY": string(other.MarshalKeyFile())}),
			fails: []string{"belongs to approval, not policy"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ConfigFromEnv(func(k string) string { return tt.env[k] })
			if len(tt.fails) > 0 {
				if err == nil {
					t.Fatalf("accepted: %s", c)
				}
				for _, want := range tt.fails {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not mention %q", err, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := tt.check(c); err != nil {
				t.Error(err)
			}
		})
	}

	c, err := ConfigFromEnv(func(k string) string {
		return with(map[string]string{"GRANTLINE_NATS_URL": "nats://svc:s3cret@nats:4222"})[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	seed := strings.Split(strings.Split(string(key.MarshalKeyFile()), `"seed":"`)[1], `"`)[0]
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "config", c)
	for _, shown := range []string{c.String(), fmt.Sprintf("%v %+v", c, c), logged.String()} {
		if strings.Contains(shown, seed) || strings.Contains(shown, "s3cret") || !strings.Contains(shown, "policy-7") {
			t.Errorf("configuration shows a secret or hides the key ID: %s", shown)
		}
	}
}
