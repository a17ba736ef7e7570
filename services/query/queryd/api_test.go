package queryd_test

import (
	"context"
	"encoding/json/v2"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/httpjson"
	"github.com/grantline/grantline/services/query"
	"github.com/grantline/grantline/services/query/httpapi"
	"github.com/grantline/grantline/services/query/internal/querytest"
)

var demoUsers = []string{"alice", "bob", "carol", "dave", "erin", "frank"}

// auditors are the demo's auditor groups (the default: auditors and security).
var auditors = []string{"auditors", "security"}

// owners are the demo catalogue's owner groups, as the service reads them.
var owners = map[string][]string{
	"analytics-read": {"analytics-owners"}, "payments-admin": {"payments-owners"},
	"reporting-db-credential": {"payments-owners"}, "mainframe-operator": {"security"},
}

func reader(user string) query.Reader {
	return query.NewReader(user, querytest.Groups[user], auditors, owners)
}

// list pages through GET /v1/requests?params as user with the given page size and returns the IDs in
// the order served.
func (e *env) list(t *testing.T, user, params string, limit string) []string {
	t.Helper()
	ids := []string{}
	cursor := ""
	for range 100 {
		q, _ := url.ParseQuery(params)
		if limit != "" {
			q.Set("limit", limit)
		}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var page httpapi.Page[query.View]
		e.getJSON(t, "/v1/requests?"+q.Encode(), user, &page)
		for _, v := range page.Items {
			ids = append(ids, v.ID)
		}
		if page.NextCursor == "" {
			return ids
		}
		cursor = page.NextCursor
	}
	t.Fatal("the pages never end")
	return nil
}

// newestFirst orders IDs as the lists serve them.
func newestFirst(ids []string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	slices.Reverse(out)
	if out == nil {
		out = []string{}
	}
	return out
}

// TestVisibility: requesters see their own requests, reviewers and owners what they decide on,
// auditors everything, anyone else nothing — and the SQL agrees with query.Reader.MayRead.
func TestVisibility(t *testing.T) {
	e := newEnv(t)
	a1 := e.Make().Submit(t, "alice", "analytics-read", false).Decide(t, events.OutcomeAutoApproved, false).Grant(t)
	a2 := e.Make().Submit(t, "alice", "payments-admin", false).Decide(t, events.OutcomeApprovalRequired, false, querytest.Stage("owners", 1, "payments-owners"))
	f1 := e.Make().Submit(t, "frank", "analytics-read", false).Decide(t, events.OutcomeApprovalRequired, false, querytest.Stage("peers", 1, "engineers"))
	b1 := e.Make().Submit(t, "bob", "mainframe-operator", false).Decide(t, events.OutcomeAutoApproved, false).Grant(t)
	e.caughtUp(t)
	all := []string{a1.ID, a2.ID, f1.ID, b1.ID}
	cases := []struct {
		who  string
		sees []string
		why  string
	}{
		{"alice", []string{a1.ID, a2.ID, f1.ID}, "her own two, and frank's whose stage takes engineers"},
		{"frank", []string{a2.ID, f1.ID}, "his own, and alice's for payments-admin, which payments-owners own"},
		{"bob", all, "his own, and the rest are for entitlements his groups own"},
		{"carol", all, "security is an auditor group"},
		{"erin", all, "auditors read everything"},
		{"dave", nil, "a stranger to every request"},
	}
	for _, c := range cases {
		got := e.list(t, c.who, "", "")
		if diff := cmp.Diff(newestFirst(c.sees), got); diff != "" {
			t.Errorf("%s (%s) sees (-want +got):\n%s", c.who, c.why, diff)
		}
		var model []string
		for _, id := range all {
			if reader(c.who).MayRead(e.Load(t, id).Request) {
				model = append(model, id)
			}
		}
		if diff := cmp.Diff(newestFirst(model), got); diff != "" {
			t.Errorf("%s: the list and query.Reader.MayRead disagree (-model +list):\n%s", c.who, diff)
		}
	}
	if status, _ := e.get(t, "/v1/requests/"+a1.ID+"/events", "dave"); status != http.StatusNotFound {
		t.Errorf("dave reading alice's events: %d, want 404", status)
	}
	// That GET /v1/requests/{id} stays intake's (read-your-writes) is the contract's to say: the
	// query service serves exactly the routes api/openapi.yaml gives it (gateway's TestContract).
	if status, _ := e.get(t, "/v1/requests/"+a1.ID+"/events", "frank"); status != http.StatusNotFound {
		t.Errorf("frank reading alice's analytics-read events: %d, want 404", status)
	}
	for _, path := range []string{"/v1/requests", "/v1/grants", "/v1/audit/access?entitlement=x&at=2026-01-01T00:00:00Z", "/v1/requests/" + a1.ID + "/events"} {
		status, body := e.get(t, path, "")
		var p httpjson.Problem
		if err := json.Unmarshal(body, &p); status != http.StatusUnauthorized || err != nil || p.Type != httpjson.ProblemTypeBase+"unauthenticated" {
			t.Errorf("GET %s without a token: %d %s", path, status, body)
		}
	}
}

// TestListFiltersAndPaging: each filter alone and combined, pages that add up to the whole list, and
// refusals of queries that cannot be answered as asked.
func TestListFiltersAndPaging(t *testing.T) {
	e := newEnv(t)
	auto := func(who, ent string) *querytest.Req {
		return e.Make().Submit(t, who, ent, false).Decide(t, events.OutcomeAutoApproved, false)
	}
	g1 := auto("alice", "analytics-read").Grant(t)
	g2 := auto("frank", "payments-admin").Grant(t)
	ap := auto("alice", "payments-admin")
	d1 := e.Make().Submit(t, "dave", "payments-admin", false).Decide(t, events.OutcomeDeny, false)
	w1 := e.Make().Submit(t, "alice", "analytics-read", false).Withdraw(t)
	rv := auto("dave", "analytics-read").Grant(t).Expire(t).Revoke(t)
	s1 := e.Make().Submit(t, "frank", "reporting-db-credential", false)
	e.caughtUp(t)
	everyone := []string{g1.ID, g2.ID, ap.ID, d1.ID, w1.ID, rv.ID, s1.ID}

	filters := []struct {
		params string
		want   []string
	}{
		{"", everyone},
		{"status=granted", []string{g1.ID, g2.ID}},
		{"status=approved", []string{ap.ID}},
		{"status=submitted", []string{s1.ID}},
		{"requester=alice", []string{g1.ID, ap.ID, w1.ID}},
		{"requester=ALICE", []string{g1.ID, ap.ID, w1.ID}},
		{"entitlement=payments-admin", []string{g2.ID, ap.ID, d1.ID}},
		{"status=granted&requester=frank", []string{g2.ID}},
		{"status=revoked&entitlement=analytics-read", []string{rv.ID}},
		{"requester=nobody", nil},
	}
	for _, f := range filters {
		for _, limit := range []string{"", "2", "500"} {
			got := e.list(t, "erin", f.params, limit)
			if diff := cmp.Diff(newestFirst(f.want), got); diff != "" {
				t.Errorf("?%s with limit %q (-want +got):\n%s", f.params, limit, diff)
			}
		}
	}
	var first httpapi.Page[query.View]
	e.getJSON(t, "/v1/requests?limit=3", "erin", &first)
	if len(first.Items) != 3 || first.NextCursor == "" {
		t.Fatalf("first page of 3: %d items, cursor %q", len(first.Items), first.NextCursor)
	}
	if v := first.Items[0]; v.Requester.ID == "" || v.Entitlement == "" || v.SubmittedAt.IsZero() || v.LastSeq == 0 || v.Version == 0 {
		t.Fatalf("an item lacks the view's fields: %+v", v)
	}

	for _, bad := range []string{"limit=0", "limit=501", "limit=ten", "cursor=bm90LWEtY3Vyc29y", "cursor=%25%25",
		"status=bogus", "awaiting_review=you", "owner=bob", "status=granted&status=denied", "requester=%20"} {
		status, body := e.get(t, "/v1/requests?"+bad, "erin")
		var p httpjson.Problem
		if err := json.Unmarshal(body, &p); status != http.StatusBadRequest || err != nil || p.Type != httpjson.ProblemTypeBase+"invalid-query" {
			t.Errorf("?%s: %d %s, want a 400 invalid-query problem", bad, status, body)
		}
	}
}

// TestExtensionChain: chain=<id> lists the chain of extensions holding a request, whichever of its
// requests is named, as far as the caller may read it; the views say what each extends.
func TestExtensionChain(t *testing.T) {
	e := newEnv(t)
	auto := func(r *querytest.Req) *querytest.Req { return r.Decide(t, events.OutcomeAutoApproved, false) }
	first := auto(e.Make().Submit(t, "alice", "analytics-read", false)).Grant(t)
	second := auto(e.Make().Extend(t, "alice", first)).Grant(t)
	third := auto(e.Make().Extend(t, "alice", second))
	other := auto(e.Make().Submit(t, "alice", "analytics-read", false)).Grant(t)
	elsewhere := auto(e.Make().Extend(t, "alice", other))
	e.caughtUp(t)
	chain := newestFirst([]string{first.ID, second.ID, third.ID})
	for _, named := range []*querytest.Req{first, second, third} {
		for user, want := range map[string][]string{"alice": chain, "erin": chain, "bob": chain, "dave": {}} {
			if diff := cmp.Diff(want, e.list(t, user, "chain="+named.ID, "")); diff != "" {
				t.Errorf("%s listing the chain of %s (-want +got):\n%s", user, named.ID, diff)
			}
		}
	}
	if diff := cmp.Diff(newestFirst([]string{other.ID, elsewhere.ID}), e.list(t, "alice", "chain="+elsewhere.ID, "1")); diff != "" {
		t.Errorf("another chain, a page of one at a time (-want +got):\n%s", diff)
	}
	var page httpapi.Page[query.View]
	e.getJSON(t, "/v1/requests?chain="+first.ID, "alice", &page)
	for _, v := range page.Items {
		want := map[string]string{first.ID: "", second.ID: first.ID, third.ID: second.ID}[v.ID]
		got := ""
		if v.Extends != nil {
			got = v.Extends.RequestID
		}
		if got != want {
			t.Errorf("%s extends %q, want %q", v.ID, got, want)
		}
	}
	if status, _ := e.get(t, "/v1/requests?chain=not-a-request", "alice"); status != http.StatusBadRequest {
		t.Errorf("a chain of something that is no request ID: %d, want 400", status)
	}
}

// TestAwaitingReview: awaiting_review=me lists what the caller may review now — open stages for one of
// their groups, never their own request, never one they reviewed — as a table of people over requests
// at different points of review.
func TestAwaitingReview(t *testing.T) {
	e := newEnv(t)
	pending := func(who, ent string, ordered bool, stages ...events.Stage) *querytest.Req {
		return e.Make().Submit(t, who, ent, false).Decide(t, events.OutcomeApprovalRequired, ordered, stages...)
	}
	// owners first, then security
	twoStages := pending("alice", "payments-admin", true, querytest.Stage("owners", 1, "payments-owners"), querytest.Stage("security", 1, "security"))
	// two owners needed: bob has reviewed, frank asked, so nobody is left who may
	reviewed := pending("frank", "payments-admin", false, querytest.Stage("owners", 2, "payments-owners")).Review(t, "bob", 0, events.ReviewApprove)
	analytics := pending("dave", "analytics-read", false, querytest.Stage("owners", 1, "analytics-owners"))
	pending("alice", "payments-admin", false, querytest.Stage("owners", 1, "payments-owners")).Review(t, "frank", 0, events.ReviewApprove).Approve(t)
	bobs := pending("bob", "payments-admin", false, querytest.Stage("owners", 1, "payments-owners"))
	ids := []string{twoStages.ID, reviewed.ID, analytics.ID, bobs.ID}
	check := func(when string, want map[string][]string) {
		t.Helper()
		e.caughtUp(t)
		for _, who := range demoUsers {
			got := e.list(t, who, "awaiting_review=me", "")
			if diff := cmp.Diff(newestFirst(want[who]), got); diff != "" {
				t.Errorf("%s: awaiting %s (-want +got):\n%s", when, who, diff)
			}
			var model []string
			for _, id := range ids {
				if query.AwaitsReviewBy(e.Load(t, id).Request, who, querytest.Groups[who]) {
					model = append(model, id)
				}
			}
			if diff := cmp.Diff(newestFirst(model), got); diff != "" {
				t.Errorf("%s: the list and query.AwaitsReviewBy disagree for %s (-model +list):\n%s", when, who, diff)
			}
		}
	}
	check("before security's turn", map[string][]string{
		"bob":   {twoStages.ID, analytics.ID},
		"frank": {twoStages.ID, bobs.ID},
	})
	twoStages.Review(t, "bob", 0, events.ReviewApprove)
	check("once the owners approved", map[string][]string{
		"bob":   {analytics.ID},
		"frank": {bobs.ID},
		"carol": {twoStages.ID},
	})
}

// TestEvents: a request's stored CloudEvents come back verbatim (they verify again from the answer
// alone) with the verdict; a forged event straight into the stream is reported where it is.
func TestEvents(t *testing.T) {
	e := newEnv(t)
	clean := e.Make().Submit(t, "alice", "analytics-read", false).Decide(t, events.OutcomeAutoApproved, false).Grant(t)
	tampered := e.Make().Submit(t, "dave", "payments-admin", false).Decide(t, events.OutcomeDeny, false)
	forgedSeq := e.Forge(t, tampered.ID, events.Intake, events.Approved{Approvers: []string{"dave"}})
	e.caughtUp(t)

	var got httpapi.Events
	e.getJSON(t, "/v1/requests/"+clean.ID+"/events", "alice", &got)
	stored := e.Load(t, clean.ID)
	if !got.Verification.Verified || got.Verification.Kind != "" || len(got.Events) != len(stored.Records) {
		t.Fatalf("clean request: %+v with %d events, want verified with %d", got.Verification, len(got.Events), len(stored.Records))
	}
	var again []events.Record
	for i, ev := range got.Events {
		rec := stored.Records[i]
		if ev.Seq != rec.Seq || ev.Subject != rec.Subject || ev.Signature != rec.Signature || string(ev.Body) != string(rec.Body) {
			t.Fatalf("event %d is not the stored one:\n got %s\nwant %s", i+1, ev.Body, rec.Body)
		}
		again = append(again, events.Record{Seq: ev.Seq, Subject: ev.Subject, Body: ev.Body, Signature: ev.Signature, StoredAt: ev.StoredAt})
	}
	if h := query.Verify(e.Trust, clean.ID, again); h.Problem != nil || h.Request.Status() != events.StatusGranted {
		t.Fatalf("the answer does not verify on its own: %+v", h.Problem)
	}

	// dave may read his own request, tampered or not; the verdict names the forged event.
	e.getJSON(t, "/v1/requests/"+tampered.ID+"/events", "dave", &got)
	want := httpapi.Verification{Kind: string(events.ViolationTypeNotAllowed), Position: 3, Seq: forgedSeq}
	if got.Verification.Detail == "" || len(got.Events) != 3 {
		t.Fatalf("tampered request: %+v with %d events", got.Verification, len(got.Events))
	}
	got.Verification.Detail, got.Verification.EventID = "", ""
	if diff := cmp.Diff(want, got.Verification); diff != "" {
		t.Fatalf("verdict on the tampered request (-want +got):\n%s", diff)
	}
	// The read side keeps the request as it was before the forgery.
	if ids := e.list(t, "dave", "status=denied", ""); !slices.Equal(ids, []string{tampered.ID}) {
		t.Fatalf("dave's denied requests: %v", ids)
	}

	for _, c := range []struct {
		path, user string
		status     int
	}{
		{"/v1/requests/" + clean.ID + "/events", "erin", http.StatusOK},
		{"/v1/requests/" + clean.ID + "/events", "dave", http.StatusNotFound},
		{"/v1/requests/" + events.NewID() + "/events", "erin", http.StatusNotFound},
		{"/v1/requests/not-a-request/events", "erin", http.StatusNotFound},
	} {
		if status, body := e.get(t, c.path, c.user); status != c.status {
			t.Errorf("GET %s as %s: %d %s, want %d", c.path, c.user, status, body, c.status)
		}
	}
}

// access asks who held entitlement at the instant, as user, and returns the holders' request IDs.
func (e *env) access(t *testing.T, user, entitlement string, at time.Time) []query.Holding {
	t.Helper()
	var a httpapi.Access
	e.getJSON(t, "/v1/audit/access?entitlement="+url.QueryEscape(entitlement)+"&at="+url.QueryEscape(at.Format(time.RFC3339Nano)), user, &a)
	if a.Entitlement != entitlement || !a.At.Equal(at) {
		t.Fatalf("answer for %s at %s: %+v", entitlement, at, a)
	}
	return a.Holders
}

func requestIDs(hs []query.Holding) []string {
	out := []string{}
	for _, h := range hs {
		out = append(out, h.RequestID)
	}
	return out
}

// TestAuditAccess: who held an entitlement at an instant, through a grant's life: nobody before, the
// holder while granted, nobody once the revocation is recorded; an unrevoked grant past its expiry still
// counts (flagged), since nothing observed it removed.
func TestAuditAccess(t *testing.T) {
	e := newEnv(t)
	alice := e.Make().Submit(t, "alice", "analytics-read", false).Decide(t, events.OutcomeAutoApproved, false).Grant(t).
		RequestRevocation(t, "alice", events.RevokeEarly).Revoke(t)
	frank := e.Make().Submit(t, "frank", "analytics-read", false).Decide(t, events.OutcomeAutoApproved, false).Grant(t)
	e.caughtUp(t)
	ah, fh := e.Load(t, alice.ID), e.Load(t, frank.ID)
	aliceGranted, aliceRevoked := ah.Request.GrantedAt(), ah.Events[len(ah.Events)-1].Time
	frankGranted, frankExpires := fh.Request.GrantedAt(), fh.Request.Grant().ExpiresAt
	cases := []struct {
		name string
		at   time.Time
		want []string
	}{
		{"just before alice's grant", aliceGranted.Add(-time.Nanosecond), nil},
		{"at alice's grant", aliceGranted, []string{alice.ID}},
		{"just before alice's revocation", aliceRevoked.Add(-time.Nanosecond), []string{alice.ID}},
		{"at alice's revocation", aliceRevoked, nil},
		{"between the two grants", frankGranted.Add(-time.Nanosecond), nil},
		{"during frank's grant", frankGranted.Add(time.Second), []string{frank.ID}},
		{"after frank's expiry, revocation not recorded", frankExpires.Add(time.Minute), []string{frank.ID}},
		{"later than now", e.now.Add(time.Hour), nil},
	}
	for _, c := range cases {
		got := e.access(t, "erin", "analytics-read", c.at)
		if diff := cmp.Diff(append([]string{}, c.want...), requestIDs(got)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.name, diff)
		}
	}
	hs := e.access(t, "erin", "analytics-read", frankGranted.Add(time.Second))
	if h := hs[0]; h.Requester != "frank" || h.PolicyRevision != querytest.Revision || !h.Observed.Present || h.BeyondExpiry || !h.Active {
		t.Fatalf("frank's holding: %+v", h)
	}
	hs = e.access(t, "erin", "analytics-read", aliceGranted)
	if h := hs[0]; h.ObservedAfter == nil || h.ObservedAfter.Present || h.RevocationReason != string(events.RevokeEarly) || h.Active {
		t.Fatalf("alice's holding: %+v", h)
	}
	if hs = e.access(t, "erin", "analytics-read", frankExpires.Add(time.Minute)); !hs[0].BeyondExpiry {
		t.Fatalf("frank's holding past expiry is not flagged: %+v", hs[0])
	}
	// dave reads neither request: the same instant answers nobody for him.
	if hs = e.access(t, "dave", "analytics-read", aliceGranted); len(hs) != 0 {
		t.Fatalf("dave learns of %v", requestIDs(hs))
	}
	for _, bad := range []string{"at=2026-01-01T00:00:00Z", "entitlement=analytics-read", "entitlement=analytics-read&at=yesterday"} {
		if status, body := e.get(t, "/v1/audit/access?"+bad, "erin"); status != http.StatusBadRequest {
			t.Errorf("?%s: %d %s, want 400", bad, status, body)
		}
	}
}

// TestWhoHeldMatchesModel: after a randomized workload, who held each entitlement at every instant where
// the answer can change equals an independent model computed from the events.
func TestWhoHeldMatchesModel(t *testing.T) {
	e := newEnv(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("workload seed %d", seed)
	ids := e.Workload(t, rand.New(rand.NewPCG(seed, 3)), 16)
	e.caughtUp(t)
	type held struct {
		id, ent              string
		from, until, expires time.Time
		revoked              bool
	}
	var grants []held
	instants := map[string][]time.Time{}
	for _, id := range ids {
		l := e.Load(t, id)
		g := l.Request.Grant()
		if g == nil {
			continue
		}
		h := held{id: id, ent: l.Request.Submitted().Entitlement, expires: g.ExpiresAt}
		for _, ev := range l.Events {
			switch ev.Type {
			case events.TypeGranted:
				h.from = ev.Time
			case events.TypeRevoked:
				h.until, h.revoked = ev.Time, true
			}
		}
		grants = append(grants, h)
		for _, at := range []time.Time{h.from, h.expires, h.until} {
			if !at.IsZero() {
				instants[h.ent] = append(instants[h.ent], at.Add(-time.Nanosecond), at)
			}
		}
	}
	if len(grants) == 0 {
		t.Skip("the workload granted nothing")
	}
	calls := 0
	for ent, ats := range instants {
		for _, at := range ats {
			var want []string
			for _, g := range grants {
				inside := !at.Before(g.from) && (g.revoked && at.Before(g.until) || !g.revoked && (at.Before(g.expires) || !at.After(e.now)))
				if g.ent == ent && inside {
					want = append(want, g.id)
				}
			}
			got := requestIDs(e.access(t, "erin", ent, at))
			slices.Sort(want)
			slices.Sort(got)
			if diff := cmp.Diff(append([]string{}, want...), got); diff != "" {
				t.Errorf("%s at %s (-model +api):\n%s", ent, at.Format(time.RFC3339Nano), diff)
			}
			calls++
		}
	}
	t.Logf("%d grants, %d instants checked", len(grants), calls)
}

// TestGrants: grants active and past, each list paged, against the stream's own fold; alice sees only
// hers.
func TestGrants(t *testing.T) {
	e := newEnv(t)
	ids := e.Workload(t, rand.New(rand.NewPCG(11, 12)), 12)
	e.caughtUp(t)
	want := map[string][]string{"": {}, "true": {}, "false": {}}
	var alices []string
	activeByHolder, activeByEntitlement := map[string][]string{}, map[string][]string{}
	for _, id := range ids {
		r := e.Load(t, id).Request
		if r.Grant() == nil {
			continue
		}
		want[""] = append(want[""], id)
		if r.Revoked() == nil {
			want["true"] = append(want["true"], id)
			activeByHolder[r.Submitted().Subject.ID] = append(activeByHolder[r.Submitted().Subject.ID], id)
			activeByEntitlement[r.Submitted().Entitlement] = append(activeByEntitlement[r.Submitted().Entitlement], id)
		} else {
			want["false"] = append(want["false"], id)
		}
		if r.Submitted().Requester.ID == "alice" {
			alices = append(alices, id)
		}
	}
	grants := func(user, active, limit string, filters ...string) []string {
		out := []string{}
		cursor := ""
		for {
			q := url.Values{}
			for k, v := range map[string]string{"active": active, "limit": limit, "cursor": cursor} {
				if v != "" {
					q.Set(k, v)
				}
			}
			for i := 0; i+1 < len(filters); i += 2 {
				q.Set(filters[i], filters[i+1])
			}
			var page httpapi.Page[query.Grant]
			e.getJSON(t, "/v1/grants?"+q.Encode(), user, &page)
			for _, g := range page.Items {
				if (active == "true") != g.Active && active != "" {
					t.Fatalf("grant %+v in the active=%s list", g, active)
				}
				out = append(out, g.RequestID)
			}
			if cursor = page.NextCursor; cursor == "" {
				return out
			}
		}
	}
	for active, ids := range want {
		if diff := cmp.Diff(newestFirst(ids), grants("erin", active, "2")); diff != "" {
			t.Errorf("active=%q (-want +got):\n%s", active, diff)
		}
	}
	if diff := cmp.Diff(newestFirst(alices), grants("alice", "", "")); diff != "" {
		t.Errorf("alice's grants (-want +got):\n%s", diff)
	}
	if status, _ := e.get(t, "/v1/grants?active=maybe", "erin"); status != http.StatusBadRequest {
		t.Errorf("active=maybe: %d, want 400", status)
	}
	// What offboarding asks: every active grant one person holds, or of one entitlement.
	if len(activeByHolder) == 0 {
		t.Fatal("the workload left no active grant to filter")
	}
	for holder, ids := range activeByHolder {
		if diff := cmp.Diff(newestFirst(ids), grants("erin", "true", "2", "holder", strings.ToUpper(holder))); diff != "" {
			t.Errorf("active grants held by %s (-want +got):\n%s", holder, diff)
		}
	}
	for ent, ids := range activeByEntitlement {
		if diff := cmp.Diff(newestFirst(ids), grants("erin", "true", "", "entitlement", ent)); diff != "" {
			t.Errorf("active grants of %s (-want +got):\n%s", ent, diff)
		}
	}
	if got := grants("erin", "true", "", "holder", "nobody-holds-anything"); len(got) != 0 {
		t.Errorf("a holder with no grant: %v", got)
	}

	// The operator's rebuild and compare, as grantline-query runs them.
	ctx := context.Background()
	last, err := e.deps.Rebuild(ctx, "readside_rebuilt", e.log)
	if err != nil || last != e.LastSeq(t) {
		t.Fatalf("rebuild up to %d (%v), want %d", last, err, e.LastSeq(t))
	}
	if diffs, err := e.deps.Compare(ctx, "readside_rebuilt"); err != nil || len(diffs) > 0 {
		t.Fatalf("the rebuild differs from the live read side (%v):\n%s", err, strings.Join(diffs, "\n"))
	}
}

// TestDriftAndFindings: drift the reconciler recorded on requests shows in their views; access no
// request explains is a finding of its own, listed for auditors only and never as a request; a rebuild
// holds the same findings.
func TestDriftAndFindings(t *testing.T) {
	e := newEnv(t)
	drift := func(kind events.DriftKind, present bool, action events.DriftAction, ref string) func(time.Time, *events.Request) events.Payload {
		return func(time.Time, *events.Request) events.Payload {
			return events.DriftDetected{Kind: kind, Connector: "postgres", TargetRef: ref, Observed: events.Observed{Present: present,
				Detail: map[string]string{"grant_role": strings.TrimPrefix(ref, "role ")}}, Action: action}
		}
	}
	missing := e.Make().Submit(t, "alice", "analytics-read", false).Decide(t, events.OutcomeAutoApproved, false).Grant(t)
	missing.Step(t, events.Revoker, "", drift(events.DriftMissing, false, events.DriftRecorded, "role grantline_a"))
	back := e.Make().Submit(t, "alice", "payments-admin", false).Decide(t, events.OutcomeAutoApproved, false).Grant(t).
		RequestRevocation(t, "alice", events.RevokeEarly).Revoke(t)
	back.Step(t, events.Revoker, "", drift(events.DriftAfterRevocation, true, events.DriftRevoke, "role grantline_b"))
	back.Revoke(t)
	finding := e.Make()
	finding.ID = events.FindingID("postgres", "role grantline_hotfix")
	finding.Step(t, events.Revoker, "", drift(events.DriftUnexplained, true, events.DriftRecorded, "role grantline_hotfix"))
	e.caughtUp(t)

	views := map[string]query.View{}
	var page httpapi.Page[query.View]
	e.getJSON(t, "/v1/requests", "erin", &page)
	for _, v := range page.Items {
		views[v.ID] = v
	}
	if _, listed := views[finding.ID]; listed || len(views) != 2 {
		t.Fatalf("the request list holds %d entries, the finding among them: %v", len(views), listed)
	}
	if d := views[missing.ID].Drift; len(d) != 1 || d[0].Kind != events.DriftMissing || views[missing.ID].Status != events.StatusGranted {
		t.Errorf("the view of the grant with missing access: %s %+v", views[missing.ID].Status, d)
	}
	if v := views[back.ID]; len(v.Drift) != 1 || v.Drift[0].Kind != events.DriftAfterRevocation || v.Revocation == nil ||
		v.Revocation.Reason != events.RevokeDrift {
		t.Errorf("the view of the access back after revocation: %+v, revocation %+v", v.Drift, v.Revocation)
	}

	var found httpapi.Page[query.Finding]
	e.getJSON(t, "/v1/findings", "erin", &found)
	if len(found.Items) != 1 {
		t.Fatalf("auditor's findings: %+v", found.Items)
	}
	if f := found.Items[0]; f.ID != finding.ID || f.Connector != "postgres" || f.TargetRef != "role grantline_hotfix" || !f.Observed.Present ||
		f.Observed.Detail["grant_role"] != "grantline_hotfix" || f.FoundAt.IsZero() {
		t.Fatalf("the finding: %+v", f)
	}
	e.getJSON(t, "/v1/findings", "alice", &found)
	if len(found.Items) != 0 {
		t.Fatalf("alice, no auditor, reads findings: %+v", found.Items)
	}
	if status, _ := e.get(t, "/v1/findings?kind=unexplained", "erin"); status != http.StatusBadRequest {
		t.Errorf("an unknown parameter: %d, want 400", status)
	}

	ctx := context.Background()
	if _, err := e.deps.Rebuild(ctx, "readside_rebuilt", e.log); err != nil {
		t.Fatal(err)
	}
	if diffs, err := e.deps.Compare(ctx, "readside_rebuilt"); err != nil || len(diffs) > 0 {
		t.Fatalf("the rebuild differs from the live read side (%v):\n%s", err, strings.Join(diffs, "\n"))
	}
}
