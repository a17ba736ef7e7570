package approvald_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/grantline/grantline/pkg/consumer"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/services/approval"
	"github.com/grantline/grantline/services/approval/postgres"
	"github.com/grantline/grantline/services/approval/reaction"
)

// recorder is the inbox with each transaction's requests recorded; a crash makes it stop, once,
// after its first transaction of several requests committed and before the batch is acknowledged, as
// a replica that dies.
type recorder struct {
	reaction.Inbox
	crash   bool
	crashed chan struct{}
	// dead holds the requests written by the transaction before the crash.
	dead []string

	mu sync.Mutex
	// applies holds, per transaction, the requests whose rows it changed.
	applies [][]string
	// again lists the snapshots it was asked to write at or below the version the inbox already held:
	// work the projection should have skipped.
	again []string
}

func newRecorder(pool *pgxpool.Pool, crash bool) *recorder {
	return &recorder{Inbox: postgres.NewInbox(pool), crash: crash, crashed: make(chan struct{})}
}

func (r *recorder) Apply(ctx context.Context, delivered uint64, snaps []approval.Snapshot) (int, error) {
	before, err := r.Applied(ctx, requestIDs(snaps))
	if err != nil {
		return 0, err
	}
	n, err := r.Inbox.Apply(ctx, delivered, snaps)
	if err != nil {
		return n, err
	}
	var changed, again []string
	for _, sn := range snaps {
		if held := before[sn.Request.ID()]; held < sn.Seq {
			changed = append(changed, sn.Request.ID())
		} else {
			again = append(again, fmt.Sprintf("%s at %d (held at %d)", sn.Request.ID(), sn.Seq, held))
		}
	}
	r.mu.Lock()
	r.applies = append(r.applies, changed)
	r.again = append(r.again, again...)
	crash := r.crash && r.dead == nil && len(changed) >= 2
	if crash {
		r.dead = changed
	}
	r.mu.Unlock()
	if crash {
		close(r.crashed)
		<-ctx.Done()
		return n, ctx.Err()
	}
	return n, nil
}

func (r *recorder) changed() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.applies)
}

func (r *recorder) writtenAgain() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.again)
}

func requestIDs(snaps []approval.Snapshot) []string {
	var ids []string
	for _, sn := range snaps {
		ids = append(ids, sn.Request.ID())
	}
	return ids
}

// project runs the inbox projection as durable into inbox, in batches of up to batchSize, until the
// returned stop is called (or the test ends).
func (w *world) project(t testing.TB, durable string, batchSize int, inbox reaction.Inbox) (stop func()) {
	t.Helper()
	spec := reaction.InboxSpec(nil)
	spec.Durable, spec.BatchSize, spec.ShutdownGrace = durable, batchSize, 200*time.Millisecond
	// A batch held by a projection that "crashed" comes back after the ack wait: short here, so that the
	// restarted projection catches up well within projected's patience even on a busy machine.
	spec.AckWait = 3 * time.Second
	h := &reaction.Reactions{JS: w.js, Store: w.stores[events.Approval], Now: time.Now, Log: w.log}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- consumer.RunBatch(ctx, w.js, spec, h.Project(inbox), w.log) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("inbox projection %s: %v", durable, err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// projected waits until durable has settled every delivery and pool's checkpoint stands at last.
func (w *world) projected(t testing.TB, durable string, pool *pgxpool.Pool, last uint64) {
	t.Helper()
	poll.Until(t, 30*time.Second, "the inbox projection "+durable+" to catch up", func() bool {
		var seq int64
		err := pool.QueryRow(context.Background(), `SELECT last_seq FROM inbox_checkpoint`).Scan(&seq)
		return err == nil && uint64(seq) == last && w.settled(t, topology.ApprovalInbox.Stream, durable)
	})
}

func (w *world) freshInbox(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool := newPool(t)
	if err := postgres.Migrate(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	return pool
}

// inboxWorkload records requests in every state the inbox distinguishes, several events each, with a
// forged approval in the middle of the stream. It returns the forged request.
func (w *world) inboxWorkload(t *testing.T) (forged string) {
	t.Helper()
	stage := func(name, group string) events.Stage {
		return events.Stage{Name: name, Groups: []string{group}, MinApprovals: 1}
	}
	var pending []string
	for range 12 {
		pending = append(pending, w.paymentsAdmin(t, alice))
		w.emergency(t, time.Now().Add(time.Hour))
	}
	forged = w.paymentsAdmin(t, frank)
	w.forge(t, forged, events.Intake, events.Approved{Approvers: []string{"mallory"}}, "mallory")
	for i, id := range pending {
		digest := w.load(t, id).Request.Submitted().RequestDigest
		w.append(t, events.Approval, id, events.Draft{Payload: events.Reviewed{Reviewer: events.Principal{ID: "bob", Groups: []string{"payments-owners"}},
			Stage: 0, Decision: events.ReviewApprove, RequestDigest: digest}, Actor: "bob"})
		if i%3 == 0 {
			w.append(t, events.Intake, id, events.Draft{Payload: events.Withdrawn{Reason: "no longer needed"}, Actor: "alice"})
		}
	}
	id := w.submit(t, dave, "payments-admin", false)
	w.decide(t, id, time.Now().Add(time.Hour), false, stage("owners", "payments-owners"), stage("security", "security"))
	return forged
}

// TestInboxBatchesEqualOneAtATime: the same stream projected in batches and one delivery at a time
// gives the same rows and checkpoint; in both, the forged request's events are dead-lettered alone
// and every other event is applied, the rest of their batches included.
func TestInboxBatchesEqualOneAtATime(t *testing.T) {
	w := newWorld(t)
	w.stop()
	forged := w.inboxWorkload(t)
	last := w.lastInboxSeq(t)

	batchedDB, oneDB := w.freshInbox(t), w.freshInbox(t)
	batched := newRecorder(batchedDB, false)
	// Batches of 8: the forged request's events fail theirs, which are then handled one at a time; the
	// other batches are written whole.
	w.project(t, "inbox-batched", 8, batched)
	w.project(t, "inbox-one-at-a-time", 1, postgres.NewInbox(oneDB))
	w.projected(t, "inbox-batched", batchedDB, last)
	w.projected(t, "inbox-one-at-a-time", oneDB, last)

	if diff := cmp.Diff(dump(t, oneDB), dump(t, batchedDB)); diff != "" {
		t.Fatalf("batched inbox differs from one at a time (-one +batched):\n%s", diff)
	}
	largest := 0
	for _, ids := range batched.changed() {
		largest = max(largest, len(ids))
	}
	if largest < 2 {
		t.Fatalf("no transaction of the batched projection wrote more than one request: %v", batched.changed())
	}
	for _, durable := range []string{"inbox-batched", "inbox-one-at-a-time"} {
		if !deadLettered(t, w.js, durable, forged) {
			t.Errorf("%s did not dead-letter the forged event", durable)
		}
	}
	// Every event of the forged request is read with the forgery (which fails verification), so none
	// of them reaches the inbox.
	for _, row := range dump(t, batchedDB) {
		if strings.Contains(row, forged) {
			t.Fatalf("the forged request reached the inbox: %s", row)
		}
	}
}

// TestInboxCrashBetweenCommitAndAck: a replica that dies after its batch committed and before it was
// acknowledged leaves the batch to be redelivered; the next run skips what the inbox already holds
// (it writes no request at a version it already has) and ends with the rows of a clean rebuild.
func TestInboxCrashBetweenCommitAndAck(t *testing.T) {
	w := newWorld(t)
	w.stop()
	w.inboxWorkload(t)
	last := w.lastInboxSeq(t)

	db := w.freshInbox(t)
	dying := newRecorder(db, true)
	// Batches of 8, as in TestInboxBatchesEqualOneAtATime: the forged request's batch is handled one
	// delivery at a time, the others are written whole.
	stop := w.project(t, "inbox-crash", 8, dying)
	select {
	case <-dying.crashed:
	case <-time.After(30 * time.Second):
		t.Fatalf("no transaction wrote several requests: %v", dying.changed())
	}
	stop()

	restarted := newRecorder(db, false)
	w.project(t, "inbox-crash", 8, restarted)
	w.projected(t, "inbox-crash", db, last)
	if again := restarted.writtenAgain(); len(again) > 0 {
		t.Fatalf("after the crash, the projection wrote again what the inbox held: %v", again)
	}

	clean := w.freshInbox(t)
	w.project(t, "inbox-clean", 0, postgres.NewInbox(clean))
	w.projected(t, "inbox-clean", clean, last)
	if diff := cmp.Diff(dump(t, clean), dump(t, db)); diff != "" {
		t.Fatalf("after the crash the inbox differs from a clean rebuild (-clean +restarted):\n%s", diff)
	}
}
