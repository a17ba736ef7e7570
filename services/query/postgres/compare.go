package postgres

import (
	"context"
	"encoding/json/jsontext"
	"encoding/json/v2"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// compared are the read side's tables with their keys. The migrations' bookkeeping (pgmigrate's
// tables) is left out: it records when each schema was migrated, not what the stream says.
var compared = []struct {
	table string
	key   []string
}{
	{"checkpoint", []string{"stream"}},
	{"requests", []string{"id"}},
	{"reviews", []string{"request_id", "position"}},
	{"grants", []string{"request_id"}},
	{"findings", []string{"id"}},
	{"audit_index", []string{"seq"}},
	{"faults", []string{"seq"}},
}

// ignored are the projection's own timestamps: when a row was written, not what it says.
var ignored = []string{"updated_at"}

// maxDifferences bounds the report; past it, one line says how many more there are.
const maxDifferences = 1000

// Compare checks that schemas a and b hold the same read side, table by table and row by row, every
// column but the projection's own timestamps. It returns one line per difference ("requests 01J…:
// status: a "granted", b "revoked""), none when the two agree, or an error if either schema cannot be
// read (such as one that was never migrated).
func Compare(ctx context.Context, db *pgxpool.Pool, a, b string) (differences []string, err error) {
	if !ValidSchema(a) || !ValidSchema(b) {
		return nil, fmt.Errorf("compare %q with %q: not valid schema names", a, b)
	}
	more := 0
	for _, t := range compared {
		diffs, err := compareTable(ctx, db, a, b, t.table, t.key)
		if err != nil {
			return nil, err
		}
		for _, d := range diffs {
			if len(differences) < maxDifferences {
				differences = append(differences, d)
			} else {
				more++
			}
		}
	}
	if more > 0 {
		differences = append(differences, fmt.Sprintf("… and %d more differences", more))
	}
	return differences, nil
}

func compareTable(ctx context.Context, db *pgxpool.Pool, a, b, table string, key []string) ([]string, error) {
	keyParts := make([]string, len(key))
	for i, k := range key {
		keyParts[i] = "t." + k + "::text"
	}
	side := func(schema string) string {
		drop := ""
		for _, c := range ignored {
			drop += " - '" + c + "'"
		}
		return fmt.Sprintf(`SELECT concat_ws('/', %s) AS k, to_jsonb(t)%s AS j FROM %s.%s t`,
			strings.Join(keyParts, ", "), drop, pgx.Identifier{schema}.Sanitize(), table)
	}
	sql := fmt.Sprintf(`SELECT coalesce(a.k, b.k), a.j, b.j FROM (%s) a FULL JOIN (%s) b ON a.k = b.k
		WHERE a.j IS DISTINCT FROM b.j ORDER BY 1`, side(a), side(b))
	rows, err := db.Query(ctx, sql)
	if err != nil {
		return nil, fmt.Errorf("compare %s in %s and %s: %w", table, a, b, err)
	}
	var out []string
	var k string
	var ja, jb []byte
	_, err = pgx.ForEachRow(rows, []any{&k, &ja, &jb}, func() error {
		switch {
		case ja == nil:
			out = append(out, fmt.Sprintf("%s %s: only in %s", table, k, b))
		case jb == nil:
			out = append(out, fmt.Sprintf("%s %s: only in %s", table, k, a))
		default:
			cols, err := columnDiffs(ja, jb)
			if err != nil {
				return err
			}
			out = append(out, fmt.Sprintf("%s %s: %s", table, k, strings.Join(cols, "; ")))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("compare %s in %s and %s: %w", table, a, b, err)
	}
	return out, nil
}

// columnDiffs lists the columns whose values differ between two rows given as JSON objects.
func columnDiffs(ja, jb []byte) ([]string, error) {
	var ra, rb map[string]jsontext.Value
	if err := json.Unmarshal(ja, &ra); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(jb, &rb); err != nil {
		return nil, err
	}
	cols := slices.Sorted(maps.Keys(ra))
	for c := range rb {
		if _, ok := ra[c]; !ok {
			cols = append(cols, c)
		}
	}
	var out []string
	for _, c := range cols {
		va, vb := canonical(ra[c]), canonical(rb[c])
		if va != vb {
			out = append(out, fmt.Sprintf("%s: a %s, b %s", c, clip(va), clip(vb)))
		}
	}
	return out, nil
}

func canonical(v jsontext.Value) string {
	if v == nil {
		return "(none)"
	}
	c := v.Clone()
	if err := c.Canonicalize(); err != nil {
		return string(v)
	}
	return string(c)
}

func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}
