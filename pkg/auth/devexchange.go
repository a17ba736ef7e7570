package auth

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Token exchange (RFC 8693) at the dev issuer: a service that acts for a person it has identified
// another way (the notifier, for a person who pressed Approve in Slack) exchanges its own client
// credentials for a short-lived token of that person. The token's sub and groups are the person's, so
// every service decides exactly as for the person's own token; its act claim (RFC 8693 §4.1) names the
// client, so the delegation is visible to whoever reads the token.
//
// The request is the impersonation form identity providers offer for this (Keycloak's
// requested_subject): grant_type token-exchange, the client authenticated with HTTP Basic, the person
// as requested_subject. Only clients allowed by AllowDelegation may use it.
const (
	// GrantTokenExchange is RFC 8693's grant type.
	GrantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	// TokenTypeAccessToken is the issued_token_type of an exchanged token.
	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
	tokenPath            = "/token"
	// delegatedTTL is how long an exchanged token lives: one call to one service.
	delegatedTTL = 2 * time.Minute
)

// delegates are the clients allowed to exchange, by client ID, with their secrets.
type delegates struct {
	mu      sync.RWMutex
	secrets map[string][]byte
}

// AllowDelegation lets client clientID, authenticated with secret, exchange its credentials for a
// token of any person in the directory. It is meant for one service (the notifier) whose own
// verification of the person (a signed Slack callback mapped to the directory) the deployment trusts.
func (d *DevIssuer) AllowDelegation(clientID string, secret []byte) error {
	if clientID == "" || len(secret) < 16 {
		return errors.New("allow delegation: a client ID and a secret of at least 16 bytes are required")
	}
	d.delegates.mu.Lock()
	defer d.delegates.mu.Unlock()
	if d.delegates.secrets == nil {
		d.delegates.secrets = map[string][]byte{}
	}
	d.delegates.secrets[clientID] = append([]byte(nil), secret...)
	return nil
}

// client authenticates the request's HTTP Basic credentials (form-encoded, RFC 6749 §2.3.1) against
// the allowed clients, comparing secrets in constant time.
func (d *DevIssuer) client(r *http.Request) (string, bool) {
	rawID, rawSecret, ok := r.BasicAuth()
	if !ok {
		return "", false
	}
	id, err1 := url.QueryUnescape(rawID)
	secret, err2 := url.QueryUnescape(rawSecret)
	if err1 != nil || err2 != nil {
		return "", false
	}
	d.delegates.mu.RLock()
	defer d.delegates.mu.RUnlock()
	want, known := d.delegates.secrets[id]
	if !known {
		// Compare anyway, so an unknown client takes as long as a wrong secret.
		want = make([]byte, len(secret))
	}
	return id, subtle.ConstantTimeCompare([]byte(secret), want) == 1 && known
}

// tokenError answers with an RFC 6749 §5.2 error.
func tokenError(w http.ResponseWriter, status int, code, description string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="grantline-dev-issuer"`)
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": description})
}

// exchange serves POST /token.
func (d *DevIssuer) exchange(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if err := r.ParseForm(); err != nil {
		tokenError(w, http.StatusBadRequest, "invalid_request", "the body is not a form")
		return
	}
	client, ok := d.client(r)
	if !ok {
		tokenError(w, http.StatusUnauthorized, "invalid_client", "unknown client or wrong secret")
		return
	}
	form := r.PostForm
	switch {
	case form.Get("grant_type") != GrantTokenExchange:
		tokenError(w, http.StatusBadRequest, "unsupported_grant_type", "only token exchange is offered")
		return
	case form.Get("audience") != "" && form.Get("audience") != d.audience:
		tokenError(w, http.StatusBadRequest, "invalid_target", fmt.Sprintf("tokens are issued for %q only", d.audience))
		return
	case form.Get("requested_token_type") != "" && form.Get("requested_token_type") != TokenTypeAccessToken:
		tokenError(w, http.StatusBadRequest, "invalid_request", "only access tokens are issued")
		return
	}
	subject := form.Get("requested_subject")
	token, err := d.mintFor(time.Now(), subject, delegatedTTL, client)
	if err != nil {
		tokenError(w, http.StatusBadRequest, "invalid_grant", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": token, "issued_token_type": TokenTypeAccessToken,
		"token_type": "Bearer", "expires_in": int(delegatedTTL / time.Second)})
}

// actorClaim is RFC 8693's act claim: who acts for the subject.
type actorClaim struct {
	Subject string `json:"sub"`
}

// mintFor mints a token for user (as mint does) carrying an act claim naming actor.
func (d *DevIssuer) mintFor(now time.Time, user string, ttl time.Duration, actor string) (string, error) {
	u, ok := d.directory.User(user)
	if !ok {
		return "", fmt.Errorf("unknown user %q", user)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(d.key.Algorithm), Key: d.key},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	claims := struct {
		devClaims
		Act actorClaim `json:"act"`
	}{devClaims{Claims: jwt.Claims{Issuer: d.issuer, Subject: u.ID, Audience: jwt.Audience{d.audience},
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(ttl))}, Name: u.Name,
		Groups: append([]string{}, u.Groups...)}, actorClaim{Subject: actor}}
	token, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("mint token for %s: %w", u.ID, err)
	}
	return token, nil
}
