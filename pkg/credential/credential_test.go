package credential_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/credential"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/natstest"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/pkg/topology"
)

func open(t *testing.T) (*credential.Store, jetstream.JetStream) {
	t.Helper()
	ns := natstest.RunServer(t)
	_, js := natstest.Connect(t, ns.ClientURL())
	key, err := credential.ParseKey(credential.GenerateKey())
	if err != nil {
		t.Fatal(err)
	}
	s, err := credential.Open(context.Background(), js, key, 1)
	if err != nil {
		t.Fatal(err)
	}
	return s, js
}

func counter(secrets ...string) func() (string, error) {
	var n atomic.Int32
	return func() (string, error) { return secrets[int(n.Add(1)-1)%len(secrets)], nil }
}

func TestReserveOnceTakeOnce(t *testing.T) {
	s, js := open(t)
	ctx := context.Background()
	id := events.NewID()
	first, err := s.Reserve(ctx, id, time.Hour, counter("first-secret"))
	if err != nil || first != "first-secret" {
		t.Fatalf("reserve: %q %v", first, err)
	}
	// A retried or concurrent grant gets the reserved secret, not a new one.
	again, err := s.Reserve(ctx, id, time.Hour, counter("second-secret"))
	if err != nil || again != "first-secret" {
		t.Fatalf("reserve again: %q %v", again, err)
	}
	// At rest it is ciphertext.
	kv, _ := js.KeyValue(ctx, topology.CredentialsBucket)
	e, err := kv.Get(ctx, id)
	if err != nil || bytes.Contains(e.Value(), []byte("first-secret")) {
		t.Fatalf("stored value %q (%v) reveals the secret", e.Value(), err)
	}
	got, err := s.Take(ctx, id)
	if err != nil || got != "first-secret" {
		t.Fatalf("take: %q %v", got, err)
	}
	if _, err := s.Take(ctx, id); !errors.Is(err, credential.ErrGone) {
		t.Fatalf("second take: %v, want ErrGone", err)
	}
}

func TestConcurrentTakesHandOutOnce(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	id := events.NewID()
	if _, err := s.Reserve(ctx, id, time.Hour, counter("only-once")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var got atomic.Int32
	for range 10 {
		wg.Go(func() {
			secret, err := s.Take(ctx, id)
			switch {
			case err == nil && secret == "only-once":
				got.Add(1)
			case !errors.Is(err, credential.ErrGone):
				t.Errorf("take: %v", err)
			}
		})
	}
	wg.Wait()
	if got.Load() != 1 {
		t.Fatalf("%d takers got the secret, want exactly 1", got.Load())
	}
}

func TestConcurrentReservesAgree(t *testing.T) {
	s, _ := open(t)
	id := events.NewID()
	var wg sync.WaitGroup
	secrets := make([]string, 8)
	gen := counter("a", "b", "c", "d", "e", "f", "g", "h")
	for i := range secrets {
		wg.Go(func() {
			var err error
			if secrets[i], err = s.Reserve(context.Background(), id, time.Hour, gen); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for _, sec := range secrets {
		if sec != secrets[0] {
			t.Fatalf("replicas reserved different secrets for one grant: %v", secrets)
		}
	}
}

func TestExpiryAndDiscard(t *testing.T) {
	s, js := open(t)
	ctx := context.Background()
	short, discarded := events.NewID(), events.NewID()
	if _, err := s.Reserve(ctx, short, time.Second, counter("short-lived")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reserve(ctx, discarded, time.Hour, counter("revoked")); err != nil {
		t.Fatal(err)
	}
	if err := s.Discard(ctx, discarded); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Take(ctx, discarded); !errors.Is(err, credential.ErrGone) {
		t.Fatalf("take after discard: %v", err)
	}
	kv, _ := js.KeyValue(ctx, topology.CredentialsBucket)
	poll.Until(t, 10*time.Second, "the short-lived secret to expire", func() bool {
		_, err := kv.Get(ctx, short)
		return errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted)
	})
	if _, err := s.Take(ctx, short); !errors.Is(err, credential.ErrGone) {
		t.Fatalf("take after expiry: %v", err)
	}
}

func TestAnotherKeyCannotRead(t *testing.T) {
	s, js := open(t)
	ctx := context.Background()
	id := events.NewID()
	if _, err := s.Reserve(ctx, id, time.Hour, counter("for-the-right-key")); err != nil {
		t.Fatal(err)
	}
	other, _ := credential.ParseKey(credential.GenerateKey())
	s2, err := credential.Open(ctx, js, other, 1)
	if err != nil {
		t.Fatal(err)
	}
	if secret, err := s2.Take(ctx, id); err == nil || secret != "" {
		t.Fatalf("another key read %q", secret)
	}
}

func TestParseKey(t *testing.T) {
	for _, bad := range []string{"", "not base64!", "c2hvcnQ="} {
		if _, err := credential.ParseKey(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
