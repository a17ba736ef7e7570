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
	"github.com/grantline/grantline/pkg/config"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/services/notifier/mailsink"
	"github.com/grantline/grantline/services/notifier/notifierd"
	"github.com/grantline/grantline/services/notifier/notifiertest"
	"github.com/grantline/grantline/services/notifier/slacktest"
)

const examples = "../../../examples"

// TestConfig: what the notifier adds to the shared configuration (pkg/config tests the rest): no
// signing key, the three files the rules read, and what approving from Slack requires besides.
func TestConfig(t *testing.T) {
	files := []string{"GRANTLINE_TRUST_FILE=trust.json", "GRANTLINE_DIRECTORY=directory.yaml", "GRANTLINE_CATALOGUE=catalogue.yaml",
		"GRANTLINE_NOTIFICATIONS=notifications.yaml"}
	c := notifierd.Defaults()
	if err := config.Parse(&c, append(files, "GRANTLINE_WEBHOOK_SECRETS=siem=s3cret, audit=other")); err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != ":8088" || c.Hold != 2*time.Second || c.SMTP.Port != 25 || c.WebhookSecrets["siem"] != "s3cret" || c.WebhookSecrets["audit"] != "other" {
		t.Fatalf("defaults %+v", c)
	}
	c = notifierd.Defaults()
	err := config.Parse(&c, []string{"GRANTLINE_TRUST_FILE=trust.json", "GRANTLINE_SLACK_SIGNING_SECRET=s"})
	want := "GRANTLINE_DIRECTORY is required\nGRANTLINE_CATALOGUE is required\nGRANTLINE_NOTIFICATIONS is required\n" +
		"GRANTLINE_SLACK_TOKEN is required with GRANTLINE_SLACK_SIGNING_SECRET\n" +
		"GRANTLINE_APPROVAL_URL is required with GRANTLINE_SLACK_SIGNING_SECRET\n" +
		"GRANTLINE_OIDC_TOKEN_URL is required with GRANTLINE_SLACK_SIGNING_SECRET\n" +
		"GRANTLINE_NOTIFIER_CLIENT_SECRET is required with GRANTLINE_SLACK_SIGNING_SECRET"
	if err == nil || err.Error() != want {
		t.Errorf("Parse = %v, want\n%s", err, want)
	}
	c = notifierd.Defaults()
	if err := config.Parse(&c, append(files, "GRANTLINE_WEBHOOK_SECRETS=siem")); err == nil || strings.Contains(err.Error(), "siem") {
		t.Errorf("a malformed secret list: %v (and it must not show the value)", err)
	}
}

// TestRun starts the notifier the way grantline-notifier does (Config from the environment, the trust
// file, NATS as its own user on a broker that enforces the separation of duties, the demo directory,
// catalogue and routing file, an SMTP relay, Slack), tells people of a request through it, serves the
// Slack interaction endpoint, and stops. Everything it does on the broker (its buckets, its durable
// consumers on the evidence and on its outbox, a reminder's schedule, reading requests) must be
// allowed to its own user, or nobody would be told.
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
		"GRANTLINE_NATS_URL": ev.Server.ClientURL(), "GRANTLINE_NATS_NKEY_FILE": ev.Creds[brokeraccess.Notifier],
		"GRANTLINE_NATS_MONITOR_URLS": "http://" + ev.Server.MonitorAddr().String(), "GRANTLINE_HTTP_ADDR": "127.0.0.1:0", "GRANTLINE_TRUST_FILE": trust,
		"GRANTLINE_DIRECTORY": filepath.Join(examples, "directory.yaml"), "GRANTLINE_CATALOGUE": filepath.Join(examples, "catalogue.yaml"),
		"GRANTLINE_NOTIFICATIONS": filepath.Join(examples, "notifications.yaml"), "GRANTLINE_NOTIFY_HOLD": "100ms",
		"GRANTLINE_SMTP_HOST": "127.0.0.1", "GRANTLINE_SMTP_PORT": itoa(sink.Addr().Port), "GRANTLINE_SMTP_FROM": "grantline@example.test",
		"GRANTLINE_SLACK_TOKEN": "xoxb-run", "GRANTLINE_SLACK_API_URL": slack.URL, "GRANTLINE_SLACK_SIGNING_SECRET": "signing",
		"GRANTLINE_APPROVAL_URL": idp.URL, "GRANTLINE_OIDC_TOKEN_URL": idp.URL + "/dev/oidc/token",
		"GRANTLINE_NOTIFIER_CLIENT_SECRET": "client-secret-0123456789",
	}
	cfg := notifierd.Defaults()
	var environ []string
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	if err := config.Parse(&cfg, environ); err != nil {
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
