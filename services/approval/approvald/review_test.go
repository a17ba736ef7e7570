package approvald_test

import (
	"context"
	"encoding/json/v2"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grantline/grantline/api"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/services/approval"
	"github.com/grantline/grantline/services/approval/approvald"
	"github.com/grantline/grantline/services/approval/httpapi"
)

const approveBody = `{"decision":"approve","comment":"checked INC-7"}`

// inbox is GET /v1/reviews as user.
func (w *world) inbox(t testing.TB, user string) []approval.Item {
	t.Helper()
	status, body := w.call(t, "GET", "/v1/reviews", user, "")
	if status != http.StatusOK {
		t.Fatalf("GET /v1/reviews as %s: %d %s", user, status, body)
	}
	var r httpapi.Reviews
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	return r.Items
}

func has(items []approval.Item, id string) (approval.Item, bool) {
	i := slices.IndexFunc(items, func(it approval.Item) bool { return it.RequestID == id })
	if i < 0 {
		return approval.Item{}, false
	}
	return items[i], true
}

// TestReviewOverHTTP walks the demo's payments-admin request (owners, then security) through the API,
// with the refusals along the way.
func TestReviewOverHTTP(t *testing.T) {
	w := newWorld(t)
	id := w.paymentsAdmin(t, alice)
	franks := w.paymentsAdmin(t, frank)
	reviews := "/v1/requests/" + id + "/reviews"

	steps := []struct {
		name    string
		user    string
		path    string
		body    string
		status  int
		problem string
	}{
		{"alice approves her own request", "alice", reviews, approveBody, 403, "separation-of-duties"},
		{"frank, a payments owner, approves his own request", "frank", "/v1/requests/" + franks + "/reviews", approveBody, 403, "separation-of-duties"},
		{"dave is in no stage's group: the request does not exist for him", "dave", reviews, approveBody, 404, "not-found"},
		{"carol (security) before the owners: her stage is not open", "carol", reviews, approveBody, 403, "not-a-reviewer"},
		{"no token", "", reviews, approveBody, 401, "unauthenticated"},
		{"a body that tries to set the reviewer", "bob", reviews, `{"decision":"approve","reviewer":"carol"}`, 400, "malformed-body"},
		{"a decision that is neither", "bob", reviews, `{"decision":"maybe"}`, 422, "invalid-review"},
		{"a stale digest", "bob", reviews, `{"decision":"approve","request_digest":"sha256:0000"}`, 409, "stale-digest"},
		{"an unknown request", "bob", "/v1/requests/" + events.NewID() + "/reviews", approveBody, 404, "not-found"},
		{"not a request ID", "bob", "/v1/requests/not-an-id/reviews", approveBody, 404, "not-found"},
		{"bob approves for the owners", "bob", reviews, approveBody, 201, ""},
		{"bob approves a second time: each person counts once", "bob", reviews, approveBody, 403, "separation-of-duties"},
		{"frank, another owner: the owners' stage is satisfied", "frank", reviews, approveBody, 403, "not-a-reviewer"},
		{"carol approves for security: approved", "carol", reviews, `{"decision":"approve"}`, 201, ""},
		{"frank after the request was approved", "frank", reviews, approveBody, 409, "not-pending"},
		{"dave after approval learns no more than before", "dave", reviews, approveBody, 404, "not-found"},
		{"alice after approval is still refused as the requester", "alice", reviews, approveBody, 403, "separation-of-duties"},
	}
	for _, s := range steps {
		status, body := w.call(t, "POST", s.path, s.user, s.body)
		if status != s.status || (s.problem != "" && problem(t, body) != s.problem) {
			t.Fatalf("%s: %d %s, want %d %s", s.name, status, body, s.status, s.problem)
		}
	}

	l := w.load(t, id)
	if l.Request.Status() != events.StatusApproved || !slices.Equal(l.Request.Approvers(), []string{"bob", "carol"}) {
		t.Fatalf("status %s, approvers %v", l.Request.Status(), l.Request.Approvers())
	}
	last := l.Events[len(l.Events)-1]
	if last.Type != events.TypeApproved || last.Source != "/grantline/approval" {
		t.Fatalf("last event %s from %s", last.Type, last.Source)
	}
	rv := l.Request.Reviews()
	if len(rv) != 2 || rv[0].Reviewer.ID != "bob" || rv[0].Stage != 0 || rv[1].Reviewer.ID != "carol" || rv[1].Stage != 1 ||
		rv[0].RequestDigest != l.Request.Submitted().RequestDigest || rv[0].Comment != "checked INC-7" {
		t.Fatalf("reviews %+v", rv)
	}
	// Nothing the refused calls tried reached the stream: submitted, decided, two reviews, approved.
	if len(l.Events) != 5 || len(w.load(t, franks).Events) != 2 {
		t.Fatalf("%d and %d events", len(l.Events), len(w.load(t, franks).Events))
	}

	// Each separation-of-duties refusal is recorded: a warning naming the request, reviewer and reason.
	for _, want := range []map[string]any{
		{"level": "WARN", "request_id": id, "reviewer": "alice", "reason": approval.DutyRequester},
		{"level": "WARN", "request_id": franks, "reviewer": "frank", "reason": approval.DutyRequester},
		{"level": "WARN", "request_id": id, "reviewer": "bob", "reason": approval.DutyAlreadyReviewed},
	} {
		if len(w.logs.lines(want)) == 0 {
			t.Errorf("no log line %v", want)
		}
	}
}

// TestReviewAnswer: 201 carries the recorded review and where the request stands.
func TestReviewAnswer(t *testing.T) {
	w := newWorld(t)
	id := w.paymentsAdmin(t, alice)
	status, body := w.call(t, "POST", "/v1/requests/"+id+"/reviews", "bob", approveBody)
	var got httpapi.Review
	if status != 201 || json.Unmarshal(body, &got) != nil {
		t.Fatalf("%d %s", status, body)
	}
	if got.Reviewer != "bob" || got.StageName != "owners" || got.Status != events.StatusPendingApproval || got.RequestDigest == "" {
		t.Fatalf("answer %+v", got)
	}
	status, body = w.call(t, "POST", "/v1/requests/"+id+"/reviews", "carol", `{"decision":"reject","comment":"not during the freeze","request_digest":"`+got.RequestDigest+`"}`)
	if status != 201 || json.Unmarshal(body, &got) != nil || got.Status != events.StatusRejected || got.StageName != "security" {
		t.Fatalf("carol rejects: %d %s", status, body)
	}
	rej := w.load(t, id).Request.Rejection()
	if rej == nil || rej.Reason != events.RejectedByReviewer || rej.RejectedBy != "carol" {
		t.Fatalf("rejection %+v", rej)
	}
}

// TestInboxOverHTTP: GET /v1/reviews lists what awaits the caller, never their own requests.
func TestInboxOverHTTP(t *testing.T) {
	w := newWorld(t)
	aliceOwn := w.submit(t, alice, "payments-admin", false)
	w.decide(t, aliceOwn, time.Now().Add(time.Hour), false, events.Stage{Name: "engineering", Groups: []string{"engineers"}, MinApprovals: 1})
	forAlice := w.submit(t, dave, "payments-admin", false)
	w.decide(t, forAlice, time.Now().Add(time.Hour), false, events.Stage{Name: "engineering", Groups: []string{"engineers"}, MinApprovals: 1})
	payments := w.paymentsAdmin(t, alice)

	// The projection is asynchronous: wait until every request is in before judging any inbox.
	poll.Until(t, 10*time.Second, "the inboxes to show dave's request to alice and alice's to frank", func() bool {
		_, forAliceListed := has(w.inbox(t, "alice"), forAlice)
		_, paymentsListed := has(w.inbox(t, "frank"), payments)
		return forAliceListed && paymentsListed
	})
	items := w.inbox(t, "alice")
	if _, ok := has(items, aliceOwn); ok {
		t.Fatal("alice's inbox lists her own request")
	}
	if _, ok := has(items, payments); ok {
		t.Fatal("alice's inbox lists a request for payments owners")
	}
	// Security's stage is not open before the owners.
	if _, ok := has(w.inbox(t, "carol"), payments); ok {
		t.Fatal("carol's inbox lists a request whose security stage is not open")
	}
	it, ok := has(w.inbox(t, "frank"), payments)
	if !ok || it.StageName != "owners" || it.Requester != "alice" || it.RequestDigest == "" || it.Entitlement != "payments-admin" {
		t.Fatalf("frank's inbox: %+v (listed %v)", it, ok)
	}

	if status, body := w.call(t, "POST", "/v1/requests/"+payments+"/reviews", "bob", approveBody); status != 201 {
		t.Fatalf("bob: %d %s", status, body)
	}
	poll.Until(t, 10*time.Second, "carol's inbox to show the request at the security stage", func() bool {
		it, ok := has(w.inbox(t, "carol"), payments)
		return ok && it.StageName == "security" && it.Stage == 1
	})
	poll.Until(t, 10*time.Second, "the request to leave the owners' inbox", func() bool {
		_, inFranks := has(w.inbox(t, "frank"), payments)
		_, inBobs := has(w.inbox(t, "bob"), payments)
		return !inFranks && !inBobs
	})
	if status, body := w.call(t, "POST", "/v1/requests/"+payments+"/reviews", "carol", approveBody); status != 201 {
		t.Fatalf("carol: %d %s", status, body)
	}
	poll.Until(t, 10*time.Second, "the approved request to leave carol's inbox", func() bool {
		_, ok := has(w.inbox(t, "carol"), payments)
		return !ok
	})
	if status, _ := w.call(t, "GET", "/v1/reviews", "", ""); status != http.StatusUnauthorized {
		t.Fatalf("no token: %d", status)
	}
}

// TestLastSlotRace: two reviewers approving the last open slot at the same instant yield exactly one
// approved; the loser is told the request no longer awaits review.
func TestLastSlotRace(t *testing.T) {
	w := newWorld(t)
	for round := range 6 {
		id := w.submit(t, alice, "payments-admin", false)
		w.decide(t, id, time.Now().Add(time.Hour), false, events.Stage{Name: "owners", Groups: []string{"payments-owners"}, MinApprovals: 1})
		start := make(chan struct{})
		statuses := make([]int, 2)
		var wg sync.WaitGroup
		for i, user := range []string{"bob", "frank"} {
			tok, err := w.issuer.Mint(user, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			wg.Go(func() {
				req, _ := http.NewRequest("POST", w.srv.URL+"/v1/requests/"+id+"/reviews", strings.NewReader(approveBody))
				req.Header.Set("Authorization", "Bearer "+tok)
				<-start
				resp, err := api.Client(t).Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				statuses[i] = resp.StatusCode
			})
		}
		close(start)
		wg.Wait()
		slices.Sort(statuses)
		if !slices.Equal(statuses, []int{201, 409}) {
			t.Fatalf("round %d: statuses %v, want one 201 and one 409", round, statuses)
		}
		if n, r := w.count(t, id, events.TypeApproved), w.count(t, id, events.TypeReviewed); n != 1 || r != 1 {
			t.Fatalf("round %d: %d approved and %d reviewed events, want 1 and 1", round, n, r)
		}
	}
}

// TestLastSlotRaceOnOneVersion forces the race the HTTP test can only hope for: both reviewers decide
// on the same version of the request before either appends. The compare-and-set lets one batch in;
// the other reloads, decides again, and finds the request approved.
func TestLastSlotRaceOnOneVersion(t *testing.T) {
	w := newWorld(t)
	rules := approvald.Rules()
	for round := range 4 {
		id := w.submit(t, alice, "payments-admin", false)
		w.decide(t, id, time.Now().Add(time.Hour), false, events.Stage{Name: "owners", Groups: []string{"payments-owners"}, MinApprovals: 1})
		var decided sync.WaitGroup
		decided.Add(2)
		errs := make([]error, 2)
		attempts := make([]int, 2)
		var wg sync.WaitGroup
		for i, who := range []events.Principal{{ID: "bob", Groups: []string{"payments-owners"}}, frank} {
			wg.Go(func() {
				_, errs[i] = w.stores[events.Approval].Update(context.Background(), id, func(r *events.Request) ([]events.Draft, error) {
					attempts[i]++
					drafts, err := rules.Review(r, approval.Review{Reviewer: who, Decision: events.ReviewApprove})
					if attempts[i] == 1 {
						decided.Done()
						decided.Wait() // both have decided on the version they loaded
					}
					return drafts, err
				})
			})
		}
		wg.Wait()
		won := 0
		for i, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, approval.ErrNotPending) || attempts[i] < 2:
				t.Fatalf("round %d: loser's error %v after %d decisions, want not pending after deciding again", round, err, attempts[i])
			}
		}
		if won != 1 || w.count(t, id, events.TypeApproved) != 1 {
			t.Fatalf("round %d: %d winners, %d approved events", round, won, w.count(t, id, events.TypeApproved))
		}
	}
}

// TestRetriedReviewGetsTheRecordedOutcome: bob's review is stored but its answer never reaches him (the
// service died before answering: here the answer is dropped). His client retries the same action with
// its idempotency key and gets the recorded review, 201, where it used to get a separation-of-duties
// refusal; the stream holds one review. A new action (another key) is still refused.
func TestRetriedReviewGetsTheRecordedOutcome(t *testing.T) {
	w := newWorld(t)
	id := w.paymentsAdmin(t, alice)
	path := "/v1/requests/" + id + "/reviews"
	review := func(key string) (int, []byte) {
		return w.call(t, "POST", path, "bob", approveBody, "Idempotency-Key", key)
	}
	if status, body := review("bob-approves-1"); status != http.StatusCreated {
		t.Fatalf("first attempt: %d %s", status, body)
	}
	status, body := review("bob-approves-1")
	if status != http.StatusCreated {
		t.Fatalf("the retry: %d %s (%s), want 201 with the recorded review", status, body, problem(t, body))
	}
	var got httpapi.Review
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if got.Reviewer != "bob" || got.Decision != events.ReviewApprove || got.StageName != "owners" || got.Comment != "checked INC-7" {
		t.Fatalf("the retry answered %+v", got)
	}
	if n := w.count(t, id, events.TypeReviewed); n != 1 {
		t.Fatalf("%d reviewed events, want 1", n)
	}
	if status, body := review("bob-approves-2"); status != http.StatusForbidden || problem(t, body) != "separation-of-duties" {
		t.Fatalf("a second action by bob: %d %s, want a separation-of-duties refusal", status, body)
	}
}
