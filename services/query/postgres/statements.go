package postgres

import (
	"fmt"
	"strings"
)

// statements are the store's SQL with its schema filled in.
type statements struct {
	checkpoint, projected, advance           string
	upsertRequest, upsertGrant, insertReview string
	upsertFinding                            string
	insertAudit, insertFault                 string
	// staged are the tables a large batch copies into staging tables first (see Store.Apply).
	staged []staged
}

// staged is one table written through a staging table: created once per session, emptied at each
// commit, filled by COPY, then merged with the statement that writes one row.
type staged struct {
	table, stage, create, merge string
	columns                     []string
}

var reviewColumns = []string{"request_id", "position", "seq", "kind", "reviewer", "reviewer_groups", "stage", "stage_name",
	"decision", "comment", "at"}

var auditColumns = []string{"seq", "request_id", "event_id", "type", "actor", "source", "time", "stored_at"}

var requestColumns = []string{"id", "status", "requester", "subject_kind", "subject_id", "subject_owner",
	"entitlement", "justification", "ticket", "duration_seconds", "emergency", "channel", "submitted_at",
	"outcome", "policy_revision", "approvers", "review_groups", "open_groups", "reviewers",
	"granted_at", "expires_at", "observed", "revocation_due", "revocation_reason", "revoked_at",
	"last_seq", "version", "view", "state"}

var findingColumns = []string{"id", "connector", "target_ref", "observed", "found_at", "last_seq", "view", "state"}

var grantColumns = []string{"request_id", "entitlement", "requester", "subject_kind", "subject_id", "connector",
	"target_ref", "observed", "granted_at", "expires_at", "revoked_at", "revocation_reason", "observed_after",
	"last_seq", "view"}

// params are the VALUES of one row of columns as parameters.
func params(columns []string) string {
	ps := make([]string, len(columns))
	for i := range columns {
		ps[i] = fmt.Sprintf("$%d", i+1)
	}
	return "VALUES (" + strings.Join(ps, ", ") + ")"
}

// upsert is an INSERT of columns from rows (VALUES or a SELECT) that, for an existing key, takes the
// new row only if it reflects a later stream sequence: rows never move back in time.
func upsert(table string, columns []string, key, rows string) string {
	sets := []string{}
	for _, c := range columns {
		if c != key {
			sets = append(sets, c+" = EXCLUDED."+c)
		}
	}
	return fmt.Sprintf(`INSERT INTO %s AS t (%s) %s
		ON CONFLICT (%s) DO UPDATE SET %s, updated_at = now() WHERE t.last_seq < EXCLUDED.last_seq`,
		table, strings.Join(columns, ", "), rows, key, strings.Join(sets, ", "))
}

// insertNew is an INSERT of columns from rows that leaves a row already there as it is.
func insertNew(table string, columns []string, key, rows string) string {
	return fmt.Sprintf(`INSERT INTO %s (%s) %s ON CONFLICT (%s) DO NOTHING`, table, strings.Join(columns, ", "), rows, key)
}

// stage returns the staging of table (its name within the schema): a temporary table of the same
// columns, and the merge of its rows with write, given the SELECT of them.
func stage(schema, table string, columns []string, write func(rows string) string) staged {
	name := "stage_" + table
	return staged{table: table, stage: name, columns: columns,
		create: fmt.Sprintf(`CREATE TEMP TABLE IF NOT EXISTS %s (LIKE %s.%s INCLUDING DEFAULTS) ON COMMIT DELETE ROWS`, name, schema, table),
		merge:  write(fmt.Sprintf(`SELECT %s FROM pg_temp.%s`, strings.Join(columns, ", "), name))}
}

func newStatements(schema string) statements {
	t := func(name string) string { return schema + "." + name }
	return statements{
		checkpoint: `SELECT last_seq FROM ` + t("checkpoint") + ` WHERE stream = $1`,
		// A request's state is only given when it has no faults (projection.Held).
		projected: `SELECT id, max(last_seq), CASE WHEN bool_or(fault) THEN NULL ELSE (array_agg(state) FILTER (WHERE state IS NOT NULL))[1] END FROM (
				SELECT id, last_seq, state, false AS fault FROM ` + t("requests") + ` WHERE id = ANY($1::text[])
				UNION ALL SELECT id, last_seq, state, false FROM ` + t("findings") + ` WHERE id = ANY($1::text[])
				UNION ALL SELECT request_id, 0, NULL, true FROM ` + t("faults") + ` WHERE request_id = ANY($1::text[])) held
			GROUP BY id`,
		advance: `UPDATE ` + t("checkpoint") + ` SET last_seq = $3, updated_at = now()
			WHERE stream = $1 AND last_seq = $2`,
		upsertRequest: upsert(t("requests"), requestColumns, "id", params(requestColumns)),
		upsertGrant:   upsert(t("grants"), grantColumns, "request_id", params(grantColumns)),
		upsertFinding: upsert(t("findings"), findingColumns, "id", params(findingColumns)),
		insertReview:  insertNew(t("reviews"), reviewColumns, "request_id, position", params(reviewColumns)),
		insertAudit:   insertNew(t("audit_index"), auditColumns, "seq", params(auditColumns)),
		insertFault: `INSERT INTO ` + t("faults") + ` (seq, request_id, kind, position, problem_seq, event_id, detail)
			VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (seq) DO NOTHING`,
		staged: []staged{
			stage(schema, "requests", requestColumns, func(rows string) string { return upsert(t("requests"), requestColumns, "id", rows) }),
			stage(schema, "grants", grantColumns, func(rows string) string { return upsert(t("grants"), grantColumns, "request_id", rows) }),
			stage(schema, "findings", findingColumns, func(rows string) string { return upsert(t("findings"), findingColumns, "id", rows) }),
			stage(schema, "reviews", reviewColumns, func(rows string) string {
				return insertNew(t("reviews"), reviewColumns, "request_id, position", rows)
			}),
			stage(schema, "audit_index", auditColumns, func(rows string) string { return insertNew(t("audit_index"), auditColumns, "seq", rows) }),
		},
	}
}
