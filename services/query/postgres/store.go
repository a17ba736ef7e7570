// Package postgres keeps the read side in PostgreSQL: the projection's tables in a schema of their own
// (so a rebuild can fill a fresh schema beside the live one), the writes of each projected batch with
// the checkpoint in one transaction, the queries behind the query API, and Compare, which checks two
// schemas hold the same rows.
package postgres

import (
	"context"
	"embed"
	"encoding/json/v2"
	"fmt"
	"hash/fnv"
	"io/fs"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/grantline/grantline/pkg/pgmigrate"
	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/services/query"
	"github.com/grantline/grantline/services/query/projection"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DefaultSchema is the schema of the live read side.
const DefaultSchema = "readside"

var schemaPattern = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// ValidSchema reports whether name can name a read-side schema: lower-case letters, digits and
// underscores, not starting with a digit, at most 63 characters, and not a system schema.
func ValidSchema(name string) bool {
	return schemaPattern.MatchString(name) && !strings.HasPrefix(name, "pg_") && name != "information_schema"
}

// lockKey derives an advisory lock key from purpose and schema, so each schema has its own locks.
func lockKey(purpose, schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("grantline-query/" + purpose + "/" + schema))
	return int64(h.Sum64())
}

// Migrate creates schema if need be and applies the embedded migrations (migrations/NNNN_name.sql)
// that it has not had yet, with search_path set to it, through pgmigrate: each once across replicas
// (under a lock of this schema's own), each in one transaction, and none at all if an applied one was
// edited since.
func Migrate(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	if !ValidSchema(schema) {
		return fmt.Errorf("migrate: %q is not a valid schema name", schema)
	}
	files, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	return pgmigrate.Up(ctx, pool, pgmigrate.Migrations{Files: files, Lock: lockKey("migrate", schema)}, schema)
}

// Store is the read side in one schema: the projection's sink and the query API's source.
type Store struct {
	pool   *pgxpool.Pool
	schema string
	sql    statements
	// CopyAt is the number of rows from which Apply copies a batch's rows (pgx CopyFrom) into staging
	// tables and merges each table in one statement, instead of one statement per row; defaults to 64.
	// A rebuild's batches take the first way, a live projection's single events the second.
	CopyAt int
}

// NewStore returns the read side in schema over pool; Migrate must have run for it.
func NewStore(pool *pgxpool.Pool, schema string) (*Store, error) {
	if !ValidSchema(schema) {
		return nil, fmt.Errorf("%q is not a valid schema name", schema)
	}
	return &Store{pool: pool, schema: schema, sql: newStatements(pgx.Identifier{schema}.Sanitize())}, nil
}

// Schema names the store's schema.
func (s *Store) Schema() string { return s.schema }

// Lead blocks until this process is the one projecting into the store's schema (a session advisory
// lock on a connection held until release), so replicas stand by instead of all writing. It is an
// economy, not the safety: the checkpoint's compare-and-set keeps two writers from both applying an
// event even if the lock's connection is lost.
func (s *Store) Lead(ctx context.Context) (release func(), err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("projection lock: %w", err)
	}
	key := lockKey("project", s.schema)
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, key); err != nil {
		conn.Release()
		return nil, fmt.Errorf("projection lock: %w", err)
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, key); err != nil {
			// Closing the session releases it.
			_ = conn.Conn().Close(ctx)
		}
		conn.Release()
	}, nil
}

// Checkpoint is the stream sequence of the last event the projection applied (0 for none).
func (s *Store) Checkpoint(ctx context.Context) (uint64, error) {
	var seq int64
	if err := s.pool.QueryRow(ctx, s.sql.checkpoint, topology.EventsStream).Scan(&seq); err != nil {
		return 0, fmt.Errorf("read side %s: checkpoint: %w", s.schema, err)
	}
	return uint64(seq), nil
}

// Projected returns, for each of ids the store holds rows or faults of, the stream sequence of the
// request's last event its rows reflect (0 for faults only) and the state kept with them, unless the
// request has faults.
func (s *Store) Projected(ctx context.Context, ids []string) (map[string]projection.Held, error) {
	rows, err := s.pool.Query(ctx, s.sql.projected, ids)
	if err != nil {
		return nil, fmt.Errorf("read side %s: projected requests: %w", s.schema, err)
	}
	out := map[string]projection.Held{}
	var id string
	var seq int64
	var state []byte
	_, err = pgx.ForEachRow(rows, []any{&id, &seq, &state}, func() error {
		out[id] = projection.Held{Seq: uint64(seq), State: state}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read side %s: projected requests: %w", s.schema, err)
	}
	return out, nil
}

// Apply writes a projected batch and moves the checkpoint from b.From to b.To, all in one transaction,
// or returns projection.ErrCheckpointMoved (writing nothing) if the checkpoint is no longer b.From.
// Request and grant rows only move forward (an older version than the stored one changes nothing);
// reviews, audit entries and faults are inserted if missing. So applying what is already there is a
// no-op. A large batch is copied into staging tables (temporary, per session, of the same columns as
// the schema's tables; every schema has the same once migrated) and merged by the same rules.
func (s *Store) Apply(ctx context.Context, b *projection.Batch) error {
	args, err := s.batchArgs(b)
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// First, so that the row lock serialises writers and the loser sees the winner's checkpoint.
		tag, err := tx.Exec(ctx, s.sql.advance, topology.EventsStream, int64(b.From), int64(b.To))
		if err != nil {
			return fmt.Errorf("read side %s: advance checkpoint: %w", s.schema, err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("read side %s: checkpoint is not %d: %w", s.schema, b.From, projection.ErrCheckpointMoved)
		}
		batch := &pgx.Batch{}
		tables := [][][]any{args.requests, args.grants, args.findings, args.reviews, args.audit}
		copyAt := s.CopyAt
		if copyAt <= 0 {
			copyAt = 64
		}
		if len(args.requests)+len(args.audit) >= copyAt {
			if err := s.copyRows(ctx, tx, tables); err != nil {
				return err
			}
		} else {
			for i, one := range []string{s.sql.upsertRequest, s.sql.upsertGrant, s.sql.upsertFinding, s.sql.insertReview, s.sql.insertAudit} {
				for _, a := range tables[i] {
					batch.Queue(one, a...)
				}
			}
		}
		for _, f := range b.Faults {
			batch.Queue(s.sql.insertFault, int64(f.Seq), f.RequestID, f.Problem.Kind, f.Problem.Position,
				int64(f.Problem.Seq), f.Problem.EventID, f.Problem.Detail)
		}
		if err := tx.SendBatch(ctx, batch).Close(); err != nil {
			return fmt.Errorf("read side %s: apply %d..%d: %w", s.schema, b.From+1, b.To, err)
		}
		return nil
	})
}

// copyRows writes tables (the rows of s.sql.staged, in its order) through the staging tables: each
// created if this session lacks it, filled by COPY, merged into the schema's table; the commit empties it.
func (s *Store) copyRows(ctx context.Context, tx pgx.Tx, tables [][][]any) error {
	for i, st := range s.sql.staged {
		if len(tables[i]) == 0 {
			continue
		}
		if _, err := tx.Exec(ctx, st.create); err != nil {
			return fmt.Errorf("read side %s: stage %s: %w", s.schema, st.table, err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"pg_temp", st.stage}, st.columns, pgx.CopyFromRows(tables[i])); err != nil {
			return fmt.Errorf("read side %s: copy %s: %w", s.schema, st.table, err)
		}
		if _, err := tx.Exec(ctx, st.merge); err != nil {
			return fmt.Errorf("read side %s: merge %s: %w", s.schema, st.table, err)
		}
	}
	return nil
}

type applyArgs struct {
	requests, grants, reviews, findings, audit [][]any
}

func (s *Store) batchArgs(b *projection.Batch) (applyArgs, error) {
	var a applyArgs
	for _, rows := range b.Requests {
		if f := rows.Finding; f != nil {
			fa, err := findingArgs(*f, rows.State)
			if err != nil {
				return a, err
			}
			a.findings = append(a.findings, fa)
		} else {
			req, err := requestArgs(rows)
			if err != nil {
				return a, err
			}
			a.requests = append(a.requests, req)
		}
		if rows.Grant != nil {
			g, err := grantArgs(*rows.Grant, rows.Request.View.LastSeq)
			if err != nil {
				return a, err
			}
			a.grants = append(a.grants, g)
		}
		for _, r := range rows.Reviews {
			a.reviews = append(a.reviews, []any{r.RequestID, r.Position, int64(r.Seq), r.Kind, r.Reviewer, nonNil(r.ReviewerGroups),
				r.Stage, r.StageName, r.Decision, r.Comment, r.At})
		}
		for _, e := range rows.Audit {
			a.audit = append(a.audit, []any{int64(e.Seq), e.RequestID, e.EventID, string(e.Type), e.Actor, e.Source, e.Time, e.StoredAt})
		}
	}
	return a, nil
}

func requestArgs(rows projection.Rows) ([]any, error) {
	v, r := rows.Request.View, rows.Request
	view, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode view of %s: %w", v.ID, err)
	}
	var outcome, revision string
	if v.Decision != nil {
		outcome, revision = string(v.Decision.Outcome), v.Decision.PolicyRevision
	}
	var grantedAt, expiresAt, revokedAt *time.Time
	var observed []byte
	revocationReason := ""
	if g := rows.Grant; g != nil {
		grantedAt, expiresAt, revokedAt, revocationReason = &g.GrantedAt, &g.ExpiresAt, g.RevokedAt, g.RevocationReason
		if observed, err = json.Marshal(g.Observed); err != nil {
			return nil, err
		}
	}
	return []any{v.ID, string(v.Status), v.Requester.ID, string(v.Subject.Kind), v.Subject.ID, v.Subject.Owner,
		v.Entitlement, v.Justification, v.Ticket, v.DurationSeconds, v.Emergency, v.Channel, v.SubmittedAt,
		outcome, revision, nonNil(v.Approvers), nonNil(r.ReviewGroups), nonNil(r.OpenGroups), nonNil(r.Reviewers),
		grantedAt, expiresAt, observed, v.RevocationDue, revocationReason, revokedAt, int64(v.LastSeq), v.Version, view, rows.State}, nil
}

func findingArgs(f query.Finding, state []byte) ([]any, error) {
	view, err := json.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("encode finding %s: %w", f.ID, err)
	}
	observed, err := json.Marshal(f.Observed)
	if err != nil {
		return nil, err
	}
	return []any{f.ID, f.Connector, f.TargetRef, observed, f.FoundAt, int64(f.LastSeq), view, state}, nil
}

func grantArgs(g query.Grant, lastSeq uint64) ([]any, error) {
	view, err := json.Marshal(g)
	if err != nil {
		return nil, fmt.Errorf("encode grant of %s: %w", g.RequestID, err)
	}
	observed, err := json.Marshal(g.Observed)
	if err != nil {
		return nil, err
	}
	var after []byte
	if g.ObservedAfter != nil {
		if after, err = json.Marshal(g.ObservedAfter); err != nil {
			return nil, err
		}
	}
	return []any{g.RequestID, g.Entitlement, g.Requester, string(g.Subject.Kind), g.Subject.ID, g.Connector, g.TargetRef,
		observed, g.GrantedAt, g.ExpiresAt, g.RevokedAt, g.RevocationReason, after, int64(lastSeq), view}, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
