// Package postgres is the PostgreSQL connector: it grants an entitlement's role to a person, or issues
// a short-lived login for a service account, and reads back what the server's catalogs
// (pg_roles, pg_auth_members) show. It can also list every role shaped like its grants (Holdings), for
// the revoker's drift reconciler.
//
// Everything the connector creates is named from the grant ID, which makes each operation idempotent
// and each grant separately revocable:
//
//   - a person gets the target role through a grant role of their own, grantline_<request id>
//     (NOLOGIN, member of the target role, granted to the person's login role). Revoking drops that
//     role, so it never takes away the same role held through another grant or given by a DBA,
//     which a plain REVOKE of the target role would;
//   - a service account gets a login role <account>_<request id> with LOGIN, the reserved password and
//     VALID UNTIL the expiry, member of the target role. Revoking ends its sessions and drops it: the
//     credential is destroyed.
//
// Each change runs in one transaction under an advisory lock on the name it creates, so concurrent
// grants of one grant ID (replicas, redeliveries) serialise and the second finds the work done.
// Identifiers are always quoted with pgx.Identifier; the only literals are the SCRAM verifier and the
// expiry, both from fixed alphabets and quoted on top. The password itself never reaches the server:
// it is sent as a SCRAM-SHA-256 verifier, so it cannot turn up in the server's statement log either.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/grantline/grantline/pkg/connector"
	"github.com/grantline/grantline/pkg/events"
)

// Name is the catalogue's name for this connector.
const Name = "postgres"

// Error classes of the connector.
const (
	ClassUnavailable = "target_unavailable"
	ClassNoMapping   = "no_role_mapping"
	ClassRoleMissing = "target_role_missing"
	ClassBadName     = "invalid_role_name"
)

// Connector grants PostgreSQL roles on one server.
type Connector struct {
	pool     *pgxpool.Pool
	ownsPool bool
	roles    map[string]string
	// PersonLogin says whether a person's role created by the connector may log in (authentication is
	// then pg_hba's business: certificates, LDAP, GSS). Defaults to true.
	personLogin bool
}

// Option configures a Connector.
type Option func(*Connector)

// WithPersonNoLogin makes the roles the connector creates for people NOLOGIN (they are expected to be
// logged in through another role, or created by a directory sync).
func WithPersonNoLogin() Option { return func(c *Connector) { c.personLogin = false } }

// New returns the connector over pool, the target server, with roles mapping each entitlement ID to the
// role it grants (see ParseRoles). It returns an error for a role name PostgreSQL would not accept.
func New(pool *pgxpool.Pool, roles map[string]string, opts ...Option) (*Connector, error) {
	for ent, role := range roles {
		if err := checkName(role); err != nil {
			return nil, fmt.Errorf("postgres connector: role of %s: %w", ent, err)
		}
	}
	c := &Connector{pool: pool, roles: maps.Clone(roles), personLogin: true}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// Open connects to the target server at dsn (a postgres:// URL or key=value string) and returns the
// connector, which owns the connection pool: Close it when done. It returns an error if the DSN is
// malformed or the server cannot be reached.
func Open(ctx context.Context, dsn string, roles map[string]string, opts ...Option) (*Connector, error) {
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres connector: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres connector: target unreachable: %w", err)
	}
	c, err := New(pool, roles, opts...)
	if err != nil {
		pool.Close()
		return nil, err
	}
	c.ownsPool = true
	return c, nil
}

// Close closes the connection pool if Open made it.
func (c *Connector) Close() {
	if c.ownsPool {
		c.pool.Close()
	}
}

// Ping checks that the target server answers, for readiness checks.
func (c *Connector) Ping(ctx context.Context) error { return c.pool.Ping(ctx) }

// EnsureRoles creates the mapped target roles that do not exist yet, as NOLOGIN roles with no
// privileges. It is for development and tests; in production a DBA owns the target roles and their
// privileges, and a missing one fails the grant.
func (c *Connector) EnsureRoles(ctx context.Context) error {
	for _, role := range slices.Sorted(maps.Values(c.roles)) {
		err := c.tx(ctx, []string{role}, func(tx pgx.Tx) error {
			exists, err := roleExists(ctx, tx, role)
			if err != nil || exists {
				return err
			}
			_, err = tx.Exec(ctx, "CREATE ROLE "+ident(role)+" NOLOGIN")
			return err
		})
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && (pgErr.Code == "42710" || pgErr.Code == "23505") {
			// Created meanwhile through another database of the cluster (advisory locks are per
			// database; roles are not).
			err = nil
		}
		if err != nil {
			return fmt.Errorf("ensure role %s: %w", role, err)
		}
	}
	return nil
}

// IssuesCredential reports whether g issues a credential: a grant to a non-human subject is a login.
func (c *Connector) IssuesCredential(g connector.Grant) bool {
	return g.Subject.Kind != events.SubjectHuman
}

// Username is the login role of a service account's grant.
func (c *Connector) Username(g connector.Grant) string { return LoginRole(g.Subject.ID, g.ID) }

// TargetRef names what the grant changes: the grant role or the login role, and the target role.
func (c *Connector) TargetRef(g connector.Grant) string {
	target := c.roles[g.Entitlement.ID]
	if c.IssuesCredential(g) {
		return "role " + LoginRole(g.Subject.ID, g.ID) + " in " + target
	}
	return "role " + GrantRole(g.ID) + " in " + target + " for " + g.Subject.ID
}

// Grant gives g's access: for a person, the target role through their grant role (creating their login
// role if missing); for a service account, a login role with g.Secret that is valid until g.ExpiresAt.
// Granting again changes nothing but the login's password and expiry, which come from the same
// reservation.
func (c *Connector) Grant(ctx context.Context, g connector.Grant) (events.Observed, error) {
	target, err := c.target(g)
	if err != nil {
		return events.Observed{}, err
	}
	if c.IssuesCredential(g) {
		err = c.issueLogin(ctx, g, target)
	} else {
		err = c.grantPerson(ctx, g, target)
	}
	if err != nil {
		return events.Observed{}, err
	}
	return c.Inspect(ctx, g)
}

func (c *Connector) grantPerson(ctx context.Context, g connector.Grant, target string) error {
	person, grantRole := g.Subject.ID, GrantRole(g.ID)
	if err := checkName(person); err != nil {
		return connector.Permanent(ClassBadName, fmt.Errorf("person %q: %w", person, err))
	}
	return c.tx(ctx, []string{grantRole, person}, func(tx pgx.Tx) error {
		if err := requireRole(ctx, tx, target); err != nil {
			return err
		}
		exists, err := roleExists(ctx, tx, person)
		if err != nil {
			return err
		}
		if !exists {
			login := "LOGIN"
			if !c.personLogin {
				login = "NOLOGIN"
			}
			if _, err := tx.Exec(ctx, "CREATE ROLE "+ident(person)+" "+login); err != nil {
				return err
			}
		}
		if exists, err = roleExists(ctx, tx, grantRole); err != nil {
			return err
		}
		if !exists {
			if _, err := tx.Exec(ctx, "CREATE ROLE "+ident(grantRole)+" NOLOGIN"); err != nil {
				return err
			}
			comment := fmt.Sprintf("Grantline grant %s: %s for %s", g.ID, g.Entitlement.ID, person)
			if _, err := tx.Exec(ctx, "COMMENT ON ROLE "+ident(grantRole)+" IS "+literal(comment)); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, "GRANT "+ident(target)+" TO "+ident(grantRole)); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "GRANT "+ident(grantRole)+" TO "+ident(person))
		return err
	})
}

func (c *Connector) issueLogin(ctx context.Context, g connector.Grant, target string) error {
	if g.Secret == "" {
		return connector.Permanent("no_secret", errors.New("a login needs a reserved secret"))
	}
	verifier, err := scramVerifier(g.Secret)
	if err != nil {
		return connector.Transient("internal", err)
	}
	login := LoginRole(g.Subject.ID, g.ID)
	until := literal(g.ExpiresAt.UTC().Format(time.RFC3339Nano))
	return c.tx(ctx, []string{login}, func(tx pgx.Tx) error {
		if err := requireRole(ctx, tx, target); err != nil {
			return err
		}
		exists, err := roleExists(ctx, tx, login)
		if err != nil {
			return err
		}
		if exists {
			_, err = tx.Exec(ctx, "ALTER ROLE "+ident(login)+" LOGIN PASSWORD "+literal(verifier)+" VALID UNTIL "+until)
		} else {
			_, err = tx.Exec(ctx, "CREATE ROLE "+ident(login)+" LOGIN PASSWORD "+literal(verifier)+" VALID UNTIL "+until+
				" IN ROLE "+ident(target))
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "GRANT "+ident(target)+" TO "+ident(login))
		return err
	})
}

// Revoke removes g's access: a person's grant role is dropped (the person keeps their login role and
// any other way they hold the target role); a service account's login is locked, its sessions ended and
// the role dropped, destroying the credential. Revoking what is gone changes nothing.
func (c *Connector) Revoke(ctx context.Context, g connector.Grant) (events.Observed, error) {
	target, err := c.target(g)
	if err != nil {
		return events.Observed{}, err
	}
	if c.IssuesCredential(g) {
		err = c.destroyLogin(ctx, LoginRole(g.Subject.ID, g.ID), target)
	} else {
		grantRole := GrantRole(g.ID)
		err = c.tx(ctx, []string{grantRole}, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "DROP ROLE IF EXISTS "+ident(grantRole))
			return err
		})
	}
	if err != nil {
		return events.Observed{}, err
	}
	return c.Inspect(ctx, g)
}

// RevokeBatch revokes gs (connector.BatchRevoker): the grant roles of people in one transaction (one
// DROP ROLE for them all, but for a role another transaction holds, which fails busy at once) and one
// inspection of them all; a service account's login, whose sessions
// must end between blocking it and dropping it, as Revoke does. When the server refuses the
// transaction (a role that cannot be dropped, say), each grant of it is revoked on its own, so one
// grant's failure is its own and the others go; when the server cannot be reached, every grant of it
// fails with that error.
func (c *Connector) RevokeBatch(ctx context.Context, gs []connector.Grant) []connector.Revocation {
	out := make([]connector.Revocation, len(gs))
	var people []int
	var persons, roles, targets []string
	for i, g := range gs {
		target, err := c.target(g)
		switch {
		case err != nil:
			out[i].Err = err
		case c.IssuesCredential(g):
			out[i].Observed, out[i].Err = c.Revoke(ctx, g)
		default:
			people = append(people, i)
			persons, roles, targets = append(persons, g.Subject.ID), append(roles, GrantRole(g.ID)), append(targets, target)
		}
	}
	if len(people) == 0 {
		return out
	}
	busy, err := c.dropFree(ctx, roles)
	var obs []events.Observed
	if err == nil {
		obs, err = c.inspectPeople(ctx, persons, roles, targets)
	}
	var pgErr *pgconn.PgError
	for k, i := range people {
		switch {
		case busy[k]:
			// Busy whether or not the batch went through: a grant another session is changing is not
			// retried here, where it would wait for that session.
			out[i].Err = connector.Transient(ClassUnavailable, fmt.Errorf("role %s is being changed by another transaction", roles[k]))
		case err == nil:
			out[i].Observed = obs[k]
		case errors.As(err, &pgErr):
			out[i].Observed, out[i].Err = c.Revoke(ctx, gs[i])
		default:
			out[i].Err = err
		}
	}
	return out
}

// dropFree drops, in one transaction, every role of roles whose advisory lock it gets at once, and
// reports the others busy: a grant another transaction is changing (or a stalled target holds) is
// left to be revoked on its own, instead of holding up the whole batch until the attempt times out.
func (c *Connector) dropFree(ctx context.Context, roles []string) (busy []bool, err error) {
	busy = make([]bool, len(roles))
	err = pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT k FROM unnest($1::text[]) WITH ORDINALITY AS x(n, k)
			WHERE NOT pg_try_advisory_xact_lock(hashtextextended('grantline-role:' || n, 0))`, roles)
		if err != nil {
			return err
		}
		var k int
		if _, err := pgx.ForEachRow(rows, []any{&k}, func() error { busy[k-1] = true; return nil }); err != nil {
			return err
		}
		var names []string
		for k, r := range roles {
			if !busy[k] {
				names = append(names, ident(r))
			}
		}
		if len(names) == 0 {
			return nil
		}
		_, err = tx.Exec(ctx, "DROP ROLE IF EXISTS "+strings.Join(names, ", "))
		return err
	})
	return busy, classify(err)
}

func (c *Connector) destroyLogin(ctx context.Context, login, target string) error {
	// First no new sessions (committed, so a login racing the drop is refused), then end the open ones:
	// VALID UNTIL only stops new logins, and a revoked credential must not keep a session.
	err := c.tx(ctx, []string{login}, func(tx pgx.Tx) error {
		exists, err := roleExists(ctx, tx, login)
		if err != nil || !exists {
			return err
		}
		_, err = tx.Exec(ctx, "ALTER ROLE "+ident(login)+" NOLOGIN")
		return err
	})
	if err != nil {
		return err
	}
	if _, err := c.pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, login); err != nil {
		return classify(err)
	}
	return c.tx(ctx, []string{login}, func(tx pgx.Tx) error {
		exists, err := roleExists(ctx, tx, login)
		if err != nil || !exists {
			return err
		}
		// Anything the service created under this login goes to the target role, so dropping the login
		// loses no data; then its remaining privileges go, then the role.
		if targetExists, err := roleExists(ctx, tx, target); err != nil {
			return err
		} else if targetExists {
			if _, err := tx.Exec(ctx, "REASSIGN OWNED BY "+ident(login)+" TO "+ident(target)); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, "DROP OWNED BY "+ident(login)); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "DROP ROLE "+ident(login))
		return err
	})
}

// Inspect reads what the server shows for g. For a person: present when their grant role exists, is a
// member of the target role and is granted to them (detail: role, member, grant_role, and effective,
// whether the person holds the target role by any path). For a service account: present when its login
// role exists, may log in, is a member of the target role and is valid now (detail: login_role, role,
// valid_until).
func (c *Connector) Inspect(ctx context.Context, g connector.Grant) (events.Observed, error) {
	target, err := c.target(g)
	if err != nil {
		return events.Observed{}, err
	}
	if c.IssuesCredential(g) {
		return c.inspectLogin(ctx, LoginRole(g.Subject.ID, g.ID), target)
	}
	return c.inspectPerson(ctx, g.Subject.ID, GrantRole(g.ID), target)
}

func (c *Connector) inspectPerson(ctx context.Context, person, grantRole, target string) (events.Observed, error) {
	obs, err := c.inspectPeople(ctx, []string{person}, []string{grantRole}, []string{target})
	if err != nil {
		return events.Observed{}, err
	}
	return obs[0], nil
}

// inspectPeople is inspectPerson of many people's grants in one query: the k-th of persons, grantRoles
// and targets is one grant, and so is the k-th Observed returned.
func (c *Connector) inspectPeople(ctx context.Context, persons, grantRoles, targets []string) ([]events.Observed, error) {
	rows, err := c.pool.Query(ctx, `
		SELECT
			EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles g ON g.oid = m.member
			        WHERE r.rolname = x.target AND g.rolname = x.grant_role),
			EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles p ON p.oid = m.member
			        WHERE g.rolname = x.grant_role AND p.rolname = x.person),
			COALESCE((SELECT pg_has_role(p.oid, t.oid, 'MEMBER') FROM pg_roles p, pg_roles t
			          WHERE p.rolname = x.person AND t.rolname = x.target), false)
		FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS x(person, grant_role, target, k)
		ORDER BY x.k`, persons, grantRoles, targets)
	if err != nil {
		return nil, classify(err)
	}
	obs := make([]events.Observed, 0, len(persons))
	var roleGranted, member, effective bool
	_, err = pgx.ForEachRow(rows, []any{&roleGranted, &member, &effective}, func() error {
		k := len(obs)
		obs = append(obs, events.Observed{Present: roleGranted && member, Detail: map[string]string{
			"role": targets[k], "member": persons[k], "grant_role": grantRoles[k], "effective": fmt.Sprint(effective),
		}})
		return nil
	})
	if err == nil && len(obs) != len(persons) {
		err = fmt.Errorf("inspected %d of %d grants", len(obs), len(persons))
	}
	if err != nil {
		return nil, classify(err)
	}
	return obs, nil
}

func (c *Connector) inspectLogin(ctx context.Context, login, target string) (events.Observed, error) {
	var canLogin, member, valid bool
	var validUntil *time.Time
	err := c.pool.QueryRow(ctx, `
		SELECT l.rolcanlogin, l.rolvaliduntil,
			COALESCE((SELECT pg_has_role(l.oid, t.oid, 'MEMBER') FROM pg_roles t WHERE t.rolname = $2), false),
			COALESCE(l.rolvaliduntil > now(), true)
		FROM pg_roles l WHERE l.rolname = $1`, login, target).Scan(&canLogin, &validUntil, &member, &valid)
	detail := map[string]string{"login_role": login, "role": target}
	if errors.Is(err, pgx.ErrNoRows) {
		return events.Observed{Present: false, Detail: detail}, nil
	}
	if err != nil {
		return events.Observed{}, classify(err)
	}
	if validUntil != nil {
		detail["valid_until"] = validUntil.UTC().Format(time.RFC3339)
	}
	detail["can_login"] = fmt.Sprint(canLogin)
	return events.Observed{Present: canLogin && member && valid, Detail: detail}, nil
}

// target is the role g's entitlement grants.
func (c *Connector) target(g connector.Grant) (string, error) {
	role, ok := c.roles[g.Entitlement.ID]
	if !ok {
		return "", connector.Permanent(ClassNoMapping, fmt.Errorf("entitlement %s maps to no PostgreSQL role", g.Entitlement.ID))
	}
	return role, nil
}

// tx runs fn in a transaction holding advisory locks on names (in sorted order, so two transactions
// never wait on each other crosswise), and classifies its error.
func (c *Connector) tx(ctx context.Context, names []string, fn func(pgx.Tx) error) error {
	names = slices.Sorted(slices.Values(names))
	err := pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
		// One round trip for all the locks, however many (a batch revocation's), taken in the array's order.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('grantline-role:' || n, 0))
			FROM unnest($1::text[]) WITH ORDINALITY AS x(n, k) ORDER BY k`, names); err != nil {
			return err
		}
		return fn(tx)
	})
	return classify(err)
}

func roleExists(ctx context.Context, tx pgx.Tx, name string) (bool, error) {
	var exists bool
	err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, name).Scan(&exists)
	return exists, err
}

func requireRole(ctx context.Context, tx pgx.Tx, role string) error {
	exists, err := roleExists(ctx, tx, role)
	if err != nil {
		return err
	}
	if !exists {
		return connector.Permanent(ClassRoleMissing, fmt.Errorf("target role %s does not exist", role))
	}
	return nil
}

// classify turns a database error into a connector error. What the request itself cannot fix (a role
// that does not exist, a name PostgreSQL refuses) is permanent; everything else (the server down,
// restarting, out of connections, a privilege an operator can add, a lock timeout) is transient.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var ce *connector.Error
	if errors.As(err, &ce) {
		return err
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "42704": // undefined_object
			return connector.Permanent(ClassRoleMissing, err)
		case "42602", "42622": // invalid_name, name_too_long
			return connector.Permanent(ClassBadName, err)
		}
		return connector.Transient(ClassUnavailable, err)
	}
	// Network errors, timeouts, a closed pool: the server may be back later.
	return connector.Transient(ClassUnavailable, err)
}
