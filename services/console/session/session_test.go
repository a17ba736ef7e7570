package session

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/natstest"
	"github.com/grantline/grantline/pkg/topology"
)

func newKey() []byte { k := make([]byte, KeySize); _, _ = rand.Read(k); return k }

func openStore(t *testing.T) (*Store, jetstream.JetStream, *time.Time) {
	t.Helper()
	ns := natstest.RunServer(t)
	_, js := natstest.Connect(t, ns.ClientURL())
	now := time.Now()
	st, err := Open(context.Background(), js, Options{Key: newKey(), Replicas: 1, MaxAge: time.Hour, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return st, js, &now
}

// TestASessionLivesUntilItEnds: a session reads back as stored until its expiry or its deletion,
// and an unknown ID is no session.
func TestASessionLivesUntilItEnds(t *testing.T) {
	ctx := context.Background()
	st, _, now := openStore(t)
	alice := Session{Subject: "alice", Name: "Alice Engineer", Groups: []string{"engineers"}, Token: "tok", Expires: now.Add(time.Hour)}
	id, err := st.Create(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	got, err := st.Get(ctx, id)
	if err != nil || got.Subject != "alice" || got.Token != "tok" || !got.Expires.Equal(alice.Expires) {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	for _, tc := range []struct{ name, id string }{
		{"an ID nobody was given", NewID()},
		{"no ID at all", ""},
	} {
		if _, err := st.Get(ctx, tc.id); !errors.Is(err, ErrNone) {
			t.Errorf("%s: Get = %v, want ErrNone", tc.name, err)
		}
	}
	*now = alice.Expires
	if _, err := st.Get(ctx, id); !errors.Is(err, ErrNone) {
		t.Errorf("a session read at its expiry: %v, want ErrNone", err)
	}
	*now = alice.Expires.Add(-time.Minute)
	if err := st.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(ctx, id); !errors.Is(err, ErrNone) {
		t.Errorf("a deleted session: %v, want ErrNone", err)
	}
	if _, err := st.Create(ctx, Session{Subject: "bob", Expires: now.Add(-time.Second)}); err == nil {
		t.Error("a session that has already ended was stored")
	}
}

// TestTheBucketHoldsNothingUsable: what the bucket holds names no session ID and shows no token, and
// a value moved to another session's key or read with another key is no session.
func TestTheBucketHoldsNothingUsable(t *testing.T) {
	ctx := context.Background()
	st, js, now := openStore(t)
	id, err := st.Create(ctx, Session{Subject: "alice", Token: "secret-bearer-token", Expires: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	other, err := st.Create(ctx, Session{Subject: "mallory", Token: "mallory-token", Expires: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, topology.ConsoleSessionsBucket)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		e, err := kv.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(k, id) || strings.Contains(k, other) || bytes.Contains(e.Value(), []byte("secret-bearer-token")) || bytes.Contains(e.Value(), []byte("alice")) {
			t.Fatalf("the bucket shows a session ID or its content: key %q value %q", k, e.Value())
		}
	}
	// Mallory, who can write the bucket, copies alice's sealed session under her own session's key.
	alices, _ := kv.Get(ctx, key(kindSession, id))
	if _, err := kv.Put(ctx, key(kindSession, other), alices.Value()); err != nil {
		t.Fatal(err)
	}
	if s, err := st.Get(ctx, other); !errors.Is(err, ErrNone) {
		t.Fatalf("a value moved to another key reads as %+v, %v", s, err)
	}
	rotated := &Store{kv: st.kv, now: st.now}
	fresh, _ := Open(ctx, js, Options{Key: newKey(), MaxAge: time.Hour})
	rotated.aead = fresh.aead
	if s, err := rotated.Get(ctx, id); !errors.Is(err, ErrNone) {
		t.Fatalf("a session read with another key: %+v, %v", s, err)
	}
}

// TestALoginIsTakenOnce: the callback of a sign-in is honoured once, and not after it expired.
func TestALoginIsTakenOnce(t *testing.T) {
	ctx := context.Background()
	st, _, now := openStore(t)
	id, err := st.BeginLogin(ctx, Login{State: "s", Verifier: "v", ReturnTo: "/reviews", Expires: now.Add(10 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	l, err := st.TakeLogin(ctx, id)
	if err != nil || l.State != "s" || l.Verifier != "v" || l.ReturnTo != "/reviews" {
		t.Fatalf("TakeLogin = %+v, %v", l, err)
	}
	if _, err := st.TakeLogin(ctx, id); !errors.Is(err, ErrNone) {
		t.Fatalf("a second TakeLogin: %v, want ErrNone", err)
	}
	late, _ := st.BeginLogin(ctx, Login{State: "s", Expires: now.Add(time.Minute)})
	*now = now.Add(2 * time.Minute)
	if _, err := st.TakeLogin(ctx, late); !errors.Is(err, ErrNone) {
		t.Fatalf("an expired login: %v, want ErrNone", err)
	}
}

func TestOpenRefusals(t *testing.T) {
	ns := natstest.RunServer(t)
	_, js := natstest.Connect(t, ns.ClientURL())
	for name, o := range map[string]Options{
		"a short key":    {Key: []byte("short"), MaxAge: time.Hour},
		"no lifetime":    {Key: newKey()},
		"a negative one": {Key: newKey(), MaxAge: -time.Hour},
	} {
		if _, err := Open(context.Background(), js, o); err == nil {
			t.Errorf("%s: Open accepted", name)
		}
	}
}
