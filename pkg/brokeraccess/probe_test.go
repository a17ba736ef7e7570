package brokeraccess_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/natsembed"
)

// TestProbeFindsTheMatrixEnforced runs the probe the end-to-end suite runs against the container
// cluster: every user is refused something but the operator, and nothing turns out other than DESIGN
// §3.3 says.
func TestProbeFindsTheMatrixEnforced(t *testing.T) {
	b := startBroker(t)
	r, err := brokeraccess.Probe(context.Background(), b.ns.ClientURL(), b.creds)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", r)
	if len(r.Unexpected) > 0 {
		t.Fatalf("the broker does not enforce the matrix:\n%s", r)
	}
	if len(r.Users) != len(b.creds) {
		t.Fatalf("probed %d users of %d", len(r.Users), len(b.creds))
	}
	for _, u := range r.Users {
		switch {
		case r.Attempts[u] < 50:
			t.Errorf("%s: only %d attempts", u, r.Attempts[u])
		case u == brokeraccess.Operator && r.Refused[u] != 0:
			t.Errorf("the operator was refused %d attempts", r.Refused[u])
		case u != brokeraccess.Operator && r.Refused[u] == 0:
			t.Errorf("%s was refused nothing", u)
		}
	}
}

// TestProbeCatchesABrokerThatEnforcesNothing: on a broker that knows the users but lets each do
// anything, the probe reports what should have been refused, and its attempts changed nothing.
func TestProbeCatchesABrokerThatEnforcesNothing(t *testing.T) {
	m, err := brokeraccess.NewMatrix(integrations)
	if err != nil {
		t.Fatal(err)
	}
	creds, pubs := writeKeys(t, m, t.TempDir())
	var users []*server.NkeyUser
	for _, u := range m.Users {
		users = append(users, &server.NkeyUser{Nkey: pubs[u]})
	}
	ns, err := natsembed.Start(natsembed.Options{Dir: t.TempDir(), Port: -1, Users: users})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	op := (&broker{ns: ns, creds: creds}).connect(t, brokeraccess.Operator)
	ctx := context.Background()
	if err := eventstore.Provision(ctx, op.js, eventstore.DefaultSettings); err != nil {
		t.Fatal(err)
	}
	before := streamStates(t, op.js)

	r, err := brokeraccess.Probe(ctx, ns.ClientURL(), creds)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"intake must not append granted",
		"auditor must not delete stream GRANTLINE_EVENTS",
		"query must not reconfigure stream GRANTLINE_EVENTS",
		"policy must not pull from fulfilment",
		"integration-hr-feed must not submit as integration servicenow",
		"approval must not read bucket GRANTLINE_CREDENTIALS",
		"fulfilment must not fake a fired expiry timer",
		"revoker must not subscribe to every inbox",
		"integration-servicenow must not follow integration servicenow's outcomes into the evidence",
		"integration-servicenow must not re-deliver outcomes-servicenow by the older API",
		"integration-hr-feed must not bind to outcomes-servicenow",
		"integration-hr-feed must not acknowledge for outcomes-servicenow",
		"integration-servicenow must not re-filter consumer intake",
		"integration-servicenow must not acknowledge for intake",
	} {
		if !strings.Contains(strings.Join(r.Unexpected, "\n"), want) {
			t.Errorf("the probe did not report %q:\n%s", want, r)
		}
	}
	if after := streamStates(t, op.js); after != before {
		t.Fatalf("probing changed the streams:\nbefore %s\nafter  %s", before, after)
	}
}

// streamStates describes each stream's existence, hardening and message count.
func streamStates(t *testing.T, js jetstream.JetStream) string {
	t.Helper()
	var b strings.Builder
	for _, name := range eventstore.StreamConfigs(eventstore.DefaultSettings) {
		st, err := js.Stream(context.Background(), name.Name)
		if err != nil {
			t.Fatalf("stream %s: %v", name.Name, err)
		}
		info, err := st.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(info.Config.Name)
		if info.Config.DenyDelete {
			b.WriteString(" deny_delete")
		}
		if info.Config.DenyPurge {
			b.WriteString(" deny_purge")
		}
		fmt.Fprintf(&b, " created %s, %d messages; ", info.Created, info.State.Msgs)
	}
	return b.String()
}

// TestAuthConfigRunsARealServer renders the matrix as the fragment `grantline deploy secrets` writes,
// includes it in a nats-server configuration file, and starts a server from that file: it holds the
// same users and permissions as the embedded rendering, and enforces them.
func TestAuthConfigRunsARealServer(t *testing.T) {
	m, err := brokeraccess.NewMatrix(integrations)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	creds, pubs := writeKeys(t, m, dir)
	conf, err := m.AuthConfig(pubs)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "auth.conf"), conf, 0o644); err != nil {
		t.Fatal(err)
	}
	main := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(main, []byte(`host: 127.0.0.1
port: -1
jetstream { store_dir: "`+filepath.Join(dir, "js")+`", sync_interval: always }
include "auth.conf"
`), 0o644); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(main)
	if err != nil {
		t.Fatalf("nats-server refuses the fragment: %v\n%s", err, conf)
	}
	embedded, err := m.NkeyUsers(pubs)
	if err != nil {
		t.Fatal(err)
	}
	if len(opts.Nkeys) != len(embedded) {
		t.Fatalf("the file holds %d users, the matrix %d", len(opts.Nkeys), len(embedded))
	}
	for i, want := range embedded {
		got := opts.Nkeys[i]
		if got.Nkey != want.Nkey || !samePermissions(got.Permissions, want.Permissions) {
			t.Fatalf("user %d (%s) differs between the file and the matrix:\nfile:   %+v %+v\nmatrix: %+v %+v", i, m.Users[i],
				got.Permissions.Publish, got.Permissions.Subscribe, want.Permissions.Publish, want.Permissions.Subscribe)
		}
	}
	opts.NoSigs, opts.NoLog = true, true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("server from the file not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	b := &broker{ns: ns, creds: creds}
	if err := eventstore.Provision(context.Background(), b.connect(t, brokeraccess.Operator).js, eventstore.DefaultSettings); err != nil {
		t.Fatal(err)
	}
	r, err := brokeraccess.Probe(context.Background(), ns.ClientURL(), creds)
	if err != nil || len(r.Unexpected) > 0 {
		t.Fatalf("the server from the file: %v\n%s", err, r)
	}
}

func samePermissions(a, b *server.Permissions) bool {
	same := func(x, y *server.SubjectPermission) bool {
		return strings.Join(x.Allow, " ") == strings.Join(y.Allow, " ") && strings.Join(x.Deny, " ") == strings.Join(y.Deny, " ")
	}
	return same(a.Publish, b.Publish) && same(a.Subscribe, b.Subscribe)
}
