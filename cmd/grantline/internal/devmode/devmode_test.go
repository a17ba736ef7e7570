package devmode

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/pgtest"
	"github.com/grantline/grantline/pkg/poll"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// testConfig runs dev on free ports with a fresh database from the shared test cluster.
func testConfig(t *testing.T, dir string) Config {
	return Config{DataDir: dir, HTTPAddr: "127.0.0.1:0", NATSPort: -1, NATSMonitorPort: -1, Examples: "../../../../examples",
		DatabaseURL: pgtest.New(t)}
}

func start(t *testing.T, cfg Config) *Env {
	t.Helper()
	e, err := Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("start dev: %v", err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	// Runs before the close: every service ran as its own NATS user, and the broker refused none of them
	// anything.
	t.Cleanup(func() {
		if v := e.PermissionViolations(); len(v) > 0 {
			t.Errorf("the broker refused the services %d times:\n%s", len(v), strings.Join(v, "\n"))
		}
	})
	return e
}

// connectAs opens a connection to dev's NATS server as user, closed when the test ends.
func connectAs(t testing.TB, e *Env, user brokeraccess.User) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	opts, err := brokeraccess.ClientOptions(user, e.NATSKeys().Seeds[user])
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(e.NATSURL(), opts...)
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestDevStartsHealthyAndHardened(t *testing.T) {
	// This one lets dev start its own private PostgreSQL, as it does for a newcomer; the postgres user
	// must be able to reach the data directory, which t.TempDir's private parent does not allow.
	dir, err := os.MkdirTemp("", "grantline-dev-test-")
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg := testConfig(t, filepath.Join(dir, "data"))
	cfg.DatabaseURL = ""
	e := start(t, cfg)
	// Readiness is asked of NATS and the databases on each request, each check within a short timeout
	// that a busy machine can miss once: ready means it answers 200, not that its first answer is.
	poll.Until(t, 20*time.Second, "dev's /readyz to answer 200", func() bool {
		code, body := get(t, "http://"+e.HTTPAddr()+"/readyz")
		if code != http.StatusOK {
			t.Logf("/readyz answered %d: %s", code, body)
		}
		return code == http.StatusOK
	})
	for _, path := range []string{"/livez", "/metrics"} {
		if code, body := get(t, "http://"+e.HTTPAddr()+path); code != http.StatusOK {
			t.Fatalf("%s answered %d: %s", path, code, body)
		}
	}
	if nc, err := nats.Connect(e.NATSURL()); err == nil {
		nc.Close()
		t.Fatal("dev's NATS server admitted a client without credentials")
	}
	_, js := connectAs(t, e, brokeraccess.Auditor)
	if err := eventstore.Check(context.Background(), js); err != nil {
		t.Fatalf("streams after dev start, as the auditor: %v", err)
	}
	var out strings.Builder
	e.Describe(&out)
	for _, want := range []string{e.HTTPAddr(), e.NATSURL(), "GRANTLINE_EVENTS", "fsync on every write", e.MailURL()} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the description does not mention %q:\n%s", want, out.String())
		}
	}
}

func TestDevKeepsKeysAndEventsAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	first := start(t, cfg)
	keyID := first.Keys().Signers[events.Intake].KeyID()
	ctx := context.Background()
	nc, js := connectAs(t, first, brokeraccess.Intake)
	store, err := eventstore.Open(ctx, js, eventstore.Config{Signer: first.Keys().Signers[events.Intake],
		Verifier: first.Keys().Verifier, Durability: eventstore.EmbeddedProbe(first.nats)})
	if err != nil {
		t.Fatal(err)
	}
	id := events.NewID()
	sub := events.Submitted{Requester: events.Principal{ID: "alice"}, Subject: events.RequestSubject{Kind: events.SubjectHuman, ID: "alice"},
		Entitlement: "pg-read", Justification: "dev", DurationSeconds: 60, Channel: "http"}
	sub.RequestDigest = sub.Digest()
	if _, err := store.Update(ctx, id, func(*events.Request) ([]events.Draft, error) {
		return []events.Draft{{Payload: sub, Actor: "alice"}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	first.Close(ctx)

	second := start(t, cfg)
	if got := second.Keys().Signers[events.Intake].KeyID(); got != keyID {
		t.Fatalf("key changed across restarts: %s then %s", keyID, got)
	}
	_, js2 := connectAs(t, second, brokeraccess.Policy)
	store2, err := eventstore.Open(ctx, js2, eventstore.Config{Signer: second.Keys().Signers[events.Policy],
		Verifier: second.Keys().Verifier, Durability: eventstore.EmbeddedProbe(second.nats)})
	if err != nil {
		t.Fatal(err)
	}
	l, err := store2.Load(ctx, id)
	if err != nil {
		t.Fatalf("load after restart (the trust file must still verify it): %v", err)
	}
	// Policy runs in dev and may have decided meanwhile; what matters is that the submission survived.
	if len(l.Events) == 0 || l.Request.Submitted().Entitlement != "pg-read" || l.Events[0].Actor != "alice" {
		t.Fatalf("after restart: %d events, submitted %+v", len(l.Events), l.Request.Submitted())
	}
}

func TestDevRefusesABusyNATSPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg := testConfig(t, t.TempDir())
	cfg.NATSPort = l.Addr().(*net.TCPAddr).Port
	_, err = Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), "port "+strconv.Itoa(cfg.NATSPort)+" is in use") {
		t.Fatalf("Start on a busy port = %v, want a clear 'in use' error", err)
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	out := &lockedBuffer{}
	go func() {
		done <- Run(ctx, testConfig(t, t.TempDir()), out, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	deadline := time.After(30 * time.Second)
	for !strings.Contains(out.String(), "Press Ctrl-C to stop") {
		select {
		case err := <-done:
			t.Fatalf("Run ended early: %v", err)
		case <-deadline:
			t.Fatal("no banner within 30s")
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not stop after cancel")
	}
}
