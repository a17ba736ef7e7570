package postgres_test

import (
	"context"
	"encoding/json/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/pgtest"
	"github.com/grantline/grantline/services/approval"
	"github.com/grantline/grantline/services/approval/postgres"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

func newInbox(t *testing.T) (*postgres.Inbox, *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgtest.New(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := postgres.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	return postgres.NewInbox(pool), pool
}

var t0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

// request is a request by requester, decided with stages, with reviews already applied: the aggregate
// as the projection receives it.
func request(t *testing.T, requester string, ordered bool, stages []events.Stage, reviews ...events.Reviewed) *events.Request {
	t.Helper()
	return decided(t, requester, "", ordered, stages, reviews...)
}

// requestWith is request, submitted together with others under correlation.
func requestWith(t *testing.T, requester, correlation string, stages []events.Stage) *events.Request {
	t.Helper()
	return decided(t, requester, correlation, false, stages)
}

func decided(t *testing.T, requester, correlation string, ordered bool, stages []events.Stage, reviews ...events.Reviewed) *events.Request {
	t.Helper()
	id := events.NewID()
	s := events.Submitted{Requester: events.Principal{ID: requester}, Subject: events.RequestSubject{Kind: events.SubjectHuman, ID: requester},
		Entitlement: "payments-admin", Justification: "INC-7", DurationSeconds: 3600, Channel: "http", CorrelationID: correlation}
	s.RequestDigest = s.Digest()
	deadline := t0.Add(24 * time.Hour)
	payloads := []events.Payload{s, events.PolicyDecided{Outcome: events.OutcomeApprovalRequired, Reasons: []string{"r"}, Stages: stages,
		StagesOrdered: ordered, EffectiveDurationSeconds: 3600, ApprovalDeadline: &deadline, PolicyRevision: "rev", InputDigest: "in"}}
	for _, rv := range reviews {
		rv.RequestDigest = s.RequestDigest
		payloads = append(payloads, rv)
	}
	r := events.NewRequest(id)
	for i, p := range payloads {
		data, _ := json.Marshal(p)
		ev := events.Event{Envelope: events.Envelope{SpecVersion: events.SpecVersion, ID: events.NewID(), Type: p.EventType(), Subject: id,
			Time: t0.Add(time.Duration(i) * time.Minute), DataContentType: "application/json", DataSchema: events.SchemaURI(p.EventType()),
			Actor: requester, Source: "/grantline/test", PrevHash: "x", Data: data}, Payload: p}
		if err := r.Apply(ev); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func approve(who string, stage int, groups ...string) events.Reviewed {
	return events.Reviewed{Reviewer: events.Principal{ID: who, Groups: groups}, Stage: stage, Decision: events.ReviewApprove}
}

func ids(items []approval.Item) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.RequestID+"/"+it.StageName)
	}
	slices.Sort(out)
	return out
}

func TestMigrateTwiceIsANoOp(t *testing.T) {
	_, pool := newInbox(t)
	if err := postgres.Migrate(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("migrations/*.sql")
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM goose_db_version WHERE version_id > 0`).Scan(&n); err != nil || n != len(files) {
		t.Fatalf("%d migrations recorded (%v), want %d", n, err, len(files))
	}
}

// TestMigrateAdoptsAnInboxOfTheRunnerBeforeGoose: an inbox that the runner before pgmigrate migrated
// (schema_migrations listing 0001_inbox, a request awaiting review, a checkpoint that has moved) is
// not migrated again (0001's CREATE TABLEs would fail) and loses nothing.
func TestMigrateAdoptsAnInboxOfTheRunnerBeforeGoose(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	first, err := os.ReadFile("migrations/0001_inbox.sql")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()); INSERT INTO schema_migrations (version, name) VALUES (1, '0001_inbox');
		`+string(first)); err != nil {
		t.Fatal(err)
	}
	in := postgres.NewInbox(pool)
	// What that runner's release wrote, in its columns: a request applied at 7, and the checkpoint.
	req := request(t, "alice", false, []events.Stage{{Name: "owners", Groups: []string{"payments-owners"}, MinApprovals: 1}})
	s := req.Submitted()
	if _, err := pool.Exec(ctx, `INSERT INTO inbox_requests (request_id, applied_seq, status, requester, subject_kind, subject_id,
		subject_owner, entitlement, justification, ticket, duration_seconds, emergency, request_digest)
		VALUES ($1, 7, $2, $3, $4, $5, '', $6, $7, '', $8, false, $9)`,
		req.ID(), string(req.Status()), s.Requester.ID, string(s.Subject.Kind), s.Subject.ID, s.Entitlement, s.Justification,
		s.DurationSeconds, s.RequestDigest); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE inbox_checkpoint SET last_seq = 7`); err != nil {
		t.Fatal(err)
	}
	if err := postgres.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if cp, err := in.Checkpoint(ctx); err != nil || cp != 7 {
		t.Fatalf("checkpoint after the upgrade: %d (%v), want 7", cp, err)
	}
	if seqs, err := in.Applied(ctx, []string{req.ID()}); err != nil || seqs[req.ID()] != 7 {
		t.Fatalf("the request's applied sequence after the upgrade: %v (%v), want 7", seqs, err)
	}
}

// TestApplyIsVersioned: a version at or below the applied one changes nothing, so redeliveries and
// out-of-order deliveries cannot take a request's rows back in time.
func TestApplyIsVersioned(t *testing.T) {
	in, _ := newInbox(t)
	ctx := context.Background()
	stages := []events.Stage{{Name: "owners", Groups: []string{"payments-owners"}, MinApprovals: 1}, {Name: "security", Groups: []string{"security"}, MinApprovals: 1}}
	fresh := request(t, "alice", true, stages)
	id := fresh.ID()

	steps := []struct {
		name      string
		delivered uint64
		version   uint64
		changed   int
	}{
		{"first delivery", 2, 2, 1},
		{"the same delivery again", 2, 2, 0},
		{"an older version after it", 1, 1, 0},
		{"a newer version", 3, 3, 1},
	}
	for _, s := range steps {
		changed, err := in.Apply(ctx, s.delivered, []approval.Snapshot{{Request: fresh, Seq: s.version}})
		if err != nil || changed != s.changed {
			t.Fatalf("%s: changed %d (%v), want %d", s.name, changed, err, s.changed)
		}
	}
	if applied, _ := in.Applied(ctx, []string{id, "never-seen"}); applied[id] != 3 || len(applied) != 1 {
		t.Fatalf("applied %v, want %s at 3 and nothing else", applied, id)
	}
	if cp, _ := in.Checkpoint(ctx); cp != 3 {
		t.Fatalf("checkpoint %d, want 3", cp)
	}
	if err := in.Advance(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if cp, _ := in.Checkpoint(ctx); cp != 3 {
		t.Fatalf("checkpoint moved back to %d", cp)
	}
}

// TestAwaiting: what each person sees, as a table of people and the items they get.
func TestAwaiting(t *testing.T) {
	in, _ := newInbox(t)
	ctx := context.Background()
	ordered := []events.Stage{{Name: "owners", Groups: []string{"payments-owners"}, MinApprovals: 1}, {Name: "security", Groups: []string{"security"}, MinApprovals: 1}}
	unordered := []events.Stage{{Name: "owners", Groups: []string{"payments-owners"}, MinApprovals: 2}, {Name: "engineering", Groups: []string{"engineers"}, MinApprovals: 1}}
	byAlice := request(t, "alice", true, ordered)
	byDave := request(t, "dave", false, unordered, approve("bob", 0, "payments-owners"))
	atSecurity := request(t, "frank", true, ordered, approve("bob", 0, "payments-owners"))
	var snaps []approval.Snapshot
	for _, r := range []*events.Request{byAlice, byDave, atSecurity} {
		snaps = append(snaps, approval.Snapshot{Request: r, Seq: uint64(r.Version())})
	}
	if changed, err := in.Apply(ctx, 3, snaps); err != nil || changed != 3 {
		t.Fatalf("one batch of three requests: %d changed (%v)", changed, err)
	}
	cases := []struct {
		who    string
		groups []string
		want   []string
	}{
		// bob owns payments: alice's request at its first stage; he already reviewed dave's.
		{"bob", []string{"analytics-owners", "payments-owners"}, []string{byAlice.ID() + "/owners"}},
		// frank owns payments and is an engineer: dave's request once (the owners' stage, the first he
		// fits), alice's; not his own.
		{"frank", []string{"engineers", "payments-owners"}, []string{byAlice.ID() + "/owners", byDave.ID() + "/owners"}},
		// alice is an engineer: dave's request's engineering stage; never her own.
		{"alice", []string{"engineers"}, []string{byDave.ID() + "/engineering"}},
		// carol is security: only the request whose security stage is open.
		{"carol", []string{"security"}, []string{atSecurity.ID() + "/security"}},
		// dave is in no stage's group.
		{"dave", []string{"operations"}, nil},
		{"nobody", nil, nil},
	}
	for _, tc := range cases {
		items, err := in.Awaiting(ctx, tc.who, tc.groups)
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(items); !slices.Equal(got, sorted(tc.want)) {
			t.Errorf("%s sees %v, want %v", tc.who, got, sorted(tc.want))
		}
	}
	items, _ := in.Awaiting(ctx, "frank", []string{"payments-owners"})
	for _, it := range items {
		if it.RequestID == byDave.ID() && (it.Approvals != 1 || it.MinApprovals != 2 || it.Requester != "dave" || it.Deadline == nil) {
			t.Fatalf("item %+v", it)
		}
	}
}

// TestAwaitingShowsTheCorrelation: requests submitted together reach the reviewer with the correlation
// ID that links them, a request submitted alone with none.
func TestAwaitingShowsTheCorrelation(t *testing.T) {
	in, _ := newInbox(t)
	ctx := context.Background()
	owners := []events.Stage{{Name: "owners", Groups: []string{"payments-owners"}, MinApprovals: 1}}
	correlation := events.NewID()
	together := []*events.Request{requestWith(t, "alice", correlation, owners), requestWith(t, "alice", correlation, owners)}
	alone := request(t, "alice", false, owners)
	var snaps []approval.Snapshot
	for _, r := range append(together, alone) {
		snaps = append(snaps, approval.Snapshot{Request: r, Seq: uint64(r.Version())})
	}
	if _, err := in.Apply(ctx, 3, snaps); err != nil {
		t.Fatal(err)
	}
	items, err := in.Awaiting(ctx, "bob", []string{"payments-owners"})
	if err != nil || len(items) != 3 {
		t.Fatalf("bob awaits %d items (%v), want 3", len(items), err)
	}
	for _, it := range items {
		want := correlation
		if it.RequestID == alone.ID() {
			want = ""
		}
		if it.CorrelationID != want {
			t.Errorf("%s has correlation %q, want %q", it.RequestID, it.CorrelationID, want)
		}
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
