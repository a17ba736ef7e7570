package faults

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/dependency"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/poll"
)

// Two of the three NATS nodes down at once: frank's load of auto-approved requests runs throughout,
// each submission retried with its key for up to quorumRetryFor (longer than the outage and the
// recovery); alice's probes submit once every quorumProbeEvery without retrying, to see what intake
// answers meanwhile.
const (
	quorumLoadCount  = 240 // a minute at 4/s
	quorumBefore     = 40  // acknowledged before the nodes go
	quorumDown       = 20 * time.Second
	quorumRetryFor   = 3 * time.Minute
	quorumProbeEvery = 500 * time.Millisecond
	// quorumRecoverWithin bounds the wait, after the nodes' restart, for a submit to succeed again and
	// for every acknowledged request to be granted.
	quorumRecoverWithin = 3 * time.Minute
)

// probeAnswer is what one probe's single attempt got.
type probeAnswer struct {
	sub *submission
	a   attempt
	err error
}

// TestNATSQuorumLoss kills two of the three NATS nodes at once under load, the evidence stream's
// leader among them, so that no stream has a quorum, and restarts them after quorumDown. While they
// are down, intake must refuse writes cleanly: 503 with Retry-After and a problem naming NATS (not a
// 500, nor a 4xx, which tells a client not to try again), and never a 202 for a request it did not
// store. Afterwards every acknowledged
// request, the load's and the probes', must have been stored once, granted once and revoked at expiry,
// with no event recorded twice for one cause. It logs what intake answered, how long after the restart
// submits succeeded again, and how long the backlog took.
func TestNATSQuorumLoss(t *testing.T) {
	logsOnFailure(t)
	ctx := t.Context()
	r := &faultRun{t: t, began: time.Now()}
	l, loadDone := backgroundLoad(t, "frank", loadBody, loadEvery, quorumLoadCount, quorumRetryFor)
	r.awaitAcked(l, quorumBefore)

	leader := r.evidenceLeader(ctx, "")
	nodes := []string{nodeContainer(leader)}
	for _, name := range deployment.Names() {
		if strings.HasPrefix(name, "nats-") && name != nodes[0] {
			nodes = append(nodes, name)
			break
		}
	}
	down := true
	t.Cleanup(func() {
		if down {
			if err := startAll(context.Background(), nodes); err != nil {
				t.Errorf("start %v again: %v", nodes, err)
			}
		}
	})
	kill := r.inject(fmt.Sprintf("kill %s (%s, leader of the evidence stream) and %s", nodes[0], leader, nodes[1]), func() error {
		return errors.Join(deployment.Kill(ctx, nodes[0]), deployment.Kill(ctx, nodes[1]))
	})

	token, err := deployment.Token("alice")
	if err != nil {
		t.Fatal(err)
	}
	probes := &load{url: deployment.URL("intake"), token: token, body: loadBody, keyPrefix: "quorum-probe-" + events.NewID(),
		client: &http.Client{Timeout: 10 * time.Second}}
	var mu sync.Mutex
	var answers []probeAnswer
	probeCtx, stopProbes := context.WithCancel(ctx)
	var bg sync.WaitGroup
	bg.Go(func() {
		tick := time.NewTicker(quorumProbeEvery)
		defer tick.Stop()
		for {
			s := probes.add()
			s.attempts = 1
			a, err := probes.send(probeCtx, s.key)
			if probeCtx.Err() != nil {
				return // not an answer: the test stopped probing
			}
			if err == nil && a.id != "" {
				s.id, s.acked = a.id, time.Now()
			}
			mu.Lock()
			answers = append(answers, probeAnswer{sub: s, a: a, err: err})
			mu.Unlock()
			select {
			case <-probeCtx.Done():
				return
			case <-tick.C:
			}
		}
	})
	t.Cleanup(func() { stopProbes(); bg.Wait() })

	select {
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	case <-time.After(quorumDown):
	}
	restart := r.inject("restart "+strings.Join(nodes, " and "), func() error { return startAll(ctx, nodes) })
	down = false
	restart.note("both nodes healthy (JetStream current) %s after the restart began", time.Since(restart.at).Round(time.Millisecond))

	// Recovered: a probe sent after the restart began was acknowledged.
	var firstAck time.Time
	poll.Until(t, quorumRecoverWithin, "a submission acknowledged after the restart", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range answers {
			if p.a.id != "" && p.sub.started.After(restart.at) {
				firstAck = p.sub.acked
				return true
			}
		}
		return false
	})
	restart.note("submits succeed again %s after the restart began (%s after the kill)", firstAck.Sub(restart.at).Round(time.Millisecond),
		firstAck.Sub(kill.at).Round(time.Millisecond))
	stopProbes()
	bg.Wait()
	loadDone()

	subs := slices.Concat(l.submissions(), probes.submissions())
	ids, _ := acknowledgedIDs(subs)
	_, unacknowledged := acknowledgedIDs(l.submissions())
	for _, u := range unacknowledged {
		t.Errorf("load submission %s was never acknowledged", u)
	}
	awaitEvent(t, ids, events.TypeGranted, quorumRecoverWithin)
	ev, err := readEvidence(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var lastGrant time.Time
	for _, id := range ids {
		if g := of(ev[id], events.TypeGranted); len(g) > 0 && g[0].at.After(lastGrant) {
			lastGrant = g[0].at
		}
	}
	restart.note("every acknowledged request granted %s after the restart began", lastGrant.Sub(restart.at).Round(time.Millisecond))

	judgeQuorumAnswers(t, kill, restart, answers, ev)
	loadRetried, slowest := 0, time.Duration(0)
	for _, s := range l.submissions() {
		if s.attempts > 1 {
			loadRetried++
		}
		if !s.acked.IsZero() {
			slowest = max(slowest, s.acked.Sub(s.started))
		}
	}
	kill.note("load: %d submissions, %d of them retried, the slowest acknowledged after %s", len(l.submissions()), loadRetried,
		slowest.Round(time.Millisecond))

	awaitEvent(t, ids, events.TypeRevoked, endStateWithin)
	e := checkEndStates(t, subs)
	var b strings.Builder
	for _, f := range r.faults {
		fmt.Fprintf(&b, "\n  t+%5.1fs  %s", f.at.Sub(r.began).Seconds(), f.what)
		for _, n := range f.notes {
			fmt.Fprintf(&b, "\n             %s", n)
		}
	}
	t.Logf("quorum loss report:%s\n  %d acknowledged (load and probes): %s", b.String(), len(ids), e)
	e.verdicts(t)
}

// judgeQuorumAnswers checks and tallies what the probes sent while the nodes were down (from kill to
// restart) got: a 503 with Retry-After naming NATS, or a 202 for a request the stream holds. It notes
// the tally on kill.
func judgeQuorumAnswers(t *testing.T, kill, restart *fault, answers []probeAnswer, ev evidence) {
	t.Helper()
	refused := newUnavailableAnswers(dependency.Broker)
	tally := map[string]int{}
	var kinds []string
	sent := 0
	for _, p := range answers {
		if !within(p.sub.started, kill.at, restart.at) {
			continue
		}
		sent++
		var kind string
		switch {
		case p.err != nil:
			kind = "no answer (" + transportKind(p.err) + ")"
			t.Errorf("probe #%d in the outage got no answer: %v", p.sub.n, p.err)
		case p.a.status == http.StatusAccepted:
			kind = "202"
			if p.a.id == "" || len(of(ev[p.a.id], events.TypeSubmitted)) != 1 {
				t.Errorf("probe #%d was acknowledged as %q in the outage but is not stored once", p.sub.n, p.a.id)
			}
		default:
			var right bool
			kind, right = refused.judge(p.a.status, p.a.retryAfter, p.a.contentType, p.a.body)
			if !right {
				t.Errorf("probe #%d in the outage answered %s, not 503 with Retry-After naming %s: %s", p.sub.n, kind, dependency.Broker, p.a.body)
			}
		}
		if tally[kind] == 0 {
			kinds = append(kinds, kind)
		}
		tally[kind]++
	}
	var parts []string
	for _, k := range kinds {
		parts = append(parts, fmt.Sprintf("%d× %s", tally[k], k))
	}
	kill.note("%d single-attempt submits while the nodes were down: %s", sent, strings.Join(parts, "; "))
	if sent == 0 {
		t.Errorf("no probe was sent while the nodes were down")
	}
}

// transportKind names a transport error briefly: a timeout or a refused connection.
func transportKind(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "Client.Timeout"):
		return "client timeout"
	case strings.Contains(err.Error(), "connection refused"):
		return "connection refused"
	}
	return err.Error()
}

// startAll starts the stopped containers names at once and waits until each is ready: a NATS node's
// health waits for its JetStream to be current, which, with two of three nodes down, needs the other
// one back too.
func startAll(ctx context.Context, names []string) error {
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() { errs[i] = deployment.Start(ctx, name) })
	}
	wg.Wait()
	return errors.Join(errs...)
}
