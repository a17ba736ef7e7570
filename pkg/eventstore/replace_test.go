package eventstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/natstest"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/pkg/topology"
)

// TestReplacingANodeKeepsEveryStream is the runbook's replacement of a NATS node (docs/operations.md):
// the node comes back under its name with an empty store and is given every message of every stream
// again, those written while it was away included; every stream then has all its replicas current.
func TestReplacingANodeKeepsEveryStream(t *testing.T) {
	c := natstest.RunCluster(t)
	_, js := natstest.Connect(t, c.ClientURLs())
	ctx := context.Background()
	if err := Provision(ctx, js, StreamSettings{Replicas: 3, EventsMaxBytes: 1 << 30}); err != nil {
		t.Fatal(err)
	}
	publish := func(n int) {
		t.Helper()
		for i := range n {
			if _, err := js.Publish(ctx, events.NATSSubject(events.NewID(), events.TypeSubmitted), fmt.Appendf(nil, `{"n":%d}`, i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	publish(20)
	if err := c.Replace("n2"); err != nil {
		t.Fatal(err)
	}
	publish(10)

	poll.Until(t, 60*time.Second, "the replaced node to hold all 30 events and every stream's replicas to be current", func() bool {
		if n2 := c.Node("n2"); n2 == nil || storedOn(n2, topology.EventsStream) != 30 {
			return false
		}
		for _, name := range topology.Streams() {
			st, err := js.Stream(ctx, name)
			if err != nil {
				return false
			}
			info, err := st.Info(ctx)
			if err != nil || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
				return false
			}
			for _, r := range info.Cluster.Replicas {
				if !r.Current || r.Offline {
					return false
				}
			}
		}
		return true
	})
}

// storedOn is how many messages node ns itself holds of stream.
func storedOn(ns *server.Server, stream string) uint64 {
	jsz, err := ns.Jsz(&server.JSzOptions{Accounts: true, Streams: true})
	if err != nil {
		return 0
	}
	for _, acc := range jsz.AccountDetails {
		for _, s := range acc.Streams {
			if s.Name == stream {
				return s.State.Msgs
			}
		}
	}
	return 0
}
