// Package pgmigrate brings a service's PostgreSQL tables up to date with the SQL migrations embedded in
// its binary. goose (github.com/pressly/goose/v3) parses and applies them, one transaction per
// migration, and records each applied version in its table (goose_db_version). This package adds what
// goose leaves to its callers:
//
//   - An applied migration that has since been edited is refused. The SHA-256 of each migration file is
//     recorded (migration_checksums) in the transaction that applies it, and every run compares the
//     files with those records before it applies anything. The change belongs in a new migration:
//     a database that already ran the old text would never run the new one.
//   - A set with two files of one version, or a .sql file whose name starts with no version (goose
//     would skip it without a word), is refused.
//   - Runs are serialised across replicas by a session advisory lock, held from the first check to the
//     last migration, so replicas starting together apply each migration once.
//   - A database migrated by the runner that came before goose (its schema_migrations table lists the
//     applied versions) is adopted on the first run: goose's table is created with those versions
//     applied and their files' checksums recorded, so nothing runs twice and no data is touched.
//     schema_migrations is left as it was, so the previous release still starts after a rollback.
package pgmigrate

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"
)

// Migrations are one service's migrations.
type Migrations struct {
	// Files holds the migrations at its root, NNNN_name.sql, each starting with goose's
	// "-- +goose Up" annotation.
	Files fs.FS
	// Lock is the key of the advisory lock that serialises runs on one database (on one schema, for a
	// service that keeps its tables in several). Keeping the key of the runner before goose makes a
	// replica of the previous release and one of this release take turns too.
	Lock int64
}

var (
	// ErrEdited is wrapped by the error for a migration whose file differs from the one applied.
	ErrEdited = errors.New("applied migration edited")
	// ErrInvalidSet is wrapped by the error for a set of migrations that cannot be applied as it is:
	// two files of one version, a file without a version, no migrations at all.
	ErrInvalidSet = errors.New("invalid set of migrations")
)

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Up applies the migrations of m that the database has not had yet, in version order. With schema
// empty, the tables are created where the connection's search_path puts them; otherwise schema is
// created if need be and every migration runs with search_path set to it, so the same files can fill
// several schemas. It returns an error wrapping ErrEdited if an applied migration's file changed,
// ErrInvalidSet for a set that cannot be applied, and goose's or the server's error if a migration
// fails (that migration's transaction is rolled back; those before it stay applied).
func Up(ctx context.Context, pool *pgxpool.Pool, m Migrations, schema string) error {
	if schema != "" && !schemaName.MatchString(schema) {
		return fmt.Errorf("migrate: %q is not a plain schema name", schema)
	}
	where := schema
	if where == "" {
		where = "the default schema"
	}
	sums, err := checksums(m.Files)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", where, err)
	}
	// A database/sql handle of its own, because goose works on one, and because search_path must be
	// set on every connection it opens (and never leak into the pool's).
	cfg := pool.Config().ConnConfig.Copy()
	if schema != "" {
		cfg.RuntimeParams["search_path"] = schema
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()

	b := newBookkeeping(schema, sums)
	provider, err := goose.NewProvider(goose.DialectCustom, db, m.Files, goose.WithStore(b), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("migrate %s: %w: %w", where, ErrInvalidSet, err)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", where, err)
	}
	defer conn.Close()
	// Held until db is closed: closing the session releases it, whatever happened below.
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, m.Lock); err != nil {
		return fmt.Errorf("migrate %s: lock: %w", where, err)
	}
	if err := b.prepare(ctx, conn); err != nil {
		return fmt.Errorf("migrate %s: %w", where, err)
	}
	if err := b.verify(ctx, conn, where); err != nil {
		return err
	}
	if _, err := provider.Up(ctx); err != nil {
		return fmt.Errorf("migrate %s: %w", where, err)
	}
	return nil
}

// migration is one file of a set.
type migration struct {
	file, sha256 string
}

// checksums reads every .sql file at the root of files and returns each version's file and SHA-256.
func checksums(files fs.FS) (map[int64]migration, error) {
	names, err := fs.Glob(files, "*.sql")
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%w: no .sql files", ErrInvalidSet)
	}
	out := map[int64]migration{}
	for _, name := range names {
		version, err := goose.NumericComponent(name)
		if err != nil {
			return nil, fmt.Errorf("%w: %s does not start with a version number", ErrInvalidSet, name)
		}
		if other, ok := out[version]; ok {
			return nil, fmt.Errorf("%w: %s and %s both have version %d", ErrInvalidSet, other.file, name, version)
		}
		body, err := fs.ReadFile(files, name)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(body)
		out[version] = migration{file: path.Base(name), sha256: hex.EncodeToString(sum[:])}
	}
	return out, nil
}

// Tables of the bookkeeping, in the migrated schema.
const (
	versionTable  = "goose_db_version"
	checksumTable = "migration_checksums"
	// legacyTable is where the runner before goose listed the applied versions.
	legacyTable = "schema_migrations"
)

// bookkeeping is goose's Postgres store of applied versions, which also records each version's
// checksum in the transaction that applies it.
type bookkeeping struct {
	database.StoreExtender
	schema            string
	checksums, legacy string
	migrations        map[int64]migration
}

func newBookkeeping(schema string, migrations map[int64]migration) *bookkeeping {
	qualify := func(table string) string {
		if schema == "" {
			return table
		}
		return schema + "." + table
	}
	// goose's Postgres store implements the extended interface (a catalogue query for TableExists).
	store, _ := database.NewStore(database.DialectPostgres, qualify(versionTable))
	return &bookkeeping{StoreExtender: store.(database.StoreExtender), schema: schema,
		checksums: qualify(checksumTable), legacy: qualify(legacyTable), migrations: migrations}
}

// Insert records version as applied, with its checksum, on db: goose calls it in the migration's
// transaction.
func (b *bookkeeping) Insert(ctx context.Context, db database.DBTxConn, req database.InsertRequest) error {
	if err := b.StoreExtender.Insert(ctx, db, req); err != nil {
		return err
	}
	if req.Version == 0 {
		// goose's marker of an initialised table, no migration.
		return nil
	}
	m, ok := b.migrations[req.Version]
	if !ok {
		return fmt.Errorf("record the checksum of version %d: no such migration", req.Version)
	}
	_, err := db.ExecContext(ctx, `INSERT INTO `+b.checksums+` (version, sha256) VALUES ($1, $2)`, req.Version, m.sha256)
	if err != nil {
		return fmt.Errorf("record the checksum of %s: %w", m.file, err)
	}
	return nil
}

// Delete forgets version and its checksum, for goose's down migrations (which Grantline does not run).
func (b *bookkeeping) Delete(ctx context.Context, db database.DBTxConn, version int64) error {
	if err := b.StoreExtender.Delete(ctx, db, version); err != nil {
		return err
	}
	_, err := db.ExecContext(ctx, `DELETE FROM `+b.checksums+` WHERE version = $1`, version)
	return err
}

// prepare creates the schema and the bookkeeping tables that do not exist yet, adopting the versions
// the runner before goose applied, in one transaction.
func (b *bookkeeping) prepare(ctx context.Context, conn *sql.Conn) error {
	return inTx(ctx, conn, func(tx *sql.Tx) error {
		if b.schema != "" {
			if _, err := tx.ExecContext(ctx, `CREATE SCHEMA IF NOT EXISTS `+b.schema); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+b.checksums+` (
			version bigint PRIMARY KEY, sha256 text NOT NULL, recorded_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return err
		}
		exists, err := b.TableExists(ctx, tx)
		if err != nil || exists {
			return err
		}
		if err := b.CreateVersionTable(ctx, tx); err != nil {
			return err
		}
		if err := b.Insert(ctx, tx, database.InsertRequest{Version: 0}); err != nil {
			return err
		}
		var legacy bool
		if err := tx.QueryRowContext(ctx, `SELECT to_regclass($1) IS NOT NULL`, b.legacy).Scan(&legacy); err != nil || !legacy {
			return err
		}
		return b.adopt(ctx, tx)
	})
}

// inTx runs fn in a transaction on conn, committed if fn succeeds.
func inTx(ctx context.Context, conn *sql.Conn, fn func(*sql.Tx) error) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		return errors.Join(err, tx.Rollback())
	}
	return tx.Commit()
}

// adopt marks applied every version the runner before goose listed as applied.
func (b *bookkeeping) adopt(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `SELECT version FROM `+b.legacy+` ORDER BY version`)
	if err != nil {
		return fmt.Errorf("read %s: %w", b.legacy, err)
	}
	var versions []int64
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return err
		}
		versions = append(versions, v)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return fmt.Errorf("read %s: %w", b.legacy, err)
	}
	for _, v := range versions {
		if _, ok := b.migrations[v]; !ok {
			return fmt.Errorf("%s lists version %d, which this build does not have", b.legacy, v)
		}
		if err := b.Insert(ctx, tx, database.InsertRequest{Version: v}); err != nil {
			return err
		}
	}
	return nil
}

// verify compares every applied migration this build has with the checksum recorded when it was
// applied.
func (b *bookkeeping) verify(ctx context.Context, conn *sql.Conn, where string) error {
	rows, err := conn.QueryContext(ctx, `SELECT DISTINCT v.version_id, c.sha256 FROM `+b.Tablename()+` v
		LEFT JOIN `+b.checksums+` c ON c.version = v.version_id WHERE v.is_applied AND v.version_id > 0 ORDER BY 1`)
	if err != nil {
		return fmt.Errorf("migrate %s: read applied versions: %w", where, err)
	}
	defer rows.Close()
	for rows.Next() {
		var version int64
		var recorded sql.NullString
		if err := rows.Scan(&version, &recorded); err != nil {
			return fmt.Errorf("migrate %s: %w", where, err)
		}
		m, ok := b.migrations[version]
		switch {
		case !ok:
			// Applied by a later release; goose leaves it alone, and so does the check.
		case !recorded.Valid:
			return fmt.Errorf("migrate %s: %s was applied without a recorded checksum (not by this runner), so an edit cannot be ruled out",
				where, m.file)
		case recorded.String != m.sha256:
			return fmt.Errorf("migrate %s: %w: %s was applied with sha256 %s and the file now has %s; put the change in a new migration",
				where, ErrEdited, m.file, recorded.String, m.sha256)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("migrate %s: %w", where, err)
	}
	return nil
}
