package policyd

import (
	"slices"
	"testing"

	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/eventstore"
)

// TestBrokerAccessKnowsPolicysNames: the policy service's NATS user (pkg/brokeraccess) is granted
// exactly its two consumers and its state bucket; a name changed here without it would be refused by
// the broker.
func TestBrokerAccessKnowsPolicysNames(t *testing.T) {
	a, ok := brokeraccess.AccessOf(brokeraccess.Policy)
	durables := []brokeraccess.Consumer{{Stream: eventstore.EventsStream, Durable: DecideConsumer}, {Stream: eventstore.EventsStream, Durable: SettleConsumer}}
	if !ok || !slices.Equal(a.Consumers, durables) || !slices.Equal(a.Buckets, []string{StateBucket}) || len(a.Timers) > 0 {
		t.Fatalf("brokeraccess grants policy consumers %v, buckets %v, timers %v; the service uses %v, %s, none",
			a.Consumers, a.Buckets, a.Timers, durables, StateBucket)
	}
}
