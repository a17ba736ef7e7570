package manualtask_test

import (
	"testing"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/manualtask"
)

// TestIDs: a task ID names its request and purpose, and nothing else parses as one.
func TestIDs(t *testing.T) {
	id := events.NewID()
	for _, purpose := range []events.TaskPurpose{events.TaskGrant, events.TaskRevoke} {
		gotID, gotPurpose, ok := manualtask.ParseID(manualtask.ID(id, purpose))
		if !ok || gotID != id || gotPurpose != purpose {
			t.Errorf("round trip of %s task: %s %s %v", purpose, gotID, gotPurpose, ok)
		}
	}
	for _, bad := range []string{"", id, id + "-", id + "-other", "x-grant", id + "-grant-grant"} {
		if _, _, ok := manualtask.ParseID(bad); ok {
			t.Errorf("%q parsed as a task ID", bad)
		}
	}
}
