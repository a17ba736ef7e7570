package eventstore

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/topology"
)

// IntegrationConsumerConfig is the configuration of topology.IntegrationConsumer(name): a durable push
// consumer of the intake stream filtered to the integration's outcomes, delivering to a subject only it
// may read, in a deliver group its replicas share, from the first outcome the stream holds.
func IntegrationConsumerConfig(name string) jetstream.ConsumerConfig {
	c := topology.IntegrationConsumer(name)
	return jetstream.ConsumerConfig{
		Durable: c.Durable, FilterSubject: topology.IntegrationOutcomes(name),
		DeliverSubject: topology.IntegrationDeliveries(name), DeliverGroup: topology.IntegrationDeliverGroup(name),
		DeliverPolicy: jetstream.DeliverAllPolicy, AckPolicy: jetstream.AckExplicitPolicy,
		Description: "Grantline intake: the outcomes of integration " + name + ", which binds to it",
	}
}

// ProvisionIntegrations creates the consumer through which each of these integrations reads its
// outcomes over JetStream, or brings it up to date. It runs with operator rights after Provision: an
// integration may only bind to its consumer, never create one (topology.IntegrationConsumer says why).
func ProvisionIntegrations(ctx context.Context, js jetstream.JetStream, integrations []string) error {
	for _, name := range integrations {
		if _, err := js.CreateOrUpdatePushConsumer(ctx, topology.IntakeStream, IntegrationConsumerConfig(name)); err != nil {
			return fmt.Errorf("consumer of integration %s: %w", name, err)
		}
	}
	return nil
}
