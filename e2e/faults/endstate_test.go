package faults

import (
	"context"
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

// What the outage and crash scenarios share: a load of 20 s grants by one person, run in the
// background, and the checks that every request it got acknowledged reached its end state once.

// backgroundLoad submits count requests as who, one every every, each retried with its
// idempotency key for up to retryFor, in the background until the test ends; wait waits until every
// submission is acknowledged or given up, and fails the test if that takes longer than the load itself
// plus retryFor and a phase.
func backgroundLoad(t *testing.T, who, body string, every time.Duration, count int, retryFor time.Duration) (l *load, wait func()) {
	t.Helper()
	token, err := deployment.Token(who)
	if err != nil {
		t.Fatal(err)
	}
	l = &load{url: deployment.URL("intake"), token: token, body: body, keyPrefix: t.Name() + "-" + who + "-" + events.NewID(),
		every: every, count: count, retryFor: retryFor, client: &http.Client{Timeout: 10 * time.Second}}
	ctx, stop := context.WithCancel(t.Context())
	var bg sync.WaitGroup
	done := make(chan struct{})
	bg.Go(func() { defer close(done); l.run(ctx) })
	t.Cleanup(func() { stop(); bg.Wait() })
	return l, func() {
		t.Helper()
		select {
		case <-done:
		case <-time.After(time.Duration(count)*every + retryFor + phaseTimeout):
			t.Fatalf("the load of %s did not finish", who)
		}
	}
}

// acknowledgedIDs are the request IDs intake acknowledged among subs; unacknowledged the submissions
// it never did, with why.
func acknowledgedIDs(subs []*submission) (ids, unacknowledged []string) {
	for _, s := range subs {
		if s.id != "" {
			ids = append(ids, s.id)
		} else {
			unacknowledged = append(unacknowledged, fmt.Sprintf("#%d: %s", s.n, s.refusal))
		}
	}
	return ids, unacknowledged
}

// endStates are the verdicts on a load's acknowledged requests once they should all have ended: stored
// once, granted once on an allowing decision, revoked at expiry, and no event recorded twice for the
// same cause.
type endStates struct {
	submits    submitChecks
	grants     grantChecks
	lifecycles lifecycleChecks
	// repeated are events of one request with the same type and causation: the same reaction applied
	// twice (a redelivery after a crash handled again instead of recognised).
	repeated []string
}

// checkEndStates reads the evidence stream and judges subs by it; grants checks every request there.
func checkEndStates(t *testing.T, subs []*submission) endStates {
	t.Helper()
	ev, err := readEvidence(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ids, _ := acknowledgedIDs(subs)
	return endStates{submits: checkSubmissions(subs, ev), grants: checkGrants(ev), lifecycles: checkLifecycles(subs, ev),
		repeated: repeatedCausations(ev, ids)}
}

// repeatedCausations finds, among the requests ids, two events of the same type caused by the same
// event or call. Each reaction appends once per cause; intake records the idempotency key, approval
// the review, each consumer the event it reacted to.
func repeatedCausations(ev evidence, ids []string) []string {
	var found []string
	for _, id := range ids {
		seen := map[string]int{}
		for _, s := range ev[id] {
			if s.ev.CausationID == "" {
				continue
			}
			seen[string(s.ev.Type)+" caused by "+s.ev.CausationID]++
		}
		for _, k := range slices.Sorted(maps.Keys(seen)) {
			if seen[k] > 1 {
				found = append(found, fmt.Sprintf("%s: %d× %s %s", id, seen[k], k, lifecycle(ev[id])))
			}
		}
	}
	return found
}

func (e endStates) String() string {
	return fmt.Sprintf("lost %d, duplicated submits %d, granted twice %d, granted without an allowing decision or approval %d, "+
		"never granted %d, not revoked at expiry %d, events repeated for one cause %d",
		len(e.submits.lost), len(e.submits.duplicated), len(e.grants.twice), len(e.grants.groundless),
		len(e.lifecycles.ungranted), len(e.lifecycles.unrevoked), len(e.repeated))
}

// verdicts fails t for every finding, naming the first few of each.
func (e endStates) verdicts(t *testing.T) {
	t.Helper()
	failOn(t, e.findings())
}

func (e endStates) findings() []findings {
	return []findings{
		{"acknowledged submissions lost", e.submits.lost},
		{"submissions stored more than once", e.submits.duplicated},
		{"requests granted more than once in the stream", e.grants.twice},
		{"grants without an allowing decision or approval", e.grants.groundless},
		{"acknowledged requests never granted", e.lifecycles.ungranted},
		{"grants not revoked at expiry with the access gone", e.lifecycles.unrevoked},
		{"events recorded twice for one cause", e.repeated},
	}
}

// findings are what one check found: each a request, or a submission, and why.
type findings struct {
	what  string
	found []string
}

// failOn fails t for every check that found something, naming the first few.
func failOn(t *testing.T, checks []findings) {
	t.Helper()
	for _, f := range checks {
		if len(f.found) > 0 {
			t.Errorf("%d %s: %s", len(f.found), f.what, strings.Join(f.found[:min(len(f.found), 10)], "; "))
		}
	}
}
