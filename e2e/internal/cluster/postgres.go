package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/grantline/grantline/pkg/pglocal"
)

// targetRoles are the roles the PostgreSQL connector grants on the target, by entitlement
// (examples/catalogue.yaml); GRANTLINE_PG_ROLES tells fulfilment and the revoker the same mapping.
var targetRoles = map[string]string{
	"analytics-read":          "analytics_read",
	"payments-admin":          "payments_admin",
	"reporting-db-credential": "reporting_read",
}

func pgRolesEnv() string {
	var pairs []string
	for _, ent := range slices.Sorted(maps.Keys(targetRoles)) {
		pairs = append(pairs, ent+"="+targetRoles[ent])
	}
	return strings.Join(pairs, ",")
}

// database is the host's PostgreSQL: a private cluster from the installed binaries, listening on
// 127.0.0.1, which the containers reach through the host network. It holds the services' database
// (the approval inbox and the read side) and the target database the connector grants on.
type database struct {
	cluster    *pglocal.Cluster
	servicesDB string
	targetDB   string
	target     *pgxpool.Pool
}

func startDatabase(ctx context.Context) (*database, error) {
	// Its data directory is a fresh one under the system's temporary directory: PostgreSQL runs as its
	// own OS user when we are root, and that user must be able to reach it.
	cluster, err := pglocal.Start(ctx, pglocal.Options{})
	if err != nil {
		return nil, err
	}
	d := &database{cluster: cluster}
	if err := d.prepare(ctx); err != nil {
		return nil, errors.Join(err, d.close(ctx))
	}
	return d, nil
}

func (d *database) prepare(ctx context.Context) error {
	var err error
	if d.servicesDB, err = d.cluster.CreateDatabase(ctx, "grantline"); err != nil {
		return err
	}
	if d.targetDB, err = d.cluster.CreateDatabase(ctx, "grantline_target"); err != nil {
		return err
	}
	if d.target, err = pgxpool.New(ctx, d.targetDB); err != nil {
		return err
	}
	// What the target's DBA set up before Grantline was connected: the roles entitlements map to.
	for _, role := range slices.Sorted(maps.Values(targetRoles)) {
		if _, err := d.target.Exec(ctx, "CREATE ROLE "+pgx.Identifier{role}.Sanitize()+" NOLOGIN"); err != nil {
			return fmt.Errorf("create target role %s: %w", role, err)
		}
	}
	return nil
}

func (d *database) close(ctx context.Context) error {
	if d.target != nil {
		d.target.Close()
	}
	return d.cluster.Stop(ctx)
}

// Role is a role as the target database shows it.
type Role struct {
	Exists   bool
	CanLogin bool
	// MemberOf are the roles it is a direct member of; Members the roles that are direct members of it.
	MemberOf, Members []string
}

// TargetRole reads role from the target database's catalogue, the way its DBA would check it.
func (c *Cluster) TargetRole(ctx context.Context, role string) (Role, error) {
	var r Role
	err := c.db.target.QueryRow(ctx, `
		SELECT r.rolcanlogin,
			ARRAY(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid ORDER BY 1),
			ARRAY(SELECT p.rolname FROM pg_auth_members m JOIN pg_roles p ON p.oid = m.member WHERE m.roleid = r.oid ORDER BY 1)
		FROM pg_roles r WHERE r.rolname = $1`, role).Scan(&r.CanLogin, &r.MemberOf, &r.Members)
	if errors.Is(err, pgx.ErrNoRows) {
		return Role{}, nil
	}
	if err != nil {
		return Role{}, fmt.Errorf("read role %s on the target: %w", role, err)
	}
	r.Exists = true
	return r, nil
}

// Databases of the host's PostgreSQL that RefuseConnections can take away.
const (
	// ServicesDatabase holds the approval inbox and the read side (approval and query).
	ServicesDatabase = "grantline"
	// TargetDatabase is the target the connector grants on (fulfilment and the revoker).
	TargetDatabase = "grantline_target"
)

// RefuseConnections makes database (ServicesDatabase or TargetDatabase) refuse every new connection
// and ends the sessions it has, as a server that went down does to its clients, until restore is
// called; the other database goes on serving. The harness's own reads of the target (TargetRole,
// RoleMembers) fail meanwhile too.
func (c *Cluster) RefuseConnections(ctx context.Context, database string) (restore func(context.Context) error, err error) {
	allow := func(ctx context.Context, allowed bool) error {
		conn, err := pgx.Connect(ctx, c.db.cluster.URL())
		if err != nil {
			return err
		}
		defer conn.Close(context.WithoutCancel(ctx))
		if _, err := conn.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s WITH ALLOW_CONNECTIONS %t", pgx.Identifier{database}.Sanitize(), allowed)); err != nil {
			return err
		}
		if allowed {
			return nil
		}
		_, err = conn.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, database)
		return err
	}
	if err := allow(ctx, false); err != nil {
		return nil, fmt.Errorf("refuse connections to %s: %w", database, err)
	}
	return func(ctx context.Context) error {
		if err := allow(ctx, true); err != nil {
			return fmt.Errorf("accept connections to %s again: %w", database, err)
		}
		return nil
	}, nil
}
