package webhook_test

import (
	"context"
	"encoding/json/v2"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/connector"
	"github.com/grantline/grantline/pkg/connector/webhook"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/poll"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

// receiver is a target system: it verifies every call's signature, applies each idempotency key once,
// and answers with what it holds. While failing it answers 503.
type receiver struct {
	mu       sync.Mutex
	granted  map[string]bool
	applied  map[string]int
	calls    atomic.Int32
	failing  atomic.Bool
	refusing atomic.Bool
	badSigs  atomic.Int32
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.calls.Add(1)
	body, _ := io.ReadAll(r.Body)
	if err := webhook.Verify(secret, r.Header, body, time.Now(), time.Minute); err != nil {
		rc.badSigs.Add(1)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	switch {
	case rc.failing.Load():
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	case rc.refusing.Load():
		http.Error(w, "no such user", http.StatusUnprocessableEntity)
		return
	}
	var call webhook.Call
	if err := json.Unmarshal(body, &call); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.applied[r.Header.Get(webhook.HeaderIdempotency)]++
	switch call.Action {
	case webhook.ActionGrant:
		rc.granted[call.GrantID] = true
	case webhook.ActionRevoke:
		delete(rc.granted, call.GrantID)
	}
	_ = json.MarshalWrite(w, events.Observed{Present: rc.granted[call.GrantID], Detail: map[string]string{"account": call.Subject.ID}})
}

func setup(t *testing.T, open time.Duration) (*webhook.Connector, *receiver, connector.Grant) {
	t.Helper()
	rc := &receiver{granted: map[string]bool{}, applied: map[string]int{}}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	c, err := webhook.New(webhook.Config{
		Targets: map[string]webhook.Target{"vpn-admin": {Name: "vpn", URL: srv.URL, Secret: secret}},
		Timeout: time.Second, MaxAttempts: 3, InitialBackoff: 5 * time.Millisecond,
		BreakerFailures: 3, BreakerOpen: open,
	})
	if err != nil {
		t.Fatal(err)
	}
	g := connector.Grant{ID: events.NewID(), Entitlement: catalogue.Entitlement{ID: "vpn-admin", Connector: webhook.Name},
		Subject: events.RequestSubject{Kind: events.SubjectHuman, ID: "alice"}, ExpiresAt: time.Now().Add(time.Hour)}
	return c, rc, g
}

func TestSignedIdempotentCalls(t *testing.T) {
	c, rc, g := setup(t, time.Second)
	ctx := context.Background()
	for range 2 {
		if obs, err := c.Grant(ctx, g); err != nil || !obs.Present || obs.Detail["account"] != "alice" {
			t.Fatalf("grant: %+v %v", obs, err)
		}
	}
	if obs, err := c.Inspect(ctx, g); err != nil || !obs.Present {
		t.Fatalf("inspect: %+v %v", obs, err)
	}
	if obs, err := c.Revoke(ctx, g); err != nil || obs.Present {
		t.Fatalf("revoke: %+v %v", obs, err)
	}
	if rc.badSigs.Load() != 0 {
		t.Fatalf("%d calls failed the receiver's signature check", rc.badSigs.Load())
	}
	// The receiver saw the same key for both grants: it can apply them once.
	if n := rc.applied[g.ID+":grant"]; n != 2 {
		t.Fatalf("grant key %s seen %d times, want 2 (one key for the retried grant)", g.ID+":grant", n)
	}
}

func TestVerifyRefusesForgeries(t *testing.T) {
	body := []byte(`{"action":"grant"}`)
	now := time.Now()
	ts := func(at time.Time) string { return jsonInt(at.Unix()) }
	good := http.Header{}
	good.Set(webhook.HeaderTimestamp, ts(now))
	good.Set(webhook.HeaderSignature, webhook.Sign(secret, ts(now), body))
	cases := []struct {
		name   string
		header func() http.Header
		body   []byte
		ok     bool
	}{
		{"the call as signed", func() http.Header { return good }, body, true},
		{"a changed body", func() http.Header { return good }, []byte(`{"action":"revoke"}`), false},
		{"another key", func() http.Header {
			h := good.Clone()
			h.Set(webhook.HeaderSignature, webhook.Sign([]byte("another key of enough length!!"), ts(now), body))
			return h
		}, body, false},
		{"a replay an hour later", func() http.Header {
			h := http.Header{}
			h.Set(webhook.HeaderTimestamp, ts(now.Add(-time.Hour)))
			h.Set(webhook.HeaderSignature, webhook.Sign(secret, ts(now.Add(-time.Hour)), body))
			return h
		}, body, false},
		{"no signature", func() http.Header { h := good.Clone(); h.Del(webhook.HeaderSignature); return h }, body, false},
	}
	for _, tc := range cases {
		err := webhook.Verify(secret, tc.header(), tc.body, now, time.Minute)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, webhook.ErrBadSignature)) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }

// TestBreakerOpensAndCloses: a failing target trips its breaker, which then refuses calls without
// reaching the target; after the open period one call gets through and, the target being back,
// closes it.
func TestBreakerOpensAndCloses(t *testing.T) {
	c, rc, g := setup(t, 300*time.Millisecond)
	ctx := context.Background()
	rc.failing.Store(true)
	_, err := c.Grant(ctx, g)
	var ce *connector.Error
	if !errors.As(err, &ce) || ce.Permanent {
		t.Fatalf("a failing target: %v, want a transient error", err)
	}
	if c.BreakerState("vpn") != gobreaker.StateOpen {
		t.Fatalf("breaker %s after %d failed attempts, want open", c.BreakerState("vpn"), rc.calls.Load())
	}
	before := rc.calls.Load()
	_, err = c.Grant(ctx, g)
	if !errors.As(err, &ce) || ce.Class != webhook.ClassOpen || ce.RetryAfter <= 0 || ce.RetryAfter > 300*time.Millisecond {
		t.Fatalf("while open: %v, want %s asking to come back after the open period", err, webhook.ClassOpen)
	}
	if rc.calls.Load() != before {
		t.Fatal("an open breaker let a call through to the target")
	}

	rc.failing.Store(false)
	poll.Until(t, 5*time.Second, "the breaker to half-open", func() bool { return c.BreakerState("vpn") == gobreaker.StateHalfOpen })
	if obs, err := c.Grant(ctx, g); err != nil || !obs.Present {
		t.Fatalf("after recovery: %+v %v", obs, err)
	}
	if c.BreakerState("vpn") != gobreaker.StateClosed {
		t.Fatalf("breaker %s after a successful call, want closed", c.BreakerState("vpn"))
	}
}

func TestRefusalIsPermanentAndKeepsTheBreakerClosed(t *testing.T) {
	c, rc, g := setup(t, time.Minute)
	rc.refusing.Store(true)
	for range 5 {
		_, err := c.Grant(context.Background(), g)
		if !connector.IsPermanent(err) || connector.ClassOf(err) != webhook.ClassRefused {
			t.Fatalf("%v, want a permanent refusal", err)
		}
	}
	if rc.calls.Load() != 5 {
		t.Fatalf("%d calls for 5 refused grants: a refusal must not be retried", rc.calls.Load())
	}
	if c.BreakerState("vpn") != gobreaker.StateClosed {
		t.Fatal("refusals opened the breaker: the target is up and answering")
	}
}

// TestNoInventory: a webhook receiver answers for one grant at a time, so the connector cannot list its
// target, and says so with a permanent error of its own class.
func TestNoInventory(t *testing.T) {
	c, err := webhook.New(webhook.Config{Targets: map[string]webhook.Target{}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = connector.Holdings(context.Background(), webhook.Name, c)
	if !connector.IsPermanent(err) || connector.ClassOf(err) != connector.ClassNoInventory || !strings.Contains(err.Error(), "webhook") {
		t.Fatalf("%v, want a permanent %s error naming the webhook connector", err, connector.ClassNoInventory)
	}
}
