package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	jose "github.com/go-jose/go-jose/v4"
)

// Files a DevIssuer keeps in its data directory. The server and the `grantline dev token` CLI
// share them, which is what lets the CLI mint without talking to the server.
const (
	devKeyFile    = "oidc-key.json"    // private JWK, mode 0600
	devIssuerFile = "oidc-issuer.json" // devIssuerRecord
)

// devIssuerRecord is where the running dev server says tokens should claim to come from.
type devIssuerRecord struct {
	Issuer   string `json:"issuer"`
	Audience string `json:"audience"`
}

// loadOrCreateDevKey returns the key in dir, generating and persisting an ES256 key first if
// there is none.
func loadOrCreateDevKey(dir string) (jose.JSONWebKey, error) {
	key, err := loadDevKey(dir)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	key, err = newDevKey()
	if err != nil {
		return jose.JSONWebKey{}, err
	}
	b, err := json.MarshalIndent(key, "", "  ")
	if err != nil {
		return jose.JSONWebKey{}, fmt.Errorf("encode dev signing key: %w", err)
	}
	// Link, unlike rename, refuses to replace an existing file: if another process created the
	// key meanwhile, both end up using that one instead of each holding a different key.
	err = writeFileAtomic(dir, devKeyFile, b, os.Link)
	if errors.Is(err, fs.ErrExist) {
		return loadDevKey(dir)
	}
	if err != nil {
		return jose.JSONWebKey{}, fmt.Errorf("save dev signing key: %w", err)
	}
	return key, nil
}

func newDevKey() (jose.JSONWebKey, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return jose.JSONWebKey{}, fmt.Errorf("generate dev signing key: %w", err)
	}
	key := jose.JSONWebKey{Key: priv, Algorithm: string(jose.ES256), Use: "sig"}
	// The RFC 7638 thumbprint as kid names the key by its content, so a regenerated key never
	// reuses a kid that verifiers have cached.
	tp, err := key.Thumbprint(crypto.SHA256)
	if err != nil {
		return jose.JSONWebKey{}, fmt.Errorf("dev signing key thumbprint: %w", err)
	}
	key.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	return key, nil
}

// loadDevKey reads dir's private key. The error wraps fs.ErrNotExist when there is no key file,
// and otherwise says why the key is unusable.
func loadDevKey(dir string) (jose.JSONWebKey, error) {
	path := filepath.Join(dir, devKeyFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return jose.JSONWebKey{}, fmt.Errorf("read dev signing key: %w", err)
	}
	var key jose.JSONWebKey
	if err := json.Unmarshal(b, &key); err != nil {
		return jose.JSONWebKey{}, fmt.Errorf("parse dev signing key %s: %w", path, err)
	}
	if err := checkDevKey(key); err != nil {
		return jose.JSONWebKey{}, fmt.Errorf("dev signing key %s: %w", path, err)
	}
	return key, nil
}

func checkDevKey(key jose.JSONWebKey) error {
	if !key.Valid() || key.IsPublic() {
		return errors.New("not a complete private key")
	}
	if key.KeyID == "" {
		return errors.New("no kid")
	}
	switch k := key.Key.(type) {
	case *ecdsa.PrivateKey:
		if key.Algorithm != string(jose.ES256) || k.Curve != elliptic.P256() {
			return fmt.Errorf("EC key must be P-256 with alg ES256, got alg %q", key.Algorithm)
		}
	case *rsa.PrivateKey:
		if key.Algorithm != string(jose.RS256) || k.N.BitLen() < 2048 {
			return fmt.Errorf("RSA key must be at least 2048 bits with alg RS256, got alg %q", key.Algorithm)
		}
	default:
		return fmt.Errorf("key type %T not supported, want ES256 or RS256", key.Key)
	}
	return nil
}

// readDevIssuerRecord reads dir's issuer record; the error wraps fs.ErrNotExist if there is none.
func readDevIssuerRecord(dir string) (devIssuerRecord, error) {
	path := filepath.Join(dir, devIssuerFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return devIssuerRecord{}, fmt.Errorf("read dev issuer record: %w", err)
	}
	var rec devIssuerRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return devIssuerRecord{}, fmt.Errorf("parse dev issuer record %s: %w", path, err)
	}
	if rec.Issuer == "" || rec.Audience == "" {
		return devIssuerRecord{}, fmt.Errorf("dev issuer record %s lacks issuer or audience", path)
	}
	return rec, nil
}

func writeDevIssuerRecord(dir string, rec devIssuerRecord) error {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("encode dev issuer record: %w", err)
	}
	// Rename replaces atomically, so a CLI reading concurrently sees the old or the new record,
	// never half of one.
	if err := writeFileAtomic(dir, devIssuerFile, b, os.Rename); err != nil {
		return fmt.Errorf("save dev issuer record: %w", err)
	}
	return nil
}

// writeFileAtomic writes b to a temporary file in dir (mode 0600), syncs it, and moves it to name
// with place (os.Rename to replace, os.Link to refuse an existing file).
func writeFileAtomic(dir, name string, b []byte, place func(oldpath, newpath string) error) error {
	tmp, err := os.CreateTemp(dir, "."+name+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a rename there is nothing left to remove
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return place(tmp.Name(), filepath.Join(dir, name))
}
