package postgres

import (
	"context"
	"encoding/json/v2"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/grantline/grantline/services/query"
)

// where builds a WHERE clause and its arguments.
type where struct {
	conds []string
	args  []any
}

// add appends a condition written with ? for its one argument (or none).
func (w *where) add(cond string, arg ...any) {
	for _, a := range arg {
		w.args = append(w.args, a)
		cond = strings.Replace(cond, "?", fmt.Sprintf("$%d", len(w.args)), 1)
	}
	w.conds = append(w.conds, cond)
}

func (w *where) String() string {
	if len(w.conds) == 0 {
		return "TRUE"
	}
	return strings.Join(w.conds, " AND ")
}

// visible restricts requests (alias r) to those rd may read: query.Reader.MayRead in SQL.
func (w *where) visible(rd query.Reader) {
	if rd.Everything {
		return
	}
	w.args = append(w.args, rd.Subject, nonNil(rd.Groups), nonNil(rd.Owns))
	n := len(w.args)
	w.conds = append(w.conds, fmt.Sprintf(`(r.requester = $%[1]d OR r.subject_id = $%[1]d OR r.subject_owner = ANY($%[2]d::text[])
		OR r.review_groups && $%[2]d::text[] OR r.entitlement = ANY($%[3]d::text[]))`, n-2, n-1, n))
}

// List returns the requests rd may read that match f, newest first, at most f.Limit of them, and the ID
// to continue after ("" at the end).
func (s *Store) List(ctx context.Context, rd query.Reader, f query.Filter) ([]query.View, string, error) {
	w := &where{}
	w.visible(rd)
	if f.Status != "" {
		w.add("r.status = ?", string(f.Status))
	}
	if f.Requester != "" {
		w.add("r.requester = ?", f.Requester)
	}
	if f.Entitlement != "" {
		w.add("r.entitlement = ?", f.Entitlement)
	}
	if f.Chain != "" {
		// Back from the named request to the first grant of its chain, then forward over every request
		// that extends one of the chain (the index requests_extends serves the forward steps).
		w.add(fmt.Sprintf(`r.id IN (WITH RECURSIVE back(id, extends) AS (
				SELECT id, view->'extends'->>'request_id' FROM %[1]s.requests WHERE id = ?
				UNION SELECT p.id, p.view->'extends'->>'request_id' FROM %[1]s.requests p JOIN back b ON p.id = b.extends),
			chain(id) AS (
				SELECT id FROM back WHERE extends IS NULL OR extends NOT IN (SELECT id FROM back)
				UNION SELECT n.id FROM %[1]s.requests n JOIN chain c ON n.view->'extends'->>'request_id' = c.id)
			SELECT id FROM chain)`, pgx.Identifier{s.schema}.Sanitize()), f.Chain)
	}
	if f.AwaitingReview {
		// query.AwaitsReviewBy in SQL: open stages for one of the reader's groups, and separation of
		// duties (not the requester, not the subject, not a reviewer already).
		w.add("r.status = 'pending_approval'")
		w.add("r.open_groups && ?::text[]", nonNil(rd.Groups))
		w.add("r.requester <> ?", rd.Subject)
		w.add("r.subject_id <> ?", rd.Subject)
		w.add("NOT (? = ANY(r.reviewers))", rd.Subject)
	}
	if f.After != "" {
		w.add("r.id < ?", f.After)
	}
	w.args = append(w.args, f.Limit+1)
	sql := fmt.Sprintf(`SELECT r.view FROM %s.requests r WHERE %s ORDER BY r.id DESC LIMIT $%d`,
		pgx.Identifier{s.schema}.Sanitize(), w, len(w.args))
	views, err := collect[query.View](ctx, s, sql, w.args)
	if err != nil {
		return nil, "", fmt.Errorf("read side %s: list requests: %w", s.schema, err)
	}
	next := ""
	if len(views) > f.Limit {
		views = views[:f.Limit]
		next = views[len(views)-1].ID
	}
	return views, next, nil
}

// Grants returns the grants of requests rd may read that match f, newest request first, at most
// f.Limit, and the request ID to continue after ("" at the end).
func (s *Store) Grants(ctx context.Context, rd query.Reader, f query.GrantFilter) ([]query.Grant, string, error) {
	w := &where{}
	w.visible(rd)
	if f.Active != nil {
		if *f.Active {
			w.add("g.revoked_at IS NULL")
		} else {
			w.add("g.revoked_at IS NOT NULL")
		}
	}
	if f.Holder != "" {
		w.add("r.subject_id = ?", f.Holder)
	}
	if f.Entitlement != "" {
		w.add("g.entitlement = ?", f.Entitlement)
	}
	if f.After != "" {
		w.add("g.request_id < ?", f.After)
	}
	w.args = append(w.args, f.Limit+1)
	schema := pgx.Identifier{s.schema}.Sanitize()
	sql := fmt.Sprintf(`SELECT g.view FROM %[1]s.grants g JOIN %[1]s.requests r ON r.id = g.request_id
		WHERE %[2]s ORDER BY g.request_id DESC LIMIT $%[3]d`, schema, w, len(w.args))
	grants, err := collect[query.Grant](ctx, s, sql, w.args)
	if err != nil {
		return nil, "", fmt.Errorf("read side %s: list grants: %w", s.schema, err)
	}
	next := ""
	if len(grants) > f.Limit {
		grants = grants[:f.Limit]
		next = grants[len(grants)-1].RequestID
	}
	return grants, next, nil
}

// Findings returns the findings (access no request explains), newest finding ID first, at most
// f.Limit, and the ID to continue after ("" at the end). Findings belong to no request, so only a
// reader of everything (an auditor) is shown any.
func (s *Store) Findings(ctx context.Context, rd query.Reader, f query.FindingFilter) ([]query.Finding, string, error) {
	if !rd.Everything {
		return []query.Finding{}, "", nil
	}
	w := &where{}
	if f.After != "" {
		w.add("id < ?", f.After)
	}
	w.args = append(w.args, f.Limit+1)
	sql := fmt.Sprintf(`SELECT view FROM %s.findings WHERE %s ORDER BY id DESC LIMIT $%d`,
		pgx.Identifier{s.schema}.Sanitize(), w, len(w.args))
	found, err := collect[query.Finding](ctx, s, sql, w.args)
	if err != nil {
		return nil, "", fmt.Errorf("read side %s: list findings: %w", s.schema, err)
	}
	next := ""
	if len(found) > f.Limit {
		found = found[:f.Limit]
		next = found[len(found)-1].ID
	}
	return found, next, nil
}

// HeldAt returns the grants of entitlement that held it at instant at, judged at now (query.HeldAt),
// among the requests rd may read, in the order they were granted.
func (s *Store) HeldAt(ctx context.Context, rd query.Reader, entitlement string, at, now time.Time) ([]query.Holding, error) {
	w := &where{}
	w.visible(rd)
	w.add("g.entitlement = ?", entitlement)
	// A coarse cut in SQL (the database keeps microseconds), the exact rule in Go on the views.
	w.add("g.granted_at <= ?", at.Add(time.Microsecond))
	w.add("(g.revoked_at IS NULL OR g.revoked_at >= ?)", at.Add(-time.Microsecond))
	schema := pgx.Identifier{s.schema}.Sanitize()
	sql := fmt.Sprintf(`SELECT g.view FROM %[1]s.grants g JOIN %[1]s.requests r ON r.id = g.request_id
		WHERE %[2]s ORDER BY g.granted_at, g.request_id`, schema, w)
	grants, err := collect[query.Grant](ctx, s, sql, w.args)
	if err != nil {
		return nil, fmt.Errorf("read side %s: holders of %s: %w", s.schema, entitlement, err)
	}
	out := []query.Holding{}
	for _, g := range grants {
		if held, beyond := query.HeldAt(g, at, now); held {
			out = append(out, query.Holding{Grant: g, BeyondExpiry: beyond})
		}
	}
	return out, nil
}

// collect runs sql and decodes the one JSON column of each row into a T.
func collect[T any](ctx context.Context, s *Store, sql string, args []any) ([]T, error) {
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	out := []T{}
	var raw []byte
	_, err = pgx.ForEachRow(rows, []any{&raw}, func() error {
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("decode stored view: %w", err)
		}
		out = append(out, v)
		return nil
	})
	return out, err
}
