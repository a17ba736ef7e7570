package brokeraccess_test

import (
	"slices"
	"testing"

	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/timers"
)

// TestStreamsAreTheEventStores: the matrix names the streams the event store provisions.
func TestStreamsAreTheEventStores(t *testing.T) {
	var provisioned []string
	for _, c := range eventstore.StreamConfigs(eventstore.DefaultSettings) {
		provisioned = append(provisioned, c.Name)
	}
	if !slices.Equal(brokeraccess.Streams, provisioned) || brokeraccess.TimersStream != timers.Stream {
		t.Fatalf("brokeraccess knows %v, the event store provisions %v (timers in %s)", brokeraccess.Streams, provisioned, timers.Stream)
	}
}

// TestNewMatrixRefusesAnIntegrationNameThatIsNoToken: an integration's name is part of its subjects.
func TestNewMatrixRefusesAnIntegrationNameThatIsNoToken(t *testing.T) {
	for _, name := range []string{"", "a.b", "*", ">"} {
		if _, err := brokeraccess.NewMatrix([]string{name}); err == nil {
			t.Errorf("integration %q accepted", name)
		}
	}
}
