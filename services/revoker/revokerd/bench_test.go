package revokerd_test

import (
	"context"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/consumer"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/pkg/targettest"
	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/services/revoker/reaction"
	"github.com/grantline/grantline/services/revoker/reconcile"
)

// BenchmarkExpiryToRevoked measures, from the server's stored times, how long the revoker takes from
// the expiry timer of a grant's second firing to the revoked event (listing the second's grants,
// revoking on PostgreSQL, inspecting, appending revoked); beside it, a raw Store.Update in the same run.
func BenchmarkExpiryToRevoked(b *testing.B) {
	e := newEnv(b)
	st, err := e.JS.Stream(context.Background(), topology.TimersStream)
	if err != nil {
		b.Fatal(err)
	}
	var lat []time.Duration
	for b.Loop() {
		id := e.Granted(b, targettest.Request{Requester: someone("engineers"), Entitlement: "analytics-read", Duration: time.Second})
		e.WaitFor(b, id, 20*time.Second, "the revocation", revoked)
		second := e.Load(b, id).Request.Grant().ExpiresAt.Add(time.Second - 1).Truncate(time.Second).Unix()
		fired, err := st.GetLastMsgForSubject(context.Background(), topology.TimerFired(strconv.FormatInt(second, 10), topology.TimerExpiry))
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, e.StoredAt(b, id, events.TypeRevoked).Sub(fired.Time))
	}
	b.StopTimer()
	targettest.ReportAgainstBaseline(b, "revoked", lat, e.UpdateBaseline(b, max(len(lat), 20)))
}

// BenchmarkExpiryDrain measures how long the revoker takes to revoke N grants that expire at the same
// instant, on PostgreSQL in batches, one revoked event each, from the instant they expire. N is 200 by
// default; -benchtime=Nx sets it (e.g. -benchtime=10000x for the 10k drain). With
// GRANTLINE_BENCH_HISTORY naming a store written by `grantline bench history` (a copy: the benchmark
// writes into it), the grants are made on top of that history. Two cases:
//   - armed: the revoker runs while the grants are recorded, so each is in the expiry index before
//     it falls due, as at a shift change: the drain is the second's timer firing and the revocations;
//   - cold_start: the revoker starts only after they expired (back from a crash or an upgrade), so it
//     first indexes every grant from the evidence, then revokes them.
//
// Lags are each revoked event's stored time behind the expiry (armed) or the revoker's start
// (cold_start, where the expiry had passed already).
func BenchmarkExpiryDrain(b *testing.B) {
	b.Run("armed", func(b *testing.B) { benchmarkExpiryDrain(b, true) })
	b.Run("cold_start", func(b *testing.B) { benchmarkExpiryDrain(b, false) })
}

func benchmarkExpiryDrain(b *testing.B, armed bool) {
	n := max(b.N, 200)
	var world []targettest.Option
	history := os.Getenv("GRANTLINE_BENCH_HISTORY")
	if history != "" {
		world = append(world, targettest.OnHistory(history))
	}
	e := newEnvOn(b, targettest.New(b, examples, world...), revokerOff)
	if history != "" {
		handledAlready(b, e.JS)
	}
	if armed {
		e.startRevoker(b)
	}
	ids := make([]string, n)
	obs := make([]events.Observed, n)
	// A handful of grants per person, as in life (one person holding thousands of grant roles makes
	// every pg_has_role walk them all).
	people := make([]events.Principal, (n+9)/10)
	for i := range people {
		people[i] = someone("engineers")
	}
	began := time.Now()
	each(n, 8, func(i int) {
		ids[i] = e.Approved(b, targettest.Request{Requester: people[i/10], Entitlement: "analytics-read", Duration: time.Hour})
		obs[i], _ = e.grantOnTarget(b, ids[i], began.Add(time.Hour))
	})
	if b.Failed() {
		b.FailNow()
	}
	// Recording the grants costs about a third of that, indexing them as much again; all expire
	// together, at a whole second, once they are recorded (and, armed, indexed).
	expires := time.Now().Add(time.Since(began)*2/3 + 3*time.Second).Truncate(time.Second).Add(time.Second)
	each(n, 8, func(i int) { e.recordGrant(b, ids[i], obs[i], expires, "") })
	if armed {
		poll.Until(b, time.Until(expires), "every grant indexed before its expiry", func() bool { return e.indexed(b) == n })
	}
	if time.Now().After(expires) {
		b.Fatal("the grants were recorded after their expiry; the margin was too short")
	}

	// What the counters count from here on (a history holds revocations and fires of its own).
	revocations := since(counter(b, e.JS, topology.EventsStream, events.NATSSubject("*", events.TypeRevoked)))
	// How often the second's timer fired: once per batch of grants armed, as the revoker catches up.
	fires := since(counter(b, e.JS, topology.TimersStream, topology.TimerFired("*", topology.TimerExpiry)))
	poll.Until(b, time.Until(expires)+5*time.Second, "the expiry", func() bool { return !time.Now().Before(expires) })
	b.ResetTimer()
	started := expires
	if !armed {
		started = time.Now()
		e.startRevoker(b)
	}
	poll.Until(b, 30*time.Minute, "every revocation", func() bool { return revocations() == uint64(n) })
	took := time.Since(started)
	b.StopTimer()
	if left := e.GrantRoles(b, ids...); left != 0 {
		b.Fatalf("%d grants left on the target", left)
	}
	lags := make([]time.Duration, 0, n)
	for _, id := range ids {
		lags = append(lags, e.StoredAt(b, id, events.TypeRevoked).Sub(started))
	}
	slices.Sort(lags)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(targettest.Percentile(lags, .5)), "lag-p50-ms")
	b.ReportMetric(ms(targettest.Percentile(lags, .99)), "lag-p99-ms")
	b.ReportMetric(ms(lags[n-1]), "lag-max-ms")
	b.ReportMetric(float64(n), "grants")
	b.ReportMetric(float64(fires()), "fires")
	b.ReportMetric(took.Seconds(), "drain-s")
	b.ReportMetric(float64(n)/took.Seconds(), "revocations/s")
	b.ReportMetric(0, "ns/op")
}

// since counts what count counts from the call on.
func since(count func() uint64) func() uint64 {
	base := count()
	return func() uint64 { return count() - base }
}

// handledAlready makes the revoker's durable consumers as the revoker makes them and acknowledges
// everything a generated history holds for them, without handling it: the revoker of the deployment
// that wrote a year of history has long handled it, while one attached to it for the first time would
// first replay every grant ever made.
func handledAlready(b *testing.B, js jetstream.JetStream) {
	b.Helper()
	ctx := context.Background()
	for _, spec := range []consumer.Spec{reaction.SchedulesSpec(), reaction.RevocationsSpec(time.Second), reaction.ExpirySpec(time.Second)} {
		cons, err := js.CreateOrUpdateConsumer(ctx, spec.Stream, jetstream.ConsumerConfig{
			Durable: spec.Durable, FilterSubjects: spec.FilterSubjects, AckPolicy: jetstream.AckExplicitPolicy,
			AckWait: time.Minute, MaxDeliver: -1, MaxAckPending: 10_000, DeliverPolicy: jetstream.DeliverAllPolicy,
		})
		if err != nil {
			b.Fatal(err)
		}
		skipped := 0
		for {
			info, err := cons.Info(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if info.NumPending == 0 && info.NumAckPending == 0 {
				break
			}
			batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(time.Second))
			if err != nil {
				b.Fatal(err)
			}
			for msg := range batch.Messages() {
				if err := msg.Ack(); err != nil {
					b.Fatal(err)
				}
				skipped++
			}
		}
		b.Logf("%s: %d deliveries of the history acknowledged unhandled", spec.Durable, skipped)
	}
}

// BenchmarkReconcile measures one reconcile of a clean target holding N live grants of people, ten
// each, with as many grants revoked in the past (N is 200 by default; -benchtime=Nx sets it): one
// listing of the server's roles, a scan of the grant subjects, and one load per live grant; the revoked
// ones cost only their place in the scan. It reports the reconcile's time, per live grant, beside a
// raw Store.Update in the same run.
func BenchmarkReconcile(b *testing.B) {
	n := max(b.N, 200)
	e := newEnv(b, revokerOff)
	clearTarget(b, e)
	people := make([]events.Principal, (n+9)/10)
	for i := range people {
		people[i] = someone("engineers")
	}
	each(n, 8, func(i int) {
		e.Granted(b, targettest.Request{Requester: people[i/10], Entitlement: "analytics-read", Duration: time.Hour})
		// A past grant, revoked as recorded: nothing of it is left on the target.
		past := e.Approved(b, targettest.Request{Requester: people[i/10], Entitlement: "analytics-read", Duration: time.Hour})
		e.recordGrant(b, past, events.Observed{Present: true}, time.Now().Add(time.Hour), "")
		e.Append(b, events.Revoker, past, events.Draft{Payload: events.RevocationRequested{By: people[i/10].ID, Reason: events.RevokeEarly},
			Actor: people[i/10].ID, CausationID: "revocation-requested"})
		e.Append(b, events.Revoker, past, events.Draft{Payload: events.Revoked{Reason: events.RevokeEarly, Observed: events.Observed{Present: false}},
			CausationID: "revoked"})
	})
	if b.Failed() {
		b.FailNow()
	}
	rec := e.revoke.Reconciler(e.Log)
	b.ResetTimer()
	began := time.Now()
	sum, err := rec.Reconcile(context.Background())
	took := time.Since(began)
	b.StopTimer()
	if err != nil || sum != (reconcile.Summary{Holdings: n}) {
		b.Fatalf("reconcile of %d live grants: %+v %v", n, sum, err)
	}
	base := e.UpdateBaseline(b, 50)
	slices.Sort(base)
	b.ReportMetric(float64(took)/float64(time.Millisecond), "reconcile-ms")
	b.ReportMetric(float64(took)/float64(n)/float64(time.Microsecond), "us/live-grant")
	b.ReportMetric(float64(targettest.Percentile(base, .5))/float64(time.Microsecond), "update-p50-us")
	b.ReportMetric(0, "ns/op")
}
