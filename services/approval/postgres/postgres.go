// Package postgres keeps the approval service's review inbox in PostgreSQL: a projection of the event
// stream (what each request awaits from which groups, and who may not act on it), written together
// with the stream checkpoint in one transaction, and the query behind GET /v1/reviews. The stream is
// the truth; the inbox can be dropped and rebuilt from it at any time.
package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/pgmigrate"
	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/services/approval"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migrationLock is the advisory lock key that serialises migrations across replicas ("gl-appr", the
// key of the runner before pgmigrate, so replicas of either release take turns).
const migrationLock = 0x676c2d61707072

// Migrate applies the embedded migrations (migrations/NNNN_name.sql) that the database has not had
// yet, in its default schema, with pgmigrate: each once across replicas, each in one transaction, and
// none at all if an applied one was edited since.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	files, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	return pgmigrate.Up(ctx, pool, pgmigrate.Migrations{Files: files, Lock: migrationLock}, "")
}

// Inbox is the review inbox projection.
type Inbox struct {
	pool *pgxpool.Pool
}

// NewInbox returns the inbox over pool; Migrate must have run.
func NewInbox(pool *pgxpool.Pool) *Inbox { return &Inbox{pool: pool} }

// Applied returns, for each of ids the inbox has seen, the stream sequence of the request's last event
// that the inbox reflects: a delivery at or below it is already applied. A request it has not seen is
// missing from the answer.
func (in *Inbox) Applied(ctx context.Context, ids []string) (map[string]uint64, error) {
	rows, err := in.pool.Query(ctx, `SELECT request_id, applied_seq FROM inbox_requests WHERE request_id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("inbox: applied sequences: %w", err)
	}
	out := map[string]uint64{}
	var id string
	var seq int64
	if _, err := pgx.ForEachRow(rows, []any{&id, &seq}, func() error { out[id] = uint64(seq); return nil }); err != nil {
		return nil, fmt.Errorf("inbox: applied sequences: %w", err)
	}
	return out, nil
}

// Checkpoint is the highest stream sequence the inbox has applied or skipped.
func (in *Inbox) Checkpoint(ctx context.Context) (uint64, error) {
	var seq int64
	if err := in.pool.QueryRow(ctx, `SELECT last_seq FROM inbox_checkpoint WHERE stream = $1`, topology.EventsStream).Scan(&seq); err != nil {
		return 0, fmt.Errorf("inbox: checkpoint: %w", err)
	}
	return uint64(seq), nil
}

// Advance moves the checkpoint to delivered (never back) for a delivery that needed no rows.
func (in *Inbox) Advance(ctx context.Context, delivered uint64) error {
	_, err := in.pool.Exec(ctx, `UPDATE inbox_checkpoint SET last_seq = GREATEST(last_seq, $2) WHERE stream = $1`, topology.EventsStream, int64(delivered))
	if err != nil {
		return fmt.Errorf("inbox: advance checkpoint: %w", err)
	}
	return nil
}

// Apply replaces the rows of each snapshot's request with what it awaits as of the snapshot and
// advances the checkpoint to delivered, all in one transaction. A snapshot at or below the version
// already applied changes no rows, so redeliveries and replicas racing on one request are harmless. It
// returns how many requests' rows changed.
func (in *Inbox) Apply(ctx context.Context, delivered uint64, snaps []approval.Snapshot) (int, error) {
	// Row locks are taken in request order, so two replicas applying overlapping batches wait for each
	// other instead of deadlocking; the checkpoint's row, which every batch updates, comes last.
	snaps = slices.SortedFunc(slices.Values(snaps), func(a, b approval.Snapshot) int { return strings.Compare(a.Request.ID(), b.Request.ID()) })
	var changed int
	err := pgx.BeginFunc(ctx, in.pool, func(tx pgx.Tx) error {
		upserts := &pgx.Batch{}
		for _, sn := range snaps {
			req, s := sn.Request, sn.Request.Submitted()
			// The upsert takes the row lock, so concurrent applies of one request serialise here and
			// the older one finds the newer version in place.
			upserts.Queue(`
				INSERT INTO inbox_requests (request_id, applied_seq, status, requester, subject_kind, subject_id, subject_owner,
					entitlement, justification, ticket, duration_seconds, emergency, request_digest, correlation_id)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
				ON CONFLICT (request_id) DO UPDATE SET applied_seq = EXCLUDED.applied_seq, status = EXCLUDED.status
				WHERE inbox_requests.applied_seq < EXCLUDED.applied_seq`,
				req.ID(), int64(sn.Seq), string(req.Status()), s.Requester.ID, string(s.Subject.Kind), s.Subject.ID, s.Subject.Owner,
				s.Entitlement, s.Justification, s.Ticket, s.DurationSeconds, s.Emergency, s.RequestDigest, s.CorrelationID)
		}
		results := tx.SendBatch(ctx, upserts)
		var newer []*events.Request
		for _, sn := range snaps {
			tag, err := results.Exec()
			if err != nil {
				results.Close()
				return fmt.Errorf("inbox: upsert request %s: %w", sn.Request.ID(), err)
			}
			if tag.RowsAffected() > 0 {
				newer = append(newer, sn.Request)
			}
		}
		if err := results.Close(); err != nil {
			return fmt.Errorf("inbox: upsert requests: %w", err)
		}
		rows := &pgx.Batch{}
		for _, req := range newer {
			queueRows(rows, req)
		}
		rows.Queue(`UPDATE inbox_checkpoint SET last_seq = GREATEST(last_seq, $2) WHERE stream = $1`, topology.EventsStream, int64(delivered))
		if err := tx.SendBatch(ctx, rows).Close(); err != nil {
			return fmt.Errorf("inbox: rows of %d requests and the checkpoint: %w", len(newer), err)
		}
		changed = len(newer)
		return nil
	})
	return changed, err
}

// queueRows queues the statements that replace req's slots and exclusions.
func queueRows(batch *pgx.Batch, req *events.Request) {
	id := req.ID()
	batch.Queue(`DELETE FROM inbox_slots WHERE request_id = $1`, id)
	batch.Queue(`DELETE FROM inbox_excluded WHERE request_id = $1`, id)
	slots := approval.Awaiting(req)
	for _, sl := range slots {
		batch.Queue(`INSERT INTO inbox_slots (request_id, stage, kind, stage_name, groups, min_approvals, approvals, deadline, overdue)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			id, sl.Stage, sl.Kind, sl.StageName, sl.Groups, sl.MinApprovals, sl.Approvals, sl.Deadline, sl.Overdue)
	}
	if len(slots) == 0 {
		// Nothing awaits anyone: nobody needs excluding.
		return
	}
	for _, person := range approval.Excluded(req) {
		batch.Queue(`INSERT INTO inbox_excluded (request_id, person) VALUES ($1, $2)`, id, person)
	}
}

// Awaiting lists what awaits person, a member of groups: for each request, the first slot (lowest
// stage) whose groups include one of theirs, leaving out requests they asked for, are the subject of,
// or already reviewed. person must be normalised the way the stream stores identities.
func (in *Inbox) Awaiting(ctx context.Context, person string, groups []string) ([]approval.Item, error) {
	if groups == nil {
		groups = []string{}
	}
	rows, err := in.pool.Query(ctx, `
		SELECT DISTINCT ON (r.request_id)
			r.request_id, s.kind, s.stage, s.stage_name, s.groups, s.min_approvals, s.approvals, s.deadline, s.overdue,
			r.requester, r.subject_kind, r.subject_id, r.subject_owner, r.entitlement, r.justification, r.ticket,
			r.duration_seconds, r.emergency, r.request_digest, r.correlation_id
		FROM inbox_slots s JOIN inbox_requests r USING (request_id)
		WHERE s.groups && $2::text[]
		  AND NOT EXISTS (SELECT 1 FROM inbox_excluded e WHERE e.request_id = s.request_id AND e.person = $1)
		ORDER BY r.request_id, s.stage`, person, groups)
	if err != nil {
		return nil, fmt.Errorf("inbox: awaiting %s: %w", person, err)
	}
	items, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (approval.Item, error) {
		var it approval.Item
		var deadline *time.Time
		var kind string
		err := row.Scan(&it.RequestID, &it.Kind, &it.Stage, &it.StageName, &it.Groups, &it.MinApprovals, &it.Approvals,
			&deadline, &it.Overdue, &it.Requester, &kind, &it.Subject.ID, &it.Subject.Owner, &it.Entitlement,
			&it.Justification, &it.Ticket, &it.DurationSeconds, &it.Emergency, &it.RequestDigest, &it.CorrelationID)
		if deadline != nil {
			utc := deadline.UTC()
			it.Deadline = &utc
		}
		it.Subject.Kind = events.SubjectKind(kind)
		return it, err
	})
	if err != nil {
		return nil, fmt.Errorf("inbox: awaiting %s: %w", person, err)
	}
	return items, nil
}
