package webhook_test

import (
	"context"
	"encoding/json/v2"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"

	"github.com/grantline/grantline/services/notifier"
	"github.com/grantline/grantline/services/notifier/channel"
	"github.com/grantline/grantline/services/notifier/channel/webhook"
)

var secret = []byte("siem-secret")

func delivery() channel.Delivery {
	n := notifier.Notification{Cause: "01KB00000000000000000000EV", Kind: notifier.Granted, RequestID: "01KB0000000000000000000001",
		Channel: notifier.Webhook, To: notifier.Person{ID: "webhook:siem"}, Address: "siem",
		Facts: notifier.Facts{Requester: notifier.Person{ID: "alice"}, Entitlement: notifier.Entitlement{ID: "payments-admin"},
			DurationSeconds: 3600, Told: []string{"alice"}}}
	return channel.Delivery{ID: n.Key(), Channel: notifier.Webhook, Address: "siem", To: n.To, Notifications: []notifier.Notification{n}}
}

// receiver is a webhook endpoint that verifies each call as a receiver would and keeps the events.
type receiver struct {
	mu     sync.Mutex
	events []cloudevents.Event
	status int
	errs   []error
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if err := webhook.Verify(secret, r.Header, body, time.Now(), 5*time.Minute); err != nil {
		rc.errs = append(rc.errs, err)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if r.Header.Get("Content-Type") != "application/cloudevents+json; charset=utf-8" {
		rc.errs = append(rc.errs, errors.New("content type "+r.Header.Get("Content-Type")))
	}
	var e cloudevents.Event
	if err := e.UnmarshalJSON(body); err != nil {
		rc.errs = append(rc.errs, err)
	}
	rc.events = append(rc.events, e)
	if rc.status != 0 {
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(rc.status)
	}
}

func sender(t *testing.T, url string, key []byte) *webhook.Sender {
	t.Helper()
	s, err := webhook.New(webhook.Config{Targets: map[string]webhook.Target{"siem": {URL: url, Secret: key}}, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSend: the receiver gets a valid CloudEvent 1.0 whose id is the delivery's, signed so that it
// verifies, carrying the notification.
func TestSend(t *testing.T) {
	rc := &receiver{}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	d := delivery()
	if _, err := sender(t, srv.URL, secret).Send(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	if len(rc.errs) > 0 || len(rc.events) != 1 {
		t.Fatalf("receiver: %v, %d events", rc.errs, len(rc.events))
	}
	e := rc.events[0]
	if e.SpecVersion() != "1.0" || e.ID() != d.ID || e.Type() != "io.grantline.notification.granted" ||
		e.Source() != "/grantline/notifier" || e.Subject() != "01KB0000000000000000000001" {
		t.Errorf("event %s", e)
	}
	var data webhook.Data
	if err := json.Unmarshal(e.Data(), &data); err != nil || data.Kind != notifier.Granted || data.Facts.Told[0] != "alice" {
		t.Errorf("data %+v, %v", data, err)
	}
}

// TestVerifyRefuses: a receiver refuses another secret, a stale timestamp and a changed body.
func TestVerifyRefuses(t *testing.T) {
	body := []byte(`{"id":"x"}`)
	now := time.Now()
	h := http.Header{}
	h.Set(webhook.HeaderID, "x")
	h.Set(webhook.HeaderTimestamp, "1700000000")
	h.Set(webhook.HeaderSignature, webhook.Sign(secret, "x", "1700000000", body))
	if err := webhook.Verify(secret, h, body, now, 5*time.Minute); !errors.Is(err, webhook.ErrBadSignature) {
		t.Errorf("a stale timestamp: %v", err)
	}
	ts := time.Now().Unix()
	h.Set(webhook.HeaderTimestamp, itoa(ts))
	h.Set(webhook.HeaderSignature, webhook.Sign([]byte("other"), "x", itoa(ts), body))
	if err := webhook.Verify(secret, h, body, now, 5*time.Minute); !errors.Is(err, webhook.ErrBadSignature) {
		t.Errorf("another secret: %v", err)
	}
	h.Set(webhook.HeaderSignature, webhook.Sign(secret, "x", itoa(ts), body))
	if err := webhook.Verify(secret, h, []byte(`{"id":"y"}`), now, 5*time.Minute); !errors.Is(err, webhook.ErrBadSignature) {
		t.Errorf("a changed body: %v", err)
	}
	if err := webhook.Verify(secret, h, body, now, 5*time.Minute); err != nil {
		t.Errorf("the genuine delivery: %v", err)
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// TestFailures: what each answer of a target means for retrying.
func TestFailures(t *testing.T) {
	cases := []struct {
		status    int
		permanent bool
		after     time.Duration
	}{
		{http.StatusGone, true, 0},
		{http.StatusBadRequest, true, 0},
		{http.StatusTooManyRequests, false, 7 * time.Second},
		{http.StatusServiceUnavailable, false, 7 * time.Second},
		{http.StatusInternalServerError, false, 0},
	}
	for _, tc := range cases {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			rc := &receiver{status: tc.status}
			srv := httptest.NewServer(rc)
			t.Cleanup(srv.Close)
			_, err := sender(t, srv.URL, secret).Send(context.Background(), delivery())
			if err == nil || channel.IsPermanent(err) != tc.permanent || channel.RetryAfterOf(err) != tc.after {
				t.Fatalf("%v (permanent %v, retry after %s), want permanent %v after %s", err, channel.IsPermanent(err),
					channel.RetryAfterOf(err), tc.permanent, tc.after)
			}
		})
	}
	srv := httptest.NewServer(&receiver{})
	url := srv.URL
	srv.Close()
	if _, err := sender(t, url, secret).Send(context.Background(), delivery()); err == nil || channel.IsPermanent(err) {
		t.Errorf("a target that is down: %v, want transient", err)
	}
}
