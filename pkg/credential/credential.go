// Package credential keeps the secrets of issued credentials (a service account's database password)
// between the grant and their one retrieval: encrypted with AES-256-GCM under a key from the
// configuration, in a JetStream key-value bucket with a per-key TTL, and deleted (purged, so no older
// revision stays) when taken or discarded.
//
// Why a key-value bucket and not a table: a secret lives for minutes to hours and is read once; the
// bucket gives an atomic create (two replicas granting one request agree on one secret), a
// compare-and-delete (two retrievals cannot both succeed) and expiry without a sweeper, and fulfilment
// needs no database of its own. The ciphertext is bound to its request ID (GCM additional data), so an
// entry copied to another key does not decrypt.
package credential

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/topology"
)

// KeyEnv is the environment variable holding the encryption key: 32 bytes, standard base64.
const KeyEnv = "GRANTLINE_CREDENTIAL_KEY"

// ErrGone means the secret was already taken, discarded or expired (or never stored).
var ErrGone = errors.New("credential already retrieved or expired")

// Store keeps encrypted secrets.
type Store struct {
	kv   jetstream.KeyValue
	aead cipher.AEAD
}

// ParseKey decodes a base64 key and checks it is 32 bytes (AES-256).
func ParseKey(b64 string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("%s is not base64: %w", KeyEnv, err)
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("%s must be 32 bytes, got %d", KeyEnv, len(key))
	}
	return key, nil
}

// GenerateKey returns a fresh key in the form ParseKey reads, for development.
func GenerateKey() string {
	return base64.StdEncoding.EncodeToString(randomBytes(32))
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return b
}

// Open creates or opens the bucket with replicas and returns the store encrypting under key (see
// ParseKey).
func Open(ctx context.Context, js jetstream.JetStream, key []byte, replicas int) (*Store, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: topology.CredentialsBucket, History: 1, Storage: jetstream.FileStorage, Replicas: max(replicas, 1),
		// Per-key TTLs need limit markers; a purge marker lives this long, then nothing is left.
		LimitMarkerTTL: time.Minute,
		Description:    "Grantline fulfilment: issued credentials, encrypted, until retrieved or expired",
	})
	if err != nil {
		return nil, fmt.Errorf("credential bucket: %w", err)
	}
	return &Store{kv: kv, aead: aead}, nil
}

// Attach opens the bucket that fulfilment created, without changing its configuration (the revoker
// only discards secrets), and returns the store encrypting under key.
func Attach(ctx context.Context, js jetstream.JetStream, key []byte) (*Store, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	kv, err := js.KeyValue(ctx, topology.CredentialsBucket)
	if err != nil {
		return nil, fmt.Errorf("credential bucket: %w", err)
	}
	return &Store{kv: kv, aead: aead}, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("credential key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("credential key: %w", err)
	}
	return aead, nil
}

// Reserve returns the secret of request id: the one stored earlier (a retried or concurrent grant of
// the same request), or else generate's, stored encrypted for ttl. Concurrent callers all get the one
// that was stored first.
func (s *Store) Reserve(ctx context.Context, id string, ttl time.Duration, generate func() (string, error)) (string, error) {
	for range 3 {
		secret, _, err := s.get(ctx, id)
		if err == nil {
			return secret, nil
		}
		if !errors.Is(err, ErrGone) {
			return "", err
		}
		fresh, err := generate()
		if err != nil {
			return "", fmt.Errorf("generate credential for %s: %w", id, err)
		}
		_, err = s.kv.Create(ctx, id, s.seal(id, fresh), jetstream.KeyTTL(max(ttl, time.Second)))
		if err == nil {
			return fresh, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return "", fmt.Errorf("store credential for %s: %w", id, err)
		}
		// Another replica stored one first: take theirs.
	}
	return "", fmt.Errorf("reserve credential for %s: the key kept changing", id)
}

// Take returns the secret of request id and deletes it, once: a second Take, or one after Discard or
// expiry, returns ErrGone. Two concurrent Takes cannot both succeed (the delete is conditional on the
// revision read).
func (s *Store) Take(ctx context.Context, id string) (string, error) {
	secret, rev, err := s.get(ctx, id)
	if err != nil {
		return "", err
	}
	err = s.kv.Purge(ctx, id, jetstream.LastRevision(rev), jetstream.PurgeTTL(time.Minute))
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return "", ErrGone
	}
	if err != nil {
		return "", fmt.Errorf("delete credential for %s: %w", id, err)
	}
	return secret, nil
}

// Discard deletes the secret of request id if it is still held (the grant was revoked, or never made).
func (s *Store) Discard(ctx context.Context, id string) error {
	if err := s.kv.Purge(ctx, id, jetstream.PurgeTTL(time.Minute)); err != nil {
		return fmt.Errorf("discard credential for %s: %w", id, err)
	}
	return nil
}

func (s *Store) get(ctx context.Context, id string) (string, uint64, error) {
	e, err := s.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return "", 0, ErrGone
	}
	if err != nil {
		return "", 0, fmt.Errorf("read credential for %s: %w", id, err)
	}
	secret, err := s.open(id, e.Value())
	if err != nil {
		return "", 0, err
	}
	return secret, e.Revision(), nil
}

// seal encrypts secret for request id: a random nonce, then the ciphertext with id as additional data.
func (s *Store) seal(id, secret string) []byte {
	nonce := randomBytes(s.aead.NonceSize())
	return s.aead.Seal(nonce, nonce, []byte(secret), []byte(id))
}

func (s *Store) open(id string, sealed []byte) (string, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return "", fmt.Errorf("credential for %s: stored value too short", id)
	}
	plain, err := s.aead.Open(nil, sealed[:n], sealed[n:], []byte(id))
	if err != nil {
		// Wrong key (rotated without migration) or tampering; the error says nothing about the secret.
		return "", fmt.Errorf("credential for %s does not decrypt: %w", id, err)
	}
	return string(plain), nil
}
