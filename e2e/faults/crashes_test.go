package faults

import (
	"context"
	"encoding/json/v2"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/events"
)

// The service crashes: frank's load of auto-approved requests (intake, policy, fulfilment, the revoker)
// and dave's of requests needing one approval from analytics-owners, which bob gives as they show in
// his inbox (approval), run while intake, policy and approval are each killed in turn, crashBetween
// acknowledged submissions apart, and started again crashDown later.
const (
	crashLoadCount     = 280 // 70 s at 4/s: longer than the three kills take
	crashReviewedEvery = time.Second
	crashReviewedCount = 70
	reviewedBody       = `{"entitlement":"analytics-read","duration":"20s","justification":"service crash scenario, bob approves"}`
	crashBetween       = 24
	crashDown          = 5 * time.Second
	// reviewEvery is how often bob looks at his inbox; reviewedWithin bounds the wait for each of dave's
	// acknowledged requests to be approved.
	reviewEvery    = 500 * time.Millisecond
	reviewedWithin = 3 * time.Minute
)

// crashed are the services killed, in order. Each runs as one container.
var crashed = []string{"intake", "policy", "approval"}

// TestServiceCrashes SIGKILLs intake, policy and approval one at a time under load and starts each
// again. The clients retry with their idempotency keys, bob approves again what he could not, the
// consumers' deliveries held by the dead process come back after the ack wait. Then every acknowledged
// request must have been stored once, decided, approved where that was needed, granted once and
// revoked at expiry, with no event recorded twice for one cause. It logs, for each crash, the
// submissions that needed a retry and the slowest way from submission to grant.
func TestServiceCrashes(t *testing.T) {
	logsOnFailure(t)
	ctx := t.Context()
	r := &faultRun{t: t, began: time.Now()}
	t.Cleanup(func() {
		if r.killed != "" {
			if err := deployment.Start(context.Background(), r.killed); err != nil {
				t.Errorf("start %s again: %v", r.killed, err)
			}
		}
	})
	frank, frankDone := backgroundLoad(t, "frank", loadBody, loadEvery, crashLoadCount, submitRetryFor)
	dave, daveDone := backgroundLoad(t, "dave", reviewedBody, crashReviewedEvery, crashReviewedCount, submitRetryFor)
	bob := &approver{p: personOf(t, "bob"), requester: "dave", seen: map[string]string{}}
	reviewCtx, stopReviews := context.WithCancel(ctx)
	var bg sync.WaitGroup
	bg.Go(func() { bob.run(reviewCtx) })
	t.Cleanup(func() { stopReviews(); bg.Wait() })

	type window struct {
		kill     *fault
		restart  *fault
		readyAt  time.Time
		failures map[string]int
	}
	var windows []window
	for _, svc := range crashed {
		r.awaitAcked(frank, crashBetween)
		before := bob.failureCounts()
		kill := r.inject("kill "+svc, func() error { return deployment.Kill(ctx, svc) })
		r.killed = svc
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(crashDown):
		}
		restart := r.inject("restart "+svc, func() error { return deployment.Start(ctx, svc) })
		r.killed = ""
		w := window{kill: kill, restart: restart, readyAt: time.Now(), failures: map[string]int{}}
		restart.note("ready %s after the restart began", w.readyAt.Sub(restart.at).Round(time.Millisecond))
		for kind, n := range bob.failureCounts() {
			if n > before[kind] {
				w.failures[kind] = n - before[kind]
			}
		}
		windows = append(windows, w)
	}
	frankDone()
	daveDone()
	subs := slices.Concat(frank.submissions(), dave.submissions())
	ids, unacknowledged := acknowledgedIDs(subs)
	for _, u := range unacknowledged {
		t.Errorf("submission %s was never acknowledged", u)
	}
	daveIDs, _ := acknowledgedIDs(dave.submissions())
	awaitEvent(t, daveIDs, events.TypeApproved, reviewedWithin)
	stopReviews()
	bg.Wait()
	awaitEvent(t, ids, events.TypeRevoked, endStateWithin)

	ev, err := readEvidence(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, w := range windows {
		fmt.Fprintf(&b, "\n  t+%5.1fs  %s, restarted after %s, ready %s later", w.kill.at.Sub(r.began).Seconds(), w.kill.what,
			w.restart.at.Sub(w.kill.at).Round(time.Millisecond), w.readyAt.Sub(w.restart.at).Round(time.Millisecond))
		sent, retried, slowestAck, slowestGrant := 0, 0, time.Duration(0), time.Duration(0)
		for _, s := range subs {
			if !within(s.started, w.kill.at, w.readyAt) {
				continue
			}
			sent++
			if s.attempts > 1 {
				retried++
			}
			if s.id == "" {
				continue
			}
			slowestAck = max(slowestAck, s.acked.Sub(s.started))
			if g := of(ev[s.id], events.TypeGranted); len(g) > 0 {
				slowestGrant = max(slowestGrant, g[0].at.Sub(s.started))
			}
		}
		fmt.Fprintf(&b, "\n             %d submissions sent until it was ready, %d retried; slowest acknowledged after %s, granted after %s",
			sent, retried, slowestAck.Round(time.Millisecond), slowestGrant.Round(time.Millisecond))
		if len(w.failures) > 0 {
			var parts []string
			for _, kind := range slices.Sorted(maps.Keys(w.failures)) {
				parts = append(parts, fmt.Sprintf("%d× %s", w.failures[kind], kind))
			}
			fmt.Fprintf(&b, "\n             bob's reviews meanwhile: %s", strings.Join(parts, "; "))
		}
	}
	e := checkEndStates(t, subs)
	t.Logf("service crash report:%s\n  %d acknowledged (frank %d, dave %d), %d approvals by bob: %s", b.String(), len(ids),
		len(ids)-len(daveIDs), len(daveIDs), bob.approvedCount(), e)
	e.verdicts(t)
	for _, f := range bob.refusals() {
		t.Errorf("bob's review refused: %s", f)
	}
}

// approver is a reviewer approving, as they show in their inbox, the requests of one requester: a
// person at the approval service's HTTP API, who tries again later when it does not answer.
type approver struct {
	p         person
	requester string

	mu sync.Mutex
	// seen is each request's outcome so far: "approved", or the last failure's kind.
	seen     map[string]string
	failures map[string]int
	refused  []string
}

// run looks at the inbox every reviewEvery until ctx ends, approving what it has not approved yet.
func (a *approver) run(ctx context.Context) {
	tick := time.NewTicker(reviewEvery)
	defer tick.Stop()
	for {
		for _, id := range a.inbox(ctx) {
			a.approve(ctx, id)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// inbox are the requests of a.requester awaiting a's review that a has not approved yet.
func (a *approver) inbox(ctx context.Context) []string {
	ans, err := deployment.Call(ctx, a.p.token, http.MethodGet, "approval", "/v1/reviews", "")
	if err != nil || ans.Status != http.StatusOK {
		a.fail("", "inbox", err, ans.Status)
		return nil
	}
	var inbox struct {
		Items []struct {
			RequestID string `json:"request_id"`
			Requester string `json:"requester"`
		} `json:"items"`
	}
	if err := json.Unmarshal(ans.Body, &inbox); err != nil {
		a.fail("", "inbox", err, ans.Status)
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var ids []string
	for _, it := range inbox.Items {
		if it.Requester == a.requester && a.seen[it.RequestID] != "approved" {
			ids = append(ids, it.RequestID)
		}
	}
	return ids
}

// approve approves request id. A 201 is done; a 5xx or no answer is tried again at the next look; a
// 409 after an earlier attempt that got no answer is that attempt's approval, stored before the
// crash; anything else is a refusal the test reports.
func (a *approver) approve(ctx context.Context, id string) {
	ans, err := deployment.Call(ctx, a.p.token, http.MethodPost, "approval", "/v1/requests/"+id+"/reviews",
		`{"decision":"approve","comment":"service crash scenario"}`)
	if ctx.Err() != nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	earlier := a.seen[id]
	switch {
	case err == nil && ans.Status == http.StatusCreated:
		a.seen[id] = "approved"
	case err == nil && ans.Status == http.StatusConflict && earlier != "":
		a.seen[id] = "approved"
		a.count("409 after an attempt without an answer")
	case err != nil || ans.Status >= 500:
		a.failLocked(id, "review", err, ans.Status)
	default:
		a.seen[id] = "approved" // not again: the refusal is reported
		a.refused = append(a.refused, fmt.Sprintf("%s: %d %s", id, ans.Status, ans.Body))
	}
}

func (a *approver) fail(id, what string, err error, status int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.failLocked(id, what, err, status)
}

func (a *approver) failLocked(id, what string, err error, status int) {
	kind := fmt.Sprintf("%s answered %d", what, status)
	if err != nil {
		kind = what + ": no answer (" + transportKind(err) + ")"
	}
	if id != "" {
		a.seen[id] = kind
	}
	a.count(kind)
}

func (a *approver) count(kind string) {
	if a.failures == nil {
		a.failures = map[string]int{}
	}
	a.failures[kind]++
}

func (a *approver) failureCounts() map[string]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.failures)
}

func (a *approver) approvedCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, s := range a.seen {
		if s == "approved" {
			n++
		}
	}
	return n
}

func (a *approver) refusals() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.refused)
}
