// Package idempotency turns retries of one create into one record (a request at intake, a lock at the
// revoker): a JetStream key-value bucket of the creating service maps (scope, key) to the ID it created
// and the digest of what was asked.
package idempotency

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json/v2"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/httpjson"
)

// ErrReused means the key was already used with a different request (or lock).
var ErrReused = errors.New("this idempotency key was used with a different request")

// Reused is the problem answering ErrReused, the same at every service.
var Reused = httpjson.Row{Status: http.StatusConflict, Slug: "idempotency-key-reused",
	Title: "Idempotency-Key reused with a different request", Errs: []error{ErrReused}}

// Header names the key on an HTTP create.
const Header = "Idempotency-Key"

// FromHeader is r's Idempotency-Key, "" without one; httpjson.ErrMalformed for one that is not 1 to
// 255 printable ASCII characters.
func FromHeader(r *http.Request) (string, error) {
	key := r.Header.Get(Header)
	if key != "" && !valid(key) {
		return "", fmt.Errorf("%w: %s must be 1 to 255 printable ASCII characters", httpjson.ErrMalformed, Header)
	}
	return key, nil
}

func valid(k string) bool {
	if len(k) == 0 || len(k) > 255 {
		return false
	}
	for _, c := range []byte(k) {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// TTL is how long a key is remembered.
const TTL = 24 * time.Hour

// Keys are remembered idempotency keys.
type Keys struct{ kv jetstream.KeyValue }

// Open creates or opens bucket (each service creating records has its own, topology.IdempotencyBucket
// for intake's requests), described as holding the keys of what.
func Open(ctx context.Context, js jetstream.JetStream, bucket, what string, replicas int) (*Keys, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: bucket, TTL: TTL, Storage: jetstream.FileStorage, Replicas: max(replicas, 1),
		Description: "Grantline: idempotency keys and the " + what + " they created",
	})
	if err != nil {
		return nil, fmt.Errorf("idempotency bucket: %w", err)
	}
	return &Keys{kv: kv}, nil
}

type claim struct {
	Digest string `json:"digest"`
	// ID is what the key created; the name is intake's, from when only requests had keys.
	ID string `json:"request_id"`
}

// Claim returns the ID for key within scope (a requester, an integration, a lock admin): a fresh one
// the first time, the same one for a retry of the same create (same digest), and ErrReused for the
// same key with a different one. Concurrent first claims are settled by the bucket's atomic
// create, so they all get one ID.
func (i *Keys) Claim(ctx context.Context, scope, key, digest string) (string, error) {
	sum := sha256.Sum256([]byte(scope + "\x00" + key))
	k := hex.EncodeToString(sum[:])
	fresh := claim{Digest: digest, ID: events.NewID()}
	b, _ := json.Marshal(fresh)
	for range 3 {
		if _, err := i.kv.Create(ctx, k, b); err == nil {
			return fresh.ID, nil
		} else if !errors.Is(err, jetstream.ErrKeyExists) {
			return "", fmt.Errorf("claim idempotency key: %w", err)
		}
		entry, err := i.kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // expired between the two calls: claim it afresh
		}
		if err != nil {
			return "", fmt.Errorf("read idempotency key: %w", err)
		}
		var prior claim
		if err := json.Unmarshal(entry.Value(), &prior); err != nil {
			return "", fmt.Errorf("read idempotency key: %w", err)
		}
		if prior.Digest != digest {
			return "", ErrReused
		}
		return prior.ID, nil
	}
	return "", errors.New("claim idempotency key: kept expiring")
}
