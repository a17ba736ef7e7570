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
}

var requestColumns = []string{"id", "status", "requester", "subject_kind", "subject_id", "subject_owner",
	"entitlement", "justification", "ticket", "duration_seconds", "emergency", "channel", "submitted_at",
	"outcome", "policy_revision", "approvers", "review_groups", "open_groups", "reviewers",
	"granted_at", "expires_at", "observed", "revocation_due", "revocation_reason", "revoked_at",
	"last_seq", "version", "view", "state"}

var findingColumns = []string{"id", "connector", "target_ref", "observed", "found_at", "last_seq", "view", "state"}

var grantColumns = []string{"request_id", "entitlement", "requester", "subject_kind", "subject_id", "connector",
	"target_ref", "observed", "granted_at", "expires_at", "revoked_at", "revocation_reason", "observed_after",
	"last_seq", "view"}

// upsert is an INSERT of columns that, for an existing key, takes the new row only if it reflects a
// later stream sequence: rows never move back in time.
func upsert(table string, columns []string, key string) string {
	params, sets := make([]string, len(columns)), []string{}
	for i, c := range columns {
		params[i] = fmt.Sprintf("$%d", i+1)
		if c != key {
			sets = append(sets, c+" = EXCLUDED."+c)
		}
	}
	return fmt.Sprintf(`INSERT INTO %s AS t (%s) VALUES (%s)
		ON CONFLICT (%s) DO UPDATE SET %s, updated_at = now() WHERE t.last_seq < EXCLUDED.last_seq`,
		table, strings.Join(columns, ", "), strings.Join(params, ", "), key, strings.Join(sets, ", "))
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
		upsertRequest: upsert(t("requests"), requestColumns, "id"),
		upsertGrant:   upsert(t("grants"), grantColumns, "request_id"),
		upsertFinding: upsert(t("findings"), findingColumns, "id"),
		insertReview: `INSERT INTO ` + t("reviews") + ` (request_id, position, seq, kind, reviewer, reviewer_groups,
			stage, stage_name, decision, comment, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
			ON CONFLICT (request_id, position) DO NOTHING`,
		insertAudit: `INSERT INTO ` + t("audit_index") + ` (seq, request_id, event_id, type, actor, source, time, stored_at)
			SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
				$7::timestamptz[], $8::timestamptz[])
			ON CONFLICT (seq) DO NOTHING`,
		insertFault: `INSERT INTO ` + t("faults") + ` (seq, request_id, kind, position, problem_seq, event_id, detail)
			VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (seq) DO NOTHING`,
	}
}
