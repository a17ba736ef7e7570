package manualtask_test

import (
	"encoding/json/v2"
	"errors"
	"testing"
	"time"

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

// TestWhoLearnsOfATask: a task ID names its request, so only those who may know of the request, or
// whose job the task is, learn anything of it; anyone else is answered as for a task that does not
// exist, word for word.
func TestWhoLearnsOfATask(t *testing.T) {
	id := events.NewID()
	r := events.NewRequest(id)
	sub := events.Submitted{Requester: events.Principal{ID: "alice"}, Subject: events.RequestSubject{Kind: events.SubjectHuman, ID: "alice"},
		Entitlement: "mainframe-operator", Justification: "rerun the batch", DurationSeconds: 3600, Channel: "http"}
	sub.RequestDigest = sub.Digest()
	for i, p := range []events.Payload{sub,
		events.PolicyDecided{Outcome: events.OutcomeAutoApproved, Reasons: []string{"ok"}, EffectiveDurationSeconds: 3600, PolicyRevision: "sha256:rev", InputDigest: "sha256:in"},
		events.TaskOpened{TaskID: manualtask.ID(id, events.TaskGrant), Purpose: events.TaskGrant, FulfillerGroups: []string{"operations"}, DueAt: time.Now().Add(time.Hour)},
	} {
		data, _ := json.Marshal(p)
		ev := events.Event{Envelope: events.Envelope{SpecVersion: events.SpecVersion, ID: events.NewID(), Type: p.EventType(), Subject: id,
			Time: time.Now(), DataContentType: "application/json", DataSchema: events.SchemaURI(p.EventType()), Actor: "alice",
			Source: "/grantline/test", PrevHash: "sha256:x", Data: data}, Payload: p}
		if err := r.Apply(ev); err != nil {
			t.Fatalf("setting up: event %d: %v", i+1, err)
		}
	}
	grantTask, revokeTask := manualtask.ID(id, events.TaskGrant), manualtask.ID(id, events.TaskRevoke)
	unknown := manualtask.Visible(events.NewRequest(id), events.TaskGrant, grantTask, nil, false)
	cases := []struct {
		name    string
		purpose events.TaskPurpose
		taskID  string
		groups  []string
		sees    bool
		visible bool
	}{
		{"an operator, whose job the grant task is", events.TaskGrant, grantTask, []string{"operations"}, false, true},
		{"someone who may see the request", events.TaskGrant, grantTask, []string{"engineers"}, true, true},
		{"an outsider", events.TaskGrant, grantTask, []string{"engineers"}, false, false},
		{"an operator asking of a revoke task nobody opened", events.TaskRevoke, revokeTask, []string{"operations"}, false, false},
	}
	for _, c := range cases {
		err := manualtask.Visible(r, c.purpose, c.taskID, c.groups, c.sees)
		switch {
		case c.visible && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case !c.visible && (err == nil || !errors.Is(err, manualtask.ErrNotOpen)):
			t.Errorf("%s: err = %v, want ErrNotOpen", c.name, err)
		case !c.visible && c.taskID == grantTask && err.Error() != unknown.Error():
			t.Errorf("%s: %q, want the words for an unknown task, %q", c.name, err, unknown)
		}
	}
}
