// Package session keeps the console's server-side sessions in a JetStream key-value bucket
// (topology.ConsoleSessionsBucket), so every replica of the console knows every session. The browser
// holds only a random session ID in a cookie; the bucket holds, encrypted under the console's key,
// who signed in, the bearer token the console sends on their behalf, and when the session ends.
//
// A bucket key is a hash of the ID, never the ID itself, and each value is sealed with its key as
// additional data: whoever can read the bucket cannot present a session, nor move one to another key.
package session

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json/v2"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/topology"
)

// Session is a signed-in person.
type Session struct {
	// Subject is the person's normalised subject, as the services see them.
	Subject string `json:"subject"`
	// Name is how the identity provider names them, for display only.
	Name string `json:"name,omitempty"`
	// Groups are the groups their token carries. The console uses them only to choose what to show;
	// the services decide what they may do.
	Groups []string `json:"groups"`
	// Token is the bearer token sent to the services on their behalf.
	Token string `json:"token"`
	// Expires is when the session ends: the console's limit, or the token's expiry if sooner.
	Expires time.Time `json:"expires"`
}

// Login is a sign-in in progress, from the redirect to the identity provider until its callback.
type Login struct {
	// State must come back with the callback; Verifier is the PKCE code verifier.
	State    string `json:"state"`
	Verifier string `json:"verifier"`
	// ReturnTo is the console page to show after signing in.
	ReturnTo string    `json:"return_to"`
	Expires  time.Time `json:"expires"`
}

// ErrNone is returned for a session or login that does not exist, has ended or cannot be read.
var ErrNone = errors.New("no such session")

// KeySize is the size of the key that seals values.
const KeySize = 32

// Store is the bucket of sessions and logins in progress. It is safe for concurrent use.
type Store struct {
	kv   jetstream.KeyValue
	aead cipher.AEAD
	now  func() time.Time
}

// Options configure Open.
type Options struct {
	// Key seals every value: KeySize random bytes, the same on every replica.
	Key []byte
	// Replicas of the bucket's stream: 1 in development, 3 on a cluster.
	Replicas int
	// MaxAge is the longest any session lasts; the bucket forgets entries older than that.
	MaxAge time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Open declares the bucket (creating it or updating its settings) and returns the store. It fails for
// a key that is not KeySize bytes, a MaxAge that is not positive, or when the broker refuses.
func Open(ctx context.Context, js jetstream.JetStream, o Options) (*Store, error) {
	if len(o.Key) != KeySize {
		return nil, fmt.Errorf("session key must be %d bytes, got %d", KeySize, len(o.Key))
	}
	if o.MaxAge <= 0 {
		return nil, fmt.Errorf("session lifetime %s is not positive", o.MaxAge)
	}
	block, err := aes.NewCipher(o.Key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: topology.ConsoleSessionsBucket, Description: "the web console's sessions, sealed",
		TTL: o.MaxAge, History: 1, Replicas: max(o.Replicas, 1), Storage: jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("session bucket %s: %w", topology.ConsoleSessionsBucket, err)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Store{kv: kv, aead: aead, now: o.Now}, nil
}

// The kinds of entry, which prefix their bucket keys.
const (
	kindSession = "session"
	kindLogin   = "login"
)

// NewID returns a fresh random ID for a session or a login: 128 bits, unguessable.
func NewID() string { return rand.Text() }

// Create stores s under a new ID and returns the ID for the session cookie. It refuses a session that
// has already ended.
func (st *Store) Create(ctx context.Context, s Session) (string, error) {
	if !st.now().Before(s.Expires) {
		return "", errors.New("create session: it has already ended")
	}
	id := NewID()
	return id, st.put(ctx, kindSession, id, s)
}

// Get returns the session with ID id, or ErrNone if there is none or it has ended.
func (st *Store) Get(ctx context.Context, id string) (Session, error) {
	var s Session
	if err := st.get(ctx, kindSession, id, &s); err != nil {
		return Session{}, err
	}
	if !st.now().Before(s.Expires) {
		return Session{}, ErrNone
	}
	return s, nil
}

// Delete ends the session with ID id; ending one that does not exist is not an error.
func (st *Store) Delete(ctx context.Context, id string) error {
	return st.del(ctx, kindSession, id)
}

// BeginLogin stores a sign-in in progress and returns its ID for the login cookie.
func (st *Store) BeginLogin(ctx context.Context, l Login) (string, error) {
	id := NewID()
	return id, st.put(ctx, kindLogin, id, l)
}

// TakeLogin returns the sign-in in progress with ID id and forgets it, so a callback is honoured once.
// It returns ErrNone if there is none or it has ended.
func (st *Store) TakeLogin(ctx context.Context, id string) (Login, error) {
	var l Login
	if err := st.get(ctx, kindLogin, id, &l); err != nil {
		return Login{}, err
	}
	if err := st.del(ctx, kindLogin, id); err != nil {
		return Login{}, err
	}
	if !st.now().Before(l.Expires) {
		return Login{}, ErrNone
	}
	return l, nil
}

// key is the bucket key of an entry: its kind and the hash of its ID.
func key(kind, id string) string {
	sum := sha256.Sum256([]byte(id))
	return kind + "." + hex.EncodeToString(sum[:])
}

func (st *Store) put(ctx context.Context, kind, id string, v any) error {
	plain, err := json.Marshal(v)
	if err != nil {
		return err
	}
	k := key(kind, id)
	nonce := make([]byte, st.aead.NonceSize())
	_, _ = rand.Read(nonce)
	if _, err := st.kv.Put(ctx, k, st.aead.Seal(nonce, nonce, plain, []byte(k))); err != nil {
		return fmt.Errorf("store %s: %w", kind, err)
	}
	return nil
}

func (st *Store) get(ctx context.Context, kind, id string, v any) error {
	if id == "" {
		return ErrNone
	}
	k := key(kind, id)
	e, err := st.kv.Get(ctx, k)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return ErrNone
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", kind, err)
	}
	sealed := e.Value()
	n := st.aead.NonceSize()
	if len(sealed) < n {
		return ErrNone
	}
	plain, err := st.aead.Open(nil, sealed[:n], sealed[n:], []byte(k))
	if err != nil {
		// Sealed under another key (rotated) or altered: as good as absent.
		return ErrNone
	}
	if err := json.Unmarshal(plain, v); err != nil {
		return ErrNone
	}
	return nil
}

func (st *Store) del(ctx context.Context, kind, id string) error {
	if id == "" {
		return nil
	}
	if err := st.kv.Delete(ctx, key(kind, id)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("delete %s: %w", kind, err)
	}
	return nil
}
