package pgtest_test

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/grantline/grantline/pkg/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func currentDatabase(t *testing.T, conn *pgx.Conn) string {
	t.Helper()
	var name string
	if err := conn.QueryRow(t.Context(), "select current_database()").Scan(&name); err != nil {
		t.Fatal(err)
	}
	return name
}

func TestNewGivesFreshDatabases(t *testing.T) {
	first := connect(t, pgtest.New(t))
	if _, err := first.Exec(t.Context(), "create table widgets (id int primary key); insert into widgets values (1)"); err != nil {
		t.Fatal(err)
	}

	second := connect(t, pgtest.New(t))
	if a, b := currentDatabase(t, first), currentDatabase(t, second); a == b {
		t.Fatalf("both New calls gave database %q", a)
	}
	var tables int
	if err := second.QueryRow(t.Context(),
		"select count(*) from pg_tables where schemaname not in ('pg_catalog', 'information_schema')").Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 0 {
		t.Errorf("second database has %d tables, want none", tables)
	}
}

func TestCleanupDropsDatabase(t *testing.T) {
	var name string
	t.Run("user", func(t *testing.T) {
		// Left open on purpose: the drop must disconnect it.
		conn, err := pgx.Connect(t.Context(), pgtest.New(t))
		if err != nil {
			t.Fatal(err)
		}
		name = currentDatabase(t, conn)
	})

	observer := connect(t, pgtest.New(t))
	var exists bool
	if err := observer.QueryRow(t.Context(), "select exists (select from pg_database where datname = $1)", name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Errorf("database %s of a finished test still exists", name)
	}
}

func TestParallelNew(t *testing.T) {
	for _, n := range []string{"a", "b", "c", "d"} {
		t.Run(n, func(t *testing.T) {
			t.Parallel()
			conn := connect(t, pgtest.New(t))
			if _, err := conn.Exec(t.Context(), "create table same_name (id int)"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestOutageRefusesConnectionsUntilItEnds(t *testing.T) {
	url := pgtest.New(t)
	conn := connect(t, url)
	end := pgtest.Outage(t, url)
	if err := conn.Ping(context.Background()); err == nil {
		t.Fatal("a session survived the outage")
	}
	if c, err := pgx.Connect(context.Background(), url); err == nil {
		c.Close(context.Background())
		t.Fatal("a new connection was accepted during the outage")
	}
	end()
	if currentDatabase(t, connect(t, url)) == "" {
		t.Fatal("no database after the outage")
	}
}
