package webhook_test

import (
	"context"
	"encoding/json/v2"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/connector"
	"github.com/grantline/grantline/pkg/connector/webhook"
	"github.com/grantline/grantline/pkg/events"
)

// membership is a receiver that keeps the receiver contract the package documents: a person holds an
// entitlement while it holds any grant ID for that person and entitlement, so a revoke removes only the
// grant it names. It records the person's access after every call it applies: access changes only
// there, so the record is the access at every moment. A call that does not name its grant is refused.
type membership struct {
	mu     sync.Mutex
	grants map[string]map[string]bool // person and entitlement → grant IDs held
	access []bool
	failed bool // the next revoke answers 503 once
}

func (m *membership) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := webhook.Verify(secret, r.Header, body, time.Now(), time.Minute); err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var call webhook.Call
	if err := json.Unmarshal(body, &call); err != nil || call.GrantID == "" || r.Header.Get(webhook.HeaderIdempotency) != call.GrantID+":"+string(call.Action) {
		http.Error(w, "a call must name its grant", http.StatusBadRequest)
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if call.Action == webhook.ActionRevoke && !m.failed {
		m.failed = true
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	key := call.Subject.ID + " " + call.Entitlement
	held := m.grants[key]
	if held == nil {
		held = map[string]bool{}
		m.grants[key] = held
	}
	switch call.Action {
	case webhook.ActionGrant:
		held[call.GrantID] = true
	case webhook.ActionRevoke:
		delete(held, call.GrantID)
	}
	m.access = append(m.access, len(held) > 0)
	_ = json.MarshalWrite(w, events.Observed{Present: held[call.GrantID]})
}

// TestExtensionKeepsAccessWithoutGap (issue 16): a grant and its extension go to a receiver that holds
// a person's access per grant. Granting the extension, revoking the first grant (retried once after a
// 503) and inspecting both leave the person's access in place after every call; only the extension's
// revocation removes it, and then nothing remains.
func TestExtensionKeepsAccessWithoutGap(t *testing.T) {
	m := &membership{grants: map[string]map[string]bool{}}
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)
	c, err := webhook.New(webhook.Config{Targets: map[string]webhook.Target{"vpn-admin": {Name: "vpn", URL: srv.URL, Secret: secret}},
		Timeout: time.Second, MaxAttempts: 3, InitialBackoff: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ent := catalogue.Entitlement{ID: "vpn-admin", Connector: webhook.Name}
	alice := events.RequestSubject{Kind: events.SubjectHuman, ID: "alice"}
	first := connector.Grant{ID: events.NewID(), Entitlement: ent, Subject: alice, ExpiresAt: time.Now().Add(time.Hour)}
	extension := connector.Grant{ID: events.NewID(), Entitlement: ent, Subject: alice, ExpiresAt: time.Now().Add(2 * time.Hour)}
	ctx := context.Background()

	steps := []struct {
		name    string
		call    func(context.Context, connector.Grant) (events.Observed, error)
		g       connector.Grant
		present bool
	}{
		{"grant the first", c.Grant, first, true},
		{"grant the extension", c.Grant, extension, true},
		{"revoke the first", c.Revoke, first, false},
		{"inspect the first", c.Inspect, first, false},
		{"inspect the extension", c.Inspect, extension, true},
	}
	for _, s := range steps {
		if obs, err := s.call(ctx, s.g); err != nil || obs.Present != s.present {
			t.Fatalf("%s: %+v %v, want present %v", s.name, obs, err, s.present)
		}
	}
	m.mu.Lock()
	for i, has := range m.access {
		if !has {
			t.Fatalf("the person had no access after call %d of %d, before the extension's revocation", i+1, len(m.access))
		}
	}
	m.mu.Unlock()

	if obs, err := c.Revoke(ctx, extension); err != nil || obs.Present {
		t.Fatalf("revoke the extension: %+v %v", obs, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.access[len(m.access)-1] || len(m.grants["alice vpn-admin"]) != 0 {
		t.Fatalf("after the extension ended the receiver still holds %v", m.grants["alice vpn-admin"])
	}
}
