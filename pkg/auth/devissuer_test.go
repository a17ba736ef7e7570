package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// TestDiscoveryMode checks that a service configured with only the issuer URL finds the JWKS
// through the dev issuer's discovery document.
func TestDiscoveryMode(t *testing.T) {
	f := startDevIssuer(t)
	cfg := f.issuer.VerifierConfig()
	cfg.JWKSURL = ""
	v, err := NewVerifier(context.Background(), cfg)
	if err != nil {
		t.Fatalf("NewVerifier with discovery: %v", err)
	}
	tok, err := f.issuer.Mint("alice", defaultTestTTL)
	if err != nil {
		t.Fatalf("Mint: %v", err)
	}
	got, err := v.Verify(context.Background(), tok)
	checkAuth(t, got, err, Identity{Subject: "alice", Groups: []string{"engineers"}}, "")

	cfg.Issuer = f.server.URL + "/not/an/issuer"
	if _, err := NewVerifier(context.Background(), cfg); err == nil {
		t.Fatal("discovery at a URL with no issuer succeeded")
	}
}

// TestMintFromDir is `grantline dev token alice` run as a separate process while `grantline dev`
// serves: it shares only the data directory with the server.
func TestMintFromDir(t *testing.T) {
	f := startDevIssuer(t)

	tok, err := MintFromDir(f.dir, testDirectory(t), "alice", defaultTestTTL)
	if err != nil {
		t.Fatalf("MintFromDir: %v", err)
	}
	got, err := f.verifier.Verify(context.Background(), tok)
	checkAuth(t, got, err, Identity{Subject: "alice", Groups: []string{"engineers"}}, "")

	tests := []struct {
		name    string
		dir     string
		user    string
		wantErr string
	}{
		{name: "a user who is not in the directory", dir: f.dir, user: "mallory", wantErr: `unknown user "mallory"`},
		{name: "a data dir where dev never ran", dir: t.TempDir(), user: "alice", wantErr: "has `grantline dev` run"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := MintFromDir(tt.dir, testDirectory(t), tt.user, defaultTestTTL)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("MintFromDir = %.20q…, %v; want error saying %q", tok, err, tt.wantErr)
			}
		})
	}
}

// TestDevRestartOnAnotherPort: reopening the data dir with a new issuer URL keeps the key but
// moves the issuer, so new CLI tokens follow the server and old tokens stop validating.
func TestDevRestartOnAnotherPort(t *testing.T) {
	first := startDevIssuer(t)
	oldTok, err := MintFromDir(first.dir, testDirectory(t), "alice", defaultTestTTL)
	if err != nil {
		t.Fatalf("MintFromDir before restart: %v", err)
	}

	second := startDevIssuerIn(t, first.dir)
	if second.issuer.key.KeyID != first.issuer.key.KeyID {
		t.Errorf("restart changed the key: kid %s, was %s", second.issuer.key.KeyID, first.issuer.key.KeyID)
	}
	newTok, err := MintFromDir(first.dir, testDirectory(t), "alice", defaultTestTTL)
	if err != nil {
		t.Fatalf("MintFromDir after restart: %v", err)
	}
	got, err := second.verifier.Verify(context.Background(), newTok)
	checkAuth(t, got, err, Identity{Subject: "alice", Groups: []string{"engineers"}}, "")
	got, err = second.verifier.Verify(context.Background(), oldTok)
	checkAuth(t, got, err, Identity{}, "token issuer")
}

func TestMintRefusals(t *testing.T) {
	f := startDevIssuer(t)
	tests := []struct {
		name    string
		user    string
		ttl     time.Duration
		wantErr string
	}{
		{name: "a user who is not in the directory", user: "mallory", ttl: time.Minute, wantErr: `unknown user "mallory"`},
		{name: "a zero lifetime", user: "alice", ttl: 0, wantErr: "not positive"},
		{name: "a negative lifetime", user: "alice", ttl: -time.Minute, wantErr: "not positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.issuer.Mint(tt.user, tt.ttl)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Mint error = %v, want one saying %q", err, tt.wantErr)
			}
		})
	}
}

// TestMintedToken pins what downstream services and the CLI can rely on in a dev token.
func TestMintedToken(t *testing.T) {
	f := startDevIssuer(t)
	tok, err := f.issuer.Mint("Alice", defaultTestTTL) // looked up after normalisation
	if err != nil {
		t.Fatalf("Mint: %v", err)
	}
	parts := splitToken(t, tok)
	var header map[string]any
	if err := decodeSegment(parts[0], &header); err != nil {
		t.Fatalf("decode header: %v", err)
	}
	if header["kid"] != f.issuer.key.KeyID || header["alg"] != "ES256" || header["typ"] != "JWT" {
		t.Errorf("header = %v, want kid %s, alg ES256, typ JWT", header, f.issuer.key.KeyID)
	}
	var claims map[string]any
	if err := decodeSegment(parts[1], &claims); err != nil {
		t.Fatalf("decode claims: %v", err)
	}
	for k, want := range map[string]any{"iss": f.issuerURL, "aud": testAudience, "sub": "alice", "name": "Alice Engineer"} {
		if claims[k] != want {
			t.Errorf("claim %s = %v, want %v", k, claims[k], want)
		}
	}
	for _, k := range []string{"iat", "exp", "groups"} {
		if _, ok := claims[k]; !ok {
			t.Errorf("claim %s missing from %v", k, claims)
		}
	}
}

// TestDevIssuerFiles checks what is on disk: a private key only its owner can read, and an issuer
// record the CLI reads.
func TestDevIssuerFiles(t *testing.T) {
	f := startDevIssuer(t)
	info, err := os.Stat(filepath.Join(f.dir, devKeyFile))
	if err != nil {
		t.Fatalf("stat key: %v", err)
	}
	if runtime.GOOS != "windows" && info.Mode().Perm() != 0o600 {
		t.Errorf("key file mode = %v, want 0600", info.Mode().Perm())
	}
	rec, err := readDevIssuerRecord(f.dir)
	if err != nil {
		t.Fatalf("read issuer record: %v", err)
	}
	if rec != (devIssuerRecord{Issuer: f.issuerURL, Audience: testAudience}) {
		t.Errorf("issuer record = %+v", rec)
	}
	leftovers, _ := filepath.Glob(filepath.Join(f.dir, ".*.tmp"))
	if len(leftovers) > 0 {
		t.Errorf("temporary files left behind: %v", leftovers)
	}
}

// TestConcurrentFirstOpen: two processes starting on an empty data dir must agree on one key,
// or tokens from one would fail against the other's JWKS.
func TestConcurrentFirstOpen(t *testing.T) {
	dir := t.TempDir()
	const n = 8
	kids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			d, err := OpenDevIssuer(dir, "http://127.0.0.1:1/dev/oidc", testAudience, testDirectory(t))
			if err == nil {
				kids[i] = d.key.KeyID
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("open %d: %v", i, errs[i])
		}
		if kids[i] != kids[0] {
			t.Fatalf("opens disagree on the key: %v", kids)
		}
	}
}

// TestRS256Key: a data dir holding an RSA key (placed by hand) signs RS256 tokens that verify.
func TestRS256Key(t *testing.T) {
	dir := t.TempDir()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("generate RSA key: %v", err)
	}
	b, err := json.Marshal(jose.JSONWebKey{Key: priv, KeyID: "rsa-1", Algorithm: "RS256", Use: "sig"})
	if err != nil {
		t.Fatalf("encode RSA key: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, devKeyFile), b, 0o600); err != nil {
		t.Fatalf("write RSA key: %v", err)
	}
	f := startDevIssuerIn(t, dir)
	tok, err := f.issuer.Mint("alice", defaultTestTTL)
	if err != nil {
		t.Fatalf("Mint: %v", err)
	}
	var header map[string]any
	if err := decodeSegment(splitToken(t, tok)[0], &header); err != nil || header["alg"] != "RS256" {
		t.Fatalf("header = %v, %v; want alg RS256", header, err)
	}
	got, err := f.verifier.Verify(context.Background(), tok)
	checkAuth(t, got, err, Identity{Subject: "alice", Groups: []string{"engineers"}}, "")
}

// TestDevIssuerRefusesBadKeyFile: a corrupt or public-only key file is reported, not replaced,
// because replacing it would silently invalidate every token the CLI has minted.
func TestDevIssuerRefusesBadKeyFile(t *testing.T) {
	tests := []struct {
		name    string
		content string
		wantErr string
	}{
		{name: "truncated JSON", content: `{"kty":"EC"`, wantErr: "parse dev signing key"},
		{name: "public key only", content: publicOnlyKey(t), wantErr: "not a complete private key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, devKeyFile), []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := OpenDevIssuer(dir, "http://127.0.0.1:1/dev/oidc", testAudience, testDirectory(t))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("OpenDevIssuer error = %v, want one saying %q", err, tt.wantErr)
			}
			if errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("error claims the key is missing: %v", err)
			}
		})
	}
}

func publicOnlyKey(t *testing.T) string {
	t.Helper()
	key, err := newDevKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestOpenDevIssuerRefusesBadArguments(t *testing.T) {
	tests := []struct {
		name      string
		issuerURL string
		audience  string
		wantErr   string
	}{
		{name: "issuer with a trailing slash", issuerURL: "http://127.0.0.1:1/dev/oidc/", audience: "g", wantErr: "must not end in a slash"},
		{name: "issuer that is not http(s)", issuerURL: "ftp://127.0.0.1/dev/oidc", audience: "g", wantErr: "not an absolute http(s) URL"},
		{name: "issuer with a query", issuerURL: "http://127.0.0.1:1/dev/oidc?x=1", audience: "g", wantErr: "query"},
		{name: "empty audience", issuerURL: "http://127.0.0.1:1/dev/oidc", audience: "", wantErr: "audience is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := OpenDevIssuer(t.TempDir(), tt.issuerURL, tt.audience, testDirectory(t))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("OpenDevIssuer error = %v, want one saying %q", err, tt.wantErr)
			}
		})
	}
}

// TestHandlerPaths pins the URLs `grantline dev` exposes, mounted as its mux does.
func TestHandlerPaths(t *testing.T) {
	f := startDevIssuer(t)
	slashMounted := httptest.NewServer(http.StripPrefix("/dev/oidc/", f.issuer.Handler()))
	t.Cleanup(slashMounted.Close)

	tests := []struct {
		name       string
		method     string
		url        string
		wantStatus int
		wantBody   string
	}{
		{name: "discovery document", method: "GET", url: f.issuerURL + "/.well-known/openid-configuration",
			wantStatus: 200, wantBody: `"jwks_uri":"` + f.issuerURL + `/jwks"`},
		{name: "JWKS", method: "GET", url: f.issuerURL + "/jwks", wantStatus: 200, wantBody: `"kid":"` + f.issuer.key.KeyID + `"`},
		{name: "JWKS when mounted with StripPrefix(\"/dev/oidc/\")", method: "GET", url: slashMounted.URL + "/dev/oidc/jwks",
			wantStatus: 200, wantBody: `"kid":"` + f.issuer.key.KeyID + `"`},
		{name: "POST to the JWKS", method: "POST", url: f.issuerURL + "/jwks", wantStatus: 405},
		{name: "an unknown path", method: "GET", url: f.issuerURL + "/userinfo", wantStatus: 404},
		{name: "GET on the token endpoint", method: "GET", url: f.issuerURL + "/token", wantStatus: 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, tt.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus || !strings.Contains(string(body), tt.wantBody) {
				t.Fatalf("%s %s = %d %s, want %d containing %s", tt.method, tt.url, resp.StatusCode, body, tt.wantStatus, tt.wantBody)
			}
		})
	}
}

// TestJWKSIsPublic: the served key set must never carry the private scalar or primes.
func TestJWKSIsPublic(t *testing.T) {
	f := startDevIssuer(t)
	resp, err := http.Get(f.issuerURL + "/jwks")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatalf("decode JWKS: %v", err)
	}
	if len(set.Keys) != 1 {
		t.Fatalf("JWKS has %d keys, want 1", len(set.Keys))
	}
	for _, private := range []string{"d", "p", "q", "dp", "dq", "qi"} {
		if _, ok := set.Keys[0][private]; ok {
			t.Errorf("JWKS exposes private parameter %q", private)
		}
	}
}
