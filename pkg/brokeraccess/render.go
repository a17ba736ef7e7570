package brokeraccess

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// publicKeys returns each user's public key from keys, in matrix order, or an error naming the users
// without a valid one.
func (m Matrix) publicKeys(keys map[User]string) ([]string, error) {
	var out []string
	var missing []string
	for _, u := range m.Users {
		k := keys[u]
		if !nkeys.IsValidPublicUserKey(k) {
			missing = append(missing, string(u))
		}
		out = append(out, k)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("brokeraccess: no valid public user nkey for %s", strings.Join(missing, ", "))
	}
	return out, nil
}

// NkeyUsers renders the matrix for an embedded server (server.Options.Nkeys): one user per public key
// in keys, which must hold every user of the matrix.
func (m Matrix) NkeyUsers(keys map[User]string) ([]*server.NkeyUser, error) {
	pubs, err := m.publicKeys(keys)
	if err != nil {
		return nil, err
	}
	var users []*server.NkeyUser
	for i, u := range m.Users {
		p := m.Permissions[u]
		users = append(users, &server.NkeyUser{Nkey: pubs[i], Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: p.Publish.Allow, Deny: p.Publish.Deny},
			Subscribe: &server.SubjectPermission{Allow: p.Subscribe.Allow, Deny: p.Subscribe.Deny},
		}})
	}
	return users, nil
}

// AuthConfig renders the matrix as a nats-server configuration fragment, `authorization { users = [
// ... ] }` with the public keys in keys (which must hold every user), for every node's configuration
// to include.
func (m Matrix) AuthConfig(keys map[User]string) ([]byte, error) {
	pubs, err := m.publicKeys(keys)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(`# Grantline's NATS users and what each may do, derived from pkg/brokeraccess (DESIGN §3.3).
# Generated: regenerate with "grantline deploy secrets" rather than editing. Public keys only: each
# user keeps its seed. Include this file in every nats-server's configuration: include "auth.conf"
authorization {
  users = [
`)
	for i, u := range m.Users {
		p := m.Permissions[u]
		fmt.Fprintf(&b, "    # %s\n    {\n      nkey: %q\n      permissions: {\n", u, pubs[i])
		for _, dir := range []struct {
			name string
			s    Subjects
		}{{"publish", p.Publish}, {"subscribe", p.Subscribe}} {
			fmt.Fprintf(&b, "        %s: {\n", dir.name)
			writeList(&b, "allow", dir.s.Allow)
			writeList(&b, "deny", dir.s.Deny)
			b.WriteString("        }\n")
		}
		b.WriteString("      }\n    }\n")
	}
	b.WriteString("  ]\n}\n")
	return b.Bytes(), nil
}

// writeList writes one permission list, each subject quoted: unquoted, "$JS..." would be read as a
// variable reference.
func writeList(b *bytes.Buffer, name string, subjects []string) {
	if len(subjects) == 0 {
		return
	}
	fmt.Fprintf(b, "          %s: [\n", name)
	for _, s := range subjects {
		fmt.Fprintf(b, "            %q\n", s)
	}
	b.WriteString("          ]\n")
}
