package queryd

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/services/query"
	"github.com/grantline/grantline/services/query/postgres"
)

// registerGauges exports the read side's counts, computed at each scrape (postgres.Store.Gauges):
//
//	grantline_requests{status}           requests by lifecycle status
//	grantline_pending_approvals{age}     requests awaiting approval, by how long (under_1h, 1h_to_24h, over_24h)
//	grantline_active_grants              grants not revoked
//	grantline_overdue_revocations        grants past their expiry and not revoked
//
// They are as fresh as the projection, which follows the stream within a second while it keeps up.
func registerGauges(provider metric.MeterProvider, st *postgres.Store, now func() time.Time) error {
	m := provider.Meter("grantline/query")
	requests, err := m.Int64ObservableGauge("grantline_requests", metric.WithDescription("requests by lifecycle status"))
	if err != nil {
		return err
	}
	pending, err := m.Int64ObservableGauge("grantline_pending_approvals",
		metric.WithDescription("requests awaiting approval, by the age of their submission"))
	if err != nil {
		return err
	}
	active, err := m.Int64ObservableGauge("grantline_active_grants", metric.WithDescription("grants not revoked"))
	if err != nil {
		return err
	}
	overdue, err := m.Int64ObservableGauge("grantline_overdue_revocations",
		metric.WithDescription("grants past their expiry and not revoked: revocations that are late"))
	if err != nil {
		return err
	}
	_, err = m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		g, err := st.Gauges(ctx, now())
		if err != nil {
			// No reading rather than a wrong one: the alerts on these gauges also fire on their absence.
			return nil
		}
		for _, s := range []events.Status{events.StatusSubmitted, events.StatusDenied, events.StatusPendingApproval, events.StatusApproved,
			events.StatusGranted, events.StatusRevoked, events.StatusRejected, events.StatusWithdrawn, events.StatusFailed} {
			o.ObserveInt64(requests, g.ByStatus[s], metric.WithAttributes(attribute.String("status", string(s))))
		}
		for _, age := range query.PendingAges() {
			o.ObserveInt64(pending, g.PendingByAge[age], metric.WithAttributes(attribute.String("age", age)))
		}
		o.ObserveInt64(active, g.ActiveGrants)
		o.ObserveInt64(overdue, g.OverdueRevocations)
		return nil
	}, requests, pending, active, overdue)
	return err
}
