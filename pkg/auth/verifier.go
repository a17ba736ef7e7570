package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// acceptedAlgs are the JWS algorithms a token may be signed with. Naming them stops go-oidc
// trusting whatever a discovery document advertises, and keeps "none" and HMAC out.
var acceptedAlgs = []string{oidc.RS256, oidc.ES256}

// DefaultGroupsClaim is the claim read for groups when Config.GroupsClaim is empty.
const DefaultGroupsClaim = "groups"

// Config says which tokens a Verifier accepts.
type Config struct {
	// Issuer must equal the token's iss exactly (no trailing-slash leniency).
	Issuer string
	// Audience must be one of the token's aud values.
	Audience string
	// GroupsClaim names the claim holding the caller's groups; empty means "groups".
	GroupsClaim string
	// JWKSURL, if set, is where signing keys are fetched, skipping OIDC discovery. If empty,
	// NewVerifier fetches Issuer + "/.well-known/openid-configuration" to find it.
	JWKSURL string
	// KeyRefetchInterval is the least time between two fetches of the signing keys caused by
	// tokens naming a key ID the verifier does not hold, after a burst of two; zero means
	// DefaultKeyRefetchInterval. A rotated key is accepted at most this long after its first use.
	KeyRefetchInterval time.Duration
}

// Verifier checks bearer tokens. It is safe for concurrent use; keys are fetched lazily, cached
// by key ID, and re-fetched when a token names a key ID not in the cache, at most once per
// Config.KeyRefetchInterval, so forged tokens cannot turn into a flood of requests to the issuer.
type Verifier struct {
	tokens      *oidc.IDTokenVerifier
	issuer      string
	audience    string
	groupsClaim string
}

// NewVerifier returns a Verifier for cfg. With cfg.JWKSURL set it makes no network calls;
// otherwise it performs OIDC discovery at cfg.Issuer and fails if the issuer is unreachable or its
// discovery document names a different issuer. ctx supplies the HTTP client for all later key
// fetches (see oidc.ClientContext); its cancellation is ignored after NewVerifier returns.
// It returns an error if Issuer or Audience is empty or a URL is not absolute http(s).
func NewVerifier(ctx context.Context, cfg Config) (*Verifier, error) {
	if err := checkHTTPURL("issuer", cfg.Issuer); err != nil {
		return nil, err
	}
	if cfg.Audience == "" {
		return nil, errors.New("auth config: audience is empty")
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = DefaultGroupsClaim
	}
	oidcCfg := &oidc.Config{ClientID: cfg.Audience, SupportedSigningAlgs: acceptedAlgs}
	v := &Verifier{issuer: cfg.Issuer, audience: cfg.Audience, groupsClaim: cfg.GroupsClaim}
	if cfg.JWKSURL != "" {
		if err := checkHTTPURL("JWKS URL", cfg.JWKSURL); err != nil {
			return nil, err
		}
		v.tokens = oidc.NewVerifier(cfg.Issuer, newKeySet(ctx, cfg.JWKSURL, cfg.KeyRefetchInterval), oidcCfg)
		return v, nil
	}
	provider, err := oidc.NewProvider(ctx, cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("discover OIDC issuer %s: %w", cfg.Issuer, err)
	}
	var discovered struct {
		JWKSURL string `json:"jwks_uri"`
	}
	if err := provider.Claims(&discovered); err != nil {
		return nil, fmt.Errorf("discover OIDC issuer %s: %w", cfg.Issuer, err)
	}
	if err := checkHTTPURL("discovered jwks_uri", discovered.JWKSURL); err != nil {
		return nil, err
	}
	v.tokens = oidc.NewVerifier(cfg.Issuer, newKeySet(ctx, discovered.JWKSURL, cfg.KeyRefetchInterval), oidcCfg)
	return v, nil
}

func checkHTTPURL(what, raw string) error {
	if raw == "" {
		return fmt.Errorf("auth config: %s is empty", what)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("auth config: %s: %w", what, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("auth config: %s %q is not an absolute http(s) URL", what, raw)
	}
	return nil
}

// Authenticate verifies the request's "Authorization: Bearer <token>" header (scheme matched
// case-insensitively) with Verify, using the request's context for any key fetch. Every error
// wraps ErrUnauthenticated; a missing, repeated or non-Bearer header is refused without looking
// at the token. Error messages never include the credential itself.
func (v *Verifier) Authenticate(r *http.Request) (Identity, error) {
	values := r.Header.Values("Authorization")
	switch len(values) {
	case 0:
		return Identity{}, fmt.Errorf("%w: missing Authorization header", ErrUnauthenticated)
	case 1:
	default:
		return Identity{}, fmt.Errorf("%w: %d Authorization headers, want one", ErrUnauthenticated, len(values))
	}
	scheme, token, _ := strings.Cut(values[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return Identity{}, fmt.Errorf("%w: Authorization header is not a Bearer credential", ErrUnauthenticated)
	}
	return v.Verify(r.Context(), strings.TrimLeft(token, " "))
}

// Verify checks rawToken's signature against the issuer's keys, its issuer, audience and expiry,
// then returns the normalised subject, the groups and the actor (act.sub) if any. Every error wraps
// ErrUnauthenticated and says what was wrong: empty or malformed token, unsigned (alg none) or
// unaccepted algorithm, bad
// signature, wrong issuer, wrong audience, expired (also wrapping *oidc.TokenExpiredError), a sub
// that NormalizeSubject refuses, or a groups claim that is not an array of strings.
func (v *Verifier) Verify(ctx context.Context, rawToken string) (Identity, error) {
	parts, err := checkShape(rawToken)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrUnauthenticated, err)
	}
	tok, err := v.tokens.Verify(ctx, rawToken)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrUnauthenticated, v.explain(parts, err))
	}
	sub, err := NormalizeSubject(tok.Subject)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: bad subject: %w", ErrUnauthenticated, err)
	}
	groups, err := v.groups(tok)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrUnauthenticated, err)
	}
	var act struct {
		Act *struct {
			Subject string `json:"sub"`
		} `json:"act"`
	}
	if err := tok.Claims(&act); err != nil {
		return Identity{}, fmt.Errorf("%w: act claim: %w", ErrUnauthenticated, err)
	}
	id := Identity{Subject: sub, Groups: groups}
	if act.Act != nil {
		id.Actor = act.Act.Subject
	}
	return id, nil
}

// groups reads the configured claim. An absent or null claim means no groups; anything but an
// array of strings is refused rather than ignored, because a misconfigured issuer silently
// granting nothing (or, with a string, something unintended) is worse than a clear 401.
func (v *Verifier) groups(tok *oidc.IDToken) ([]string, error) {
	var claims map[string]json.RawMessage
	if err := tok.Claims(&claims); err != nil {
		return nil, fmt.Errorf("read claims: %w", err)
	}
	raw, ok := claims[v.groupsClaim]
	if !ok {
		return nil, nil
	}
	var groups []string
	if err := json.Unmarshal(raw, &groups); err != nil {
		return nil, fmt.Errorf("claim %q is not an array of strings", v.groupsClaim)
	}
	return groups, nil
}
