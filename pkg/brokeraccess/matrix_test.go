package brokeraccess_test

import (
	"slices"
	"testing"

	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/topology"
)

// TestTheMatrixCoversEveryProvisionedStream: every stream the event store provisions is one the matrix
// grants stream info on and denies reconfiguring (both range over topology.Streams).
func TestTheMatrixCoversEveryProvisionedStream(t *testing.T) {
	var provisioned []string
	for _, c := range eventstore.StreamConfigs(eventstore.DefaultSettings) {
		provisioned = append(provisioned, c.Name)
	}
	if !slices.Equal(topology.Streams(), provisioned) {
		t.Fatalf("topology lists the streams %v, the event store provisions %v", topology.Streams(), provisioned)
	}
}

// TestEveryNameHasOneOwner: each durable consumer, bucket and timer kind of the topology belongs to
// exactly one user of the matrix, and the matrix grants nothing the topology does not list (the deny
// lists are derived from those lists, so a name missing there would be left reachable by everyone).
func TestEveryNameHasOneOwner(t *testing.T) {
	owners := map[string][]brokeraccess.User{}
	for _, u := range brokeraccess.Users(nil) {
		a, _ := brokeraccess.AccessOf(u)
		for _, c := range a.Consumers {
			owners["consumer "+c.Stream+"/"+c.Durable] = append(owners["consumer "+c.Stream+"/"+c.Durable], u)
		}
		for _, b := range a.Buckets {
			owners["bucket "+b] = append(owners["bucket "+b], u)
		}
		for _, k := range a.Timers {
			owners["timer "+k] = append(owners["timer "+k], u)
		}
	}
	var declared []string
	for _, c := range topology.Durables() {
		declared = append(declared, "consumer "+c.Stream+"/"+c.Durable)
	}
	for _, b := range topology.Buckets() {
		declared = append(declared, "bucket "+b)
	}
	for _, k := range topology.TimerKinds() {
		declared = append(declared, "timer "+k)
	}
	for _, name := range declared {
		if len(owners[name]) != 1 {
			t.Errorf("%s belongs to %v, want exactly one user", name, owners[name])
		}
		delete(owners, name)
	}
	for name, users := range owners {
		t.Errorf("%s is granted to %v but not listed in pkg/topology", name, users)
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
