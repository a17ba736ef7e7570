package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/services/query"
)

// Gauges counts, as of now, the requests by status, the pending ones by age, the active grants and the
// grants past their expiry not revoked yet. The counts run on the status index and the partial index of
// active grants, so a scrape stays cheap as history grows.
func (s *Store) Gauges(ctx context.Context, now time.Time) (query.Gauges, error) {
	g := query.Gauges{ByStatus: map[events.Status]int64{}, PendingByAge: map[string]int64{}}
	schema := pgx.Identifier{s.schema}.Sanitize()
	rows, err := s.pool.Query(ctx, fmt.Sprintf(`SELECT status, count(*) FROM %s.requests GROUP BY status`, schema))
	if err != nil {
		return g, fmt.Errorf("count requests: %w", err)
	}
	for rows.Next() {
		var status string
		var n int64
		if err := rows.Scan(&status, &n); err != nil {
			rows.Close()
			return g, err
		}
		g.ByStatus[events.Status(status)] = n
	}
	if err := rows.Err(); err != nil {
		return g, fmt.Errorf("count requests: %w", err)
	}
	var under, day, over int64
	err = s.pool.QueryRow(ctx, fmt.Sprintf(`SELECT
			count(*) FILTER (WHERE submitted_at > $1::timestamptz - interval '1 hour'),
			count(*) FILTER (WHERE submitted_at <= $1::timestamptz - interval '1 hour' AND submitted_at > $1::timestamptz - interval '24 hours'),
			count(*) FILTER (WHERE submitted_at <= $1::timestamptz - interval '24 hours')
		FROM %s.requests WHERE status = $2`, schema), now, string(events.StatusPendingApproval)).Scan(&under, &day, &over)
	if err != nil {
		return g, fmt.Errorf("count pending approvals: %w", err)
	}
	g.PendingByAge[query.PendingUnderHour], g.PendingByAge[query.PendingUnderDay], g.PendingByAge[query.PendingOverDay] = under, day, over
	err = s.pool.QueryRow(ctx, fmt.Sprintf(`SELECT count(*), count(*) FILTER (WHERE expires_at < $1)
		FROM %s.grants WHERE revoked_at IS NULL`, schema), now).Scan(&g.ActiveGrants, &g.OverdueRevocations)
	if err != nil {
		return g, fmt.Errorf("count grants: %w", err)
	}
	return g, nil
}
