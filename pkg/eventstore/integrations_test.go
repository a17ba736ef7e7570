package eventstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/natstest"
	"github.com/grantline/grantline/pkg/topology"
)

// TestAnIntegrationsConsumerDeliversItsOutcomesOnlyOutsideEveryStream: after provisioning, servicenow's
// consumer exists as topology names it and delivers servicenow's outcomes, and hr-feed's none, to its
// deliver subject, which no stream or bucket stores; provisioning again changes nothing.
func TestAnIntegrationsConsumerDeliversItsOutcomesOnlyOutsideEveryStream(t *testing.T) {
	ns := natstest.RunServer(t)
	nc, js := natstest.Connect(t, ns.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := Provision(ctx, js, DefaultSettings); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := ProvisionIntegrations(ctx, js, []string{"servicenow", "hr-feed"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"servicenow", "hr-feed"} {
		deliveries := topology.IntegrationDeliveries(name)
		if stream, err := js.StreamNameBySubject(ctx, deliveries); !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("stream %q stores %s (%v)", stream, deliveries, err)
		}
		for _, b := range topology.Buckets() {
			if server.SubjectsCollide(deliveries, topology.BucketKey(b, ">")) {
				t.Errorf("bucket %s would store %s", b, deliveries)
			}
		}
		c := topology.IntegrationConsumer(name)
		info, err := js.PushConsumer(ctx, c.Stream, c.Durable)
		if err != nil {
			t.Fatal(err)
		}
		got := info.CachedInfo().Config
		if got.FilterSubject != topology.IntegrationOutcomes(name) || got.DeliverSubject != deliveries ||
			got.DeliverGroup != topology.IntegrationDeliverGroup(name) || got.AckPolicy != jetstream.AckExplicitPolicy {
			t.Errorf("consumer %s: %+v", c.Durable, got)
		}
	}
	sub, err := nc.QueueSubscribeSync(topology.IntegrationDeliveries("servicenow"), topology.IntegrationDeliverGroup("servicenow"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := nc.QueueSubscribeSync(topology.IntegrationDeliveries("hr-feed"), topology.IntegrationDeliverGroup("hr-feed"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, topology.IntegrationOutcomes("servicenow"), []byte("accepted")); err != nil {
		t.Fatal(err)
	}
	m, err := sub.NextMsg(10 * time.Second)
	if err != nil || string(m.Data) != "accepted" {
		t.Fatalf("servicenow's delivery: %v %v", m, err)
	}
	if err := m.Ack(); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if n, _, err := other.Pending(); err != nil || n != 0 {
		t.Errorf("hr-feed received %d of servicenow's outcomes (%v)", n, err)
	}
}
