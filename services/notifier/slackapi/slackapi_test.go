package slackapi_test

import (
	"context"
	"encoding/json/v2"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/api"
	"github.com/grantline/grantline/pkg/auth"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/services/approval/approvald"
	"github.com/grantline/grantline/services/notifier"
	"github.com/grantline/grantline/services/notifier/channel"
	"github.com/grantline/grantline/services/notifier/channel/slackchat"
	"github.com/grantline/grantline/services/notifier/delegation"
	"github.com/grantline/grantline/services/notifier/natskv"
	"github.com/grantline/grantline/services/notifier/notifiertest"
	"github.com/grantline/grantline/services/notifier/routing"
	"github.com/grantline/grantline/services/notifier/slackapi"
	"github.com/grantline/grantline/services/notifier/slacktest"
)

const (
	signingSecret  = "slack-signing-secret"
	notifierSecret = "notifier-client-secret-0123"
	examples       = "../../../examples"
)

// world is the interaction endpoint as deployed: on one HTTP origin the real approval service's API
// (approvald's routes, on a real NATS server with an event store per service) and the dev identity
// issuer, which lets the notifier's client exchange tokens; the notifier's handler with its replay
// guard in its own bucket, the demo routing file's Slack users, and a stand-in for Slack's Web API.
type world struct {
	*notifiertest.Evidence
	srv    *httptest.Server
	slack  *slacktest.Server
	poster *slackchat.Sender
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	ev := notifiertest.NewEvidence(t)
	w := &world{Evidence: ev}
	js := ev.JS

	dir, err := auth.LoadDirectory(filepath.Join(examples, "directory.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	w.srv = httptest.NewServer(mux)
	t.Cleanup(w.srv.Close)
	issuer, err := auth.OpenDevIssuer(t.TempDir(), w.srv.URL+"/dev/oidc", "grantline", dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := issuer.AllowDelegation("grantline-notifier", []byte(notifierSecret)); err != nil {
		t.Fatal(err)
	}
	mux.Handle("/dev/oidc/", http.StripPrefix("/dev/oidc", issuer.Handler()))
	authn, err := auth.NewVerifier(ctx, issuer.VerifierConfig())
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	// The review API needs no database: only GET /v1/reviews reads the inbox.
	approvald.Deps{JS: js, Store: w.Stores[events.Approval], Auth: authn, Now: time.Now}.Routes(mux, log)

	buckets, err := natskv.Open(ctx, js, natskv.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	file, err := routing.Load(filepath.Join(examples, "notifications.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	w.slack = slacktest.Start(t, "xoxb-test", "U0BOB", "U0CAROL", "U0FRANK")
	if w.poster, err = slackchat.New(slackchat.Config{Token: "xoxb-test", APIURL: w.slack.URL}); err != nil {
		t.Fatal(err)
	}
	h := &slackapi.Handler{SigningSecret: signingSecret, Replay: buckets.Replay, Person: file.Routing.PersonBySlack,
		Tokens: delegation.Exchanger{TokenURL: w.srv.URL + "/dev/oidc/token", ClientID: "grantline-notifier", Secret: notifierSecret,
			Audience: "grantline"},
		Approval: &slackapi.Approval{BaseURL: w.srv.URL}, Messages: w.poster, Log: log}
	h.Routes(mux)
	return w
}

func (w *world) reviews(t *testing.T, id string) int {
	t.Helper()
	l, err := w.Stores[events.Approval].Load(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return len(l.Request.Reviews())
}

// ask posts the review request of id to slackUser, as the notifier does, and returns the posted
// message.
func (w *world) ask(t *testing.T, slackUser, id, digest string) slacktest.Message {
	t.Helper()
	return w.askAll(t, slackUser, map[string]string{id: digest})
}

// askAll sends slackUser one message asking for the review of each request (ID → digest): a digest.
func (w *world) askAll(t *testing.T, slackUser string, digests map[string]string) slacktest.Message {
	t.Helper()
	var ns []notifier.Notification
	for _, id := range slices.Sorted(maps.Keys(digests)) {
		ns = append(ns, notifier.Notification{Kind: notifier.ReviewRequested, RequestID: id, Channel: notifier.Slack, Address: slackUser,
			Facts: notifier.Facts{Requester: notifier.Person{ID: "alice"}, Entitlement: notifier.Entitlement{ID: "payments-admin"},
				DurationSeconds: 3600, RequestDigest: digests[id], Stage: "owners"}})
	}
	if _, err := w.poster.Send(context.Background(), channel.Delivery{ID: ns[0].Key(), Address: slackUser, Notifications: ns}); err != nil {
		t.Fatal(err)
	}
	posted := w.slack.Posted()
	return posted[len(posted)-1]
}

// callback is the body Slack sends when user presses request id's button actionID in message m.
func callback(t *testing.T, user string, m slacktest.Message, id, actionID string) string {
	t.Helper()
	body, err := slacktest.Press(user, m, id, actionID)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// post sends a callback and returns the status and the decoded answer.
func (w *world) post(t *testing.T, body string, h http.Header) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, w.srv.URL+"/v1/slack/interactions", strings.NewReader(body))
	req.Header = h
	// Every answer is checked against the contract (api/openapi.yaml).
	resp, err := api.Client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.UnmarshalRead(resp.Body, &out)
	return resp.StatusCode, out
}
