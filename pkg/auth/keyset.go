package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
	"golang.org/x/time/rate"
)

// DefaultKeyRefetchInterval is how often, at most, a Verifier goes back to the issuer for keys
// when Config.KeyRefetchInterval is zero.
const DefaultKeyRefetchInterval = 10 * time.Second

const (
	// keyRefetchBurst lets a rotation be picked up at once even right after a start-up fetch.
	keyRefetchBurst = 2
	// unknownKeyIDs bounds the negative cache: random key IDs must not grow memory.
	unknownKeyIDs = 4096
	// maxJWKSBytes bounds what a JWKS response may make us read.
	maxJWKSBytes  = 1 << 20
	jwksFetchTime = 10 * time.Second
)

// errKeyRefetchLimited is the refusal for a token naming a key the verifier does not hold while
// it may not ask the issuer again yet.
var errKeyRefetchLimited = errors.New("unknown signing key ID and the issuer's keys were fetched too recently to fetch again")

// keySet is the issuer's signing keys, cached by key ID. go-oidc's RemoteKeySet goes back to the
// issuer for every token naming a key ID it does not hold, so a stream of forged tokens with
// random key IDs becomes a stream of requests to the identity provider. keySet fetches only
// when a token names a key ID it does not hold, at most once per refetch interval (after a
// small burst), and remembers for one interval the key IDs a fetch showed absent (negative
// caching). A rotation is still picked up within one interval: any fetch reloads the whole set.
type keySet struct {
	url     string
	client  *http.Client
	every   time.Duration
	limiter *rate.Limiter
	fetchMu sync.Mutex // one fetch at a time, so a burst of unknown key IDs fetches once

	mu      sync.RWMutex // guards keys and unknown; never held across a fetch
	keys    map[string][]jose.JSONWebKey
	unknown map[string]time.Time // key ID → when a fetch showed it absent
}

// newKeySet returns a keySet over the JWKS at url, fetched with the HTTP client ctx carries (see
// oidc.ClientContext) or http.DefaultClient, at most once per every (zero: the default).
func newKeySet(ctx context.Context, url string, every time.Duration) *keySet {
	if every <= 0 {
		every = DefaultKeyRefetchInterval
	}
	client, ok := ctx.Value(oauth2.HTTPClient).(*http.Client)
	if !ok {
		client = http.DefaultClient
	}
	return &keySet{
		url: url, client: client, every: every,
		limiter: rate.NewLimiter(rate.Every(every), keyRefetchBurst),
		keys:    map[string][]jose.JSONWebKey{},
		unknown: map[string]time.Time{},
	}
}

// VerifySignature implements oidc.KeySet: it returns jwt's payload if a key the issuer published
// under jwt's key ID verifies it (any key, for a token without a key ID). A known key ID with a
// bad signature is refused without fetching: a forgery is no reason to ask the issuer again.
func (s *keySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(jwt, acceptedJOSEAlgs()) // a JWT is always the compact serialization
	if err != nil {
		return nil, fmt.Errorf("malformed jwt: %w", err)
	}
	keys, err := s.keysFor(ctx, jws.Signatures[0].Header.KeyID)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if payload, err := jws.Verify(&k); err == nil {
			return payload, nil
		}
	}
	return nil, errors.New("failed to verify token signature")
}

func acceptedJOSEAlgs() []jose.SignatureAlgorithm {
	algs := make([]jose.SignatureAlgorithm, len(acceptedAlgs))
	for i, a := range acceptedAlgs {
		algs[i] = jose.SignatureAlgorithm(a)
	}
	return algs
}

// keysFor returns the keys published under kid. If none are held, it fetches the set unless a
// fetch showed kid absent within the interval or the refetch limiter says no.
func (s *keySet) keysFor(ctx context.Context, kid string) ([]jose.JSONWebKey, error) {
	if keys, _ := s.cached(kid); len(keys) > 0 {
		return keys, nil
	}
	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()
	// Another caller may have fetched while this one waited.
	keys, absentSince := s.cached(kid)
	switch {
	case len(keys) > 0:
		return keys, nil
	case !absentSince.IsZero() && time.Since(absentSince) < s.every:
		return nil, fmt.Errorf("signing key ID %q is not published by the issuer", kid)
	case !s.limiter.Allow():
		return nil, errKeyRefetchLimited
	}
	if err := s.fetch(ctx); err != nil {
		return nil, err
	}
	if keys, _ := s.cached(kid); len(keys) > 0 {
		return keys, nil
	}
	s.mu.Lock()
	if len(s.unknown) >= unknownKeyIDs {
		clear(s.unknown)
	}
	s.unknown[kid] = time.Now()
	s.mu.Unlock()
	return nil, fmt.Errorf("signing key ID %q is not published by the issuer", kid)
}

// cached returns the keys held under kid (all keys for an empty kid) and, if none, when a fetch
// last showed kid absent (zero if never).
func (s *keySet) cached(kid string) ([]jose.JSONWebKey, time.Time) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if kid != "" {
		return s.keys[kid], s.unknown[kid]
	}
	var all []jose.JSONWebKey
	for _, keys := range s.keys {
		all = append(all, keys...)
	}
	return all, s.unknown[kid]
}

// fetch replaces the cached keys with the issuer's current set. Keys this library cannot use
// (other key types, private keys) are skipped, as RFC 7517 §5 asks, rather than failing the
// whole set.
func (s *keySet) fetch(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, jwksFetchTime)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return fmt.Errorf("fetch signing keys: %w", err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("fetch signing keys: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes))
	if err != nil {
		return fmt.Errorf("fetch signing keys from %s: %w", s.url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch signing keys from %s: %s", s.url, resp.Status)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return fmt.Errorf("signing keys from %s: %w", s.url, err)
	}
	keys := map[string][]jose.JSONWebKey{}
	for _, raw := range set.Keys {
		var k jose.JSONWebKey
		if json.Unmarshal(raw, &k) != nil || !k.Valid() || !k.IsPublic() {
			continue
		}
		keys[k.KeyID] = append(keys[k.KeyID], k)
	}
	s.mu.Lock()
	s.keys = keys
	s.mu.Unlock()
	return nil
}
