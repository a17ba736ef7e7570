package queryd_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/natsembed"
	"github.com/grantline/grantline/services/query/natsjs"
	"github.com/grantline/grantline/services/query/projection"
)

// TestTheReadSidesReadsPassTheBroker: the read side has no names of its own in the permission matrix
// (pkg/brokeraccess): it reads with ordered consumers and direct gets, which the "query" user is granted.
// Its real reader, connected as that user, reads a request, follows the stream and finds its end.
func TestTheReadSidesReadsPassTheBroker(t *testing.T) {
	m, err := brokeraccess.NewMatrix(nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	seeds, pubs := map[brokeraccess.User]string{}, map[brokeraccess.User]string{}
	for _, u := range m.Users {
		seed, pub, err := brokeraccess.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		seeds[u], pubs[u] = filepath.Join(dir, string(u)+".nk"), pub
		if err := os.WriteFile(seeds[u], brokeraccess.SeedFile(seed), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	users, err := m.NkeyUsers(pubs)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := natsembed.Start(natsembed.Options{Dir: t.TempDir(), Port: -1, Users: users})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	connect := func(u brokeraccess.User) jetstream.JetStream {
		opts, err := brokeraccess.ClientOptions(u, seeds[u])
		if err != nil {
			t.Fatal(err)
		}
		nc, err := nats.Connect(ns.ClientURL(), opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, _ := jetstream.New(nc)
		return js
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	op := connect(brokeraccess.Operator)
	if err := eventstore.Provision(ctx, op, eventstore.DefaultSettings); err != nil {
		t.Fatal(err)
	}
	id := events.NewID()
	if _, err := op.Publish(ctx, events.NATSSubject(id, events.TypeSubmitted), []byte("{}")); err != nil {
		t.Fatal(err)
	}

	js := connect(brokeraccess.Query)
	if err := eventstore.Check(ctx, js); err != nil {
		t.Fatalf("checking the streams as query: %v", err)
	}
	r := &natsjs.Reader{JS: js}
	if last, err := r.LastSeq(ctx); err != nil || last != 1 {
		t.Fatalf("last sequence as query: %d, %v", last, err)
	}
	if recs, err := r.Records(ctx, id, 1); err != nil || len(recs) != 1 {
		t.Fatalf("the request's records as query: %d, %v", len(recs), err)
	}
	out := make(chan projection.Delivery, 1)
	go func() { _ = r.Follow(ctx, 1, out) }()
	select {
	case d := <-out:
		if d.Record.Seq != 1 {
			t.Fatalf("followed to sequence %d", d.Record.Seq)
		}
	case <-ctx.Done():
		t.Fatal("following the stream as query delivered nothing")
	}
}
