package postgres_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/grantline/grantline/pkg/events"
)

// TestLocksAreNoRequests: a lock's event in the evidence stream is no request's; the projection moves
// past it without a fault or a request row, and the requests around it are projected as before.
func TestLocksAreNoRequests(t *testing.T) {
	rs := newReadSide(t)
	before := rs.w.Make().Submit(t, "alice", "analytics-read", false)
	lockID := events.NewID()
	_, body, err := events.Draft{Actor: "sam", Payload: events.LockPlaced{Scope: events.LockScope{Kind: events.LockUser, ID: "mallory"},
		Reason: "laptop stolen", PlacedBy: events.Principal{ID: "sam", Groups: []string{"security"}}}}.
		Seal(lockID, events.Revoker, rs.w.Clock.Now(), events.GenesisHash(lockID))
	if err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg(events.NATSSubject(lockID, events.TypeLockPlaced))
	msg.Data = body
	msg.Header.Set(events.SignatureHeader, rs.w.Signers[events.Revoker].Sign(body))
	if _, err := rs.w.JS.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	after := rs.w.Make().Submit(t, "dave", "payments-admin", false)

	rs.rebuild(t, "locks", nil)
	if n := rs.rows(t, `SELECT count(*) FROM locks.faults`); n[0][0] != "0" {
		t.Fatalf("faults %v, want none", rs.rows(t, `SELECT seq, kind, detail FROM locks.faults`))
	}
	if n := rs.rows(t, `SELECT count(*) FROM locks.requests WHERE id = $1`, lockID); n[0][0] != "0" {
		t.Fatal("the lock is projected as a request")
	}
	for _, id := range []string{before.ID, after.ID} {
		if n := rs.rows(t, `SELECT count(*) FROM locks.requests WHERE id = $1`, id); n[0][0] != fmt.Sprint(1) {
			t.Fatalf("request %s: %v rows", id, n)
		}
	}
}
