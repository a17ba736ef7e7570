package pgmigrate_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/grantline/grantline/pkg/pgmigrate"
	"github.com/grantline/grantline/pkg/pgtest"
	"github.com/grantline/grantline/pkg/poll"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

const lock = 0x7067746573740a // "pgtest\n"

// The migrations of a small service: people, then a visits table whose migration also inserts a row,
// so a migration run twice shows as two rows.
const (
	people = "-- +goose Up\nCREATE TABLE people (name text PRIMARY KEY);\n"
	visits = "-- +goose Up\nCREATE TABLE visits (name text NOT NULL);\nINSERT INTO visits VALUES ('migration');\n"
)

func set(files ...string) pgmigrate.Migrations {
	fsys := fstest.MapFS{}
	for i := 0; i < len(files); i += 2 {
		fsys[files[i]] = &fstest.MapFile{Data: []byte(files[i+1])}
	}
	return pgmigrate.Migrations{Files: fsys, Lock: lock}
}

// query returns the rows of sql, a query of one text column.
func query(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), sql, args...)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// exists reports whether the search path finds table.
func exists(t *testing.T, pool *pgxpool.Pool, table string) bool {
	t.Helper()
	return query(t, pool, `SELECT (to_regclass($1) IS NOT NULL)::text`, table)[0] == "true"
}

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// applied lists the versions goose records as applied in schema, with the recorded checksums.
func applied(t *testing.T, pool *pgxpool.Pool, schema string) []string {
	t.Helper()
	return query(t, pool, `SELECT v.version_id || ' ' || coalesce(c.sha256, '-') FROM `+schema+`.goose_db_version v
		LEFT JOIN `+schema+`.migration_checksums c ON c.version = v.version_id WHERE v.is_applied ORDER BY v.id`)
}

// TestUpAppliesEachMigrationOnce: a fresh database gets every migration with its checksum; running
// again applies nothing; a schema of its own holds a second, independent copy.
func TestUpAppliesEachMigrationOnce(t *testing.T) {
	pool := pgtest.NewPool(t)
	ctx := context.Background()
	m := set("0001_people.sql", people, "0002_visits.sql", visits)
	for range 2 {
		if err := pgmigrate.Up(ctx, pool, m, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := pgmigrate.Up(ctx, pool, m, "tenant"); err != nil {
		t.Fatal(err)
	}
	want := []string{"0 -", "1 " + sum(people), "2 " + sum(visits)}
	for _, schema := range []string{"public", "tenant"} {
		if diff := cmp.Diff(want, applied(t, pool, schema)); diff != "" {
			t.Errorf("%s: applied versions (-want +got):\n%s", schema, diff)
		}
		if got := query(t, pool, `SELECT count(*)::text FROM `+schema+`.visits`); got[0] != "1" {
			t.Errorf("%s: the visits migration ran %s times", schema, got[0])
		}
	}
}

// TestUpAdoptsTheRunnerBeforeGoose: a database whose schema_migrations lists version 1 (the runner
// before goose) keeps its tables and rows; version 1 is not run again (its CREATE TABLE would fail),
// version 2 is applied, and both checksums are recorded.
func TestUpAdoptsTheRunnerBeforeGoose(t *testing.T) {
	for _, schema := range []string{"", "readside"} {
		t.Run("schema "+schema, func(t *testing.T) {
			pool := pgtest.NewPool(t)
			ctx := context.Background()
			where := "public"
			if schema != "" {
				where = schema
				if _, err := pool.Exec(ctx, `CREATE SCHEMA `+schema); err != nil {
					t.Fatal(err)
				}
			}
			// What the runner before goose left: its table, the first migration's tables, data.
			for _, stmt := range []string{
				`CREATE TABLE ` + where + `.schema_migrations (
					version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
				`INSERT INTO ` + where + `.schema_migrations (version, name) VALUES (1, '0001_people')`,
				`CREATE TABLE ` + where + `.people (name text PRIMARY KEY)`,
				`INSERT INTO ` + where + `.people VALUES ('alice')`,
			} {
				if _, err := pool.Exec(ctx, stmt); err != nil {
					t.Fatal(err)
				}
			}
			m := set("0001_people.sql", people, "0002_visits.sql", visits)
			for range 2 {
				if err := pgmigrate.Up(ctx, pool, m, schema); err != nil {
					t.Fatal(err)
				}
			}
			if diff := cmp.Diff([]string{"0 -", "1 " + sum(people), "2 " + sum(visits)}, applied(t, pool, where)); diff != "" {
				t.Errorf("applied versions (-want +got):\n%s", diff)
			}
			if got := query(t, pool, `SELECT name FROM `+where+`.people UNION ALL SELECT name FROM `+where+`.visits`); !cmp.Equal(got, []string{"alice", "migration"}) {
				t.Errorf("rows after the upgrade: %v", got)
			}
		})
	}
}

// TestUpRefusesALegacyVersionItDoesNotHave: schema_migrations listing a version this build lacks means
// a later release ran here; adopting it blind could mark the wrong thing applied.
func TestUpRefusesALegacyVersionItDoesNotHave(t *testing.T) {
	pool := pgtest.NewPool(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL);
		INSERT INTO schema_migrations VALUES (1, '0001_people'), (7, '0007_later')`); err != nil {
		t.Fatal(err)
	}
	err := pgmigrate.Up(ctx, pool, set("0001_people.sql", people), "")
	if err == nil || !strings.Contains(err.Error(), "version 7") {
		t.Fatalf("adopting an unknown legacy version: %v", err)
	}
	if exists(t, pool, "goose_db_version") {
		t.Fatal("the refused adoption left goose's table behind")
	}
}

// TestUpRefusesAnEditedMigration: once version 1 is applied, a build whose version 1 differs (however
// slightly) is refused before it applies anything, naming the file.
func TestUpRefusesAnEditedMigration(t *testing.T) {
	pool := pgtest.NewPool(t)
	ctx := context.Background()
	if err := pgmigrate.Up(ctx, pool, set("0001_people.sql", people), ""); err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(people, "name text PRIMARY KEY", "name text PRIMARY KEY, born date", 1)
	err := pgmigrate.Up(ctx, pool, set("0001_people.sql", edited, "0002_visits.sql", visits), "")
	if !errors.Is(err, pgmigrate.ErrEdited) || !strings.Contains(err.Error(), "0001_people.sql") {
		t.Fatalf("an edited applied migration: %v, want ErrEdited naming the file", err)
	}
	if diff := cmp.Diff([]string{"0 -", "1 " + sum(people)}, applied(t, pool, "public")); diff != "" {
		t.Errorf("applied after the refusal (-want +got):\n%s", diff)
	}
	if err := pgmigrate.Up(ctx, pool, set("0001_people.sql", people, "0002_visits.sql", visits), ""); err != nil {
		t.Fatalf("the unedited set after a refusal: %v", err)
	}
}

// TestUpRefusesAnInvalidSet: sets that cannot be applied as they are, refused before the database is
// touched.
func TestUpRefusesAnInvalidSet(t *testing.T) {
	pool := pgtest.NewPool(t)
	for _, tc := range []struct {
		name string
		m    pgmigrate.Migrations
	}{
		{"two files of version 1", set("0001_people.sql", people, "1_visits.sql", visits)},
		{"a file without a version", set("0001_people.sql", people, "visits.sql", visits)},
		{"no migrations", set()},
	} {
		if err := pgmigrate.Up(context.Background(), pool, tc.m, ""); !errors.Is(err, pgmigrate.ErrInvalidSet) {
			t.Errorf("%s: %v, want ErrInvalidSet", tc.name, err)
		}
	}
	if got := query(t, pool, `SELECT count(*)::text FROM pg_tables WHERE schemaname = 'public'`); got[0] != "0" {
		t.Fatalf("refused sets created %s tables", got[0])
	}
}

// TestAFailedMigrationLeavesNoTrace: the migration's changes, its version and its checksum are one
// transaction; the migrations before it stay applied, and the corrected migration applies later.
func TestAFailedMigrationLeavesNoTrace(t *testing.T) {
	pool := pgtest.NewPool(t)
	rooms := "-- +goose Up\nCREATE TABLE rooms (name text);\nINSERT INTO %s VALUES ('hall');\n"
	for _, step := range []struct {
		table string
		fails bool
		want  []string
	}{
		{"nowhere", true, []string{"0 -", "1 " + sum(people)}},
		{"rooms", false, []string{"0 -", "1 " + sum(people), "2 " + sum(fmt.Sprintf(rooms, "rooms"))}},
	} {
		err := pgmigrate.Up(context.Background(), pool, set("0001_people.sql", people, "0002_rooms.sql", fmt.Sprintf(rooms, step.table)), "")
		if (err != nil) != step.fails {
			t.Fatalf("inserting into %s: %v, want failure %v", step.table, err, step.fails)
		}
		if diff := cmp.Diff(step.want, applied(t, pool, "public")); diff != "" {
			t.Errorf("inserting into %s: applied (-want +got):\n%s", step.table, diff)
		}
		if exists(t, pool, "rooms") == step.fails {
			t.Errorf("inserting into %s: the rooms table exists %v", step.table, !step.fails)
		}
	}
}

// TestConcurrentMigratorsTakeTurns: two replicas starting together on a fresh database both wait for
// the lock (held here until both are seen waiting), then one applies the migrations and the other
// finds nothing to do.
func TestConcurrentMigratorsTakeTurns(t *testing.T) {
	pool := pgtest.NewPool(t)
	ctx := context.Background()
	holder, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Release()
	if _, err := holder.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(lock)); err != nil {
		t.Fatal(err)
	}
	m := set("0001_people.sql", people, "0002_visits.sql", visits)
	done := make(chan error, 2)
	for range 2 {
		go func() { done <- pgmigrate.Up(ctx, pool, m, "") }()
	}
	poll.Until(t, 10*time.Second, "both migrators to wait for the lock", func() bool {
		got := query(t, pool, `SELECT count(*)::text FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`)
		return got[0] == "2"
	})
	if _, err := holder.Exec(ctx, `SELECT pg_advisory_unlock($1)`, int64(lock)); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff([]string{"0 -", "1 " + sum(people), "2 " + sum(visits)}, applied(t, pool, "public")); diff != "" {
		t.Errorf("applied (-want +got):\n%s", diff)
	}
	if got := query(t, pool, `SELECT count(*)::text FROM visits`); got[0] != "1" {
		t.Errorf("the visits migration ran %s times", got[0])
	}
}
