package events

import (
	"bytes"
	"reflect"
	"testing"
)

// TestSnapshotRestoresTheAggregate: for every state the stories reach, the aggregate restored from a
// snapshot takes and refuses every candidate event exactly as the folded one does, into the same state.
func TestSnapshotRestoresTheAggregate(t *testing.T) {
	for _, s := range stories() {
		folded, err := Fold(testRequestID, s.events)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		snap, err := folded.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		for _, typ := range AllTypes {
			a, b := mustFold(t, s.events), mustRestore(t, snap)
			ev := candidate(typ, a)
			errA, errB := a.Apply(ev), b.Apply(ev)
			if (errA == nil) != (errB == nil) {
				t.Fatalf("%s + %s: folded %v, restored %v", s.name, typ, errA, errB)
			}
			sa, _ := a.Snapshot()
			sb, _ := b.Snapshot()
			if !bytes.Equal(sa, sb) {
				t.Fatalf("%s + %s: states differ:\n%s\n%s", s.name, typ, sa, sb)
			}
		}
	}
}

// TestSnapshotCoversEveryField fails when the aggregate gains a field, so that Snapshot and
// RestoreRequest are taught it (the ID is the caller's to keep).
func TestSnapshotCoversEveryField(t *testing.T) {
	if got, want := reflect.TypeFor[Request]().NumField(), reflect.TypeFor[snapshot]().NumField()+1; got != want {
		t.Fatalf("Request has %d fields, the snapshot covers %d: add the new ones to snapshot", got, want)
	}
}

func mustFold(t *testing.T, evs []Event) *Request {
	r, err := Fold(testRequestID, evs)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustRestore(t *testing.T, snap []byte) *Request {
	r, err := RestoreRequest(testRequestID, snap)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
