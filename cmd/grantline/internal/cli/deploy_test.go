package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/checkpoint"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/services/console/consoled"
)

// TestDeploySecretsRunADeployment: `grantline deploy secrets` writes the keys with private modes and
// the owner asked for, refuses to overwrite them; a nats-server including its auth.conf admits the
// operator to provision the streams and the integrations' consumers with `grantline streams provision`, a service to dial its store
// with its signing and NATS keys and append, and enforces the matrix for every user it wrote.
func TestDeploySecretsRunADeployment(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "secrets")
	owner := fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid())
	if os.Getuid() == 0 {
		owner = "65532:65532"
	}
	_, witnessKey, _ := checkpoint.GenerateKey("witness.example")
	code, out := run(t, "deploy", "secrets", "--out", dir, "--integrations", examples+"/integrations.yaml", "--owner", owner, "--witness", witnessKey)
	if code != 0 || !strings.Contains(out, "grantline streams provision") {
		t.Fatalf("deploy secrets: exit %d: %s", code, out)
	}
	trust, err := events.LoadTrustFile(filepath.Join(dir, "trust.json"))
	if err != nil {
		t.Fatal(err)
	}
	checkpointerKey, _ := os.ReadFile(filepath.Join(dir, "signing", "checkpointer.key"))
	vkey, err := checkpoint.VerifierKey(string(checkpointerKey))
	if c := trust.Checkpoints(); err != nil || c == nil || c.Checkpointers[0] != vkey || c.Witnesses[0] != witnessKey || len(trust.Exporters()) != 1 {
		t.Fatalf("the trust file's checkpoints: %+v, %v", c, err)
	}
	for _, f := range []struct {
		path string
		mode os.FileMode
	}{
		{"signing/intake.key", 0o600}, {"signing/revoker.key", 0o600}, {"signing/checkpointer.key", 0o600}, {"signing/exporter.key", 0o600}, {"trust.json", 0o644}, {"nats/operator.nk", 0o600},
		{"nats/auditor.nk", 0o600}, {"nats/query.nk", 0o600}, {"nats/console.nk", 0o600}, {"nats/notifier.nk", 0o600}, {"nats/checkpointer.nk", 0o600}, {"nats/integration-servicenow.nk", 0o600}, {"nats/auth.conf", 0o644},
		{"console/session.key", 0o600},
	} {
		info, err := os.Stat(filepath.Join(dir, f.path))
		if err != nil {
			t.Fatal(err)
		}
		st := info.Sys().(*syscall.Stat_t)
		if info.Mode().Perm() != f.mode || fmt.Sprintf("%d:%d", st.Uid, st.Gid) != owner {
			t.Errorf("%s: mode %o owner %d:%d, want %o %s", f.path, info.Mode().Perm(), st.Uid, st.Gid, f.mode, owner)
		}
	}
	if _, err := consoled.ReadSessionKey(filepath.Join(dir, "console", "session.key")); err != nil {
		t.Errorf("the console does not read its session key: %v", err)
	}
	if code, out := run(t, "deploy", "secrets", "--out", dir); code == 0 || !strings.Contains(out, "refusing to overwrite") {
		t.Fatalf("a second run over the same directory: exit %d: %s", code, out)
	}
	old, _ := os.ReadFile(filepath.Join(dir, "nats", "operator.nk"))
	if code, out := run(t, "deploy", "secrets", "--out", dir, "--force", "--integrations", examples+"/integrations.yaml"); code != 0 {
		t.Fatalf("--force: exit %d: %s", code, out)
	}
	if now, _ := os.ReadFile(filepath.Join(dir, "nats", "operator.nk")); string(now) == string(old) {
		t.Fatal("--force kept the old operator key")
	}

	ns := natsServerFromConfig(t, dir)
	url := ns.ClientURL()
	nkey := func(u brokeraccess.User) string { return filepath.Join(dir, "nats", string(u)+".nk") }
	if code, out := run(t, "streams", "check", "--nats", url, "--nkey", nkey(brokeraccess.Auditor), "--as", "auditor"); code == 0 {
		t.Fatalf("streams check before provisioning: exit 0: %s", out)
	}
	if code, out := run(t, "streams", "provision", "--nats", url, "--nkey", nkey(brokeraccess.Intake), "--as", "intake"); code == 0 {
		t.Fatalf("intake provisioned the streams: %s", out)
	}
	for range 2 { // idempotent
		if code, out := run(t, "streams", "provision", "--nats", url, "--nkey", nkey(brokeraccess.Operator), "--replicas", "1",
			"--integrations", examples+"/integrations.yaml", "--integration", "ticketing"); code != 0 ||
			!strings.Contains(out, topology.EventsStream) || !strings.Contains(out, "consumer "+topology.IntegrationConsumer("servicenow").Durable+" ") ||
			!strings.Contains(out, "consumer "+topology.IntegrationConsumer("ticketing").Durable+" ") {
			t.Fatalf("streams provision: exit %d: %s", code, out)
		}
	}
	if code, out := run(t, "streams", "check", "--nats", url, "--nkey", nkey(brokeraccess.Auditor), "--as", "auditor"); code != 0 {
		t.Fatalf("streams check as the auditor: exit %d: %s", code, out)
	}

	ctx := context.Background()
	env := map[string]string{events.EnvSigningKeyFile: filepath.Join(dir, "signing", "intake.key")}
	conn, err := eventstore.Dial(ctx, eventstore.DialConfig{Service: events.Intake, Getenv: func(k string) string { return env[k] },
		TrustFile: filepath.Join(dir, "trust.json"), NATSURL: url, MonitorURLs: []string{"http://" + ns.MonitorAddr().String()},
		NKeyFile: nkey(brokeraccess.Intake)})
	if err != nil {
		t.Fatalf("intake dialling with its deployed keys: %v", err)
	}
	defer conn.Close()
	sub := events.Submitted{Requester: events.Principal{ID: "alice"}, Subject: events.RequestSubject{Kind: events.SubjectHuman, ID: "alice"},
		Entitlement: "analytics-read", Justification: "deployed", DurationSeconds: 60, Channel: "http"}
	sub.RequestDigest = sub.Digest()
	if _, err := conn.Store.Update(ctx, events.NewID(), func(*events.Request) ([]events.Draft, error) {
		return []events.Draft{{Payload: sub, Actor: "alice"}}, nil
	}); err != nil {
		t.Fatalf("intake appending with its deployed keys: %v", err)
	}

	creds := map[brokeraccess.User]string{}
	entries, _ := os.ReadDir(filepath.Join(dir, "nats"))
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ".nk"); ok {
			creds[brokeraccess.User(name)] = filepath.Join(dir, "nats", e.Name())
		}
	}
	r, err := brokeraccess.Probe(ctx, url, creds)
	// Every user of the matrix, with the demo's one integration (servicenow), has a key and was probed.
	if err != nil || len(r.Unexpected) > 0 || len(r.Users) != len(creds) || len(creds) != len(brokeraccess.Users([]string{"servicenow"})) {
		t.Fatalf("probing the deployed users: %v\n%s", err, r)
	}
}

// natsServerFromConfig starts a nats-server from a configuration file that includes the auth.conf
// deploy secrets wrote, as a deployment's nodes do.
func natsServerFromConfig(t *testing.T, secrets string) *server.Server {
	t.Helper()
	dir := t.TempDir()
	// nats-server includes paths relative to the including file: auth.conf goes beside it.
	auth, err := os.ReadFile(filepath.Join(secrets, "nats", "auth.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "auth.conf"), auth, 0o644); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`host: 127.0.0.1
port: -1
http: "127.0.0.1:-1"
jetstream { store_dir: %q, sync_interval: always }
include "auth.conf"
`, filepath.Join(dir, "js"))), 0o644); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	opts.NoSigs, opts.NoLog = true, true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns
}
