package faults

import (
	"encoding/json/v2"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/httpjson"
)

// readEndpoint is a read of the services' database through a real edge: query's lists and approval's
// inbox.
type readEndpoint struct {
	service, path string
	as            person
}

func (e readEndpoint) String() string { return "GET " + e.service + " " + e.path }

// unavailableAnswers tallies what each endpoint answered while a dependency was down, and keeps every
// answer that was not the 503 it should be: Retry-After and a problem naming the dependency.
type unavailableAnswers struct {
	dependency string
	// tally counts, by endpoint, each kind of answer (describeAnswer).
	tally map[string]map[string]int
	wrong []string
}

func newUnavailableAnswers(dependency string) *unavailableAnswers {
	return &unavailableAnswers{dependency: dependency, tally: map[string]map[string]int{}}
}

// probe calls e once and records its answer.
func (u *unavailableAnswers) probe(e readEndpoint) {
	a, err := deployment.Call(e.as.t.Context(), e.as.token, http.MethodGet, e.service, e.path, "")
	kind, ok := "", false
	if err != nil {
		kind = "no answer: " + err.Error()
	} else {
		kind, ok = u.judge(a.Status, a.Header.Get("Retry-After"), a.ContentType, a.Body)
	}
	if u.tally[e.String()] == nil {
		u.tally[e.String()] = map[string]int{}
	}
	u.tally[e.String()][kind]++
	if !ok {
		u.wrong = append(u.wrong, fmt.Sprintf("%s: %s", e, kind))
	}
}

// judge describes an answer and says whether it is the right one.
func (u *unavailableAnswers) judge(status int, retryAfter, contentType string, body []byte) (string, bool) {
	kind, p := describeAnswer(status, retryAfter, contentType, body)
	seconds, err := strconv.Atoi(retryAfter)
	return kind, status == http.StatusServiceUnavailable && strings.HasSuffix(p.Type, "/unavailable") && p.Dependency == u.dependency &&
		err == nil && seconds >= 1
}

// describeAnswer names an HTTP answer for a tally (`503 unavailable naming "database", Retry-After 5`)
// and returns its problem, if it is one.
func describeAnswer(status int, retryAfter, contentType string, body []byte) (string, httpjson.Problem) {
	var p httpjson.Problem
	if contentType == "application/problem+json" {
		_ = json.Unmarshal(body, &p)
	}
	kind := fmt.Sprintf("%d %s", status, strings.TrimPrefix(p.Type, httpjson.ProblemTypeBase))
	if p.Dependency != "" {
		kind += fmt.Sprintf(" naming %q", p.Dependency)
	}
	if retryAfter != "" {
		kind += ", Retry-After " + retryAfter
	}
	return kind, p
}

func (u *unavailableAnswers) String() string {
	var b strings.Builder
	for _, e := range slices.Sorted(maps.Keys(u.tally)) {
		fmt.Fprintf(&b, "\n  %s:", e)
		for _, kind := range slices.Sorted(maps.Keys(u.tally[e])) {
			fmt.Fprintf(&b, " %d× %s;", u.tally[e][kind], kind)
		}
	}
	return b.String()
}

// listedStatuses pages through query's GET /v1/requests as p, for p's own requests, and returns the
// status listed for each.
func listedStatuses(p person) (map[string]events.Status, error) {
	listed := map[string]events.Status{}
	cursor := ""
	for {
		q := url.Values{"requester": {p.name}, "limit": {"500"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		a, err := deployment.Call(p.t.Context(), p.token, http.MethodGet, "query", "/v1/requests?"+q.Encode(), "")
		if err != nil {
			return nil, err
		}
		if a.Status != http.StatusOK {
			return nil, fmt.Errorf("GET query /v1/requests answered %d: %s", a.Status, a.Body)
		}
		var page struct {
			Items []struct {
				ID     string        `json:"id"`
				Status events.Status `json:"status"`
			} `json:"items"`
			NextCursor string `json:"next_cursor"`
		}
		if err := json.Unmarshal(a.Body, &page); err != nil {
			return nil, err
		}
		for _, it := range page.Items {
			listed[it.ID] = it.Status
		}
		if cursor = page.NextCursor; cursor == "" {
			return listed, nil
		}
	}
}

// awaitListed waits until query lists each of want's requests (p's own) with the status want gives
// it, and fails the test naming those that are not, or not so, when timeout passes first.
func awaitListed(t *testing.T, p person, want map[string]events.Status, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		listed, err := listedStatuses(p)
		var wrong []string
		for _, id := range slices.Sorted(maps.Keys(want)) {
			if got, ok := listed[id]; !ok {
				wrong = append(wrong, id+" not listed")
			} else if got != want[id] {
				wrong = append(wrong, fmt.Sprintf("%s listed %s, want %s", id, got, want[id]))
			}
		}
		if err == nil && len(wrong) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s, %d of %d of %s's requests are not listed by query as they should be (last error %v): %v",
				timeout, len(wrong), len(want), p.name, err, wrong[:min(len(wrong), 20)])
		}
		<-time.After(time.Second)
	}
}

// The database outage's load: frank, an engineer, asks for analytics-read (auto-approved) every
// loadEvery, from dbLoadBefore acknowledged submissions before the outage to some seconds after it; the
// read side is probed every dbReadEvery meanwhile.
const (
	dbLoadPerson = "frank"
	dbLoadCount  = 80
	dbLoadBefore = 8
	dbReadEvery  = 500 * time.Millisecond
	// endStateWithin bounds the wait, after the load, for its last grants to expire and be revoked.
	endStateWithin = grantFor + 2*time.Minute
)

// databaseReads are the calls that need the services' database: alice's request and grant lists
// (query) and bob's inbox (approval). Each must answer 200 before the outage, so that a 503 in it says
// something.
func databaseReads(t *testing.T) []readEndpoint {
	t.Helper()
	alice, bob := personOf(t, "alice"), personOf(t, "bob")
	reads := []readEndpoint{{"query", "/v1/requests", alice}, {"query", "/v1/grants", alice}, {"approval", "/v1/reviews", bob}}
	for _, e := range reads {
		if status, b := e.as.do(http.MethodGet, e.service, e.path, ""); status != http.StatusOK {
			t.Fatalf("%s as %s answered %d before the outage: %s", e, e.as.name, status, b)
		}
	}
	return reads
}

// checkLoadAcrossOutage waits for the load to finish and checks that intake acknowledged each
// submission sent in the outage (down to back) at its first attempt, and that every acknowledged one
// ended: granted once, revoked at expiry, listed by query as revoked.
func checkLoadAcrossOutage(t *testing.T, l *load, loadDone func(), down, back time.Time) {
	t.Helper()
	loadDone()
	subs := l.submissions()
	ids, unacknowledged := acknowledgedIDs(subs)
	for _, u := range unacknowledged {
		t.Errorf("submission %s was never acknowledged", u)
	}
	inOutage, retried := 0, 0
	for _, s := range subs {
		if within(s.started, down, back) {
			inOutage++
			if s.attempts > 1 {
				retried++
				t.Errorf("submission #%d, sent in the outage, needed %d attempts: intake needs no database", s.n, s.attempts)
			}
		}
	}
	t.Logf("load: %d submitted, %d acknowledged; %d sent in the outage, %d of them retried", len(subs), len(ids), inOutage, retried)
	awaitEvent(t, ids, events.TypeRevoked, endStateWithin)
	e := checkEndStates(t, subs)
	t.Logf("load's end states: %s", e)
	e.verdicts(t)
	revoked := map[string]events.Status{}
	for _, id := range ids {
		revoked[id] = events.StatusRevoked
	}
	awaitListed(t, personOf(t, dbLoadPerson), revoked, listedWithin)
	t.Logf("query lists all %d of the load's requests as revoked", len(ids))
}
