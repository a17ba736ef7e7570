package faults

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/pkg/topology"
)

// The load: alice asks for analytics-read, which the example policy approves without review, at a
// fixed modest rate. Grants last long enough to be in force while a fault hits and short enough that
// most of them expire during the run.
const (
	loadCount    = 480
	loadEvery    = 250 * time.Millisecond // 4 requests/s
	grantFor     = 20 * time.Second
	loadBody     = `{"entitlement":"analytics-read","duration":"20s","justification":"fault injection load"}`
	targetRole   = "analytics_read" // what analytics-read grants on the target (examples/catalogue.yaml)
	sampleTarget = 100 * time.Millisecond
	// submitRetryFor bounds the retries of one submission: a client's patience, longer than any
	// failover should take.
	submitRetryFor = time.Minute
)

// The schedule, in acknowledged submissions rather than seconds, so that a slow machine stretches it
// instead of squeezing the faults together: about 15 s of load, then the evidence stream's leader node
// is killed for about 20 s; 10 s after it has caught up, a fulfilment replica is killed in the middle of
// grants (a burst of 24 beside the load, the target stalled for a moment so that the grants wait there)
// and restarted 10 s later; 5 s after that the revoker is frozen for about 30 s, in which some 120
// grants expire; then the load runs on for a while after it resumes. Each step waits for its count
// after the previous step, capped a little below the load's end, so a step that took long shortens the
// next rather than waiting for submissions that will never come (minExpiriesInPause catches a pause
// cut too short).
const (
	beforeNATSKill   = 60
	natsDown         = 80
	beforeFulfilKill = 40
	fulfilBurst      = 24
	// fulfilInFlight is how many deliveries the fulfilment consumer must have in flight before the
	// kill: more than one replica can hold (4 being handled and 4 fetched).
	fulfilInFlight     = 12
	fulfilDown         = 40
	beforeRevokerPause = 20
	revokerPaused      = 120
	minExpiriesInPause = 40
	// phaseTimeout bounds the wait for any one step; recoverTimeout the wait for a leader or a node to
	// catch up; inFlightWait the wait for grants in flight before the replica is killed anyway.
	phaseTimeout   = 2 * time.Minute
	recoverTimeout = time.Minute
	inFlightWait   = 20 * time.Second
	// drainTimeout bounds the wait, after the load, for the last grants to expire and be revoked.
	drainTimeout = grantFor + 3*time.Minute
	// fulfilConsumer is fulfilment's durable consumer of approvals (services/fulfilment/reaction).
	fulfilConsumer      = "fulfilment"
	fulfilmentContainer = "fulfilment-1"
	revokerContainer    = "revoker"
)

// TestFaultInjection drives the load through three faults and then checks, from the evidence stream
// and the target database, that every acknowledged submission is stored once, granted once on an
// allowing decision, applied once at the target, and revoked at expiry; and that `grantline audit
// verify` finds nothing. It logs a report with the counts, the faults and the revocation lag.
func TestFaultInjection(t *testing.T) {
	logsOnFailure(t)
	ctx := t.Context()
	token, err := deployment.Token("alice")
	if err != nil {
		t.Fatal(err)
	}
	r := &faultRun{t: t, began: time.Now()}
	l := &load{url: deployment.URL("intake"), token: token, body: loadBody, keyPrefix: "faults-" + events.NewID(),
		every: loadEvery, count: loadCount, retryFor: submitRetryFor, client: &http.Client{Timeout: 10 * time.Second}}
	watch := newTargetWatch(targetRole)

	// Everything started here is stopped and joined however the test ends, a killed container started
	// again and a frozen one thawed, so a failure leaves a deployment that the package's other tests
	// can still use, and that can still be inspected and removed.
	runCtx, stop := context.WithCancel(ctx)
	var bg sync.WaitGroup
	loadDone := make(chan struct{})
	bg.Go(func() { watch.run(runCtx, sampleTarget) })
	bg.Go(func() { defer close(loadDone); l.run(runCtx) })
	t.Cleanup(func() {
		stop()
		bg.Wait()
		if r.killed != "" {
			if err := deployment.Start(context.Background(), r.killed); err != nil {
				t.Errorf("start %s again: %v", r.killed, err)
			}
		}
		if r.paused != "" {
			if err := deployment.Unpause(context.Background(), r.paused); err != nil {
				t.Errorf("unpause %s: %v", r.paused, err)
			}
		}
	})
	r.logf("load: %d submissions, one every %s, grants for %s", loadCount, loadEvery, grantFor)

	// 1. Kill the node leading the evidence stream, so that the stream, and whatever else it leads,
	// elects a new leader under load; restart it and wait until it has caught up.
	r.awaitAcked(l, beforeNATSKill)
	leader := r.evidenceLeader(ctx, "")
	node := nodeContainer(leader)
	natsKill := r.inject(fmt.Sprintf("kill %s (%s, leader of %s)", node, leader, topology.EventsStream), func() error {
		return deployment.Kill(ctx, node)
	})
	r.killed = node
	newLeader := r.evidenceLeader(ctx, leader)
	natsKill.note("new leader %s elected after %s", newLeader, time.Since(natsKill.at).Round(time.Millisecond))
	r.awaitAcked(l, natsDown)
	natsBack := r.inject("restart "+node, func() error { return deployment.Start(ctx, node) })
	r.killed = ""
	caughtUp := r.awaitCaughtUp(ctx, natsBack, leader)

	// 2. Kill a fulfilment replica in the middle of grants. The target is stalled for alice (the
	// connector's lock on her role) while a burst joins the steady load, so both replicas hold grants
	// waiting on the target; fulfilment-1 is killed with its grants under way, then the stall is
	// lifted. What it held is redelivered to the other replica after the consumer's ack wait.
	r.awaitAcked(l, beforeFulfilKill)
	var release func(context.Context) error
	r.inject("stall alice's grants on the target", func() (err error) {
		release, err = deployment.StallRole(ctx, "alice")
		return err
	})
	t.Cleanup(func() { _ = release(context.Background()) })
	burstDone := make(chan struct{})
	bg.Go(func() { defer close(burstDone); l.burst(runCtx, fulfilBurst) })
	pending := r.awaitInFlight(ctx, fulfilInFlight)
	fulfilKill := r.inject(fmt.Sprintf("kill %s (%d deliveries in flight)", fulfilmentContainer, pending), func() error {
		return deployment.Kill(ctx, fulfilmentContainer)
	})
	r.killed = fulfilmentContainer
	r.inject("lift the stall", func() error { return release(ctx) })
	r.awaitAcked(l, fulfilDown)
	r.inject("restart "+fulfilmentContainer, func() error { return deployment.Start(ctx, fulfilmentContainer) })
	r.killed = ""

	// 3. Freeze the revoker across many expiries, then thaw it.
	r.awaitAcked(l, beforeRevokerPause)
	pause := r.inject("pause "+revokerContainer, func() error { return deployment.Pause(ctx, revokerContainer) })
	r.paused = revokerContainer
	r.awaitAcked(l, revokerPaused)
	unpause := r.inject("unpause "+revokerContainer, func() error { return deployment.Unpause(ctx, revokerContainer) })
	r.paused = ""

	loadEnd := time.After(time.Duration(loadCount)*loadEvery + submitRetryFor + phaseTimeout)
	for _, done := range []chan struct{}{loadDone, burstDone} {
		select {
		case <-done:
		case <-loadEnd:
			t.Fatal("the load did not finish")
		}
	}
	subs := l.submissions()
	var acked []string
	for _, s := range subs {
		if s.id != "" {
			acked = append(acked, s.id)
		}
	}
	r.logf("load done: %d driven, %d acknowledged; waiting for every grant to be revoked", len(subs), len(acked))
	awaitEvent(t, acked, events.TypeRevoked, drainTimeout)
	r.logf("every acknowledged request is revoked")
	stop()
	bg.Wait()

	ev, err := readEvidence(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rep := report{began: r.began, subs: subs, faults: r.faults, submits: checkSubmissions(subs, ev), grants: checkGrants(ev),
		lifecycles: checkLifecycles(subs, ev)}
	if rep.target, err = checkTarget(ctx, watch, rep.lifecycles.grants, ev); err != nil {
		t.Fatal(err)
	}
	rep.measure(timeline{natsKill: natsKill, natsBack: natsBack, natsCaughtUp: caughtUp, fulfilKill: fulfilKill, pause: pause, unpause: unpause})
	code, out, err := deployment.CLI(ctx, "audit", "verify")
	if err != nil {
		t.Fatal(err)
	}
	// Its last line is the verdict; the lines before it, progress.
	lines := strings.Split(strings.TrimSpace(out), "\n")
	rep.audit = lines[len(lines)-1]
	t.Logf("fault injection report\n%s", rep)

	rep.verdicts(t)
	if code != 0 || !strings.Contains(out, "nothing found") {
		t.Errorf("grantline audit verify exited %d", code)
	}
}

// faultRun is the schedule's state: when it began, the faults injected so far, and the container left
// killed or frozen if the test stops before it is started again or thawed.
type faultRun struct {
	t      *testing.T
	began  time.Time
	faults []*fault
	killed string
	paused string
}

// fault is one injected fault: what, when, and what was measured of the recovery.
type fault struct {
	what  string
	at    time.Time
	notes []string
}

func (f *fault) note(format string, args ...any) {
	f.notes = append(f.notes, fmt.Sprintf(format, args...))
}

func (r *faultRun) logf(format string, args ...any) {
	r.t.Helper()
	r.logAt(time.Now(), format, args...)
}

func (r *faultRun) logAt(at time.Time, format string, args ...any) {
	r.t.Helper()
	r.t.Logf("t+%5.1fs  %s", at.Sub(r.began).Seconds(), fmt.Sprintf(format, args...))
}

// inject does the fault, logs it with its time, and fails the test if it could not be done.
func (r *faultRun) inject(what string, do func() error) *fault {
	r.t.Helper()
	f := &fault{what: what, at: time.Now()}
	if err := do(); err != nil {
		r.t.Fatalf("%s: %v", what, err)
	}
	r.faults = append(r.faults, f)
	r.logAt(f.at, "FAULT %s (at %s, took %s)", what, f.at.Format("15:04:05.000"), time.Since(f.at).Round(time.Millisecond))
	return f
}

// awaitAcked waits until intake has acknowledged n more submissions, or all but the last few.
func (r *faultRun) awaitAcked(l *load, n int) {
	r.t.Helper()
	n = min(l.acknowledged()+n, l.expected()-10)
	poll.Until(r.t, phaseTimeout, fmt.Sprintf("%d acknowledged submissions", n), func() bool { return l.acknowledged() >= n })
}

// evidenceLeader waits until the evidence stream has a leader other than not, and returns its server
// name. Stream info is answered by the leader, so while there is none the request fails.
func (r *faultRun) evidenceLeader(ctx context.Context, not string) string {
	r.t.Helper()
	var leader string
	poll.Until(r.t, recoverTimeout, "a leader of the evidence stream", func() bool {
		info, err := evidenceInfo(ctx)
		if err == nil && info.Cluster != nil {
			leader = info.Cluster.Leader
		}
		return leader != "" && leader != not
	})
	return leader
}

// awaitCaughtUp waits until server is back among the evidence stream's replicas and current, notes
// how long that took after f, and returns when it was.
func (r *faultRun) awaitCaughtUp(ctx context.Context, f *fault, server string) time.Time {
	r.t.Helper()
	poll.Until(r.t, recoverTimeout, server+" to catch up on the evidence stream", func() bool {
		info, err := evidenceInfo(ctx)
		if err != nil || info.Cluster == nil {
			return false
		}
		if info.Cluster.Leader == server {
			return true
		}
		for _, p := range info.Cluster.Replicas {
			if p.Name == server && p.Current && !p.Offline {
				return true
			}
		}
		return false
	})
	f.note("%s current on the evidence stream %s after its restart", server, time.Since(f.at).Round(time.Millisecond))
	return time.Now()
}

// awaitInFlight waits until the fulfilment consumer has at least want deliveries not acknowledged yet
// (grants being made), and returns the most it saw; if that many do not show up within inFlightWait,
// the fault goes ahead anyway and the report says how many there were.
func (r *faultRun) awaitInFlight(ctx context.Context, want int) int {
	most := 0
	deadline := time.Now().Add(inFlightWait)
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		cons, err := deployment.JetStream().Consumer(cctx, topology.EventsStream, fulfilConsumer)
		if err == nil {
			// Consumer has just fetched the consumer's info; the cached copy is that.
			most = max(most, cons.CachedInfo().NumAckPending)
		}
		cancel()
		if most >= want || time.Now().After(deadline) {
			return most
		}
		<-time.After(poll.Interval)
	}
}

func evidenceInfo(ctx context.Context) (*jetstream.StreamInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	st, err := deployment.JetStream().Stream(ctx, topology.EventsStream)
	if err != nil {
		return nil, err
	}
	return st.Info(ctx)
}

// nodeContainer is the harness's container of NATS server n<i>: nats-<i>.
func nodeContainer(server string) string { return "nats-" + strings.TrimPrefix(server, "n") }
