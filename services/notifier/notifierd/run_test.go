package notifierd_test

import (
	"bytes"
	"context"
	"encoding/json/v2"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/auth"
	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/services/notifier/mailsink"
	"github.com/grantline/grantline/services/notifier/notifierd"
	"github.com/grantline/grantline/services/notifier/notifiertest"
	"github.com/grantline/grantline/services/notifier/slacktest"
)

const examples = "../../../examples"

// TestConfigFromEnv: what is required, and what Slack approvals require besides.
func TestConfigFromEnv(t *testing.T) {
	_, err := notifierd.ConfigFromEnv(func(string) string { return "" })
	for _, name := range []string{"GRANTLINE_TRUST_FILE", "GRANTLINE_DIRECTORY_FILE", "GRANTLINE_CATALOGUE_FILE", "GRANTLINE_NOTIFICATIONS_FILE"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("no %s: %v", name, err)
		}
	}
	env := map[string]string{"GRANTLINE_TRUST_FILE": "t", "GRANTLINE_DIRECTORY_FILE": "d", "GRANTLINE_CATALOGUE_FILE": "c",
		"GRANTLINE_NOTIFICATIONS_FILE": "n", "GRANTLINE_SLACK_SIGNING_SECRET": "s", "GRANTLINE_SMTP_PASSWORD": "hunter2"}
	_, err = notifierd.ConfigFromEnv(func(k string) string { return env[k] })
	for _, name := range []string{"GRANTLINE_APPROVAL_URL", "GRANTLINE_OIDC_TOKEN_URL", "GRANTLINE_NOTIFIER_CLIENT_SECRET", "GRANTLINE_SLACK_TOKEN"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("Slack approvals without %s: %v", name, err)
		}
	}
	delete(env, "GRANTLINE_SLACK_SIGNING_SECRET")
	cfg, err := notifierd.ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("starting", "config", cfg)
	if strings.Contains(logged.String(), "hunter2") {
		t.Errorf("the start-up line shows the SMTP password: %s", logged.String())
	}
}

// TestRun starts the notifier the way grantline-notifier does (Config from the environment, the trust
// file, NATS as its own user on a broker that enforces the separation of duties, the demo directory,
// catalogue and routing file, an SMTP relay, Slack), tells people of a request through it, serves the
// Slack interaction endpoint, and stops. The broker refuses it nothing: its user's rights are exactly
// what its code does.
func TestRun(t *testing.T) {
	ctx := context.Background()
	ev := notifiertest.NewDeployedEvidence(t)
	trust := filepath.Join(t.TempDir(), "trust.json")
	if err := os.WriteFile(trust, events.NewTrustFile(time.Now().Add(-time.Hour), ev.Signers...).Marshal(), 0o600); err != nil {
		t.Fatal(err)
	}
	sink, err := mailsink.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sink.Close() })
	slack := slacktest.Start(t, "xoxb-run", "U0BOB", "U0CAROL", "U0FRANK")
	dir, err := auth.LoadDirectory(filepath.Join(examples, "directory.yaml"))
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

	env := map[string]string{
		"GRANTLINE_NATS_URL": ev.Server.ClientURL(), "GRANTLINE_NATS_NKEY_FILE": ev.Creds[brokeraccess.Notifier], "GRANTLINE_HTTP_ADDR": "127.0.0.1:0", "GRANTLINE_TRUST_FILE": trust,
		"GRANTLINE_DIRECTORY_FILE": filepath.Join(examples, "directory.yaml"), "GRANTLINE_CATALOGUE_FILE": filepath.Join(examples, "catalogue.yaml"),
		"GRANTLINE_NOTIFICATIONS_FILE": filepath.Join(examples, "notifications.yaml"), "GRANTLINE_NOTIFY_HOLD": "100ms",
		"GRANTLINE_SMTP_HOST": "127.0.0.1", "GRANTLINE_SMTP_PORT": itoa(sink.Addr().Port), "GRANTLINE_SMTP_FROM": "grantline@example.test",
		"GRANTLINE_SLACK_TOKEN": "xoxb-run", "GRANTLINE_SLACK_API_URL": slack.URL, "GRANTLINE_SLACK_SIGNING_SECRET": "signing",
		"GRANTLINE_APPROVAL_URL": idp.URL, "GRANTLINE_OIDC_TOKEN_URL": idp.URL + "/dev/oidc/token",
		"GRANTLINE_NOTIFIER_CLIENT_SECRET": "client-secret-0123456789",
	}
	cfg, err := notifierd.ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- notifierd.Run(runCtx, cfg, slog.New(slog.NewJSONHandler(logs, nil))) }()
	t.Cleanup(func() { stop(); <-done })

	var base string
	poll.Until(t, 20*time.Second, "the notifier to listen", func() bool {
		select {
		case err := <-done:
			t.Fatalf("Run ended: %v\n%s", err, logs.String())
		default:
		}
		if addr := logs.field("ops server listening", "addr"); addr != "" {
			base = "http://" + addr
			return true
		}
		return false
	})
	poll.Until(t, 20*time.Second, "/readyz", func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	// alice asks for payments-admin; policy wants the owners: bob and frank are asked, alice told.
	ev.PaymentsAdmin(t, notifiertest.Alice)
	poll.Until(t, 20*time.Second, "mail to alice, bob and frank, and bob's Slack message", func() bool {
		to := map[string]bool{}
		for _, m := range sink.Mail() {
			to[m.To[0]] = true
		}
		return to["alice@example.test"] && to["bob@example.test"] && to["frank@example.test"] && len(slack.Posted()) == 1
	})

	if strings.Contains(strings.ToLower(logs.String()), "permissions violation") {
		t.Fatalf("the broker refused the notifier something:\n%s", logs.String())
	}

	resp, err := http.Post(base+"/v1/slack/interactions", "application/x-www-form-urlencoded", strings.NewReader("payload=%7B%7D"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("an unsigned callback: %d, want 401", resp.StatusCode)
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

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// field returns key of the first logged record with message msg, "" if none.
func (s *syncBuffer) field(msg, key string) string {
	for line := range strings.SplitSeq(s.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == msg {
			v, _ := rec[key].(string)
			return v
		}
	}
	return ""
}
