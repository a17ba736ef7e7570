package checkpointer_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/grantline/grantline/pkg/audit"
	"github.com/grantline/grantline/pkg/checkpoint"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/natstest"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/services/checkpointer"
)

// benchEvents is the size of the history the benchmarks checkpoint and prove against.
const benchEvents = 20000

// fill publishes requests of two signed events each (submitted, then an auto-approving decision)
// until the stream holds n events, and returns the request IDs.
func (w *world) fill(n int) []string {
	w.t.Helper()
	var ids []string
	intake, pol := w.signers[events.Intake], w.signers[events.Policy]
	at := time.Now().Add(-time.Minute).UTC()
	publish := func(subject, sig string, body []byte) {
		msg := &nats.Msg{Subject: subject, Data: body, Header: nats.Header{}}
		msg.Header.Set(events.SignatureHeader, sig)
		if _, err := w.js.PublishMsgAsync(msg); err != nil {
			w.t.Fatal(err)
		}
	}
	for i := 0; i < n; i += 2 {
		id := events.NewID()
		sub := events.Submitted{Requester: events.Principal{ID: "bench", Groups: []string{"engineers"}},
			Subject: events.RequestSubject{Kind: events.SubjectHuman, ID: "bench"}, Entitlement: "analytics-read",
			Justification: "benchmark history", DurationSeconds: 600, Channel: "http"}
		sub.RequestDigest = sub.Digest()
		_, subBody, _ := events.Draft{Payload: sub, Actor: "bench"}.Seal(id, events.Intake, at, events.GenesisHash(id))
		publish(events.NATSSubject(id, events.TypeSubmitted), intake.Sign(subBody), subBody)
		pd := events.PolicyDecided{Outcome: events.OutcomeAutoApproved, Reasons: []string{"low risk"}, EffectiveDurationSeconds: 600, PolicyRevision: "sha256:bench"}
		_, decBody, _ := events.Draft{Payload: pd}.Seal(id, events.Policy, at, events.ChainHash(subBody))
		publish(events.NATSSubject(id, events.TypePolicyDecided), pol.Sign(decBody), decBody)
		ids = append(ids, id)
		if i%2000 == 1998 {
			<-w.js.PublishAsyncComplete()
		}
	}
	<-w.js.PublishAsyncComplete()
	return ids
}

// resetCheckpoints empties the checkpoint stream, as the operator, for a fresh run.
func (w *world) resetCheckpoints() {
	w.t.Helper()
	ctx := context.Background()
	if err := w.js.DeleteStream(ctx, topology.CheckpointsStream); err != nil {
		w.t.Fatal(err)
	}
	if err := eventstore.Provision(ctx, w.js, w.settings); err != nil {
		w.t.Fatal(err)
	}
}

// BenchmarkCheckpointer: the checkpointer reads a stream of 20,000 events from the start and signs a
// checkpoint every 1,000, with no witness: the cost per event of reading, hashing the leaf and
// appending the records.
func BenchmarkCheckpointer(b *testing.B) {
	ns := natstest.RunServer(b)
	_, js := natstest.Connect(b, ns.ClientURL())
	w := newWorld(b, js, embedded(ns), eventstore.DefaultSettings)
	w.fill(benchEvents)
	for b.Loop() {
		b.StopTimer()
		w.resetCheckpoints()
		ctx, cancel := context.WithCancel(context.Background())
		c, err := checkpointer.New(ctx, checkpointer.Deps{JS: js, Signer: w.signer, Trust: w.trust, Every: 1000, Interval: time.Second, Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		poll.Until(b, time.Minute, "every event checkpointed", func() bool {
			h, err := checkpoint.LatestHead(context.Background(), js, w.trust)
			return err == nil && h.Signed.Size == benchEvents
		})
		b.StopTimer()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	elapsed := b.Elapsed()
	b.ReportMetric(float64(elapsed.Microseconds())/float64(b.N*benchEvents), "µs/event")
	b.ReportMetric(float64(b.N*benchEvents)/elapsed.Seconds(), "events/s")
}

// BenchmarkProve: the proof bundle of one request in a checkpointed log of 20,000 events (reading
// every leaf hash from the checkpoint stream and the request's events), and checking it offline.
func BenchmarkProve(b *testing.B) {
	ns := natstest.RunServer(b)
	_, js := natstest.Connect(b, ns.ClientURL())
	w := newWorld(b, js, embedded(ns), eventstore.DefaultSettings)
	ids := w.fill(benchEvents)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	c, err := checkpointer.New(ctx, checkpointer.Deps{JS: js, Signer: w.signer, Trust: w.trust, Every: 1000, Interval: 100 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = c.Run(ctx) }()
	poll.Until(b, time.Minute, "every event checkpointed", func() bool {
		h, err := checkpoint.LatestHead(context.Background(), js, w.trust)
		return err == nil && h.Signed.Size == benchEvents
	})
	id := ids[len(ids)/2]
	var bundle *audit.ProofBundle
	b.Run("prove", func(b *testing.B) {
		for b.Loop() {
			if bundle, err = audit.Prove(context.Background(), js, w.verifier, id); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/bundle")
	})
	b.Run("verify-proof", func(b *testing.B) {
		for b.Loop() {
			if _, err := audit.VerifyProof(bundle, w.verifier, 0); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/bundle")
	})
}
