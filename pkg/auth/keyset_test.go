package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/grantline/grantline/pkg/poll"
)

// countingIssuer is a real HTTP issuer whose JWKS can be rotated, counting the fetches of it:
// the figure a hostile client would like to drive up.
type countingIssuer struct {
	server  *httptest.Server
	fetches atomic.Int64
	mu      sync.Mutex
	public  jose.JSONWebKeySet
}

func startCountingIssuer(t *testing.T) *countingIssuer {
	t.Helper()
	iss := &countingIssuer{}
	iss.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		iss.fetches.Add(1)
		iss.mu.Lock()
		body, err := json.Marshal(iss.public)
		iss.mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	t.Cleanup(iss.server.Close)
	return iss
}

// newKey returns a fresh ES256 key under kid; publish adds its public half to the JWKS.
func newKey(t *testing.T, kid string) jose.JSONWebKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	return jose.JSONWebKey{Key: priv, KeyID: kid, Algorithm: string(jose.ES256), Use: "sig"}
}

func (iss *countingIssuer) publish(k jose.JSONWebKey) {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	iss.public.Keys = append(iss.public.Keys, k.Public())
}

func (iss *countingIssuer) verifier(t *testing.T, every time.Duration) *Verifier {
	t.Helper()
	v, err := NewVerifier(context.Background(), Config{Issuer: iss.server.URL, Audience: testAudience,
		JWKSURL: iss.server.URL + "/jwks", KeyRefetchInterval: every})
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return v
}

func (iss *countingIssuer) token(t *testing.T, key jose.JSONWebKey) string {
	t.Helper()
	now := time.Now()
	return sign(t, key, map[string]any{"iss": iss.server.URL, "aud": testAudience, "sub": "alice",
		"iat": now.Unix(), "exp": now.Add(time.Minute).Unix()})
}

// TestForgedKeyIDsCannotFloodTheIssuer sends a burst of tokens, each signed by a key of its own
// under a random key ID, as an attacker would to make every token cost a fetch at the identity
// provider. The fetches stay within the start-up fetch plus the refetch burst, and the real
// issuer's tokens keep working throughout without another fetch.
func TestForgedKeyIDsCannotFloodTheIssuer(t *testing.T) {
	iss := startCountingIssuer(t)
	real := newKey(t, "real")
	iss.publish(real)
	v := iss.verifier(t, time.Hour)
	ctx := context.Background()

	if _, err := v.Verify(ctx, iss.token(t, real)); err != nil {
		t.Fatalf("the issuer's own token refused: %v", err)
	}
	const forged = 200
	for i := range forged {
		tok := iss.token(t, newKey(t, rand.Text()))
		if id, err := v.Verify(ctx, tok); err == nil {
			t.Fatalf("forged token %d accepted as %+v", i, id)
		}
	}
	if _, err := v.Verify(ctx, iss.token(t, real)); err != nil {
		t.Fatalf("the issuer's own token refused after the burst: %v", err)
	}
	if got, limit := iss.fetches.Load(), int64(1+keyRefetchBurst); got > limit {
		t.Fatalf("%d forged tokens caused %d JWKS fetches, want at most %d", forged, got, limit)
	}
}

// TestConcurrentForgedKeyIDsFetchBounded is the same attack from many goroutines at once, so
// fetches racing each other must still be counted against one limit.
func TestConcurrentForgedKeyIDsFetchBounded(t *testing.T) {
	iss := startCountingIssuer(t)
	iss.publish(newKey(t, "real"))
	v := iss.verifier(t, time.Hour)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 25 {
				if _, err := v.Verify(context.Background(), iss.token(t, newKey(t, rand.Text()))); err == nil {
					t.Error("forged token accepted")
				}
			}
		})
	}
	wg.Wait()
	if got := iss.fetches.Load(); got > keyRefetchBurst {
		t.Fatalf("200 concurrent forged tokens caused %d JWKS fetches, want at most %d", got, keyRefetchBurst)
	}
}

// TestKeyIDs is the contract of the key cache, scenario by scenario, with a refetch interval
// short enough to pass within a test where a scenario needs it.
func TestKeyIDs(t *testing.T) {
	t.Run("an unknown key ID is remembered: repeating it does not fetch again", func(t *testing.T) {
		iss := startCountingIssuer(t)
		iss.publish(newKey(t, "real"))
		v := iss.verifier(t, time.Hour)
		stray := iss.token(t, newKey(t, "stray"))
		for range 50 {
			_, err := v.Verify(context.Background(), stray)
			if err == nil || !strings.Contains(err.Error(), `key ID "stray" is not published`) {
				t.Fatalf("stray key ID: err = %v, want it named as not published", err)
			}
		}
		if got := iss.fetches.Load(); got != 1 {
			t.Fatalf("JWKS fetched %d times for one stray key ID, want 1", got)
		}
	})
	t.Run("a forgery under the real key ID is refused without a fetch", func(t *testing.T) {
		iss := startCountingIssuer(t)
		real := newKey(t, "real")
		iss.publish(real)
		v := iss.verifier(t, time.Hour)
		if _, err := v.Verify(context.Background(), iss.token(t, real)); err != nil {
			t.Fatalf("the issuer's own token refused: %v", err)
		}
		for range 20 {
			if _, err := v.Verify(context.Background(), iss.token(t, newKey(t, "real"))); err == nil {
				t.Fatal("forgery under the real key ID accepted")
			}
		}
		if got := iss.fetches.Load(); got != 1 {
			t.Fatalf("JWKS fetched %d times, want 1", got)
		}
	})
	t.Run("a rotated key is accepted once the interval since the last fetch has passed", func(t *testing.T) {
		iss := startCountingIssuer(t)
		old := newKey(t, "old")
		iss.publish(old)
		const every = 50 * time.Millisecond
		v := iss.verifier(t, every)
		ctx := context.Background()
		// Use up the burst on key IDs the issuer does not know, as an attacker would.
		for range 1 + keyRefetchBurst {
			v.Verify(ctx, iss.token(t, newKey(t, rand.Text())))
		}
		rotated := newKey(t, "rotated")
		iss.publish(rotated)
		tok := iss.token(t, rotated)
		if _, err := v.Verify(ctx, tok); err == nil || !strings.Contains(err.Error(), "fetched too recently") {
			t.Fatalf("with the refetch budget spent: err = %v, want a refusal saying keys were fetched too recently", err)
		}
		poll.Until(t, 10*time.Second, "the rotated key to be accepted", func() bool {
			_, err := v.Verify(ctx, tok)
			return err == nil
		})
		if _, err := v.Verify(ctx, iss.token(t, old)); err != nil {
			t.Fatalf("the old key, still published, refused after rotation: %v", err)
		}
	})
}
