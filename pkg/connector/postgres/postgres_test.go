package postgres

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/connector"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// target is a fresh database on the test server with the demo roles, and the connector over it. Roles
// are shared by every database of the server, so each test names its people uniquely.
func target(t *testing.T) (*Connector, *pgxpool.Pool) {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), pgtest.New(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	c, err := New(pool, DemoRoles())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.EnsureRoles(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c, pool
}

func person(t *testing.T) string {
	return "p_" + strings.ToLower(events.NewID()[16:])
}

func grantFor(subject events.RequestSubject, ent string) connector.Grant {
	return connector.Grant{ID: events.NewID(), Entitlement: catalogue.Entitlement{ID: ent, Connector: Name},
		Subject: subject, ExpiresAt: time.Now().Add(time.Hour).Truncate(time.Second)}
}

// holds reports whether role member holds role target by any path.
func holds(t *testing.T, pool *pgxpool.Pool, member, role string) bool {
	t.Helper()
	var ok bool
	err := pool.QueryRow(context.Background(), `SELECT COALESCE((SELECT pg_has_role(m.oid, r.oid, 'MEMBER')
		FROM pg_roles m, pg_roles r WHERE m.rolname = $1 AND r.rolname = $2), false)`, member, role).Scan(&ok)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// memberships counts the rows of pg_auth_members that make member a direct member of role.
func memberships(t *testing.T, pool *pgxpool.Pool, member, role string) int {
	t.Helper()
	var n int
	err := pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid
		JOIN pg_roles m ON m.oid = a.member WHERE r.rolname = $2 AND m.rolname = $1`, member, role).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func exists(t *testing.T, pool *pgxpool.Pool, name string) bool {
	t.Helper()
	var ok bool
	if err := pool.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, name).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

func TestPersonGetsAndLosesTheRole(t *testing.T) {
	c, pool := target(t)
	ctx := context.Background()
	who := person(t)
	g := grantFor(events.RequestSubject{Kind: events.SubjectHuman, ID: who}, "analytics-read")
	if holds(t, pool, who, "analytics_read") {
		t.Fatal("holds the role before the grant")
	}
	if obs, err := c.Inspect(ctx, g); err != nil || obs.Present {
		t.Fatalf("inspect before the grant: %+v %v", obs, err)
	}
	for i := range 2 { // the second grant is a redelivery: it changes nothing
		obs, err := c.Grant(ctx, g)
		if err != nil || !obs.Present || obs.Detail["role"] != "analytics_read" || obs.Detail["grant_role"] != GrantRole(g.ID) ||
			obs.Detail["effective"] != "true" {
			t.Fatalf("grant %d: %+v %v", i+1, obs, err)
		}
	}
	if !holds(t, pool, who, "analytics_read") || memberships(t, pool, who, GrantRole(g.ID)) != 1 ||
		memberships(t, pool, GrantRole(g.ID), "analytics_read") != 1 {
		t.Fatal("after the grant pg_auth_members does not show one path person → grant role → analytics_read")
	}
	for i := range 2 {
		obs, err := c.Revoke(ctx, g)
		if err != nil || obs.Present || obs.Detail["effective"] != "false" {
			t.Fatalf("revoke %d: %+v %v", i+1, obs, err)
		}
	}
	if holds(t, pool, who, "analytics_read") || exists(t, pool, GrantRole(g.ID)) {
		t.Fatal("the role is still held after revocation")
	}
	if !exists(t, pool, who) {
		t.Fatal("revocation dropped the person's own login role")
	}
}

// TestRevokingOneGrantKeepsTheOthers: two overlapping grants of one role to one person, and a
// membership a DBA gave by hand; revoking a grant removes that grant only.
func TestRevokingOneGrantKeepsTheOthers(t *testing.T) {
	c, pool := target(t)
	ctx := context.Background()
	who := person(t)
	subject := events.RequestSubject{Kind: events.SubjectHuman, ID: who}
	first, second := grantFor(subject, "payments-admin"), grantFor(subject, "payments-admin")
	for _, g := range []connector.Grant{first, second} {
		if _, err := c.Grant(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	obs, err := c.Revoke(ctx, first)
	if err != nil || obs.Present || obs.Detail["effective"] != "true" {
		t.Fatalf("revoking the first grant: %+v %v (want absent, but the role still effective through the second)", obs, err)
	}
	if obs, _ := c.Inspect(ctx, second); !obs.Present {
		t.Fatal("revoking the first grant removed the second")
	}

	dba := person(t)
	if _, err := pool.Exec(ctx, "CREATE ROLE "+ident(dba)+" LOGIN IN ROLE payments_admin"); err != nil {
		t.Fatal(err)
	}
	g := grantFor(events.RequestSubject{Kind: events.SubjectHuman, ID: dba}, "payments-admin")
	if _, err := c.Grant(ctx, g); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Revoke(ctx, g); err != nil {
		t.Fatal(err)
	}
	if memberships(t, pool, dba, "payments_admin") != 1 {
		t.Fatal("revocation removed a membership Grantline never gave")
	}
}

func TestServiceAccountLogin(t *testing.T) {
	c, pool := target(t)
	ctx := context.Background()
	account := "svc-" + strings.ToLower(events.NewID()[20:])
	g := grantFor(events.RequestSubject{Kind: events.SubjectServiceAccount, ID: account, Owner: "payments-owners"}, "reporting-db-credential")
	secret, err := connector.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	g.Secret = secret
	login := LoginRole(account, g.ID)
	if !c.IssuesCredential(g) || c.Username(g) != login || exists(t, pool, login) {
		t.Fatalf("before: issues %v, username %s, exists %v", c.IssuesCredential(g), c.Username(g), exists(t, pool, login))
	}
	for i := range 2 {
		obs, err := c.Grant(ctx, g)
		if err != nil || !obs.Present || obs.Detail["login_role"] != login || obs.Detail["valid_until"] != g.ExpiresAt.UTC().Format(time.RFC3339) {
			t.Fatalf("grant %d: %+v %v", i+1, obs, err)
		}
	}
	var canLogin bool
	var validUntil time.Time
	var stored string
	if err := pool.QueryRow(ctx, `SELECT rolcanlogin, rolvaliduntil, rolpassword FROM pg_authid WHERE rolname = $1`, login).
		Scan(&canLogin, &validUntil, &stored); err != nil {
		t.Fatal(err)
	}
	if !canLogin || !validUntil.Equal(g.ExpiresAt) || !holds(t, pool, login, "reporting_read") {
		t.Fatalf("pg_roles: login %v, valid until %s (want %s), member %v", canLogin, validUntil, g.ExpiresAt, holds(t, pool, login, "reporting_read"))
	}
	if strings.Contains(stored, secret) || !verifies(t, stored, secret) {
		t.Fatalf("the server stores %q, which is not a SCRAM verifier of the secret", stored)
	}

	// A session open at revocation is ended: VALID UNTIL alone would let it run on.
	cfg := pool.Config().ConnConfig.Copy()
	cfg.User, cfg.Password = login, secret
	session, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer session.Close(ctx)
	obs, err := c.Revoke(ctx, g)
	if err != nil || obs.Present {
		t.Fatalf("revoke: %+v %v", obs, err)
	}
	if exists(t, pool, login) {
		t.Fatal("the login survived its revocation")
	}
	if err := session.Ping(ctx); err == nil {
		t.Fatal("the login's session survived its revocation")
	}
	if obs, err := c.Revoke(ctx, g); err != nil || obs.Present {
		t.Fatalf("revoking again: %+v %v", obs, err)
	}
}

// verifies checks a stored SCRAM-SHA-256 verifier against password by recomputing it with its salt.
func verifies(t *testing.T, stored, password string) bool {
	t.Helper()
	rest, ok := strings.CutPrefix(stored, "SCRAM-SHA-256$")
	if !ok {
		return false
	}
	iterSalt, _, _ := strings.Cut(rest, "$")
	iters, salt64, _ := strings.Cut(iterSalt, ":")
	n, err1 := strconv.Atoi(iters)
	salt, err2 := base64.StdEncoding.DecodeString(salt64)
	if err1 != nil || err2 != nil {
		return false
	}
	want, err := scramVerifierWith(password, salt, n)
	return err == nil && want == stored
}

func TestConcurrentGrantsOfOneIDMakeOneGrant(t *testing.T) {
	c, pool := target(t)
	who := person(t)
	g := grantFor(events.RequestSubject{Kind: events.SubjectHuman, ID: who}, "analytics-read")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			if _, err := c.Grant(context.Background(), g); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent grant: %v", err)
	}
	if memberships(t, pool, who, GrantRole(g.ID)) != 1 || memberships(t, pool, GrantRole(g.ID), "analytics_read") != 1 {
		t.Fatal("concurrent grants of one grant ID made more (or less) than one grant")
	}
}

func TestHostileNamesStayNames(t *testing.T) {
	c, pool := target(t)
	who := `x"; DROP ROLE analytics_read; --` + strings.ToLower(events.NewID()[20:])
	g := grantFor(events.RequestSubject{Kind: events.SubjectHuman, ID: who}, "analytics-read")
	if _, err := c.Grant(context.Background(), g); err != nil {
		t.Fatal(err)
	}
	if !exists(t, pool, "analytics_read") || !holds(t, pool, who, "analytics_read") {
		t.Fatal("a person's name was executed as SQL")
	}
	if _, err := c.Revoke(context.Background(), g); err != nil {
		t.Fatal(err)
	}
}

// TestErrorClasses: what the request cannot fix is permanent; an unreachable server is transient.
func TestErrorClasses(t *testing.T) {
	c, pool := target(t)
	ctx := context.Background()
	human := events.RequestSubject{Kind: events.SubjectHuman, ID: person(t)}
	gone, err := New(pool, map[string]string{"ghost": "no_such_role_" + strings.ToLower(events.NewID())[:10]})
	if err != nil {
		t.Fatal(err)
	}
	closed, err := pgxpool.New(ctx, "postgres://postgres@127.0.0.1:1/x?connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closed.Close)
	down, _ := New(closed, DemoRoles())

	cases := []struct {
		name      string
		c         *Connector
		g         connector.Grant
		class     string
		permanent bool
	}{
		{"an entitlement without a role mapping", c, grantFor(human, "mainframe-operator"), ClassNoMapping, true},
		{"a mapped role that does not exist", gone, grantFor(human, "ghost"), ClassRoleMissing, true},
		{"a server that does not answer", down, grantFor(human, "analytics-read"), ClassUnavailable, false},
		{"a person whose name is too long", c, grantFor(events.RequestSubject{Kind: events.SubjectHuman, ID: strings.Repeat("a", 64)}, "analytics-read"), ClassBadName, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.c.Grant(ctx, tc.g)
			var ce *connector.Error
			if !errors.As(err, &ce) || ce.Class != tc.class || ce.Permanent != tc.permanent {
				t.Fatalf("%v, want class %s permanent %v", err, tc.class, tc.permanent)
			}
		})
	}
}

func TestParseRoles(t *testing.T) {
	got, err := ParseRoles(" analytics-read=analytics_read, payments-admin = payments_admin ,")
	if err != nil || len(got) != 2 || got["payments-admin"] != "payments_admin" {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range []string{"a", "a=", "=b", "a=pg_read_all_data", "a=" + strings.Repeat("r", 64)} {
		if _, err := ParseRoles(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestLoginRoleNames(t *testing.T) {
	id := events.NewID()
	if got := LoginRole("svc-reporting", id); got != "svc_reporting_"+strings.ToLower(id) {
		t.Fatalf("%s", got)
	}
	if got := LoginRole(strings.Repeat("Long-Name.", 10), id); len(got) > maxName || !strings.HasSuffix(got, strings.ToLower(id)) {
		t.Fatalf("%s (%d bytes)", got, len(got))
	}
}

// TestRevokeBatchOneGrantFails revokes people's grants and a service account's login in one batch
// where one grant role cannot be dropped (it owns a table), another is locked by a session changing it,
// and one entitlement maps to no role: the
// others are revoked and observed absent, each failure is that grant's own, and the same batch again,
// once the table is gone, revokes the one left and changes nothing else.
func TestRevokeBatchOneGrantFails(t *testing.T) {
	c, pool := target(t)
	ctx := context.Background()
	var gs []connector.Grant
	for range 4 {
		gs = append(gs, grantFor(events.RequestSubject{Kind: events.SubjectHuman, ID: person(t)}, "analytics-read"))
	}
	account := "svc_" + strings.ToLower(events.NewID()[18:])
	login := grantFor(events.RequestSubject{Kind: events.SubjectServiceAccount, ID: account, Owner: "payments-owners"}, "reporting-db-credential")
	secret, err := connector.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	login.Secret = secret
	gs = append(gs, login)
	for _, g := range gs {
		if obs, err := c.Grant(ctx, g); err != nil || !obs.Present {
			t.Fatalf("grant %s: %+v %v", g.ID, obs, err)
		}
	}
	unmapped := grantFor(events.RequestSubject{Kind: events.SubjectHuman, ID: person(t)}, "no-such-entitlement")
	gs = append(gs, unmapped)
	stuck := gs[1]
	table := "owned_" + strings.ToLower(stuck.ID)
	for _, sql := range []string{"CREATE TABLE " + ident(table) + " (id int)", "ALTER TABLE " + ident(table) + " OWNER TO " + ident(GrantRole(stuck.ID))} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}

	// Another session changing one grant's role (a stalled target) holds its lock: that grant is busy,
	// at once, and the batch goes on without it.
	locked := gs[3]
	holder, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Release()
	if _, err := holder.Exec(ctx, `SELECT pg_advisory_lock(hashtextextended('grantline-role:' || $1, 0))`, GrantRole(locked.ID)); err != nil {
		t.Fatal(err)
	}

	out := c.RevokeBatch(ctx, gs)
	if _, err := holder.Exec(ctx, `SELECT pg_advisory_unlock_all()`); err != nil {
		t.Fatal(err)
	}
	if len(out) != len(gs) {
		t.Fatalf("%d outcomes for %d grants", len(out), len(gs))
	}
	for i, g := range gs {
		switch r := out[i]; {
		case g.ID == stuck.ID || g.ID == locked.ID:
			if r.Err == nil || connector.IsPermanent(r.Err) || !exists(t, pool, GrantRole(g.ID)) || !holds(t, pool, g.Subject.ID, "analytics_read") {
				t.Fatalf("the grant whose role owns a table or is locked: %+v; want a transient failure and the access kept", r)
			}
		case g.ID == unmapped.ID:
			if !connector.IsPermanent(r.Err) || connector.ClassOf(r.Err) != ClassNoMapping {
				t.Fatalf("the unmapped grant: %+v; want %s", r, ClassNoMapping)
			}
		case r.Err != nil || r.Observed.Present:
			t.Fatalf("grant %d (%s) in the batch: %+v", i, g.Subject.Kind, r)
		case g.ID == login.ID:
			if exists(t, pool, LoginRole(account, g.ID)) {
				t.Fatal("the service account's login survived the batch")
			}
		case exists(t, pool, GrantRole(g.ID)) || holds(t, pool, g.Subject.ID, "analytics_read"):
			t.Fatalf("grant %d: the grant role survived the batch", i)
		}
	}

	if _, err := pool.Exec(ctx, "DROP TABLE "+ident(table)); err != nil {
		t.Fatal(err)
	}
	for i, r := range c.RevokeBatch(ctx, gs[:len(gs)-1]) {
		if r.Err != nil || r.Observed.Present {
			t.Fatalf("grant %d revoked again: %+v", i, r)
		}
	}
	if exists(t, pool, GrantRole(stuck.ID)) || exists(t, pool, GrantRole(locked.ID)) {
		t.Fatal("a grant role is still there after the retry")
	}
}

// TestRevokeAllFallsBackOneAtATime: a connector without RevokeBatch is revoked grant by grant, each
// with its own outcome.
func TestRevokeAllFallsBackOneAtATime(t *testing.T) {
	c, pool := target(t)
	ctx := context.Background()
	a := grantFor(events.RequestSubject{Kind: events.SubjectHuman, ID: person(t)}, "analytics-read")
	b := grantFor(events.RequestSubject{Kind: events.SubjectHuman, ID: person(t)}, "no-such-entitlement")
	if _, err := c.Grant(ctx, a); err != nil {
		t.Fatal(err)
	}
	out := connector.RevokeAll(ctx, oneAtATime{c}, []connector.Grant{a, b})
	if out[0].Err != nil || out[0].Observed.Present || exists(t, pool, GrantRole(a.ID)) || !connector.IsPermanent(out[1].Err) {
		t.Fatalf("one at a time: %+v", out)
	}
}

// oneAtATime hides RevokeBatch: a connector as the webhook one is.
type oneAtATime struct{ c *Connector }

func (o oneAtATime) Grant(ctx context.Context, g connector.Grant) (events.Observed, error) {
	return o.c.Grant(ctx, g)
}

func (o oneAtATime) Revoke(ctx context.Context, g connector.Grant) (events.Observed, error) {
	return o.c.Revoke(ctx, g)
}

func (o oneAtATime) Inspect(ctx context.Context, g connector.Grant) (events.Observed, error) {
	return o.c.Inspect(ctx, g)
}
