package auth

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

const testRedirect = "http://127.0.0.1:1/auth/callback"

// noRedirects is a client that shows each redirect instead of following it, as a test of the
// endpoints must see them.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func signInFixture(t *testing.T) (*devFixture, *oauth2.Config) {
	t.Helper()
	f := startDevIssuer(t)
	if err := f.issuer.AllowRedirect(testRedirect); err != nil {
		t.Fatal(err)
	}
	return f, &oauth2.Config{ClientID: testAudience, RedirectURL: testRedirect, Endpoint: oauth2.Endpoint{
		AuthURL: f.issuerURL + authorizePath, TokenURL: f.issuerURL + tokenPath, AuthStyle: oauth2.AuthStyleInParams}}
}

// pick shows the picker for the authorization request at authURL and picks user, returning where the
// issuer sends the browser.
func pick(t *testing.T, authURL, user string) *url.URL {
	t.Helper()
	resp, err := noRedirects.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the picker answered %d: %s", resp.StatusCode, body)
	}
	u, _ := url.Parse(authURL)
	form := u.Query()
	form.Set("user", user)
	resp, err = noRedirects.PostForm(u.Scheme+"://"+u.Host+u.Path, form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("picking %s answered %d, want 303", user, resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// TestSignInWithCodeAndPKCE is the console's sign-in against the dev issuer, driven by the same
// oauth2 library: discovery names the endpoints, the picker lists the directory, picking bob hands
// a code to the registered redirect with the state, and the code with its verifier buys a token the
// services accept as bob's.
func TestSignInWithCodeAndPKCE(t *testing.T) {
	f, cfg := signInFixture(t)
	var discovery map[string]any
	resp, err := http.Get(f.issuerURL + discoveryPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.NewDecoder(resp.Body).Decode(&discovery); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if discovery["authorization_endpoint"] != cfg.Endpoint.AuthURL || discovery["token_endpoint"] != cfg.Endpoint.TokenURL {
		t.Fatalf("discovery names %v and %v", discovery["authorization_endpoint"], discovery["token_endpoint"])
	}

	resp, err = http.Get(cfg.AuthCodeURL("state-1", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"Alice Engineer (alice)", "Bob Owner (bob)", "analytics-owners, payments-owners", "no groups"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("the picker does not show %q:\n%s", want, page)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self' http://127.0.0.1:1") {
		t.Errorf("the picker's CSP %q does not confine its form to itself and the redirect's origin", csp)
	}

	verifier := oauth2.GenerateVerifier()
	loc := pick(t, cfg.AuthCodeURL("state-2", oauth2.S256ChallengeOption(verifier)), "bob")
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != testRedirect || loc.Query().Get("state") != "state-2" {
		t.Fatalf("redirected to %s, want %s with state-2", loc, testRedirect)
	}
	tok, err := cfg.Exchange(context.Background(), loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	idToken, _ := tok.Extra("id_token").(string)
	got, err := f.verifier.Verify(context.Background(), idToken)
	checkAuth(t, got, err, Identity{Subject: "bob", Groups: []string{"analytics-owners", "payments-owners"}}, "")
	if tok.AccessToken != idToken || time.Until(tok.Expiry) < 50*time.Minute {
		t.Errorf("access token differs from the ID token or expires at %s", tok.Expiry)
	}
}

// TestTokenEndpointRefusals: a code buys a token only once, soon, for its client and redirect, and
// with the verifier of its challenge.
func TestTokenEndpointRefusals(t *testing.T) {
	tests := []struct {
		name string
		// alter changes the token request made with a fresh code for alice and its right verifier.
		alter       func(f *devFixture, form url.Values)
		redeemTwice bool
		wantCode    string
	}{
		{name: "the verifier of another challenge", wantCode: "invalid_grant",
			alter: func(_ *devFixture, form url.Values) { form.Set("code_verifier", oauth2.GenerateVerifier()) }},
		{name: "a code redeemed a second time", redeemTwice: true, wantCode: "invalid_grant"},
		{name: "a code redeemed after it expired", wantCode: "invalid_grant",
			alter: func(f *devFixture, _ url.Values) {
				f.issuer.login.now = func() time.Time { return time.Now().Add(2 * devCodeTTL) }
			}},
		{name: "a code presented with another redirect URI", wantCode: "invalid_grant",
			alter: func(_ *devFixture, form url.Values) { form.Set("redirect_uri", "http://127.0.0.1:1/elsewhere") }},
		{name: "a code presented by another client", wantCode: "invalid_client",
			alter: func(_ *devFixture, form url.Values) { form.Set("client_id", "mallory-app") }},
		{name: "a code made up", wantCode: "invalid_grant",
			alter: func(_ *devFixture, form url.Values) { form.Set("code", "made-up") }},
		{name: "the password grant", wantCode: "unsupported_grant_type",
			alter: func(_ *devFixture, form url.Values) { form.Set("grant_type", "password") }},
		{name: "no verifier at all (PKCE skipped)", wantCode: "invalid_request",
			alter: func(_ *devFixture, form url.Values) { form.Del("code_verifier") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, cfg := signInFixture(t)
			verifier := oauth2.GenerateVerifier()
			loc := pick(t, cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), "alice")
			form := url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")},
				"redirect_uri": {testRedirect}, "client_id": {testAudience}, "code_verifier": {verifier}}
			if tt.redeemTwice {
				if code, _ := redeem(t, cfg, form); code != "" {
					t.Fatalf("the first redemption was refused: %s", code)
				}
			}
			if tt.alter != nil {
				tt.alter(f, form)
			}
			code, status := redeem(t, cfg, form)
			if code != tt.wantCode || status < 400 {
				t.Fatalf("token endpoint answered %d %q, want error %q", status, code, tt.wantCode)
			}
		})
	}
}

// TestAWrongVerifierSpendsTheCode: guessing at a verifier leaves nothing to guess at.
func TestAWrongVerifierSpendsTheCode(t *testing.T) {
	_, cfg := signInFixture(t)
	verifier := oauth2.GenerateVerifier()
	loc := pick(t, cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), "alice")
	form := url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")},
		"redirect_uri": {testRedirect}, "client_id": {testAudience}, "code_verifier": {oauth2.GenerateVerifier()}}
	if code, _ := redeem(t, cfg, form); code != "invalid_grant" {
		t.Fatalf("a wrong verifier answered %q", code)
	}
	form.Set("code_verifier", verifier)
	if code, _ := redeem(t, cfg, form); code != "invalid_grant" {
		t.Fatalf("the right verifier after a wrong one answered %q, want invalid_grant", code)
	}
}

// redeem posts a token request and returns the error code ("" for a token) and the status.
func redeem(t *testing.T, cfg *oauth2.Config, form url.Values) (string, int) {
	t.Helper()
	resp, err := http.PostForm(cfg.Endpoint.TokenURL, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("token answer without Cache-Control: no-store")
	}
	var body struct {
		Error   string `json:"error"`
		IDToken string `json:"id_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if body.Error == "" && body.IDToken == "" {
		t.Fatalf("answer %d with neither a token nor an error", resp.StatusCode)
	}
	return body.Error, resp.StatusCode
}

// TestAuthorizationRefusals: what the authorization endpoint refuses, and where it says so. A bad
// redirect URI or client is told to the person, never sent anywhere; the rest go back to the
// registered redirect as error=.
func TestAuthorizationRefusals(t *testing.T) {
	_, cfg := signInFixture(t)
	challenge := oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())
	valid := url.Values{"response_type": {"code"}, "client_id": {testAudience}, "redirect_uri": {testRedirect},
		"state": {"s"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	with := func(k, v string) url.Values {
		out := url.Values{}
		for key, vals := range valid {
			out[key] = vals
		}
		out.Set(k, v)
		return out
	}
	tests := []struct {
		name        string
		method      string
		params      url.Values
		wantStatus  int
		wantError   string // error= on the redirect; "" with a 400 shown to the person
		wantMessage string
	}{
		{name: "a redirect URI nobody registered", method: "GET", params: with("redirect_uri", "http://evil.example/cb"),
			wantStatus: 400, wantMessage: "is not registered"},
		{name: "another client", method: "GET", params: with("client_id", "mallory-app"), wantStatus: 400, wantMessage: "client_id must be"},
		{name: "the implicit flow", method: "GET", params: with("response_type", "token"), wantStatus: 303, wantError: "unsupported_response_type"},
		{name: "a plain PKCE challenge", method: "GET", params: with("code_challenge_method", "plain"), wantStatus: 303, wantError: "invalid_request"},
		{name: "no PKCE challenge", method: "GET", params: with("code_challenge", ""), wantStatus: 303, wantError: "invalid_request"},
		{name: "picking someone not in the directory", method: "POST", params: with("user", "mallory"), wantStatus: 303, wantError: "access_denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var resp *http.Response
			var err error
			if tt.method == "GET" {
				resp, err = noRedirects.Get(cfg.Endpoint.AuthURL + "?" + tt.params.Encode())
			} else {
				resp, err = noRedirects.PostForm(cfg.Endpoint.AuthURL, tt.params)
			}
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("answered %d (%s), want %d", resp.StatusCode, body, tt.wantStatus)
			}
			if tt.wantError == "" {
				if !strings.Contains(string(body), tt.wantMessage) || resp.Header.Get("Location") != "" {
					t.Fatalf("answered %q (Location %q), want it to say %q and send nobody anywhere", body, resp.Header.Get("Location"), tt.wantMessage)
				}
				return
			}
			loc, _ := url.Parse(resp.Header.Get("Location"))
			if !strings.HasPrefix(loc.String(), testRedirect) || loc.Query().Get("error") != tt.wantError || loc.Query().Get("state") != "s" || loc.Query().Get("code") != "" {
				t.Fatalf("redirected to %s, want %s with error %s and the state, without a code", loc, testRedirect, tt.wantError)
			}
		})
	}
}

func TestAllowRedirectRefusals(t *testing.T) {
	f := startDevIssuer(t)
	for _, uri := range []string{"", "/auth/callback", "ftp://127.0.0.1/cb", "http://127.0.0.1:1/cb#frag"} {
		if err := f.issuer.AllowRedirect(uri); err == nil {
			t.Errorf("AllowRedirect(%q) accepted", uri)
		}
	}
}
