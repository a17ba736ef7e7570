package checkpointer_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/mod/sumdb/note"

	"github.com/grantline/grantline/pkg/audit"
	"github.com/grantline/grantline/pkg/checkpoint"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/natstest"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/pkg/witness"
	"github.com/grantline/grantline/services/checkpointer"
)

const origin = "grantline.test/evidence"

// world is a real broker with the streams, a store per service to write a real history with, the
// checkpointer's key in the trust file, an HTTP witness and a directory witness. The tests act on
// the broker as its operator: they may delete, recreate and refill streams.
type world struct {
	t        testing.TB
	js       jetstream.JetStream
	settings eventstore.StreamSettings
	stores   map[events.Service]*eventstore.Store
	signers  map[events.Service]*events.Signer
	verifier *events.Verifier
	trust    *checkpoint.Trust
	signer   note.Signer
	dir      string
	witness  string
	requests []string
}

func newWorld(t testing.TB, js jetstream.JetStream, durability eventstore.SyncProbe, settings eventstore.StreamSettings) *world {
	t.Helper()
	ctx := context.Background()
	if err := eventstore.Provision(ctx, js, settings); err != nil {
		t.Fatal(err)
	}
	skey, vkey, _ := checkpoint.GenerateKey("checkpointer-test")
	signer, _ := note.NewSigner(skey)
	wkey, wvkey, _ := checkpoint.GenerateKey("witness-test")
	wsigner, _ := note.NewSigner(wkey)
	var signers []*events.Signer
	for _, svc := range events.Services {
		s, _ := events.GenerateSigner(svc, string(svc)+"-1")
		signers = append(signers, s)
	}
	tf := events.NewTrustFile(time.Now().Add(-time.Hour), signers...)
	tf.Checkpoints = &events.CheckpointTrust{Origin: origin, Checkpointers: []string{vkey}, Witnesses: []string{wvkey}}
	verifier, err := events.NewVerifier(tf)
	if err != nil {
		t.Fatal(err)
	}
	trust, _ := checkpoint.NewTrust(verifier)
	w := &world{t: t, js: js, settings: settings, stores: map[events.Service]*eventstore.Store{}, signers: map[events.Service]*events.Signer{},
		verifier: verifier, trust: trust,
		signer: signer, dir: filepath.Join(t.TempDir(), "witness-dir")}
	for _, s := range signers {
		w.signers[s.Service()] = s
		st, err := eventstore.Open(ctx, js, eventstore.Config{Signer: s, Verifier: verifier, Durability: durability})
		if err != nil {
			t.Fatal(err)
		}
		w.stores[s.Service()] = st
	}
	ws, err := witness.NewServer(trust, wsigner, filepath.Join(t.TempDir(), "witness-state.json"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	ws.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	w.witness = srv.URL
	return w
}

// singleNode is a world on one embedded node.
func singleNode(t testing.TB) *world {
	t.Helper()
	ns := natstest.RunServer(t)
	_, js := natstest.Connect(t, ns.ClientURL())
	return newWorld(t, js, embedded(ns), eventstore.DefaultSettings)
}

// requestsOf writes the histories of the requests of user<from> to user<to-1>.
func (w *world) requestsOf(from, to int) {
	w.t.Helper()
	for i := from; i < to; i++ {
		w.request(fmt.Sprintf("user%d", i))
	}
}

// request writes one request's history: submitted, decided auto-approved, granted (three events).
func (w *world) request(requester string) string {
	w.t.Helper()
	ctx := context.Background()
	id := events.NewID()
	sub := events.Submitted{Requester: events.Principal{ID: requester, Groups: []string{"engineers"}},
		Subject: events.RequestSubject{Kind: events.SubjectHuman, ID: requester}, Entitlement: "analytics-read",
		Justification: "checkpoint test", DurationSeconds: 600, Channel: "http"}
	sub.RequestDigest = sub.Digest()
	for _, step := range []struct {
		svc events.Service
		p   events.Payload
	}{
		{events.Intake, sub},
		{events.Policy, events.PolicyDecided{Outcome: events.OutcomeAutoApproved, Reasons: []string{"low risk"}, EffectiveDurationSeconds: 600, PolicyRevision: "sha256:p"}},
		{events.Fulfilment, events.Granted{Connector: "postgres", TargetRef: "r", Observed: events.Observed{Present: true},
			ExpiresAt: time.Now().Add(590 * time.Second), Fulfiller: "service:fulfilment"}},
	} {
		var err error
		for range 5 {
			if _, err = w.stores[step.svc].Update(ctx, id, func(*events.Request) ([]events.Draft, error) {
				return []events.Draft{{Payload: step.p, Actor: requester}}, nil
			}); err == nil || !errors.Is(err, eventstore.ErrStale) {
				break
			}
		}
		if err != nil {
			w.t.Fatalf("%s of %s: %v", step.p.EventType().Name(), id, err)
		}
	}
	w.requests = append(w.requests, id)
	return id
}

// runCheckpointer starts the checkpointer on js until the returned stop is called (or the test ends).
func (w *world) runCheckpointer(js jetstream.JetStream, every int) (stop func()) {
	w.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c, err := checkpointer.New(ctx, checkpointer.Deps{JS: js, Signer: w.signer, Trust: w.trust, Every: every, Interval: 100 * time.Millisecond,
		Dir: &witness.Dir{Path: w.dir}, Witnesses: []*witness.Client{{URL: w.witness}}, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		cancel()
		w.t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := c.Run(ctx); err != nil {
			w.t.Errorf("checkpointer: %v", err)
		}
	})
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	w.t.Cleanup(stop)
	return stop
}

// events counts the events stored.
func (w *world) events() uint64 {
	w.t.Helper()
	st, err := w.js.Stream(context.Background(), topology.EventsStream)
	if err != nil {
		w.t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		w.t.Fatal(err)
	}
	return info.State.Msgs
}

// awaitCheckpoint waits for a checkpoint covering every stored event, countersigned by the witness and
// kept in the directory.
func (w *world) awaitCheckpoint() uint64 {
	w.t.Helper()
	want := w.events()
	poll.Until(w.t, 30*time.Second, "a countersigned checkpoint of every event", func() bool {
		files, err := witness.Dir{Path: w.dir}.Read()
		if err != nil || len(files) == 0 {
			return false
		}
		s, err := w.trust.Open(files[len(files)-1].Note)
		return err == nil && s.Size == want && len(s.Witnesses) == 1
	})
	return want
}

// stored is every stored message of the evidence stream, in order, as the operator reads it.
func (w *world) stored() []*jetstream.RawStreamMsg {
	w.t.Helper()
	ctx := context.Background()
	st, err := w.js.Stream(ctx, topology.EventsStream)
	if err != nil {
		w.t.Fatal(err)
	}
	info, _ := st.Info(ctx)
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			w.t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// recreate deletes the evidence stream, creates it again with its configuration and refills it with
// msgs (their subjects, bodies and signatures), as an operator would from a copy.
func (w *world) recreate(msgs []*jetstream.RawStreamMsg) {
	w.t.Helper()
	ctx := context.Background()
	if err := w.js.DeleteStream(ctx, topology.EventsStream); err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.js.CreateStream(ctx, eventstore.StreamConfigs(w.settings)[0]); err != nil {
		w.t.Fatal(err)
	}
	for _, m := range msgs {
		msg := &nats.Msg{Subject: m.Subject, Data: m.Data, Header: nats.Header{}}
		msg.Header.Set(events.SignatureHeader, m.Header.Get(events.SignatureHeader))
		if _, err := w.js.PublishMsg(ctx, msg); err != nil {
			w.t.Fatal(err)
		}
	}
}

// verify checks the live stream against the checkpoints of the given sources ("stream" for the
// checkpoint stream, "dir" for the directory witness).
func (w *world) verify(sources ...string) *audit.Report {
	w.t.Helper()
	ctx := context.Background()
	cs := audit.NewCheckpoints(w.trust)
	for _, s := range sources {
		var err error
		switch s {
		case "stream":
			err = cs.AddStream(ctx, w.js)
		case "dir":
			err = cs.AddDir(w.dir)
		}
		if err != nil {
			w.t.Fatal(err)
		}
	}
	st, err := w.js.Stream(ctx, topology.EventsStream)
	if err != nil {
		w.t.Fatal(err)
	}
	opts := audit.Options{Now: time.Now(), ExpectFirstSeq: 1, StreamCreated: st.CachedInfo().Created}
	if len(sources) > 0 {
		opts.Checkpoints = cs
	}
	v := audit.NewVerifier(w.verifier, opts)
	if err := audit.ReadStream(ctx, w.js, audit.Range{}, func(r events.Record) error { v.Add(r); return nil }); err != nil {
		w.t.Fatal(err)
	}
	return v.Finish()
}

// embedded is the durability probe of the embedded servers.
func embedded(servers ...*server.Server) eventstore.SyncProbe {
	return eventstore.EmbeddedProbe(servers...)
}
