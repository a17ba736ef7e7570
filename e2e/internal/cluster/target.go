package cluster

import (
	"context"
	"errors"
	"fmt"
)

// RoleMembers are the roles that are direct members of role on the target database, each with its
// OID. The connector gives every grant a role of its own, so for an entitlement's role these are the
// grants in force; a grant role that is dropped and created again comes back under another OID, which
// is how a grant applied twice shows on the target.
func (c *Cluster) RoleMembers(ctx context.Context, role string) (map[string]uint32, error) {
	rows, err := c.db.target.Query(ctx, `
		SELECT m.rolname, m.oid::bigint
		FROM pg_auth_members am
		JOIN pg_roles r ON r.oid = am.roleid
		JOIN pg_roles m ON m.oid = am.member
		WHERE r.rolname = $1`, role)
	if err != nil {
		return nil, fmt.Errorf("read the members of %s on the target: %w", role, err)
	}
	defer rows.Close()
	members := map[string]uint32{}
	for rows.Next() {
		var name string
		var oid int64
		if err := rows.Scan(&name, &oid); err != nil {
			return nil, fmt.Errorf("read the members of %s on the target: %w", role, err)
		}
		members[name] = uint32(oid)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the members of %s on the target: %w", role, err)
	}
	return members, nil
}

// StallRole holds, until release is called, the advisory lock the PostgreSQL connector takes on a role
// name before it changes anything involving that role (pkg/connector/postgres). Every
// grant to a person locks the person's role, so with StallRole(ctx, "alice") alice's grants wait before they
// change anything, as on a stalled target, while revocations and everything else go on. The lock belongs to a
// connection of its own, which release closes, so the lock goes even if no unlock could be sent.
func (c *Cluster) StallRole(ctx context.Context, role string) (release func(context.Context) error, err error) {
	conn, err := c.db.target.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("stall %s on the target: %w", role, err)
	}
	// Acquired conns go back to the pool; this one is taken out of it, so the session, and its lock,
	// end with Close.
	pc := conn.Hijack()
	if _, err := pc.Exec(ctx, `SELECT pg_advisory_lock(hashtextextended('grantline-role:' || $1, 0))`, role); err != nil {
		return nil, errors.Join(fmt.Errorf("stall %s on the target: %w", role, err), pc.Close(context.WithoutCancel(ctx)))
	}
	return pc.Close, nil
}
