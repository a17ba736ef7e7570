package events

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json/v2"
	"errors"
	"fmt"
	"os"
	"strings"
)

// SignatureHeader is the NATS header that carries an event's signature over its exact stored bytes:
// "ed25519;<key-id>;<base64 signature>". Keeping it outside the body means no JSON canonicalisation.
const SignatureHeader = "Grantline-Signature"

// Signer signs the events of one service with that service's ed25519 key.
type Signer struct {
	keyID   string
	service Service
	key     ed25519.PrivateKey
}

// keyFile is the on-disk form of a signing key. The seed is the secret; keep the file mode 0600.
type keyFile struct {
	KeyID   string  `json:"key_id"`
	Service Service `json:"service"`
	Seed    string  `json:"seed"`
}

// GenerateSigner creates a fresh key for svc, named keyID (for development and for rotation).
func GenerateSigner(svc Service, keyID string) (*Signer, error) {
	if _, err := ParseService(string(svc)); err != nil {
		return nil, err
	}
	if keyID == "" || strings.ContainsAny(keyID, "; \t\n") {
		return nil, fmt.Errorf("key ID %q must be non-empty without spaces or semicolons", keyID)
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return &Signer{keyID: keyID, service: svc, key: key}, nil
}

// ParseSigner reads a key file's contents (JSON with key_id, service and a base64 seed).
func ParseSigner(b []byte) (*Signer, error) {
	var kf keyFile
	if err := UnmarshalStrict(b, &kf); err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	if _, err := ParseService(string(kf.Service)); err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	seed, err := base64.StdEncoding.DecodeString(kf.Seed)
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, errors.New("signing key: seed must be 32 bytes of base64")
	}
	if kf.KeyID == "" {
		return nil, errors.New("signing key: missing key_id")
	}
	return &Signer{keyID: kf.KeyID, service: kf.Service, key: ed25519.NewKeyFromSeed(seed)}, nil
}

// LoadSigner reads a key file from path.
func LoadSigner(path string) (*Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	return ParseSigner(b)
}

// MarshalKeyFile returns the key file contents for s, secret included.
func (s *Signer) MarshalKeyFile() []byte {
	b, _ := json.Marshal(keyFile{KeyID: s.keyID, Service: s.service, Seed: base64.StdEncoding.EncodeToString(s.key.Seed())})
	return b
}

// KeyID names the key in the trust file.
func (s *Signer) KeyID() string { return s.keyID }

// Service is the service the key belongs to.
func (s *Signer) Service() Service { return s.service }

// PublicKey is the verification key.
func (s *Signer) PublicKey() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }

// Sign returns the SignatureHeader value for body.
func (s *Signer) Sign(body []byte) string {
	return "ed25519;" + s.keyID + ";" + base64.StdEncoding.EncodeToString(ed25519.Sign(s.key, body))
}

// parseSignature splits a SignatureHeader value.
func parseSignature(h string) (keyID string, sig []byte, err error) {
	parts := strings.Split(h, ";")
	if len(parts) != 3 || parts[0] != "ed25519" || parts[1] == "" {
		return "", nil, errors.New("signature is not ed25519;<key-id>;<base64>")
	}
	sig, err = base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != ed25519.SignatureSize {
		return "", nil, errors.New("signature is not 64 bytes of base64")
	}
	return parts[1], sig, nil
}

// Environment variables a service reads its signing key from: the key file's contents, or its path.
const (
	EnvSigningKey     = "GRANTLINE_SIGNING_KEY"
	EnvSigningKeyFile = "GRANTLINE_SIGNING_KEY_FILE"
)

// SignerFromEnv loads the service's key from GRANTLINE_SIGNING_KEY (the key file's JSON) or else
// GRANTLINE_SIGNING_KEY_FILE (its path), looked up with getenv (os.Getenv in production). It refuses a
// key that belongs to another service than want.
func SignerFromEnv(getenv func(string) string, want Service) (*Signer, error) {
	var s *Signer
	var err error
	switch {
	case getenv(EnvSigningKey) != "":
		s, err = ParseSigner([]byte(getenv(EnvSigningKey)))
	case getenv(EnvSigningKeyFile) != "":
		s, err = LoadSigner(getenv(EnvSigningKeyFile))
	default:
		return nil, fmt.Errorf("no signing key: set %s or %s", EnvSigningKey, EnvSigningKeyFile)
	}
	if err != nil {
		return nil, err
	}
	if s.Service() != want {
		return nil, fmt.Errorf("signing key %q belongs to %s, not %s", s.KeyID(), s.Service(), want)
	}
	return s, nil
}
