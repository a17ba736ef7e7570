package brokeraccess_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/natsembed"
)

// integrations are the integrations of the test deployment.
var integrations = []string{"servicenow", "hr-feed"}

// broker is an embedded single-node server holding every user of the matrix, with the streams and the
// integrations' consumers provisioned by the operator.
type broker struct {
	ns    *server.Server
	creds map[brokeraccess.User]string
}

// writeKeys generates an NKey per user of m into dir and returns the seed files and the public keys.
func writeKeys(t *testing.T, m brokeraccess.Matrix, dir string) (map[brokeraccess.User]string, map[brokeraccess.User]string) {
	t.Helper()
	creds, pubs := map[brokeraccess.User]string{}, map[brokeraccess.User]string{}
	for _, u := range m.Users {
		seed, pub, err := brokeraccess.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, string(u)+".nk")
		if err := os.WriteFile(path, brokeraccess.SeedFile(seed), 0o600); err != nil {
			t.Fatal(err)
		}
		creds[u], pubs[u] = path, pub
	}
	return creds, pubs
}

func startBroker(t *testing.T) *broker {
	t.Helper()
	m, err := brokeraccess.NewMatrix(integrations)
	if err != nil {
		t.Fatal(err)
	}
	creds, pubs := writeKeys(t, m, t.TempDir())
	users, err := m.NkeyUsers(pubs)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := natsembed.Start(natsembed.Options{Dir: t.TempDir(), Port: -1, Users: users})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	b := &broker{ns: ns, creds: creds}
	op := b.connect(t, brokeraccess.Operator)
	if err := eventstore.Provision(context.Background(), op.js, eventstore.DefaultSettings); err != nil {
		t.Fatal(err)
	}
	if err := eventstore.ProvisionIntegrations(context.Background(), op.js, integrations); err != nil {
		t.Fatal(err)
	}
	return b
}

// client is one user's connection, with the permission violations the server reported to it.
type client struct {
	user       brokeraccess.User
	nc         *nats.Conn
	js         jetstream.JetStream
	mu         sync.Mutex
	violations []string
	// violated is signalled on each violation, so a refused request can stop waiting for its answer.
	violated chan struct{}
}

func (b *broker) connect(t *testing.T, u brokeraccess.User) *client {
	t.Helper()
	c := &client{user: u, violated: make(chan struct{}, 64)}
	opts, err := brokeraccess.ClientOptions(u, b.creds[u])
	if err != nil {
		t.Fatal(err)
	}
	opts = append(opts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) {
			c.mu.Lock()
			c.violations = append(c.violations, err.Error())
			c.mu.Unlock()
			select {
			case c.violated <- struct{}{}:
			default:
			}
		}
	}))
	c.nc, err = nats.Connect(b.ns.ClientURL(), opts...)
	if err != nil {
		t.Fatalf("connect as %s: %v", u, err)
	}
	t.Cleanup(c.nc.Close)
	c.js, err = jetstream.New(c.nc, jetstream.WithDefaultTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// refusedOn reports whether the server reported a violation naming subject.
func (c *client) refusedOn(subject string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, v := range c.violations {
		if strings.Contains(v, `"`+subject+`"`) {
			return true
		}
	}
	return false
}

// do runs a JetStream call that sends one request to subject, and says whether the broker refused it
// (the server reported a violation on subject, and the call failed) and what the call returned. A
// refused request gets no answer, so the call is cut short once the violation is reported instead of
// waiting for its timeout.
func (c *client) do(t *testing.T, subject string, call func(context.Context) error) (refused bool, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- call(ctx) }()
	for {
		select {
		case err := <-done:
			refused := c.refusedOn(subject)
			if refused && err == nil {
				t.Fatalf("%s: the server reported a violation on %s, yet the call succeeded", c.user, subject)
			}
			return refused, err
		case <-c.violated:
			if c.refusedOn(subject) {
				cancel()
			}
		}
	}
}
