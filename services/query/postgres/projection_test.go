package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/pgtest"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/services/query/internal/querytest"
	"github.com/grantline/grantline/services/query/natsjs"
	"github.com/grantline/grantline/services/query/postgres"
	"github.com/grantline/grantline/services/query/projection"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// readSide is a world's stream with a database holding read sides.
type readSide struct {
	w    *querytest.World
	pool *pgxpool.Pool
	log  *slog.Logger
}

func newReadSide(t *testing.T) *readSide {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), pgtest.New(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	w := querytest.NewWorld(t)
	return &readSide{w: w, pool: pool, log: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))}
}

func (rs *readSide) store(t *testing.T, schema string) *postgres.Store {
	t.Helper()
	if err := postgres.Migrate(context.Background(), rs.pool, schema); err != nil {
		t.Fatal(err)
	}
	st, err := postgres.NewStore(rs.pool, schema)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func (rs *readSide) projector(st *postgres.Store, src projection.Source) *projection.Projector {
	if src == nil {
		src = &natsjs.Reader{JS: rs.w.JS}
	}
	return &projection.Projector{Source: src, Sink: st, Verifier: rs.w.Trust, Log: rs.log}
}

// live runs the projection into schema in the background for the rest of the test.
func (rs *readSide) live(t *testing.T, schema string) *postgres.Store {
	t.Helper()
	st := rs.store(t, schema)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rs.projector(st, nil).Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("live projection: %v", err)
		}
	})
	return st
}

// caughtUp waits until st has applied every stored event.
func (rs *readSide) caughtUp(t *testing.T, st *postgres.Store) {
	t.Helper()
	last := rs.w.LastSeq(t)
	poll.Until(t, 30*time.Second, fmt.Sprintf("the projection into %s to reach sequence %d", st.Schema(), last), func() bool {
		cp, err := st.Checkpoint(context.Background())
		return err == nil && cp >= last
	})
}

// rebuild projects the whole stream into a fresh schema.
func (rs *readSide) rebuild(t *testing.T, schema string, src projection.Source) *postgres.Store {
	t.Helper()
	st := rs.store(t, schema)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := rs.projector(st, src).CatchUp(ctx, rs.w.LastSeq(t)); err != nil {
		t.Fatal(err)
	}
	return st
}

func (rs *readSide) compare(t *testing.T, a, b string) []string {
	t.Helper()
	diffs, err := postgres.Compare(context.Background(), rs.pool, a, b)
	if err != nil {
		t.Fatal(err)
	}
	return diffs
}

// row reads one row of sql as strings, for readable expectations.
func (rs *readSide) rows(t *testing.T, sql string, args ...any) [][]string {
	t.Helper()
	rows, err := rs.pool.Query(context.Background(), sql, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out [][]string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		var row []string
		for _, v := range vals {
			switch x := v.(type) {
			case nil:
				row = append(row, "NULL")
			case time.Time:
				row = append(row, "t")
			case []any:
				row = append(row, fmt.Sprint(x...))
			default:
				row = append(row, fmt.Sprint(x))
			}
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestLifecycles: each story's request as the read side holds it once projected — its request row, its
// reviews, its grant and one audit entry per event.
func TestLifecycles(t *testing.T) {
	rs := newReadSide(t)
	st := rs.live(t, "readside")
	w := rs.w
	type story struct {
		name    string
		run     func(r *querytest.Req)
		request []string // status, outcome, approvers, granted_at, expires_at, revocation_reason, revoked_at, observed present
		reviews [][]string
		grant   []string // revoked_at, revocation_reason, observed_after present, observed present
	}
	stories := []story{
		{
			name: "auto-approved, granted, expired and revoked",
			run: func(r *querytest.Req) {
				r.Submit(t, "alice", "analytics-read", false).Decide(t, events.OutcomeAutoApproved, false).Grant(t).Expire(t).Revoke(t)
			},
			request: []string{"revoked", "auto_approved", "", "t", "t", "expired", "t", "true"},
			grant:   []string{"t", "expired", "false", "true"},
		},
		{
			name: "approval required, reviewed by two stages, approved and granted",
			run: func(r *querytest.Req) {
				r.Submit(t, "alice", "payments-admin", false).
					Decide(t, events.OutcomeApprovalRequired, true, querytest.Stage("owners", 1, "payments-owners"), querytest.Stage("security", 1, "security")).
					Review(t, "bob", 0, events.ReviewApprove).Review(t, "carol", 1, events.ReviewApprove).Approve(t).Grant(t)
			},
			request: []string{"granted", "approval_required", "bob carol", "t", "t", "", "NULL", "true"},
			reviews: [][]string{
				{"1", "review", "bob", "0", "owners", "approve"},
				{"2", "review", "carol", "1", "security", "approve"},
			},
			grant: []string{"NULL", "", "NULL", "true"},
		},
		{
			name: "denied by policy",
			run: func(r *querytest.Req) {
				r.Submit(t, "dave", "payments-admin", false).Decide(t, events.OutcomeDeny, false)
			},
			request: []string{"denied", "deny", "", "NULL", "NULL", "", "NULL", "NULL"},
		},
		{
			name: "rejected by a reviewer",
			run: func(r *querytest.Req) {
				r.Submit(t, "frank", "analytics-read", false).
					Decide(t, events.OutcomeApprovalRequired, false, querytest.Stage("owners", 1, "analytics-owners")).
					Review(t, "bob", 0, events.ReviewReject).Reject(t, events.RejectedByReviewer)
			},
			request: []string{"rejected", "approval_required", "", "NULL", "NULL", "", "NULL", "NULL"},
			reviews: [][]string{{"1", "review", "bob", "0", "owners", "reject"}},
		},
		{
			name: "emergency, granted, flagged at post-review and revoked",
			run: func(r *querytest.Req) {
				r.Submit(t, "alice", "payments-admin", true).Decide(t, events.OutcomeEmergency, false).Grant(t).
					PostReview(t, "carol", events.PostReviewFlagged).Revoke(t)
			},
			request: []string{"revoked", "emergency", "", "t", "t", "review_failed", "t", "true"},
			reviews: [][]string{{"1", "post_review", "carol", "-1", "post-review", "flagged"}},
			grant:   []string{"t", "review_failed", "false", "true"},
		},
	}
	ids := map[string]string{}
	for _, s := range stories {
		r := w.Make()
		s.run(r)
		ids[s.name] = r.ID
	}
	rs.caughtUp(t, st)

	for _, s := range stories {
		t.Run(s.name, func(t *testing.T) {
			id := ids[s.name]
			l := w.Load(t, id)
			got := rs.rows(t, `SELECT status, outcome, array_to_string(approvers, ' '), granted_at, expires_at, revocation_reason,
				revoked_at, observed->'present', last_seq, version, policy_revision FROM readside.requests WHERE id = $1`, id)
			want := [][]string{append(slices.Clone(s.request), fmt.Sprint(l.LastSeq), fmt.Sprint(len(l.Events)), querytest.Revision)}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("request row (-want +got):\n%s", diff)
			}
			reviews := rs.rows(t, `SELECT position, kind, reviewer, stage, stage_name, decision FROM readside.reviews
				WHERE request_id = $1 ORDER BY position`, id)
			if diff := cmp.Diff(s.reviews, reviews); diff != "" {
				t.Errorf("reviews (-want +got):\n%s", diff)
			}
			grant := rs.rows(t, `SELECT revoked_at, revocation_reason, observed_after->'present', observed->'present'
				FROM readside.grants WHERE request_id = $1`, id)
			var wantGrant [][]string
			if s.grant != nil {
				wantGrant = [][]string{s.grant}
			}
			if diff := cmp.Diff(wantGrant, grant); diff != "" {
				t.Errorf("grant (-want +got):\n%s", diff)
			}
			var wantAudit [][]string
			for i, ev := range l.Events {
				wantAudit = append(wantAudit, []string{fmt.Sprint(l.Records[i].Seq), string(ev.Type), ev.Actor, ev.Source})
			}
			audit := rs.rows(t, `SELECT seq, type, actor, source FROM readside.audit_index WHERE request_id = $1 ORDER BY seq`, id)
			if diff := cmp.Diff(wantAudit, audit); diff != "" {
				t.Errorf("audit index (-want +got):\n%s", diff)
			}
		})
	}
}

// redeliver is a source that always starts again from sequence 1, whatever the checkpoint: every event
// reaches the projection a second time.
type redeliver struct{ *natsjs.Reader }

func (r redeliver) Follow(ctx context.Context, _ uint64, out chan<- projection.Delivery) error {
	return r.Reader.Follow(ctx, 1, out)
}

// TestRedeliveryDoesNotDuplicate: events delivered again — over rows that already reflect them (a
// checkpoint restored behind the rows), from the start of the stream whatever the checkpoint, and as a
// batch applied twice — change nothing.
func TestRedeliveryDoesNotDuplicate(t *testing.T) {
	rs := newReadSide(t)
	ctx := context.Background()
	rs.w.Workload(t, rand.New(rand.NewPCG(7, 7)), 6)
	rs.rebuild(t, "once", nil)
	twice := rs.rebuild(t, "twice", nil)
	if _, err := rs.pool.Exec(ctx, `UPDATE twice.checkpoint SET last_seq = 0`); err != nil {
		t.Fatal(err)
	}
	rs.rebuild(t, "twice", nil)
	more := rs.w.Make().Submit(t, "alice", "analytics-read", false)
	rs.rebuild(t, "twice", redeliver{&natsjs.Reader{JS: rs.w.JS}})
	rs.rebuild(t, "once", nil)
	if diffs := rs.compare(t, "once", "twice"); len(diffs) > 0 {
		t.Fatalf("redelivered read side differs:\n%s", strings.Join(diffs, "\n"))
	}
	last := rs.w.LastSeq(t)
	if n := rs.rows(t, `SELECT count(*), max(seq) FROM twice.audit_index`); n[0][0] != fmt.Sprint(last) || n[0][1] != fmt.Sprint(last) {
		t.Fatalf("audit index holds %v, want %d events", n, last)
	}
	if n := rs.rows(t, `SELECT count(*) FROM twice.requests WHERE id = $1`, more.ID); n[0][0] != "1" {
		t.Fatalf("the request submitted after the redelivery: %v", n)
	}
	// A batch behind the checkpoint: nothing is written.
	err := twice.Apply(ctx, &projection.Batch{From: last - 1, To: last})
	if !errors.Is(err, projection.ErrCheckpointMoved) {
		t.Fatalf("applying a batch behind the checkpoint: %v, want ErrCheckpointMoved", err)
	}
}

// TestRebuildEqualsLive: after a randomized workload projected live as it happened (with a forged event
// in the middle of it), a rebuild from sequence 1 into a fresh schema holds exactly the same rows.
func TestRebuildEqualsLive(t *testing.T) {
	rs := newReadSide(t)
	live := rs.live(t, "readside")
	seed := uint64(time.Now().UnixNano())
	t.Logf("workload seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 42))
	ids := rs.w.Workload(t, rng, 20)
	// An approval signed with intake's key, straight into the stream: the projection records a fault
	// and keeps the request as it was.
	forged := ids[rng.IntN(len(ids))]
	forgedSeq := rs.w.Forge(t, forged, events.Intake, events.Approved{Approvers: []string{"mallory"}})
	ids = append(ids, rs.w.Workload(t, rng, 10)...)
	rs.caughtUp(t, live)

	rs.rebuild(t, "rebuilt", nil)
	if diffs := rs.compare(t, "readside", "rebuilt"); len(diffs) > 0 {
		t.Fatalf("the rebuilt read side differs from the live one:\n%s", strings.Join(diffs, "\n"))
	}
	if n := rs.rows(t, `SELECT count(*) FROM rebuilt.requests`); n[0][0] != fmt.Sprint(len(ids)) {
		t.Fatalf("%s requests, want %d", n[0][0], len(ids))
	}
	faults := rs.rows(t, `SELECT seq, request_id, kind FROM readside.faults`)
	if diff := cmp.Diff([][]string{{fmt.Sprint(forgedSeq), forged, string(events.ViolationTypeNotAllowed)}}, faults); diff != "" {
		t.Fatalf("faults (-want +got):\n%s", diff)
	}
	// The views agree with the stream's own fold, request by request.
	for _, id := range ids {
		if id == forged {
			continue
		}
		l := rs.w.Load(t, id)
		got := rs.rows(t, `SELECT status, last_seq, version FROM rebuilt.requests WHERE id = $1`, id)
		want := [][]string{{string(l.Request.Status()), fmt.Sprint(l.LastSeq), fmt.Sprint(l.Request.Version())}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("request %s (-want +got):\n%s", id, diff)
		}
	}
}

// TestRestartsEqualRebuild: a projection stopped and started again every few events, each time with an
// empty memory that holds at most a few requests (so requests begun before the checkpoint are read back
// from the stream, forged ones included), ends with the same rows as one rebuild from sequence 1.
func TestRestartsEqualRebuild(t *testing.T) {
	rs := newReadSide(t)
	ctx := context.Background()
	st := rs.store(t, "restarted")
	seed := uint64(time.Now().UnixNano())
	t.Logf("workload seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 9))
	restarts := 0
	restart := func() {
		p := rs.projector(st, nil)
		p.MaxCacheBytes, p.BatchSize = 1+rng.IntN(3*1024), 1+rng.IntN(4)
		cp, err := st.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.CatchUp(ctx, min(rs.w.LastSeq(t), cp+uint64(1+rng.IntN(6)))); err != nil {
			t.Fatal(err)
		}
		restarts++
	}
	ids := rs.w.WorkloadWith(t, rng, 12, 3, restart)
	forged := ids[rng.IntN(len(ids))]
	// Signed with intake's key, which may not sign revoked: a fault whatever state the request is in.
	// (Signed by the revoker it would be a legal early revocation of a request that happens to be granted.)
	rs.w.Forge(t, forged, events.Intake, events.Revoked{Reason: events.RevokeEarly})
	restart()
	rs.w.Forge(t, forged, events.Approval, events.Approved{Approvers: []string{"mallory"}})
	rs.w.WorkloadWith(t, rng, 4, 3, restart)
	for cp, _ := st.Checkpoint(ctx); cp < rs.w.LastSeq(t); cp, _ = st.Checkpoint(ctx) {
		restart()
	}
	t.Logf("%d restarts", restarts)
	rs.rebuild(t, "rebuilt", nil)
	if diffs := rs.compare(t, "restarted", "rebuilt"); len(diffs) > 0 {
		t.Fatalf("the restarted projection differs from the rebuild:\n%s", strings.Join(diffs, "\n"))
	}
	if n := rs.rows(t, `SELECT count(*) FROM rebuilt.faults WHERE request_id = $1`, forged); n[0][0] != "2" {
		t.Fatalf("faults for the forged request: %v, want 2", n)
	}
}

// batches is a sink that records each batch it applied.
type batches struct {
	*postgres.Store
	applied []*projection.Batch
}

func (b *batches) Apply(ctx context.Context, batch *projection.Batch) error {
	if err := b.Store.Apply(ctx, batch); err != nil {
		return err
	}
	b.applied = append(b.applied, batch)
	return nil
}

// TestBatchedEqualsOneAtATime: the stream projected in batches holds exactly the rows of the stream
// projected one event per transaction, including a forged event that fell in the middle of a batch:
// it is recorded as a fault, alone, and the events around it in its batch are applied.
func TestBatchedEqualsOneAtATime(t *testing.T) {
	rs := newReadSide(t)
	ctx := context.Background()
	seed := uint64(time.Now().UnixNano())
	t.Logf("workload seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 3))
	ids := rs.w.Workload(t, rng, 10)
	forged := ids[rng.IntN(len(ids))]
	forgedSeq := rs.w.Forge(t, forged, events.Intake, events.Approved{Approvers: []string{"mallory"}})
	rs.w.Workload(t, rng, 10)
	last := rs.w.LastSeq(t)

	project := func(schema string, size int) *batches {
		sink := &batches{Store: rs.store(t, schema)}
		p := &projection.Projector{Source: &natsjs.Reader{JS: rs.w.JS}, Sink: sink, Verifier: rs.w.Trust, Log: rs.log, BatchSize: size}
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := p.CatchUp(ctx, last); err != nil {
			t.Fatal(err)
		}
		return sink
	}
	one := project("one", 1)
	for _, b := range one.applied {
		if b.To-b.From != 1 {
			t.Fatalf("a batch of one event covered %d..%d", b.From+1, b.To)
		}
	}
	// Batches of 8, so that the stream is several of them and the forgery falls inside one.
	batched := project("batched", 8)
	if diffs := rs.compare(t, "one", "batched"); len(diffs) > 0 {
		t.Fatalf("the batched read side differs from one event at a time:\n%s", strings.Join(diffs, "\n"))
	}
	i := slices.IndexFunc(batched.applied, func(b *projection.Batch) bool { return b.From < forgedSeq && forgedSeq <= b.To })
	if i < 0 {
		t.Fatalf("no batch covered the forged event at %d", forgedSeq)
	}
	b := batched.applied[i]
	if len(b.Faults) != 1 || b.Faults[0].Seq != forgedSeq {
		t.Fatalf("the batch %d..%d holding the forgery recorded faults %+v, want the forgery alone", b.From+1, b.To, b.Faults)
	}
	if b.To-b.From < 2 || len(b.Requests) == 0 {
		t.Fatalf("the forgery's batch %d..%d wrote %d requests: it should hold other events, applied", b.From+1, b.To, len(b.Requests))
	}
	if n := len(batched.applied); n >= len(one.applied) {
		t.Fatalf("%d batches for %d events: nothing was batched", n, len(one.applied))
	}
}

// flaky fails every third transaction: before it commits, or after (a commit whose answer was lost).
type flaky struct {
	*postgres.Store
	calls, failures int
}

var errFlaky = errors.New("connection reset by peer")

func (f *flaky) Apply(ctx context.Context, b *projection.Batch) error {
	f.calls++
	switch f.calls % 6 {
	case 2:
		f.failures++
		return errFlaky
	case 5:
		f.failures++
		if err := f.Store.Apply(ctx, b); err != nil {
			return err
		}
		return errFlaky
	}
	return f.Store.Apply(ctx, b)
}

// TestFailedWritesAreRetried: transactions that fail, before or after committing, are retried from the
// checkpoint, and the read side ends as a clean rebuild does.
func TestFailedWritesAreRetried(t *testing.T) {
	rs := newReadSide(t)
	rs.w.Workload(t, rand.New(rand.NewPCG(5, 6)), 6)
	sink := &flaky{Store: rs.store(t, "flaky")}
	p := &projection.Projector{Source: &natsjs.Reader{JS: rs.w.JS}, Sink: sink, Verifier: rs.w.Trust, Log: rs.log, BatchSize: 3}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.CatchUp(ctx, rs.w.LastSeq(t)); err != nil {
		t.Fatal(err)
	}
	if sink.failures < 3 {
		t.Fatalf("only %d failures injected", sink.failures)
	}
	rs.rebuild(t, "clean", nil)
	if diffs := rs.compare(t, "flaky", "clean"); len(diffs) > 0 {
		t.Fatalf("after %d failed transactions the read side differs:\n%s", sink.failures, strings.Join(diffs, "\n"))
	}
}

// TestCompareReportsDifferences: Compare finds a changed column, a missing row and an extra one, and
// ignores the projection's own timestamps.
func TestCompareReportsDifferences(t *testing.T) {
	rs := newReadSide(t)
	r := rs.w.Make().Submit(t, "alice", "analytics-read", false).Decide(t, events.OutcomeAutoApproved, false).Grant(t)
	rs.rebuild(t, "a", nil)
	rs.rebuild(t, "b", nil)
	ctx := context.Background()
	for _, sql := range []string{
		`UPDATE b.requests SET updated_at = now() + interval '1 hour'`,
		`UPDATE b.requests SET status = 'revoked'`,
		`DELETE FROM b.audit_index WHERE seq = 1`,
		`INSERT INTO b.faults VALUES (99, 'x', 'malformed', 0, 99, '', 'invented')`,
	} {
		if _, err := rs.pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		`requests ` + r.ID + `: status: a "granted", b "revoked"`,
		`audit_index 1: only in a`,
		`faults 99: only in b`,
	}
	if diff := cmp.Diff(want, rs.compare(t, "a", "b")); diff != "" {
		t.Fatalf("differences (-want +got):\n%s", diff)
	}
	if _, err := postgres.Compare(ctx, rs.pool, "a", "never_migrated"); err == nil {
		t.Fatal("comparing with a schema that does not exist reported no error")
	}
}

// TestMigrate: migrating twice is a no-op, schemas are independent, and names that are not plain
// identifiers are refused before they reach SQL.
func TestMigrate(t *testing.T) {
	rs := newReadSide(t)
	ctx := context.Background()
	for range 2 {
		if err := postgres.Migrate(ctx, rs.pool, "readside"); err != nil {
			t.Fatal(err)
		}
	}
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	if n := rs.rows(t, `SELECT count(*) FROM readside.goose_db_version WHERE version_id > 0`); n[0][0] != strconv.Itoa(len(files)) {
		t.Fatalf("%s migrations recorded, want %d", n[0][0], len(files))
	}
	for _, bad := range []string{"", "Readside", "x;drop", "1abc", "pg_catalog", strings.Repeat("a", 64)} {
		if err := postgres.Migrate(ctx, rs.pool, bad); err == nil {
			t.Errorf("schema %q accepted", bad)
		}
	}
}

// TestMigrateAdoptsAReadSideOfTheRunnerBeforeGoose: a read side that the runner before pgmigrate
// migrated (schema_migrations in its schema, the tables, a checkpoint that has moved) is not
// migrated again and keeps its checkpoint, and a rebuild schema beside it starts from nothing.
func TestMigrateAdoptsAReadSideOfTheRunnerBeforeGoose(t *testing.T) {
	rs := newReadSide(t)
	ctx := context.Background()
	first, err := os.ReadFile("migrations/0001_readside.sql")
	if err != nil {
		t.Fatal(err)
	}
	// What that runner did: the file in one transaction with search_path set to the schema.
	for _, stmt := range []string{
		`CREATE SCHEMA readside`,
		`CREATE TABLE readside.schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());
		INSERT INTO readside.schema_migrations (version, name) VALUES (1, '0001_readside')`,
		`SET search_path TO readside; ` + string(first) + `; UPDATE checkpoint SET last_seq = 42; RESET search_path`,
	} {
		if _, err := rs.pool.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	for _, schema := range []string{"readside", "rebuild"} {
		if err := postgres.Migrate(ctx, rs.pool, schema); err != nil {
			t.Fatalf("migrate %s: %v", schema, err)
		}
	}
	for schema, want := range map[string]uint64{"readside": 42, "rebuild": 0} {
		st, err := postgres.NewStore(rs.pool, schema)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := st.Checkpoint(ctx); err != nil || got != want {
			t.Errorf("%s: checkpoint %d (%v), want %d", schema, got, err, want)
		}
	}
}
