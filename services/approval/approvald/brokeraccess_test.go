package approvald_test

import (
	"slices"
	"testing"

	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/consumer"
	"github.com/grantline/grantline/services/approval/reaction"
)

// TestBrokerAccessKnowsApprovalsNames: the approval service's NATS user (pkg/brokeraccess) is granted
// exactly these consumers and timer kinds; a name changed here without it would be refused by the broker.
func TestBrokerAccessKnowsApprovalsNames(t *testing.T) {
	a, ok := brokeraccess.AccessOf(brokeraccess.Approval)
	var durables []brokeraccess.Consumer
	for _, s := range []consumer.Spec{reaction.SchedulesSpec(), reaction.TimersSpec(), reaction.InboxSpec()} {
		durables = append(durables, brokeraccess.Consumer{Stream: s.Stream, Durable: s.Durable})
	}
	timers := []string{reaction.KindApprovalWindow, reaction.KindPostReview}
	if !ok || !slices.Equal(a.Consumers, durables) || !slices.Equal(a.Timers, timers) || len(a.Buckets)+len(a.Discards) > 0 {
		t.Fatalf("brokeraccess grants approval consumers %v, timers %v, buckets %v %v; the service uses consumers %v, timers %v, no bucket",
			a.Consumers, a.Timers, a.Buckets, a.Discards, durables, timers)
	}
}
