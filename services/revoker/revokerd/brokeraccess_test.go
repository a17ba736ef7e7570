package revokerd_test

import (
	"slices"
	"testing"

	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/consumer"
	"github.com/grantline/grantline/services/fulfilment/credential"
	"github.com/grantline/grantline/services/revoker"
	"github.com/grantline/grantline/services/revoker/reaction"
)

// TestBrokerAccessKnowsTheRevokersNames: the revoker's NATS user (pkg/brokeraccess) is granted exactly
// these consumers and timer kinds, and may only discard from fulfilment's credential bucket; a name
// changed here without it would be refused by the broker.
func TestBrokerAccessKnowsTheRevokersNames(t *testing.T) {
	a, ok := brokeraccess.AccessOf(brokeraccess.Revoker)
	var durables []brokeraccess.Consumer
	for _, s := range []consumer.Spec{reaction.SchedulesSpec(), reaction.RevocationsSpec(0), reaction.ExpirySpec(0)} {
		durables = append(durables, brokeraccess.Consumer{Stream: s.Stream, Durable: s.Durable})
	}
	timers := []string{revoker.KindExpiry}
	if !ok || !slices.Equal(a.Consumers, durables) || !slices.Equal(a.Timers, timers) || len(a.Buckets) > 0 ||
		!slices.Equal(a.Discards, []string{credential.Bucket}) {
		t.Fatalf("brokeraccess grants the revoker consumers %v, timers %v, buckets %v, discards %v; it uses %v, %v, none, %s",
			a.Consumers, a.Timers, a.Buckets, a.Discards, durables, timers, credential.Bucket)
	}
}
