package bench

import (
	"context"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/connector"
	pgconnector "github.com/grantline/grantline/pkg/connector/postgres"
	"github.com/grantline/grantline/pkg/events"
)

// WorstCasePoint is the postgres connector's cost per grant, and per revocation, for one person who
// already holds Held grants of the target role, each through a grant role of its own: PostgreSQL's
// membership checks walk all of that person's roles, so the cost grows with Held.
type WorstCasePoint struct {
	Held int
	// Grants is how many grants (and then revocations) were timed.
	Grants int
	// Grant and Revoke are the connector's calls as fulfilment and the revoker make them, each ending
	// with its inspection of the target.
	Grant, Revoke Latency
	// PostgresGrantMS and PostgresRevokeMS are PostgreSQL's CPU (all its processes) per call, in
	// milliseconds.
	PostgresGrantMS, PostgresRevokeMS float64
}

// worstCasePerson is the one person who holds every grant of the worst case.
const worstCasePerson = "worst-case-person"

// worstCase measures, with the postgres connector and after the phases (so nothing else runs on the
// cluster), what one grant costs the connector against the number of grants its person already holds.
func (r *run) worstCase(ctx context.Context) error {
	cfg := r.s.cfg
	if cfg.Connector != pgconnector.Name || len(cfg.WorstCaseHeld) == 0 {
		return nil
	}
	if err := r.waitIdle(ctx, cfg.PhaseTimeout); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.PhaseTimeout)
	defer cancel()
	r.say("worst case: one person holding %v grants, %d grants timed at each", cfg.WorstCaseHeld, cfg.WorstCaseGrants)
	pgCPU := func() time.Duration {
		d, _ := treeCPU(r.s.postmaster())
		return d
	}
	points, err := measureWorstCase(ctx, r.s.dbURL["target"], r.s.cat, cfg.WorstCaseHeld, cfg.WorstCaseGrants, pgCPU)
	r.rep.WorstCase = points
	if err != nil {
		return fmt.Errorf("worst case: %w", err)
	}
	return nil
}

// measureWorstCase gives worstCasePerson, on the target server at targetURL, each number of grants in
// held in turn (filled in bulk, shaped as the connector shapes them) and at each times grants of the
// catalogue's benchmark entitlement through the connector, then their revocations, which bring the
// person back to the number held. pgCPU reads PostgreSQL's CPU time so far.
func measureWorstCase(ctx context.Context, targetURL string, cat *catalogue.Catalogue, held []int, grants int, pgCPU func() time.Duration) ([]WorstCasePoint, error) {
	ent, ok := cat.Entitlement(entitlement)
	if !ok {
		return nil, fmt.Errorf("entitlement %s is not in the bench's catalogue", entitlement)
	}
	roles := map[string]string{entitlement: targetRole}
	conn, err := pgconnector.Open(ctx, targetURL, roles)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if err := conn.EnsureRoles(ctx); err != nil {
		return nil, err
	}
	filler, err := pgx.Connect(ctx, targetURL)
	if err != nil {
		return nil, err
	}
	defer filler.Close(context.WithoutCancel(ctx))
	if _, err := filler.Exec(ctx, "CREATE ROLE "+pgx.Identifier{worstCasePerson}.Sanitize()+" LOGIN"); err != nil {
		return nil, fmt.Errorf("create %s: %w", worstCasePerson, err)
	}
	var points []WorstCasePoint
	filled := 0
	for _, n := range slices.Sorted(slices.Values(held)) {
		if err := fillGrants(ctx, filler, filled, n); err != nil {
			return points, err
		}
		filled = n
		p := WorstCasePoint{Held: n, Grants: grants}
		batch := make([]connector.Grant, grants)
		for i := range batch {
			batch[i] = connector.Grant{ID: events.NewID(), Entitlement: ent, ExpiresAt: time.Now().Add(time.Hour),
				Subject: events.RequestSubject{Kind: events.SubjectHuman, ID: worstCasePerson}}
		}
		var pgMS float64
		if p.Grant, pgMS, err = timeCalls(ctx, batch, conn.Grant, pgCPU); err != nil {
			return points, err
		}
		p.PostgresGrantMS = pgMS
		if p.Revoke, pgMS, err = timeCalls(ctx, batch, conn.Revoke, pgCPU); err != nil {
			return points, err
		}
		p.PostgresRevokeMS = pgMS
		points = append(points, p)
	}
	return points, nil
}

// timeCalls makes call for each grant in turn, checking the target shows what the call should have
// done, and returns the calls' latencies and PostgreSQL's CPU per call in milliseconds.
func timeCalls(ctx context.Context, batch []connector.Grant, call func(context.Context, connector.Grant) (events.Observed, error),
	pgCPU func() time.Duration) (Latency, float64, error) {
	lat := make([]time.Duration, 0, len(batch))
	cpu0 := pgCPU()
	for _, g := range batch {
		t0 := time.Now()
		if _, err := call(ctx, g); err != nil {
			return Latency{}, 0, err
		}
		lat = append(lat, time.Since(t0))
	}
	cpu := pgCPU() - cpu0
	return latencyOf(lat), float64(cpu) / float64(time.Millisecond) / float64(len(batch)), nil
}

// fillGrants gives worstCasePerson grants from number from up to number to, in one statement run by
// the server: a grant role each, member of the target role and granted to the person, as the
// connector makes them (its comment aside, which no membership check reads). Through the connector
// the thousands of fills would take minutes; their cost is not what is measured.
func fillGrants(ctx context.Context, conn *pgx.Conn, from, to int) error {
	if to <= from {
		return nil
	}
	// The names are the bench's own constants, in an alphabet that needs no escaping as literals;
	// format's %I quotes them as identifiers.
	sql := fmt.Sprintf(`DO $$
BEGIN
	FOR i IN %d..%d LOOP
		EXECUTE format('CREATE ROLE %%I NOLOGIN', 'grantline_worst_case_' || i);
		EXECUTE format('GRANT %%I TO %%I', '%s', 'grantline_worst_case_' || i);
		EXECUTE format('GRANT %%I TO %%I', 'grantline_worst_case_' || i, '%s');
	END LOOP;
END $$`, from, to-1, targetRole, worstCasePerson)
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("fill %d grants: %w", to-from, err)
	}
	return nil
}

// printWorstCase lists the connector's cost per grant against the grants the person already holds.
func (rep *Report) printWorstCase(w io.Writer) {
	if len(rep.WorstCase) == 0 {
		return
	}
	fmt.Fprintf(w, "\nWorst case: one person holding many grants (postgres connector called from the bench, after the phases)\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tgrants held\ttimed\tgrant p50\tgrant p99\tPostgreSQL CPU/grant\trevoke p50\trevoke p99\tPostgreSQL CPU/revoke\t")
	for _, p := range rep.WorstCase {
		fmt.Fprintf(tw, "\t%d\t%d\t%s\t%s\t%.2f ms\t%s\t%s\t%.2f ms\t\n", p.Held, p.Grants, ms(p.Grant.P50), ms(p.Grant.P99), p.PostgresGrantMS,
			ms(p.Revoke.P50), ms(p.Revoke.P99), p.PostgresRevokeMS)
	}
	tw.Flush()
}
