package fulfilmentd_test

import (
	"slices"
	"testing"

	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/consumer"
	"github.com/grantline/grantline/services/fulfilment/credential"
	"github.com/grantline/grantline/services/fulfilment/reaction"
	"github.com/grantline/grantline/services/fulfilment/taskindex"
)

// TestBrokerAccessKnowsFulfilmentsNames: the fulfilment service's NATS user (pkg/brokeraccess) is
// granted exactly these consumers, buckets and timer kinds; a name changed here without it would be
// refused by the broker.
func TestBrokerAccessKnowsFulfilmentsNames(t *testing.T) {
	a, ok := brokeraccess.AccessOf(brokeraccess.Fulfilment)
	var durables []brokeraccess.Consumer
	for _, s := range []consumer.Spec{reaction.FulfilSpec(1), reaction.StartSpec(1), reaction.RevokeTasksSpec()} {
		durables = append(durables, brokeraccess.Consumer{Stream: s.Stream, Durable: s.Durable})
	}
	buckets, timers := []string{credential.Bucket, taskindex.Bucket}, []string{reaction.KindStart}
	if !ok || !slices.Equal(a.Consumers, durables) || !slices.Equal(a.Buckets, buckets) || !slices.Equal(a.Timers, timers) {
		t.Fatalf("brokeraccess grants fulfilment consumers %v, buckets %v, timers %v; the service uses %v, %v, %v",
			a.Consumers, a.Buckets, a.Timers, durables, buckets, timers)
	}
}
