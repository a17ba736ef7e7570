package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestAuthenticate is the contract for bearer tokens: which callers get an Identity, and what
// every refused caller is told. All tokens are checked against the dev issuer's JWKS fetched
// over HTTP.
func TestAuthenticate(t *testing.T) {
	f := startDevIssuer(t)
	alice := Identity{Subject: "alice", Groups: []string{"engineers"}}

	bearer := func(tok string) []string { return []string{"Bearer " + tok} }
	signed := func(c map[string]any) []string { return bearer(sign(t, f.issuer.key, c)) }
	valid := f.claims(t)
	minted := func(user string) []string {
		tok, err := f.issuer.Mint(user, defaultTestTTL)
		if err != nil {
			t.Fatalf("Mint(%s): %v", user, err)
		}
		return bearer(tok)
	}
	expired, err := f.issuer.mint(time.Now().Add(-time.Hour), "alice", defaultTestTTL)
	if err != nil {
		t.Fatalf("mint expired: %v", err)
	}
	// An attacker knows the public key; a verifier that let the token pick HS256 would use it
	// as the HMAC secret.
	hsInput := strings.TrimSuffix(handMade(t, map[string]any{"alg": "HS256", "typ": "JWT", "kid": f.issuer.key.KeyID}, valid, nil), ".")
	mac := hmac.New(sha256.New, f.issuer.jwks)
	mac.Write([]byte(hsInput))
	hsToken := hsInput + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))

	tests := []struct {
		name    string
		header  []string // Authorization header values sent
		want    Identity
		wantErr string // substring of the error; empty means the caller is authenticated
	}{
		{name: "alice presents a token the dev issuer minted for her",
			header: minted("alice"), want: alice},
		{name: "the Bearer scheme is case-insensitive",
			header: []string{"bearer " + strings.TrimPrefix(minted("alice")[0], "Bearer ")}, want: alice},
		{name: "bob's token carries both his groups",
			header: minted("bob"), want: Identity{Subject: "bob", Groups: []string{"analytics-owners", "payments-owners"}}},
		{name: "a user with no groups gets an empty group list",
			header: minted("nogroups"), want: Identity{Subject: "nogroups", Groups: []string{}}},
		{name: "a token without the groups claim means no groups",
			header: signed(with(valid, "groups", absent)), want: Identity{Subject: "alice"}},
		{name: "a full-width sub is the same person as alice",
			header: signed(with(valid, "sub", "ａｌｉｃｅ")), want: alice},
		{name: "a capitalised sub is the same person as alice",
			header: signed(with(valid, "sub", "Alice")), want: alice},

		{name: "no Authorization header",
			header: nil, wantErr: "missing Authorization header"},
		{name: "Basic credentials instead of a bearer token",
			header: []string{"Basic YWxpY2U6cGFzc3dvcmQ="}, wantErr: "not a Bearer credential"},
		{name: "two Authorization headers, so which one counts is ambiguous",
			header: append(minted("alice"), minted("bob")...), wantErr: "2 Authorization headers"},
		{name: "Bearer with nothing after it",
			header: []string{"Bearer "}, wantErr: "empty bearer token"},
		{name: "Bearer with garbage",
			header: bearer("not-a-token"), wantErr: "malformed token"},
		{name: "Bearer with a header that is not base64url JSON",
			header: bearer("%%%.e30.c2ln"), wantErr: "malformed token header"},
		{name: "a token that expired an hour ago",
			header: bearer(expired), wantErr: "token expired"},
		{name: "a token from another issuer signed with the right key",
			header: signed(with(valid, "iss", "http://evil.example/dev/oidc")), wantErr: `issuer "http://evil.example/dev/oidc" is not`},
		{name: "a token for another audience",
			header: signed(with(valid, "aud", "some-other-service")), wantErr: `does not include "grantline"`},
		{name: "a token forged with another key that claims the issuer's kid",
			header: bearer(sign(t, f.otherKeySameKID(t), valid)), wantErr: "signature"},
		{name: "an unsigned token (alg none)",
			header: bearer(handMade(t, map[string]any{"alg": "none", "typ": "JWT"}, valid, nil)), wantErr: "alg none"},
		{name: "an HS256 token keyed with the issuer's public JWKS (algorithm confusion)",
			header: bearer(hsToken), wantErr: `algorithm "HS256" not accepted`},
		{name: "a sub with a zero-width space that would look like alice",
			header: signed(with(valid, "sub", "ali\u200bce")), wantErr: "bad subject"},
		{name: "a sub with a right-to-left override",
			header: signed(with(valid, "sub", "\u202eecila")), wantErr: "bad subject"},
		{name: "a sub with a space",
			header: signed(with(valid, "sub", "alice admin")), wantErr: "bad subject"},
		{name: "an empty sub",
			header: signed(with(valid, "sub", "")), wantErr: "bad subject"},
		{name: "a groups claim that is a string, not an array",
			header: signed(with(valid, "groups", "engineers")), wantErr: `claim "groups" is not an array of strings`},
		{name: "a groups claim holding a number",
			header: signed(with(valid, "groups", []any{"engineers", 7})), wantErr: `claim "groups" is not an array of strings`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/requests", nil)
			for _, h := range tt.header {
				r.Header.Add("Authorization", h)
			}
			got, err := f.verifier.Authenticate(r)
			checkAuth(t, got, err, tt.want, tt.wantErr)
		})
	}
}

func checkAuth(t *testing.T, got Identity, err error, want Identity, wantErr string) {
	t.Helper()
	if wantErr == "" {
		if err != nil {
			t.Fatalf("refused: %v", err)
		}
		if got.Subject != want.Subject || got.Actor != want.Actor || !slices.Equal(got.Groups, want.Groups) || (got.Groups == nil) != (want.Groups == nil) {
			t.Fatalf("identity = %+v (nil groups %v), want %+v (nil groups %v)",
				got, got.Groups == nil, want, want.Groups == nil)
		}
		return
	}
	if err == nil {
		t.Fatalf("authenticated as %+v, want refusal mentioning %q", got, wantErr)
	}
	if !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("error %q does not wrap ErrUnauthenticated", err)
	}
	if !strings.Contains(err.Error(), wantErr) {
		t.Errorf("error %q does not say %q", err, wantErr)
	}
	if got.Subject != "" || got.Groups != nil {
		t.Errorf("refusal also returned identity %+v", got)
	}
}
