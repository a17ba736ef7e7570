package intaked_test

import (
	"slices"
	"testing"

	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/services/intake/idempotency"
	"github.com/grantline/grantline/services/intake/integration"
)

// TestBrokerAccessKnowsIntakesNames: intake's NATS user (pkg/brokeraccess) is granted exactly its
// integration consumer and idempotency bucket, and the integrations' users the subjects intake reads and
// answers on; a name changed here without it would be refused by the broker.
func TestBrokerAccessKnowsIntakesNames(t *testing.T) {
	a, ok := brokeraccess.AccessOf(brokeraccess.Intake)
	spec := integration.Spec()
	durables := []brokeraccess.Consumer{{Stream: spec.Stream, Durable: spec.Durable}}
	if !ok || !slices.Equal(a.Consumers, durables) || !slices.Equal(a.Buckets, []string{idempotency.Bucket}) ||
		!slices.Equal(a.Publish, []string{integration.OutcomesSubject("*")}) {
		t.Fatalf("brokeraccess grants intake consumers %v, buckets %v, publishing %v; intake uses %v, %s, %s",
			a.Consumers, a.Buckets, a.Publish, durables, idempotency.Bucket, integration.OutcomesSubject("*"))
	}
	if !slices.Equal(spec.FilterSubjects, []string{brokeraccess.IntegrationRequests("*")}) ||
		brokeraccess.IntegrationRequests("servicenow") != integration.RequestsSubject("servicenow") ||
		brokeraccess.IntegrationOutcomes("servicenow") != integration.OutcomesSubject("servicenow") {
		t.Fatalf("integration subjects: intake reads %v and answers on %s; brokeraccess grants %s and %s", spec.FilterSubjects,
			integration.OutcomesSubject("servicenow"), brokeraccess.IntegrationRequests("servicenow"), brokeraccess.IntegrationOutcomes("servicenow"))
	}
}
