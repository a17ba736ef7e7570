package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

const testAudience = "grantline"

const testDirectoryYAML = `
users:
  - id: alice
    name: Alice Engineer
    groups: [engineers]
  - id: bob
    name: Bob Owner
    groups: [analytics-owners, payments-owners]
  - id: nogroups
    name: No Groups
`

// devFixture is a dev issuer served over real HTTP the way `grantline dev` mounts it, plus a
// verifier that fetches its JWKS over that HTTP.
type devFixture struct {
	dir       string
	issuerURL string
	directory *Directory
	issuer    *DevIssuer
	server    *httptest.Server
	verifier  *Verifier
}

func testDirectory(t *testing.T) *Directory {
	t.Helper()
	d, err := parseDirectory([]byte(testDirectoryYAML))
	if err != nil {
		t.Fatalf("parse test directory: %v", err)
	}
	return d
}

// startDevIssuer serves a fresh dev issuer at <server>/dev/oidc. The listener exists before the
// issuer is opened because the issuer URL must name its port.
func startDevIssuer(t *testing.T) *devFixture {
	t.Helper()
	return startDevIssuerIn(t, t.TempDir())
}

func startDevIssuerIn(t *testing.T, dir string) *devFixture {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	f := &devFixture{
		dir:       dir,
		issuerURL: "http://" + srv.Listener.Addr().String() + "/dev/oidc",
		directory: testDirectory(t),
		server:    srv,
	}
	var err error
	f.issuer, err = OpenDevIssuer(f.dir, f.issuerURL, testAudience, f.directory)
	if err != nil {
		srv.Close()
		t.Fatalf("OpenDevIssuer: %v", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/dev/oidc/", http.StripPrefix("/dev/oidc", f.issuer.Handler()))
	srv.Config.Handler = mux
	srv.Start()
	t.Cleanup(srv.Close)

	f.verifier, err = NewVerifier(context.Background(), f.issuer.VerifierConfig())
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return f
}

// claims returns the claims a valid token for alice carries, for scenarios to alter.
func (f *devFixture) claims(t *testing.T) map[string]any {
	t.Helper()
	tok, err := f.issuer.Mint("alice", defaultTestTTL)
	if err != nil {
		t.Fatalf("Mint: %v", err)
	}
	var c map[string]any
	if err := decodeSegment(splitToken(t, tok)[1], &c); err != nil {
		t.Fatalf("decode minted claims: %v", err)
	}
	return c
}

// sign signs claims with key, putting key's kid in the header, as any issuer holding that key
// could.
func sign(t *testing.T, key jose.JSONWebKey, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.SignatureAlgorithm(key.Algorithm), Key: key},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatalf("NewSigner: %v", err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatalf("encode claims: %v", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return tok
}

// handMade builds a compact JWS from a literal header, claims and signature, for tokens no
// library will produce (alg none, HMAC keyed with the public key).
func handMade(t *testing.T, header map[string]any, claims map[string]any, sig []byte) string {
	t.Helper()
	seg := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("encode segment: %v", err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	return seg(header) + "." + seg(claims) + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// otherKeySameKID is an attacker's ES256 key that claims the issuer's kid.
func (f *devFixture) otherKeySameKID(t *testing.T) jose.JSONWebKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	return jose.JSONWebKey{Key: priv, KeyID: f.issuer.key.KeyID, Algorithm: string(jose.ES256), Use: "sig"}
}

// absent, given to with, removes the claim; nil sets it to JSON null.
var absent = &struct{}{}

// with returns a copy of c with claim k set to v.
func with(c map[string]any, k string, v any) map[string]any {
	out := make(map[string]any, len(c)+1)
	for key, val := range c {
		out[key] = val
	}
	out[k] = v
	if v == absent {
		delete(out, k)
	}
	return out
}

const defaultTestTTL = 5 * time.Minute

func splitToken(t *testing.T, tok string) []string {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts, want 3", len(parts))
	}
	return parts
}
