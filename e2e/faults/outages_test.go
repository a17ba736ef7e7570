package faults

import (
	"context"
	"encoding/json/v2"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/e2e/internal/cluster"
	"github.com/grantline/grantline/pkg/dependency"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/pkg/requestview"
	"github.com/grantline/grantline/pkg/topology"
)

// The database outage: the services' database (approval's inbox, the read side) refuses connections
// for dbOutage while alice asks for payments-admin, which needs bob's review first, every
// dbSubmitEvery.
const (
	dbOutage      = 10 * time.Second
	dbSubmitEvery = 1250 * time.Millisecond
	pendingBody   = `{"entitlement":"payments-admin","duration":"1h","justification":"database outage scenario"}`
	// listedWithin bounds how long after the database is back the inbox may take to list them all.
	listedWithin = time.Minute
)

// The target outage: fulfilment gives up on a grant after fulfilRetryFor, the revoker records a
// revocation overdue revokeSLO after its expiry; both far shorter than in production, so that the
// outage stays short. Before it, targetGrants grants of expiringFor are made; during it, as many
// requests are submitted, which can only fail.
const (
	fulfilRetryFor        = 10 * time.Second
	revokeSLO             = 8 * time.Second
	revokeAttemptTimeout  = 2 * time.Second
	targetGrants          = 4
	expiringFor           = "8s"
	expiringBody          = `{"entitlement":"analytics-read","duration":"` + expiringFor + `","justification":"expires in the target outage"}`
	failingBody           = `{"entitlement":"analytics-read","duration":"5m","justification":"asked for in the target outage"}`
	grantedWithin         = time.Minute
	failedWithin          = fulfilRetryFor + time.Minute
	overdueMargin         = 5 * time.Second
	revokedAfterReturnMax = 10 * time.Second
)

// TestDatabaseOutage stops the services' database under a steady load of auto-approved requests while
// requests needing review are submitted, and checks that approval said it was not ready meanwhile,
// that every one of them is in its reviewer's inbox once the database is back, and that nothing was
// dead-lettered (issue 19, finding 1: the inbox's consumer set the events aside after five quick
// deliveries and the requests never showed). It also checks (issue 18) that intake accepted every
// submission of the load at its first attempt throughout, that the read side and approval answered
// 503 with Retry-After and a problem naming the database meanwhile, and that afterwards query lists
// every request submitted with its end state, each of the load's requests granted once and revoked at
// expiry.
func TestDatabaseOutage(t *testing.T) {
	logsOnFailure(t)
	ctx := t.Context()
	alice, bob := personOf(t, "alice"), personOf(t, "bob")
	dead := deadLetters(t)
	reads := databaseReads(t)

	l, loadDone := backgroundLoad(t, dbLoadPerson, loadBody, loadEvery, dbLoadCount, submitRetryFor)
	poll.Until(t, phaseTimeout, "the load under way", func() bool { return l.acknowledged() >= dbLoadBefore })
	answers := newUnavailableAnswers(dependency.Database)
	read := time.NewTicker(dbReadEvery)
	defer read.Stop()
	down, restore := refuseConnections(t, cluster.ServicesDatabase)
	var ids []string
	var notReadyAt time.Time
	submit := time.NewTicker(dbSubmitEvery)
	defer submit.Stop()
	probe := time.NewTicker(poll.Interval)
	defer probe.Stop()
	for time.Since(down) < dbOutage {
		select {
		case <-submit.C:
			ids = append(ids, alice.submit(pendingBody))
		case <-probe.C:
			if notReadyAt.IsZero() && !ready(ctx, "approval") {
				notReadyAt = time.Now()
			}
		case <-read.C:
			for _, e := range reads {
				answers.probe(e)
			}
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
	back := restore()
	t.Logf("services' database refused connections for %s; %d requests submitted meanwhile", back.Sub(down).Round(time.Millisecond), len(ids))
	if notReadyAt.IsZero() {
		t.Errorf("approval's /readyz answered 200 throughout the database outage")
	} else {
		t.Logf("approval not ready %s into the outage", notReadyAt.Sub(down).Round(time.Millisecond))
	}
	t.Logf("the read side's answers during the outage:%s", answers)
	if len(answers.wrong) > 0 {
		t.Errorf("%d answers during the database outage were not 503 with Retry-After naming the %s: %s", len(answers.wrong),
			dependency.Database, strings.Join(answers.wrong[:min(len(answers.wrong), 10)], "; "))
	}

	var missing []string
	t.Cleanup(func() {
		if t.Failed() && len(missing) > 0 {
			t.Logf("not in bob's inbox: %s", strings.Join(missing, ", "))
		}
	})
	poll.Until(t, listedWithin, "every request submitted in the outage in bob's inbox", func() bool {
		var inbox struct {
			Items []struct {
				RequestID string `json:"request_id"`
			} `json:"items"`
		}
		if status := bob.get("approval", "/v1/reviews", &inbox); status != http.StatusOK {
			missing = []string{fmt.Sprintf("GET /v1/reviews answered %d", status)}
			return false
		}
		listed := map[string]bool{}
		for _, it := range inbox.Items {
			listed[it.RequestID] = true
		}
		missing = slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return listed[id] })
		return len(missing) == 0
	})
	t.Logf("all %d listed for bob %s after the database came back", len(ids), time.Since(back).Round(time.Millisecond))
	poll.Until(t, listedWithin, "approval ready again", func() bool { return ready(ctx, "approval") })
	if grown := dead.grown(t); len(grown) > 0 {
		t.Errorf("dead-lettered during the database outage: %s", strings.Join(grown, ", "))
	}
	// bob refuses them, so that nothing is left pending for the other scenarios.
	for _, id := range ids {
		bob.post("approval", "/v1/requests/"+id+"/reviews", `{"decision":"reject","comment":"outage scenario"}`, http.StatusCreated)
	}
	checkLoadAcrossOutage(t, l, loadDone, down, back)
	rejected := map[string]events.Status{}
	for _, id := range ids {
		rejected[id] = events.StatusRejected
	}
	awaitListed(t, alice, rejected, listedWithin)
	t.Logf("query lists the %d requests submitted in the outage as rejected", len(ids))
}

// TestTargetOutage makes the target refuse connections for longer than fulfilment retries a grant,
// with grants expiring meanwhile, and checks that the requests submitted in the outage end failed with
// the reason in their view (finding 2), that each expired grant has its revocation recorded overdue
// within the SLO whatever its attempts (finding 3), and that once the target is back the waiting
// revocations are done within a few seconds rather than after their backoff (finding 4).
func TestTargetOutage(t *testing.T) {
	logsOnFailure(t)
	alice := personOf(t, "alice")
	reconfigure(t, map[string]map[string]string{
		"fulfilment-1": {"GRANTLINE_FULFILMENT_RETRY_FOR": fulfilRetryFor.String()},
		"fulfilment-2": {"GRANTLINE_FULFILMENT_RETRY_FOR": fulfilRetryFor.String()},
		"revoker": {"GRANTLINE_REVOKE_SLO": revokeSLO.String(),
			"GRANTLINE_REVOKE_ATTEMPT_TIMEOUT": revokeAttemptTimeout.String()},
	})

	var expiring []string
	for range targetGrants {
		expiring = append(expiring, alice.submit(expiringBody))
	}
	awaitEvent(t, expiring, events.TypeGranted, grantedWithin)

	down, restore := refuseConnections(t, cluster.TargetDatabase)
	var failing []string
	for range targetGrants {
		failing = append(failing, alice.submit(failingBody))
	}
	for _, id := range failing {
		v := alice.awaitStatus(id, events.StatusFailed, failedWithin)
		if v.Failure == nil || v.Failure.Message == "" || v.Failure.Permanent {
			t.Errorf("request %s failed without a transient failure's reason: %+v", id, v.Failure)
			continue
		}
		t.Logf("%s failed %s into the outage: %s after %d attempts: %s", id, time.Since(down).Round(time.Millisecond),
			v.Failure.ErrorClass, v.Failure.Attempts, v.Failure.Message)
	}

	// Overdue is decided by the clock: each expired grant has revocation_failed within the SLO.
	awaitEvent(t, expiring, events.TypeRevocationFailed, revokeSLO+grantedWithin)
	for _, id := range expiring {
		expires, failedAt := expiryOf(t, id), storedAt(t, id, events.TypeRevocationFailed)
		late := failedAt.Sub(expires)
		t.Logf("%s expired %s into the outage; overdue recorded %s after expiry", id, expires.Sub(down).Round(time.Millisecond), late.Round(time.Millisecond))
		if expires.Before(down) {
			t.Errorf("%s expired before the outage began: the scenario's grants are too short for this machine", id)
		}
		if late > revokeSLO+overdueMargin {
			t.Errorf("%s: overdue recorded %s after expiry, SLO %s", id, late.Round(time.Millisecond), revokeSLO)
		}
	}

	back := restore()
	t.Logf("target refused connections for %s", back.Sub(down).Round(time.Millisecond))
	awaitEvent(t, expiring, events.TypeRevoked, grantedWithin)
	var worst time.Duration
	for _, id := range expiring {
		lag := storedAt(t, id, events.TypeRevoked).Sub(back)
		worst = max(worst, lag)
		t.Logf("%s revoked %s after the target came back", id, lag.Round(time.Millisecond))
	}
	t.Logf("revocation lag after the target's return: worst %s of %d", worst.Round(time.Millisecond), len(expiring))
	if worst > revokedAfterReturnMax {
		t.Errorf("revocations done up to %s after the target came back, want within %s", worst.Round(time.Millisecond), revokedAfterReturnMax)
	}
}

// refuseConnections makes database refuse connections until restore, or the end of the test, and
// returns when that began; restore returns when it ended.
func refuseConnections(t *testing.T, database string) (down time.Time, restore func() time.Time) {
	t.Helper()
	accept, err := deployment.RefuseConnections(t.Context(), database)
	if err != nil {
		t.Fatal(err)
	}
	down = time.Now()
	restored := false
	t.Cleanup(func() {
		if !restored {
			_ = accept(context.Background())
		}
	})
	return down, func() time.Time {
		t.Helper()
		if err := accept(t.Context()); err != nil {
			t.Fatal(err)
		}
		restored = true
		return time.Now()
	}
}

// reconfigure restarts each service container with extra variables for the test, and with its usual
// environment again after it.
func reconfigure(t *testing.T, extra map[string]map[string]string) {
	t.Helper()
	for _, name := range slices.Sorted(maps.Keys(extra)) {
		t.Cleanup(func() {
			if err := deployment.Reconfigure(context.Background(), name, nil); err != nil {
				t.Errorf("restore %s's configuration: %v", name, err)
			}
		})
		if err := deployment.Reconfigure(t.Context(), name, extra[name]); err != nil {
			t.Fatal(err)
		}
	}
}

// ready reports whether service answers 200 on /readyz.
func ready(ctx context.Context, service string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, deployment.URL(service)+"/readyz", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// expiryOf is when request id's grant expires, from its granted event.
func expiryOf(t *testing.T, id string) time.Time {
	t.Helper()
	evs, err := deployment.Events(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if g, ok := e.Payload.(events.Granted); ok {
			return g.ExpiresAt
		}
	}
	t.Fatalf("%s has no granted event", id)
	return time.Time{}
}

// storedAt is when the broker stored request id's first event of type typ.
func storedAt(t *testing.T, id string, typ events.Type) time.Time {
	t.Helper()
	ev, err := readEvidence(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if s := of(ev[id], typ); len(s) > 0 {
		return s[0].at
	}
	t.Fatalf("%s has no %s event", id, typ)
	return time.Time{}
}

// deadLetterCounts are the dead-letter stream's messages by subject (one per durable) when taken.
type deadLetterCounts map[string]uint64

func deadLetters(t *testing.T) deadLetterCounts {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	st, err := deployment.JetStream().Stream(ctx, topology.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(topology.DeadLetterSubjects))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects
}

// grown are the dead-letter subjects with more messages now than in c.
func (c deadLetterCounts) grown(t *testing.T) []string {
	t.Helper()
	var grown []string
	for subject, n := range deadLetters(t) {
		if n > c[subject] {
			grown = append(grown, fmt.Sprintf("%s (%d new)", subject, n-c[subject]))
		}
	}
	slices.Sort(grown)
	return grown
}

// person is one of the demo directory's people using the services' HTTP APIs.
type person struct {
	t     *testing.T
	name  string
	token string
}

func personOf(t *testing.T, name string) person {
	t.Helper()
	token, err := deployment.Token(name)
	if err != nil {
		t.Fatal(err)
	}
	return person{t: t, name: name, token: token}
}

// do sends method service+path with body (JSON, or nothing when empty) and returns the status and body.
func (p person) do(method, service, path, body string) (int, []byte) {
	p.t.Helper()
	a, err := deployment.Call(p.t.Context(), p.token, method, service, path, body)
	if err != nil {
		p.t.Fatalf("%s %s %s as %s: %v", method, service, path, p.name, err)
	}
	return a.Status, a.Body
}

// get decodes a 200 answer into out and returns the status.
func (p person) get(service, path string, out any) int {
	p.t.Helper()
	status, b := p.do(http.MethodGet, service, path, "")
	if status == http.StatusOK {
		if err := json.Unmarshal(b, out); err != nil {
			p.t.Fatalf("GET %s %s: %v: %s", service, path, err, b)
		}
	}
	return status
}

// post fails the test unless the answer has status want, and returns its body.
func (p person) post(service, path, body string, want int) []byte {
	p.t.Helper()
	status, b := p.do(http.MethodPost, service, path, body)
	if status != want {
		p.t.Fatalf("POST %s %s as %s answered %d, want %d: %s", service, path, p.name, status, want, b)
	}
	return b
}

// submit asks intake for access and returns the request's ID. A 429 (the person's submission limit,
// spent by an earlier test of the package) is asked again until intake takes it, as a client would.
func (p person) submit(body string) string {
	p.t.Helper()
	var (
		status int
		answer []byte
	)
	poll.Until(p.t, time.Minute, "intake to take "+p.name+"'s submission within the submission limit", func() bool {
		status, answer = p.do(http.MethodPost, "intake", "/v1/requests", body)
		return status != http.StatusTooManyRequests
	})
	if status != http.StatusAccepted {
		p.t.Fatalf("POST intake /v1/requests as %s answered %d, want 202: %s", p.name, status, answer)
	}
	var created struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(answer, &created); err != nil || !events.ValidRequestID(created.ID) {
		p.t.Fatalf("submit answered no request ID (%v)", err)
	}
	return created.ID
}

// awaitStatus waits until intake shows request id with status want and returns the view. A 404 is
// "not yet" (a replica that has not applied the submission); another terminal status fails at once.
func (p person) awaitStatus(id string, want events.Status, timeout time.Duration) requestview.View {
	p.t.Helper()
	var v requestview.View
	poll.Until(p.t, timeout, fmt.Sprintf("request %s %s", id, want), func() bool {
		v = requestview.View{}
		switch status := p.get("intake", "/v1/requests/"+id, &v); {
		case status == http.StatusNotFound:
			return false
		case status != http.StatusOK:
			p.t.Fatalf("GET intake /v1/requests/%s answered %d", id, status)
		case v.Status != want && v.Status.Terminal():
			p.t.Fatalf("request %s ended %s while waiting for %s", id, v.Status, want)
		}
		return v.Status == want
	})
	return v
}
