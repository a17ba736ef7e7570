package checkpointer_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

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
// appending the records. Its same-run baseline is a raw read of the same events from the same stream,
// fetched 1,000 at a time by an ordered consumer as the checkpointer does, with nothing done with them
// (raw_read_events/s); rate_ratio_to_raw_read is the checkpointer's rate over that.
func BenchmarkCheckpointer(b *testing.B) {
	ns := natstest.RunServer(b)
	_, js := natstest.Connect(b, ns.ClientURL())
	w := newWorld(b, js, embedded(ns), eventstore.DefaultSettings)
	w.fill(benchEvents)
	var raw time.Duration
	for b.Loop() {
		b.StopTimer()
		raw += timed(func() { readRaw(b, js, topology.EventsStream, events.AllSubjects, benchEvents) })
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
	elapsed, total := b.Elapsed(), float64(b.N*benchEvents)
	b.ReportMetric(float64(elapsed.Microseconds())/total, "µs/event")
	b.ReportMetric(total/elapsed.Seconds(), "events/s")
	b.ReportMetric(total/raw.Seconds(), "raw_read_events/s")
	b.ReportMetric(raw.Seconds()/elapsed.Seconds(), "rate_ratio_to_raw_read")
}

// BenchmarkProve: the proof bundle of one request in a checkpointed log of 20,000 events (reading
// every leaf hash from the checkpoint stream and the request's events), and checking it offline. The
// same-run baselines: for prove, a raw read of the checkpoint records it reads (their leaf hashes are
// most of its bytes); for verify-proof, one bare ed25519 verification, of which a bundle's check makes
// one per event and one for the checkpoint.
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
	heads := checkpointHeads(b, js)
	var bundle *audit.ProofBundle
	b.Run("prove", func(b *testing.B) {
		var raw time.Duration
		for b.Loop() {
			if bundle, err = audit.Prove(context.Background(), js, w.verifier, id); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			raw += timed(func() { readRaw(b, js, topology.CheckpointsStream, topology.CheckpointHeads, heads) })
			b.StartTimer()
		}
		b.ReportMetric(b.Elapsed().Seconds()*1000/float64(b.N), "ms/bundle")
		b.ReportMetric(raw.Seconds()*1000/float64(b.N), "raw_heads_read_ms")
		b.ReportMetric(b.Elapsed().Seconds()/raw.Seconds(), "time_ratio_to_raw_heads_read")
	})
	b.Run("verify-proof", func(b *testing.B) {
		for b.Loop() {
			if _, err := audit.VerifyProof(bundle, w.verifier, 0); err != nil {
				b.Fatal(err)
			}
		}
		one := ed25519Verify(b, bundle.Events[0].Body, b.N)
		perBundle := float64(b.Elapsed().Microseconds()) / float64(b.N)
		b.ReportMetric(perBundle, "µs/bundle")
		b.ReportMetric(float64(len(bundle.Events)), "events/bundle")
		b.ReportMetric(float64(one.Nanoseconds())/1000/float64(b.N), "ed25519_verify_µs")
		b.ReportMetric(perBundle*1000*float64(b.N)/float64(one.Nanoseconds()), "time_ratio_to_one_ed25519_verify")
	})
}

func timed(f func()) time.Duration {
	start := time.Now()
	f()
	return time.Since(start)
}

// readRaw reads the first n messages of subject in stream with an ordered consumer, 1,000 at a time,
// taking each one's metadata and nothing more: the least any reader of the stream pays.
func readRaw(b *testing.B, js jetstream.JetStream, stream, subject string, n int) {
	b.Helper()
	ctx := context.Background()
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		b.Fatal(err)
	}
	for read := 0; read < n; {
		batch, err := cons.Fetch(min(1000, n-read), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			b.Fatal(err)
		}
		for msg := range batch.Messages() {
			if _, err := msg.Metadata(); err != nil {
				b.Fatal(err)
			}
			read++
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			b.Fatal(err)
		}
	}
}

// checkpointHeads is how many checkpoint records the checkpoint stream holds.
func checkpointHeads(b *testing.B, js jetstream.JetStream) int {
	b.Helper()
	st, err := js.Stream(context.Background(), topology.CheckpointsStream)
	if err != nil {
		b.Fatal(err)
	}
	info, err := st.Info(context.Background(), jetstream.WithSubjectFilter(topology.CheckpointHeads))
	if err != nil {
		b.Fatal(err)
	}
	return int(info.State.Subjects[topology.CheckpointHeads])
}

// ed25519Verify times n bare ed25519 verifications of a signature over msg: the unit a proof's
// checks are made of (one for the checkpoint note, one per event).
func ed25519Verify(b *testing.B, msg []byte, n int) time.Duration {
	b.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		b.Fatal(err)
	}
	sig := ed25519.Sign(priv, msg)
	start := time.Now()
	for range n {
		if !ed25519.Verify(pub, msg, sig) {
			b.Fatal("the signature does not verify")
		}
	}
	return time.Since(start)
}
