package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// DevIssuer mints tokens for the users of a Directory and publishes the matching discovery
// document and JWKS. It is for `grantline dev` only. It is safe for concurrent use.
type DevIssuer struct {
	issuer    string
	audience  string
	key       jose.JSONWebKey // private; kid and alg set
	directory *Directory
	login     *devLogin // the sign-in endpoints' codes and registered redirects (devlogin.go)
	delegates delegates

	discovery, jwks []byte // what Handler serves, encoded once
}

func newDevIssuer(rec devIssuerRecord, key jose.JSONWebKey, directory *Directory) (*DevIssuer, error) {
	d := &DevIssuer{issuer: rec.Issuer, audience: rec.Audience, key: key, directory: directory, login: newDevLogin()}
	var err error
	if d.discovery, err = json.Marshal(d.discoveryDocument()); err != nil {
		return nil, fmt.Errorf("encode discovery document: %w", err)
	}
	if d.jwks, err = json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{key.Public()}}); err != nil {
		return nil, fmt.Errorf("encode JWKS: %w", err)
	}
	return d, nil
}

// OpenDevIssuer returns the dev issuer whose state lives in dir (created with mode 0700 if
// missing). On first use it generates an ES256 key into dir/oidc-key.json (mode 0600); later it
// reuses that key, which may also be an RS256 key placed there by hand. It records issuerURL and
// audience in dir/oidc-issuer.json for MintFromDir, replacing a record that differs (a restart on
// another port: tokens minted for the old issuer stop validating).
//
// issuerURL must be an absolute http(s) URL without trailing slash, query or fragment, such as
// "http://127.0.0.1:8080/dev/oidc"; it is the exact iss of minted tokens. It returns an error if
// an argument is invalid, or the key or record cannot be read or written.
func OpenDevIssuer(dir string, issuerURL string, audience string, directory *Directory) (*DevIssuer, error) {
	if err := checkDevIssuerURL(issuerURL); err != nil {
		return nil, err
	}
	if audience == "" {
		return nil, errors.New("open dev issuer: audience is empty")
	}
	if directory == nil {
		return nil, errors.New("open dev issuer: directory is nil")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open dev issuer: %w", err)
	}
	key, err := loadOrCreateDevKey(dir)
	if err != nil {
		return nil, fmt.Errorf("open dev issuer: %w", err)
	}
	want := devIssuerRecord{Issuer: issuerURL, Audience: audience}
	got, err := readDevIssuerRecord(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("open dev issuer: %w", err)
	}
	if got != want {
		if err := writeDevIssuerRecord(dir, want); err != nil {
			return nil, fmt.Errorf("open dev issuer: %w", err)
		}
	}
	d, err := newDevIssuer(want, key, directory)
	if err != nil {
		return nil, fmt.Errorf("open dev issuer: %w", err)
	}
	return d, nil
}

// checkDevIssuerURL refuses issuer URLs that would not survive being joined with "/jwks" or
// compared exactly with a token's iss.
func checkDevIssuerURL(raw string) error {
	if err := checkHTTPURL("dev issuer URL", raw); err != nil {
		return err
	}
	u, _ := url.Parse(raw) // checkHTTPURL parsed it already
	if strings.HasSuffix(raw, "/") || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return fmt.Errorf("dev issuer URL %q must not end in a slash or carry a query or fragment", raw)
	}
	return nil
}

// MintFromDir mints a token for user, valid for ttl, with the key and issuer that OpenDevIssuer
// last recorded in dir. It is what `grantline dev token` calls: it reads the files and writes
// nothing, so it needs no running server, and its tokens validate against the server that
// recorded the issuer. It returns an error if dir holds no dev issuer state, or as Mint does.
func MintFromDir(dir string, directory *Directory, user string, ttl time.Duration) (token string, err error) {
	if directory == nil {
		return "", errors.New("mint from dir: directory is nil")
	}
	key, err := loadDevKey(dir)
	if err != nil {
		return "", fmt.Errorf("mint from dir %s (has `grantline dev` run with this data dir?): %w", dir, err)
	}
	rec, err := readDevIssuerRecord(dir)
	if err != nil {
		return "", fmt.Errorf("mint from dir %s (has `grantline dev` run with this data dir?): %w", dir, err)
	}
	d, err := newDevIssuer(rec, key, directory)
	if err != nil {
		return "", fmt.Errorf("mint from dir %s: %w", dir, err)
	}
	return d.Mint(user, ttl)
}

// Mint returns a signed JWT for the directory user whose id matches user (compared after
// NormalizeSubject), valid from now for ttl. Claims: iss, aud, sub (the user id), name, groups,
// iat, exp; the header carries kid and typ "JWT". It returns an error for an unknown user or a
// ttl that is not positive.
func (d *DevIssuer) Mint(user string, ttl time.Duration) (string, error) {
	if ttl <= 0 {
		return "", fmt.Errorf("mint token: ttl %s is not positive", ttl)
	}
	return d.mint(time.Now(), user, ttl)
}

type devClaims struct {
	jwt.Claims
	Name   string   `json:"name,omitempty"`
	Groups []string `json:"groups"`
}

// mint takes the time as a parameter so tests can mint tokens that are already expired.
func (d *DevIssuer) mint(now time.Time, user string, ttl time.Duration) (string, error) {
	u, ok := d.directory.User(user)
	if !ok {
		return "", fmt.Errorf("mint token: unknown user %q", user)
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.SignatureAlgorithm(d.key.Algorithm), Key: d.key},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	claims := devClaims{
		Claims: jwt.Claims{
			Issuer:   d.issuer,
			Subject:  u.ID,
			Audience: jwt.Audience{d.audience},
			IssuedAt: jwt.NewNumericDate(now),
			Expiry:   jwt.NewNumericDate(now.Add(ttl)),
		},
		Name:   u.Name,
		Groups: append([]string{}, u.Groups...), // [] rather than null for a user with no groups
	}
	token, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("mint token for %s: %w", u.ID, err)
	}
	return token, nil
}

// VerifierConfig returns the Config under which services accept this issuer's tokens: its
// issuer and audience, the default groups claim, and JWKSURL set to the issuer URL + "/jwks" so
// verifiers skip discovery.
func (d *DevIssuer) VerifierConfig() Config {
	return Config{
		Issuer:      d.issuer,
		Audience:    d.audience,
		GroupsClaim: DefaultGroupsClaim,
		JWKSURL:     d.issuer + jwksPath,
	}
}
