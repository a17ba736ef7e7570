package postgres

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Roles maps entitlement IDs to the target roles they grant. As a configuration variable
// (GRANTLINE_PG_ROLES) it is written "entitlement=role,entitlement=role" and read once, by pkg/config,
// which reports a malformed mapping under the variable's name.
type Roles map[string]string

// UnmarshalText reads a written role mapping (ParseRoles).
func (r *Roles) UnmarshalText(b []byte) error {
	m, err := ParseRoles(string(b))
	if err != nil {
		return err
	}
	*r = m
	return nil
}

// String writes the mapping as ParseRoles reads it, sorted by entitlement.
func (r Roles) String() string {
	pairs := make([]string, 0, len(r))
	for _, ent := range slices.Sorted(maps.Keys(r)) {
		pairs = append(pairs, ent+"="+r[ent])
	}
	return strings.Join(pairs, ",")
}

// DemoRoles is the role mapping of the demo catalogue (examples/catalogue.yaml).
func DemoRoles() Roles {
	return Roles{
		"analytics-read":          "analytics_read",
		"payments-admin":          "payments_admin",
		"reporting-db-credential": "reporting_read",
	}
}

// ParseRoles reads a role mapping written as "entitlement=role,entitlement=role" (the
// GRANTLINE_PG_ROLES variable).
func ParseRoles(s string) (Roles, error) {
	out := Roles{}
	for pair := range strings.SplitSeq(s, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		ent, role, ok := strings.Cut(pair, "=")
		ent, role = strings.TrimSpace(ent), strings.TrimSpace(role)
		if !ok || ent == "" || role == "" {
			return nil, fmt.Errorf("role mapping %q is not entitlement=role", pair)
		}
		if err := checkName(role); err != nil {
			return nil, fmt.Errorf("role mapping %q: %w", pair, err)
		}
		out[ent] = role
	}
	return out, nil
}

// GrantRole is the role through which a person holds grant id.
func GrantRole(id string) string { return "grantline_" + strings.ToLower(id) }

// LoginRole is the login role issued to service account account for grant id: the account name with
// every character outside [a-z0-9_] replaced by an underscore, cut so the whole fits PostgreSQL's 63
// bytes, then the grant ID.
func LoginRole(account, id string) string {
	prefix := strings.Map(func(r rune) rune {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '_' {
			return r
		}
		if r >= 'A' && r <= 'Z' {
			return r + ('a' - 'A')
		}
		return '_'
	}, account)
	id = strings.ToLower(id)
	if limit := maxName - len(id) - 1; len(prefix) > limit {
		prefix = prefix[:limit]
	}
	return prefix + "_" + id
}

// maxName is PostgreSQL's identifier limit in bytes (NAMEDATALEN - 1).
const maxName = 63

var controlChars = regexp.MustCompile(`[\x00-\x1f\x7f]`)

func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("empty role name")
	case len(name) > maxName:
		return fmt.Errorf("role name %q is longer than %d bytes", name, maxName)
	case controlChars.MatchString(name):
		return fmt.Errorf("role name %q holds control characters", name)
	case strings.HasPrefix(name, "pg_"):
		return fmt.Errorf("role name %q is reserved (pg_)", name)
	}
	return nil
}

// ident quotes an identifier.
func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// literal quotes a string literal as an escape string (E'...'), which reads the same whatever
// standard_conforming_strings says. The values passed here come from fixed alphabets anyway, except a
// role comment naming the person.
func literal(s string) string {
	s = strings.NewReplacer("\x00", "", `\`, `\\`, "'", "''").Replace(s)
	return "E'" + s + "'"
}
