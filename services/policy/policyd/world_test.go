package policyd

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"gopkg.in/yaml.v3"

	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/natstest"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/services/policy"
)

// The demo bundle, catalogue and directory that `grantline dev` runs with.
const (
	demoBundle    = "../../../examples/policies"
	demoCatalogue = "../../../examples/catalogue.yaml"
	demoDirectory = "../../../examples/directory.yaml"
)

// world is one embedded JetStream node with the streams provisioned, a store per service (all trusting
// each other's keys), and the demo catalogue and directory.
type world struct {
	ns       *server.Server
	js       jetstream.JetStream
	signers  map[events.Service]*events.Signer
	verifier *events.Verifier
	trust    events.TrustFile
	stores   map[events.Service]*eventstore.Store
	cat      *catalogue.Catalogue
	groups   map[string][]string
}

func newWorld(t testing.TB) *world {
	t.Helper()
	ns := natstest.RunServer(t)
	_, js := natstest.Connect(t, ns.ClientURL())
	w := provision(t, js, eventstore.DefaultSettings, eventstore.EmbeddedProbe(ns))
	w.ns = ns
	return w
}

// newClusterWorld is a world on a 3-node cluster, its streams replicated on every node, as in
// production; it has no ns.
func newClusterWorld(t testing.TB) *world {
	t.Helper()
	c := natstest.RunCluster(t)
	_, js := natstest.Connect(t, c.ClientURLs())
	return provision(t, js, eventstore.StreamSettings{Replicas: 3, EventsMaxBytes: 1 << 30}, eventstore.EmbeddedProbe(c.Nodes...))
}

// provision provisions the streams on js and opens the world's stores, with probe for their durability.
func provision(t testing.TB, js jetstream.JetStream, settings eventstore.StreamSettings, probe eventstore.SyncProbe) *world {
	t.Helper()
	ctx := context.Background()
	if err := eventstore.Provision(ctx, js, settings); err != nil {
		t.Fatal(err)
	}
	w := &world{js: js, signers: map[events.Service]*events.Signer{}, stores: map[events.Service]*eventstore.Store{}}
	var all []*events.Signer
	for _, svc := range events.Services {
		s, err := events.GenerateSigner(svc, string(svc)+"-test")
		if err != nil {
			t.Fatal(err)
		}
		w.signers[svc] = s
		all = append(all, s)
	}
	w.trust = events.NewTrustFile(time.Now().Add(-time.Hour), all...)
	var err error
	if w.verifier, err = events.NewVerifier(w.trust); err != nil {
		t.Fatal(err)
	}
	for _, svc := range events.Services {
		st, err := eventstore.Open(ctx, js, eventstore.Config{Signer: w.signers[svc], Verifier: w.verifier, Durability: probe})
		if err != nil {
			t.Fatal(err)
		}
		w.stores[svc] = st
	}
	if w.cat, err = catalogue.Load(demoCatalogue); err != nil {
		t.Fatal(err)
	}
	w.groups = loadDirectory(t)
	return w
}

func loadDirectory(t testing.TB) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(demoDirectory)
	if err != nil {
		t.Fatal(err)
	}
	var dir struct {
		Users []struct {
			ID     string   `yaml:"id"`
			Name   string   `yaml:"name"`
			Groups []string `yaml:"groups"`
		} `yaml:"users"`
	}
	if err := yaml.Unmarshal(b, &dir); err != nil {
		t.Fatal(err)
	}
	groups := map[string][]string{}
	for _, u := range dir.Users {
		groups[u.ID] = u.Groups
	}
	return groups
}

func loadEngine(t *testing.T, dir string, opts ...policy.Option) *policy.Engine {
	t.Helper()
	e, err := policy.Load(context.Background(), dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// serve runs the policy service on the world until the test ends, and checks it then stops cleanly.
func (w *world) serve(t *testing.T, engine Evaluator, tune func(*Deps)) {
	t.Helper()
	deps := Deps{JS: w.js, Store: w.stores[events.Policy], Catalogue: w.cat, Engine: engine,
		Backoff: func(int) time.Duration { return 20 * time.Millisecond }}
	if tune != nil {
		tune(&deps)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, deps, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
}

// ask is one person's request, as a scenario names it.
type ask struct {
	who         string
	entitlement string
	minutes     int64
	// subject is the service account the request is for; empty means the requester themselves.
	subject   string
	emergency bool
	// start asks for access from a later time.
	start *time.Time
}

func (w *world) submitted(a ask) events.Submitted {
	sub := events.Submitted{
		Requester:   events.Principal{ID: a.who, Groups: w.groups[a.who]},
		Subject:     events.RequestSubject{Kind: events.SubjectHuman, ID: a.who},
		Entitlement: a.entitlement, Justification: "scenario", DurationSeconds: a.minutes * 60,
		StartAt: a.start, Emergency: a.emergency, Channel: "http",
	}
	if a.subject != "" {
		sa, _ := w.cat.ServiceAccount(a.subject)
		sub.Subject = events.RequestSubject{Kind: sa.Kind, ID: sa.ID, Owner: sa.Owner}
	}
	sub.RequestDigest = sub.Digest()
	return sub
}

// submit records a submitted request as intake does and returns its ID.
func (w *world) submit(t *testing.T, a ask) string {
	t.Helper()
	id := events.NewID()
	w.append(t, events.Intake, id, events.Draft{Payload: w.submitted(a), Actor: a.who, CausationID: "http:" + id})
	return id
}

// append appends drafts to request id as svc.
func (w *world) append(t *testing.T, svc events.Service, id string, drafts ...events.Draft) {
	t.Helper()
	if _, err := w.stores[svc].Update(context.Background(), id, func(*events.Request) ([]events.Draft, error) {
		return drafts, nil
	}); err != nil {
		t.Fatalf("%s appends to %s: %v", svc, id, err)
	}
}

func (w *world) load(t *testing.T, id string) *eventstore.Loaded {
	t.Helper()
	l, err := w.stores[events.Policy].Load(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// decision waits for policy to decide request id and returns the decision.
func (w *world) decision(t *testing.T, id string) events.PolicyDecided {
	t.Helper()
	var pd events.PolicyDecided
	poll.Until(t, 30*time.Second, "the policy decision on "+id, func() bool {
		l, err := w.stores[events.Policy].Load(context.Background(), id)
		if err != nil {
			return false
		}
		pd = l.Request.Decision()
		return pd.Outcome != ""
	})
	return pd
}

// openReviews waits until the policy state lists exactly want as who's open emergency reviews.
func (w *world) openReviews(t *testing.T, who string, want ...string) {
	t.Helper()
	kv, err := w.js.KeyValue(context.Background(), topology.PolicyStateBucket)
	if err != nil {
		t.Fatal(err)
	}
	state := &reviews{js: w.js, kv: kv, timeout: 5 * time.Second}
	var got []string
	poll.Until(t, 30*time.Second, "the open emergency reviews of "+who, func() bool {
		got, err = state.open(context.Background(), who, "")
		if err != nil || len(got) != len(want) {
			return false
		}
		for i := range want {
			if got[i] != want[i] {
				return false
			}
		}
		return true
	})
}

// idle waits until the durable consumer has nothing pending or unacknowledged.
func (w *world) idle(t *testing.T, durable string) {
	t.Helper()
	poll.Until(t, 30*time.Second, durable+" to have handled everything", func() bool {
		c, err := w.js.Consumer(context.Background(), topology.EventsStream, durable)
		if err != nil {
			return false
		}
		info, err := c.Info(context.Background())
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	})
}

// deadLetters counts the messages dead-lettered by durable.
func (w *world) deadLetters(t *testing.T, durable string) uint64 {
	t.Helper()
	st, err := w.js.Stream(context.Background(), topology.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background(), jetstream.WithSubjectFilter(topology.DeadLetter(durable)))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects[topology.DeadLetter(durable)]
}

func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
