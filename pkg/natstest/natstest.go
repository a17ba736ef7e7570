// Package natstest gives tests a real JetStream server: one in-process node, or a 3-node cluster on
// 127.0.0.1, each cleaned up with the test.
package natstest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/natsembed"
)

// RunServer starts a single JetStream node that fsyncs every write, listening on a random loopback
// port, and stops it when the test ends.
func RunServer(t testing.TB) *server.Server {
	t.Helper()
	ns, err := natsembed.Start(natsembed.Options{Dir: t.TempDir(), Port: -1})
	if err != nil {
		t.Fatalf("start nats: %v", err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns
}

// RunCluster starts a 3-node JetStream cluster on 127.0.0.1 and stops it when the test ends.
func RunCluster(t testing.TB) *natsembed.Cluster {
	t.Helper()
	c, err := natsembed.StartCluster(t.TempDir(), 3)
	if err != nil {
		t.Fatalf("start nats cluster: %v", err)
	}
	t.Cleanup(c.Shutdown)
	return c
}

// Connect opens a client connection to urls (comma-separated) that reconnects across node restarts,
// and returns it with its JetStream context; both close when the test ends.
func Connect(t testing.TB, urls string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(urls, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("connect to nats: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(10*time.Second))
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return nc, js
}

// Stored counts the messages stream holds on the subjects matching filter, verified or not (a
// test's view of what was appended, beside what a store loads).
func Stored(t testing.TB, js jetstream.JetStream, stream, filter string) uint64 {
	t.Helper()
	st, err := js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background(), jetstream.WithSubjectFilter(filter))
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n
}
