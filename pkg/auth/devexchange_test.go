package auth

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

const notifierSecret = "notifier-secret-0123456789"

// exchange posts a token-exchange request to f's issuer as client (with secret) for form's values.
func (f *devFixture) exchange(t *testing.T, client, secret string, form url.Values) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.issuerURL+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if client != "" {
		req.SetBasicAuth(client, secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("token endpoint answered %d with no JSON: %v", resp.StatusCode, err)
	}
	return resp.StatusCode, body
}

func exchangeFor(user string) url.Values {
	return url.Values{"grant_type": {GrantTokenExchange}, "requested_subject": {user}, "audience": {testAudience}}
}

// TestTokenExchange: the allowed client gets a short-lived token of the person it names, which
// services verify as the person's own, with the client as the actor; everyone and everything else is
// refused with the RFC 6749 error that says why.
func TestTokenExchange(t *testing.T) {
	f := startDevIssuer(t)
	if err := f.issuer.AllowDelegation("grantline-notifier", []byte(notifierSecret)); err != nil {
		t.Fatal(err)
	}
	status, body := f.exchange(t, "grantline-notifier", notifierSecret, exchangeFor("Bob"))
	if status != http.StatusOK || body["token_type"] != "Bearer" || body["issued_token_type"] != TokenTypeAccessToken {
		t.Fatalf("exchange: %d %v", status, body)
	}
	tok, _ := body["access_token"].(string)
	got, err := f.verifier.Verify(context.Background(), tok)
	checkAuth(t, got, err, Identity{Subject: "bob", Groups: []string{"analytics-owners", "payments-owners"}, Actor: "grantline-notifier"}, "")
	if own, _ := f.issuer.Mint("bob", defaultTestTTL); own != "" {
		if id, err := f.verifier.Verify(context.Background(), own); err != nil || id.Actor != "" {
			t.Errorf("bob's own token: actor %q, %v", id.Actor, err)
		}
	}

	refusals := []struct {
		name, client, secret string
		form                 url.Values
		status               int
		code                 string
	}{
		{"no client credentials", "", "", exchangeFor("bob"), http.StatusUnauthorized, "invalid_client"},
		{"a wrong secret", "grantline-notifier", "guess-guess-guess-guess", exchangeFor("bob"), http.StatusUnauthorized, "invalid_client"},
		{"a client not allowed to delegate", "grantline-console", notifierSecret, exchangeFor("bob"), http.StatusUnauthorized, "invalid_client"},
		{"a person not in the directory", "grantline-notifier", notifierSecret, exchangeFor("mallory"), http.StatusBadRequest, "invalid_grant"},
		{"no person", "grantline-notifier", notifierSecret, exchangeFor(""), http.StatusBadRequest, "invalid_grant"},
		{"another grant type", "grantline-notifier", notifierSecret, url.Values{"grant_type": {"client_credentials"}},
			http.StatusBadRequest, "unsupported_grant_type"},
		{"another audience", "grantline-notifier", notifierSecret,
			url.Values{"grant_type": {GrantTokenExchange}, "requested_subject": {"bob"}, "audience": {"elsewhere"}},
			http.StatusBadRequest, "invalid_target"},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			status, body := f.exchange(t, tc.client, tc.secret, tc.form)
			if status != tc.status || body["error"] != tc.code || body["access_token"] != nil {
				t.Fatalf("%d %v, want %d %s", status, body, tc.status, tc.code)
			}
		})
	}
}
