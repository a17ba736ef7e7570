package ops_test

import (
	"context"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/natstest"
	"github.com/grantline/grantline/pkg/ops"
	"github.com/grantline/grantline/pkg/poll"
)

// TestBrokerCheckSeesAQuorumLoss: on a 3-node cluster with R3 streams, two nodes stop. The service
// is still connected (to the third) but nothing can be written: the readiness check says so, naming
// the evidence stream, and is ready again once a node comes back and the stream has a leader.
func TestBrokerCheckSeesAQuorumLoss(t *testing.T) {
	c := natstest.RunCluster(t)
	nc, js := natstest.Connect(t, c.ClientURLs())
	if err := eventstore.Provision(context.Background(), js, eventstore.StreamSettings{Replicas: 3, EventsMaxBytes: 1 << 30}); err != nil {
		t.Fatal(err)
	}
	check := ops.BrokerCheck(nc, js)
	ready := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), ops.DefaultCheckTimeout)
		defer cancel()
		return check(ctx)
	}
	poll.Until(t, 30*time.Second, "ready with the whole cluster", func() bool { return ready() == nil })

	stopped := []string{c.Nodes[0].Name(), c.Nodes[1].Name()}
	for _, name := range stopped {
		c.Stop(name)
	}
	poll.Until(t, 30*time.Second, "connected to the survivor", nc.IsConnected)
	poll.Until(t, 30*time.Second, "not ready without a quorum", func() bool { return ready() != nil })
	if !nc.IsConnected() {
		t.Fatal("the test meant a connected client without a quorum")
	}
	t.Logf("without a quorum: %v", ready())

	if err := c.Restart(stopped[0]); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 60*time.Second, "ready again with a quorum", func() bool { return ready() == nil })
}
