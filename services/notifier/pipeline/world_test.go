package pipeline_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/auth"
	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/services/notifier"
	"github.com/grantline/grantline/services/notifier/channel"
	"github.com/grantline/grantline/services/notifier/channel/email"
	"github.com/grantline/grantline/services/notifier/channel/slackchat"
	"github.com/grantline/grantline/services/notifier/channel/webhook"
	"github.com/grantline/grantline/services/notifier/lookup"
	"github.com/grantline/grantline/services/notifier/mailsink"
	"github.com/grantline/grantline/services/notifier/natskv"
	"github.com/grantline/grantline/services/notifier/notifiertest"
	"github.com/grantline/grantline/services/notifier/pipeline"
	"github.com/grantline/grantline/services/notifier/routing"
	"github.com/grantline/grantline/services/notifier/slacktest"
)

const examples = "../../../examples"

// world is the notifier's pipeline on a real NATS server with the streams provisioned, an event store
// for every service to write what it would, a real SMTP server (the mail sink), a stand-in for Slack's
// Web API and a webhook receiver, with the demo directory, catalogue and routing file (plus a webhook
// "siem" hearing grants and revocations).
type world struct {
	*notifiertest.Evidence
	js      jetstream.JetStream
	reader  *eventstore.Store
	buckets *natskv.Buckets
	rules   notifier.Rules
	mail    *mailsink.Sink
	slack   *slacktest.Server
	hooks   *hookReceiver
	// audit is a second webhook target.
	audit   *hookReceiver
	senders map[notifier.Channel]channel.Sender
	// hold is the replicas' digest window.
	hold time.Duration
	// logs collects what the replicas log.
	logs *logBuffer
}

// logBuffer is a log destination shared by the replicas and read by tests.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	ev := notifiertest.NewEvidence(t)
	w := &world{Evidence: ev, js: ev.JS, hold: 300 * time.Millisecond, logs: &logBuffer{}}
	var err error
	if w.reader, err = eventstore.OpenReader(ctx, ev.JS, ev.Verifier); err != nil {
		t.Fatal(err)
	}
	if w.buckets, err = natskv.Open(ctx, ev.JS, natskv.Settings{}); err != nil {
		t.Fatal(err)
	}

	dir, err := auth.LoadDirectory(filepath.Join(examples, "directory.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalogue.Load(filepath.Join(examples, "catalogue.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	file, err := routing.Load(filepath.Join(examples, "notifications.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	file.Routing.Webhooks = []notifier.WebhookRoute{{Name: "siem", Kinds: []notifier.Kind{notifier.Granted, notifier.Revoked}},
		{Name: "audit", Kinds: []notifier.Kind{notifier.Granted}}}
	w.rules = notifier.Rules{Directory: lookup.NewDirectory(dir), Catalogue: lookup.NewCatalogue(cat), Routing: file.Routing}

	if w.mail, err = mailsink.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.mail.Close() })
	w.slack = slacktest.Start(t, "xoxb-test", "U0BOB", "U0CAROL", "U0FRANK")
	w.hooks, w.audit = &hookReceiver{}, &hookReceiver{}
	hookSrv, auditSrv := httptest.NewServer(w.hooks), httptest.NewServer(w.audit)
	t.Cleanup(hookSrv.Close)
	t.Cleanup(auditSrv.Close)

	mailer, err := email.New(email.Config{Host: "127.0.0.1", Port: w.mail.Addr().Port, From: "grantline@example.test", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	slackSender, err := slackchat.New(slackchat.Config{Token: "xoxb-test", APIURL: w.slack.URL})
	if err != nil {
		t.Fatal(err)
	}
	hooks, err := webhook.New(webhook.Config{Targets: map[string]webhook.Target{"siem": {URL: hookSrv.URL, Secret: []byte("s")},
		"audit": {URL: auditSrv.URL, Secret: []byte("s")}}})
	if err != nil {
		t.Fatal(err)
	}
	w.senders = map[notifier.Channel]channel.Sender{notifier.Email: mailer, notifier.Slack: slackSender, notifier.Webhook: hooks}
	return w
}

// run starts a replica of the pipeline named owner and returns a function that stops it the way a
// crash would (abandoning what is in flight) and waits until it has.
func (w *world) run(t *testing.T, owner string) (kill func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var out io.Writer = w.logs
	if testing.Verbose() {
		out = io.MultiWriter(w.logs, &testWriter{t: t})
	}
	log := slog.New(slog.NewTextHandler(out, nil))
	go func() {
		done <- pipeline.Run(ctx, pipeline.Config{JS: w.js, Store: w.reader, Rules: w.rules, Buckets: w.buckets, Senders: w.senders,
			Owner: owner, Hold: w.hold, Lease: 3 * time.Second, AckWait: 3 * time.Second, BackoffCeiling: time.Second,
			BreakerOpen: time.Second, Log: log.With("replica", owner)})
	}()
	var once sync.Once
	kill = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("pipeline %s: %v", owner, err)
			}
		})
	}
	t.Cleanup(kill)
	return kill
}

type testWriter struct{ t *testing.T }

func (tw *testWriter) Write(p []byte) (int, error) {
	tw.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// paymentsAdmin records alice asking for payments-admin and policy wanting the owners, then security.
func (w *world) paymentsAdmin(t *testing.T) (id, digest string) {
	t.Helper()
	return w.PaymentsAdmin(t, notifiertest.Alice)
}

// granted records alice asking for analytics-read, policy approving it outright and the grant, which
// expires at expires, and returns the request's ID.
func (w *world) granted(t *testing.T, expires time.Time) string {
	t.Helper()
	id := events.NewID()
	s := events.Submitted{Requester: notifiertest.Alice, Subject: events.RequestSubject{Kind: events.SubjectHuman, ID: "alice"},
		Entitlement: "analytics-read", Justification: "quarterly report", DurationSeconds: 3600, Channel: "http"}
	s.RequestDigest = s.Digest()
	w.Append(t, events.Intake, id, events.Draft{Payload: s, Actor: "alice"})
	w.Append(t, events.Policy, id, events.Draft{Payload: events.PolicyDecided{Outcome: events.OutcomeAutoApproved, Reasons: []string{"low risk"},
		EffectiveDurationSeconds: 3600, PolicyRevision: "sha256:rev", InputDigest: "sha256:in"}})
	w.Append(t, events.Fulfilment, id, events.Draft{Payload: events.Granted{Connector: "postgres", TargetRef: "analytics/read",
		Observed: events.Observed{Present: true}, ExpiresAt: expires, Fulfiller: "service:fulfilment"}})
	return id
}

// told counts, per mailbox, how often each request was mentioned in the mail it received: a message
// names a request once per notification it carries ("Request: <id>").
func (w *world) told() map[string]map[string]int {
	out := map[string]map[string]int{}
	for _, m := range w.mail.Mail() {
		for _, to := range m.To {
			if out[to] == nil {
				out[to] = map[string]int{}
			}
			for line := range strings.SplitSeq(m.Text, "\n") {
				if id, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), "Request: "); ok {
					out[to][id]++
				}
			}
		}
	}
	return out
}

// hookReceiver is a webhook endpoint that verifies each call and keeps the CloudEvent ids; while down
// it answers 503 and counts the calls.
type hookReceiver struct {
	mu      sync.Mutex
	ids     []string
	bad     int
	down    bool
	refused int
}

func (h *hookReceiver) setDown(on bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.down = on
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.down {
		h.refused++
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if webhook.Verify([]byte("s"), r.Header, body, time.Now(), time.Minute) != nil {
		h.bad++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	h.ids = append(h.ids, r.Header.Get(webhook.HeaderID))
}

func (h *hookReceiver) received() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.ids...)
}
