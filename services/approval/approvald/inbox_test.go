package approvald_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/services/approval/reaction"
)

// dump is every row of the inbox, one string per row, in a fixed order.
func dump(t testing.TB, pool *pgxpool.Pool) []string {
	t.Helper()
	var out []string
	for _, q := range []string{
		`SELECT format('request %s', r) FROM inbox_requests r ORDER BY request_id`,
		`SELECT format('slot %s', s) FROM inbox_slots s ORDER BY request_id, stage`,
		`SELECT format('excluded %s', e) FROM inbox_excluded e ORDER BY request_id, person`,
		`SELECT format('checkpoint %s', c) FROM inbox_checkpoint c ORDER BY stream`,
	} {
		rows, err := pool.Query(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// caughtUp waits until the inbox consumer has handled everything in the stream and its database
// checkpoint stands at checkpoint.
func (w *world) caughtUp(t testing.TB, checkpoint uint64) {
	t.Helper()
	poll.Until(t, 20*time.Second, "the inbox to catch up with the stream", func() bool {
		return w.settled(t, topology.ApprovalInbox.Stream, topology.ApprovalInbox.Durable) && w.checkpoint(t) == checkpoint
	})
}

func (w *world) checkpoint(t testing.TB) uint64 {
	t.Helper()
	var seq int64
	if err := w.deps.DB.QueryRow(context.Background(), `SELECT last_seq FROM inbox_checkpoint`).Scan(&seq); err != nil {
		return 0
	}
	return uint64(seq)
}

// lastInboxSeq is the stream sequence of the last event the inbox consumes.
func (w *world) lastInboxSeq(t testing.TB) uint64 {
	t.Helper()
	st, err := w.js.Stream(context.Background(), topology.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	var last uint64
	for _, typ := range reaction.InboxTypes {
		m, err := st.GetLastMsgForSubject(context.Background(), events.NATSSubject("*", typ))
		if err == nil {
			last = max(last, m.Sequence)
		}
	}
	return last
}

// delivered is how many messages the inbox consumer has delivered since it was created.
func (w *world) delivered(t testing.TB) uint64 {
	t.Helper()
	c, err := w.js.Consumer(context.Background(), topology.ApprovalInbox.Stream, topology.ApprovalInbox.Durable)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.Delivered.Consumer
}

// TestInboxIsARebuildableProjection: redelivering every event changes no row, and a fresh database
// filled from the stream holds exactly the same rows.
func TestInboxIsARebuildableProjection(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()

	// Requests in every state the inbox distinguishes.
	ordered := w.paymentsAdmin(t, alice)
	if status, body := w.call(t, "POST", "/v1/requests/"+ordered+"/reviews", "bob", approveBody); status != 201 {
		t.Fatalf("%d %s", status, body)
	}
	approved := w.paymentsAdmin(t, frank)
	for _, user := range []string{"bob", "carol"} {
		if status, body := w.call(t, "POST", "/v1/requests/"+approved+"/reviews", user, approveBody); status != 201 {
			t.Fatalf("%d %s", status, body)
		}
	}
	rejected := w.paymentsAdmin(t, dave)
	if status, body := w.call(t, "POST", "/v1/requests/"+rejected+"/reviews", "frank", `{"decision":"reject"}`); status != 201 {
		t.Fatalf("%d %s", status, body)
	}
	withdrawn := w.paymentsAdmin(t, alice)
	w.append(t, events.Intake, withdrawn, events.Draft{Payload: events.Withdrawn{Reason: "no longer needed"}, Actor: "alice"})
	emergency := w.emergency(t, time.Now().Add(time.Hour))
	ratified := w.emergency(t, time.Now().Add(time.Hour))
	auto := w.autoApproved(t)
	if status, body := w.call(t, "POST", "/v1/requests/"+ratified+"/post-review", "carol", `{"outcome":"ratified"}`); status != 201 {
		t.Fatalf("%d %s", status, body)
	}
	last := w.lastInboxSeq(t)
	w.caughtUp(t, last)
	before := dump(t, w.deps.DB)
	inboxed := w.delivered(t)
	for _, want := range []string{
		fmt.Sprintf("slot (%s,1,review,security,{security},1,0,", ordered),
		fmt.Sprintf("slot (%s,-1,post_review,post-review,{security},1,0,", emergency),
		fmt.Sprintf("excluded (%s,bob)", ordered),
	} {
		if !containsPrefix(before, want) {
			t.Fatalf("the inbox lacks %q:\n%v", want, before)
		}
	}
	// A request decided without review never awaits reviewers: the inbox holds nothing of it.
	for _, row := range before {
		if strings.Contains(row, auto) {
			t.Fatalf("the inbox holds a request policy approved without review: %s", row)
		}
	}
	for _, closed := range []string{approved, rejected, withdrawn, ratified} {
		if containsPrefix(before, "slot ("+closed) {
			t.Fatalf("a closed request %s still awaits review:\n%v", closed, before)
		}
	}

	t.Run("redelivering every event changes nothing", func(t *testing.T) {
		w.stop()
		if err := w.js.DeleteConsumer(ctx, topology.ApprovalInbox.Stream, topology.ApprovalInbox.Durable); err != nil {
			t.Fatal(err)
		}
		w.consume(t)
		poll.Until(t, 20*time.Second, "every event to be redelivered", func() bool {
			_, err := w.js.Consumer(ctx, topology.ApprovalInbox.Stream, topology.ApprovalInbox.Durable)
			return err == nil && w.delivered(t) >= inboxed
		})
		w.caughtUp(t, last)
		if diff := cmp.Diff(before, dump(t, w.deps.DB)); diff != "" {
			t.Fatalf("rows changed on redelivery (-before +after):\n%s", diff)
		}
	})

	t.Run("a fresh database is rebuilt with the same rows", func(t *testing.T) {
		w.stop()
		w.deps.DB = newPool(t)
		if err := w.deps.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		w.consume(t)
		w.caughtUp(t, last)
		if diff := cmp.Diff(before, dump(t, w.deps.DB)); diff != "" {
			t.Fatalf("the rebuilt inbox differs (-original +rebuilt):\n%s", diff)
		}
		if len(w.logs.lines(map[string]any{"level": "WARN", "msg": "review inbox is behind its consumer; rebuilding from the stream"})) != 1 {
			t.Fatal("the rebuild was not logged")
		}
	})
}

func containsPrefix(rows []string, prefix string) bool {
	for _, r := range rows {
		if len(r) >= len(prefix) && r[:len(prefix)] == prefix {
			return true
		}
	}
	return false
}
