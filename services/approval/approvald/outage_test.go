package approvald_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/pgtest"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/pkg/topology"
)

// TestInboxWaitsOutADatabaseOutage: requests submitted while the inbox's database is down are held,
// not dead-lettered, however many attempts the outage takes; the inbox reports itself not ready
// meanwhile; and once the database is back every pending request is listed for its reviewers.
func TestInboxWaitsOutADatabaseOutage(t *testing.T) {
	w := newWorld(t)
	var ids []string
	for range 3 {
		ids = append(ids, w.paymentsAdmin(t, alice))
	}
	w.caughtUp(t, w.lastInboxSeq(t))

	end := pgtest.Outage(t, w.deps.DB.Config().ConnString())
	for range 5 {
		ids = append(ids, w.paymentsAdmin(t, alice))
	}
	poll.Until(t, 10*time.Second, "the inbox to report the outage", func() bool {
		return w.deps.InboxStall.Check(context.Background()) != nil
	})
	// Outlast the attempts that used to end in the dead-letter stream (five deliveries, ~8 s).
	poll.Until(t, 30*time.Second, "a sixth attempt at the same event", func() bool {
		for _, l := range w.logs.lines(map[string]any{"msg": "hold", "consumer": topology.ApprovalInbox.Durable}) {
			if l["attempt"].(float64) >= 6 {
				return true
			}
		}
		return false
	})
	end()

	poll.Until(t, 30*time.Second, "every pending request in bob's inbox", func() bool {
		items := w.inbox(t, "bob")
		for _, id := range ids {
			if _, ok := has(items, id); !ok {
				return false
			}
		}
		return true
	})
	if err := w.deps.InboxStall.Check(context.Background()); err != nil {
		t.Fatalf("still not ready after the outage: %v", err)
	}
	if n := dlqCount(t, w.js, topology.ApprovalInbox.Durable); n != 0 {
		t.Fatalf("%d inbox deliveries dead-lettered for an outage", n)
	}
}

// dlqCount is how many messages durable dead-lettered.
func dlqCount(t testing.TB, js jetstream.JetStream, durable string) uint64 {
	t.Helper()
	st, err := js.Stream(context.Background(), topology.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background(), jetstream.WithSubjectFilter(topology.DeadLetter(durable)))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}
