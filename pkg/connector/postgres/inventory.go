package postgres

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/grantline/grantline/pkg/connector"
	"github.com/grantline/grantline/pkg/events"
)

// grantRolePrefix starts the name of every role GrantRole makes.
const grantRolePrefix = "grantline_"

// loginRolePattern matches what LoginRole makes: a name ending in an underscore and a lower-cased
// ULID (Crockford's alphabet, without i, l, o and u).
const loginRolePattern = `_[0-9a-hjkmnp-tv-z]{26}$`

// Holdings lists what the server holds that is shaped like the connector's grants, whoever made it:
// every grantline_* role (but a mapped target role of that name) with the roles it is a member of and
// its members, and every login role named like a service account's grant login. Each carries the grant
// ID its name ends in, when that is a valid request ID, and what the catalogs show: a grant role is
// present when it is a member of some role and granted to someone; a login when it may log in, is a
// member of some role and is valid now. Roles are the server's, so the list spans every database.
func (c *Connector) Holdings(ctx context.Context) ([]connector.Holding, error) {
	targets := slices.Sorted(maps.Values(c.roles))
	rows, err := c.pool.Query(ctx, `
		SELECT g.rolname::text, COALESCE(shobj_description(g.oid, 'pg_authid'), ''),
			ARRAY(SELECT r.rolname::text FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid WHERE m.member = g.oid ORDER BY 1),
			ARRAY(SELECT p.rolname::text FROM pg_auth_members m JOIN pg_roles p ON p.oid = m.member WHERE m.roleid = g.oid ORDER BY 1)
		FROM pg_roles g
		WHERE starts_with(g.rolname::text, $1) AND NOT g.rolname::text = ANY($2)
		ORDER BY 1`, grantRolePrefix, targets)
	if err != nil {
		return nil, classify(err)
	}
	var out []connector.Holding
	for rows.Next() {
		var name, comment string
		var memberOf, members []string
		if err := rows.Scan(&name, &comment, &memberOf, &members); err != nil {
			return nil, classify(err)
		}
		detail := map[string]string{"grant_role": name, "role": strings.Join(memberOf, ","), "member": strings.Join(members, ",")}
		if comment != "" {
			detail["comment"] = comment
		}
		out = append(out, connector.Holding{GrantID: grantIDOf(strings.TrimPrefix(name, grantRolePrefix)), Ref: "role " + name,
			Observed: events.Observed{Present: len(memberOf) > 0 && len(members) > 0, Detail: detail}})
	}
	if err := rows.Err(); err != nil {
		return nil, classify(err)
	}

	rows, err = c.pool.Query(ctx, `
		SELECT l.rolname::text, l.rolcanlogin, l.rolvaliduntil, COALESCE(l.rolvaliduntil > now(), true),
			ARRAY(SELECT r.rolname::text FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid WHERE m.member = l.oid ORDER BY 1)
		FROM pg_roles l
		WHERE l.rolname::text ~ $1 AND NOT starts_with(l.rolname::text, $2)
		ORDER BY 1`, loginRolePattern, grantRolePrefix)
	if err != nil {
		return nil, classify(err)
	}
	for rows.Next() {
		var name string
		var canLogin, valid bool
		var validUntil *time.Time
		var memberOf []string
		if err := rows.Scan(&name, &canLogin, &validUntil, &valid, &memberOf); err != nil {
			return nil, classify(err)
		}
		detail := map[string]string{"login_role": name, "role": strings.Join(memberOf, ","), "can_login": fmt.Sprint(canLogin)}
		if validUntil != nil {
			detail["valid_until"] = validUntil.UTC().Format(time.RFC3339)
		}
		out = append(out, connector.Holding{GrantID: grantIDOf(name[len(name)-26:]), Ref: "role " + name,
			Observed: events.Observed{Present: canLogin && len(memberOf) > 0 && valid, Detail: detail}})
	}
	if err := rows.Err(); err != nil {
		return nil, classify(err)
	}
	return out, nil
}

// grantIDOf returns the request ID a role name ends in (lower-cased by GrantRole and LoginRole), or ""
// if suffix is not one.
func grantIDOf(suffix string) string {
	if id := strings.ToUpper(suffix); events.ValidRequestID(id) {
		return id
	}
	return ""
}
