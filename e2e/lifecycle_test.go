package e2e

import (
	"context"
	"encoding/json/v2"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/httpjson"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/pkg/requestview"
	"github.com/grantline/grantline/pkg/topology"
)

// Timeouts of the steps a scenario waits for. The pipeline takes well under a second per step; these
// leave room for a loaded two-core machine, not for a slow design.
const (
	stepTimeout   = 30 * time.Second
	expiryTimeout = 60 * time.Second
)

// TestLifecycles runs the request lifecycles against the deployment, side by side as independent
// requests would arrive; then probes the broker as every NATS user, and has the auditor's tool verify
// everything left in the streams.
func TestLifecycles(t *testing.T) {
	t.Run("scenarios", func(t *testing.T) {
		for _, s := range []struct {
			name string
			run  func(*testing.T)
		}{
			{"low risk is auto-approved, granted and revoked at expiry", lowRiskRevokedAtExpiry},
			{"two stages approve in order, then the requester revokes early", twoStageApproval},
			{"an owner cannot approve their own request", selfApprovalRefused},
			{"an emergency grant flagged in post-review is revoked", emergencyFlaggedAndRevoked},
			{"a service account's credential is retrieved once and destroyed at expiry", serviceAccountCredential},
			{"a manual grant records the person who fulfilled it", manualFulfilment},
			{"an integration's CloudEvent becomes a granted request", integrationCloudEvent},
		} {
			t.Run(s.name, func(t *testing.T) {
				t.Parallel()
				logsOnFailure(t)
				s.run(t)
			})
		}
	})
	t.Run("the broker refuses what separation of duties forbids", brokerRefusesWhatDutiesForbid)
	t.Run("audit verify finds the streams clean", auditVerifyClean)
}

// lowRiskRevokedAtExpiry: alice (engineers) asks for analytics-read for five seconds; policy approves
// it without review, fulfilment grants it on the target, and the revoker takes it away at expiry and
// records what the target shows then.
func lowRiskRevokedAtExpiry(t *testing.T) {
	alice := as(t, "alice")
	id := alice.submit(`{"entitlement":"analytics-read","duration":"5s","justification":"watch expiry happen"}`)
	v := alice.await(id, events.StatusGranted, stepTimeout)
	if v.Decision.Outcome != events.OutcomeAutoApproved || !strings.HasPrefix(v.Decision.PolicyRevision, "sha256:") {
		t.Fatalf("decision %+v, want auto_approved with the policy revision", v.Decision)
	}
	grantRole := expectPersonGrant(t, v, "alice", "analytics_read")

	v = alice.await(id, events.StatusRevoked, expiryTimeout)
	// Revoked at the first attempt: one event, no expired before it.
	evs := expectTypes(t, id, "submitted", "policy_decided", "granted", "revoked")
	revoked := payload[events.Revoked](t, evs)
	if revoked.Reason != events.RevokeExpired || revoked.Observed.Present {
		t.Fatalf("revoked %+v, want reason expired and the access observed absent", revoked)
	}
	if r := targetRole(t, grantRole); r.Exists {
		t.Fatalf("the grant role %s is still on the target after revocation: %+v", grantRole, r)
	}
	granted := payload[events.Granted](t, evs)
	if at := evs[3].Time; at.Before(granted.ExpiresAt) {
		t.Fatalf("revoked at %s, before the grant's expiry %s", at, granted.ExpiresAt)
	}

	// The read side (query, on PostgreSQL) follows the stream to the same end.
	erin := as(t, "erin")
	poll.Until(t, stepTimeout, "the read side to show "+id+" revoked", func() bool {
		var page struct {
			Items []requestview.View `json:"items"`
		}
		erin.expect(http.StatusOK, http.MethodGet, "query", "/v1/requests?requester=alice&status=revoked", "", &page)
		return slices.ContainsFunc(page.Items, func(v requestview.View) bool { return v.ID == id })
	})
}

// expectPersonGrant checks a person's grant as the target database shows it: the grant's own role
// exists, is a member of the entitlement's role, and is held by the person. It returns that role.
func expectPersonGrant(t *testing.T, v requestview.View, person, entitlementRole string) string {
	t.Helper()
	g := v.Grant
	if g == nil || !g.Observed.Present || g.Connector != "postgres" {
		t.Fatalf("grant %+v, want one the postgres connector observed on the target", g)
	}
	role := g.Observed.Detail["grant_role"]
	if !strings.Contains(role, strings.ToLower(v.ID)) {
		t.Fatalf("the grant names the role %q, which is not this request's", role)
	}
	r := targetRole(t, role)
	if !r.Exists || !slices.Contains(r.MemberOf, entitlementRole) || !slices.Contains(r.Members, person) {
		t.Fatalf("on the target, %s is %+v; want it a member of %s, held by %s", role, r, entitlementRole, person)
	}
	return role
}

// twoStageApproval: payments-admin needs its owners (bob) and then security (carol), approved through
// the command line as reviewers would; fulfilment grants it, and alice ends it early.
func twoStageApproval(t *testing.T) {
	alice, bob, carol := as(t, "alice"), as(t, "bob"), as(t, "carol")
	id := alice.submit(`{"entitlement":"payments-admin","duration":"1h","justification":"INC-42 stuck migration","ticket":"INC-42"}`)
	v := alice.await(id, events.StatusPendingApproval, stepTimeout)
	if d := v.Decision; d.Outcome != events.OutcomeApprovalRequired || len(d.Stages) != 2 || !d.StagesOrdered {
		t.Fatalf("decision %+v, want two ordered stages", d)
	}
	for _, reviewer := range []person{bob, carol} {
		code, out, err := deployment.CLI(t.Context(), "review", "approve", id, "--server", deployment.URL("approval"),
			"--token", reviewer.token, "--comment", reviewer.name+" approves")
		if err != nil || code != 0 {
			t.Fatalf("grantline review approve as %s: exit %d, %v:\n%s", reviewer.name, code, err, out)
		}
	}
	v = alice.await(id, events.StatusGranted, stepTimeout)
	grantRole := expectPersonGrant(t, v, "alice", "payments_admin")
	evs := expectTypes(t, id, "submitted", "policy_decided", "reviewed", "reviewed", "approved", "granted")
	for i, want := range []string{"bob", "carol"} {
		r := evs[2+i].Payload.(events.Reviewed)
		if r.Reviewer.ID != want || r.Stage != i || r.Decision != events.ReviewApprove {
			t.Fatalf("review %d is %+v, want %s approving stage %d", i, r, want, i)
		}
	}

	alice.expect(http.StatusAccepted, http.MethodPost, "revoker", "/v1/requests/"+id+"/revoke", `{"reason":"migration done"}`, nil)
	alice.await(id, events.StatusRevoked, stepTimeout)
	evs = expectTypes(t, id, "submitted", "policy_decided", "reviewed", "reviewed", "approved", "granted", "revocation_requested", "revoked")
	if revoked := payload[events.Revoked](t, evs); revoked.Reason != events.RevokeEarly || revoked.Observed.Present {
		t.Fatalf("revoked %+v, want reason early and the access observed absent", revoked)
	}
	if r := targetRole(t, grantRole); r.Exists {
		t.Fatalf("the grant role %s is still on the target after revocation: %+v", grantRole, r)
	}
}

// selfApprovalRefused: frank is an engineer and one of payments-admin's owners, so he may review
// payments-admin requests, but not his own.
func selfApprovalRefused(t *testing.T) {
	frank := as(t, "frank")
	id := frank.submit(`{"entitlement":"payments-admin","duration":"1h","justification":"rotate the ledger keys","ticket":"CHG-7"}`)
	frank.await(id, events.StatusPendingApproval, stepTimeout)

	status, contentType, body := frank.call(http.MethodPost, "approval", "/v1/requests/"+id+"/reviews", `{"decision":"approve","comment":"looks fine to me"}`)
	if status != http.StatusForbidden {
		t.Fatalf("frank approving his own request answered %d: %s", status, body)
	}
	if p := problem(t, contentType, body); p.Type != httpjson.ProblemTypeBase+"separation-of-duties" || p.Status != http.StatusForbidden {
		t.Fatalf("problem %+v, want separation-of-duties", p)
	}
	// The refusal was decided before anything was appended: the request has no review.
	expectTypes(t, id, "submitted", "policy_decided")
	if v := frank.view(id); v.Status != events.StatusPendingApproval || len(v.Reviews) != 0 {
		t.Fatalf("after the refusal the request is %s with reviews %+v", v.Status, v.Reviews)
	}
}

// emergencyFlaggedAndRevoked: alice breaks glass on payments-admin; it is granted at once, security
// (carol) flags it in the post-review, and the revoker takes the access away for that reason.
func emergencyFlaggedAndRevoked(t *testing.T) {
	alice, carol := as(t, "alice"), as(t, "carol")
	id := alice.submit(`{"entitlement":"payments-admin","duration":"20m","justification":"INC-43 payments are down","emergency":true}`)
	v := alice.await(id, events.StatusGranted, stepTimeout)
	if d := v.Decision; d.Outcome != events.OutcomeEmergency || d.PostReview == nil || !slices.Contains(d.PostReview.Groups, "security") {
		t.Fatalf("decision %+v, want emergency with a post-review by security", d)
	}
	grantRole := expectPersonGrant(t, v, "alice", "payments_admin")

	var answer struct {
		RevocationDue events.RevocationReason `json:"revocation_due"`
	}
	carol.expect(http.StatusCreated, http.MethodPost, "approval", "/v1/requests/"+id+"/post-review",
		`{"outcome":"flagged","reason":"no incident INC-43 on record"}`, &answer)
	if answer.RevocationDue != events.RevokeReviewFailed {
		t.Fatalf("the flag made revocation due for %q, want review_failed", answer.RevocationDue)
	}
	alice.await(id, events.StatusRevoked, stepTimeout)
	evs := expectTypes(t, id, "submitted", "policy_decided", "granted", "post_reviewed", "revoked")
	if pr := payload[events.PostReviewed](t, evs); pr.Outcome != events.PostReviewFlagged || pr.Reviewer.ID != "carol" {
		t.Fatalf("post-review %+v, want flagged by carol", pr)
	}
	if revoked := payload[events.Revoked](t, evs); revoked.Reason != events.RevokeReviewFailed || revoked.Observed.Present {
		t.Fatalf("revoked %+v, want reason review_failed and the access observed absent", revoked)
	}
	if r := targetRole(t, grantRole); r.Exists {
		t.Fatalf("the grant role %s is still on the target after revocation: %+v", grantRole, r)
	}
}

// serviceAccountCredential: frank asks for a short-lived login for svc-reporting, which payments-owners
// own; bob approves, fulfilment issues a login role valid until expiry, frank retrieves its password
// once (from one replica; the other then refuses), and the revoker drops the login at expiry.
func serviceAccountCredential(t *testing.T) {
	frank, bob := as(t, "frank"), as(t, "bob")
	id := frank.submit(`{"entitlement":"reporting-db-credential","duration":"15s","justification":"nightly export to finance",` +
		`"subject":{"kind":"service_account","id":"svc-reporting"}}`)
	frank.await(id, events.StatusPendingApproval, stepTimeout)
	bob.review(id, "approve", "the export is ours")
	v := frank.await(id, events.StatusGranted, stepTimeout)
	if v.Grant.CredentialFingerprint == "" || !v.Grant.Observed.Present {
		t.Fatalf("grant %+v, want an issued credential observed on the target", v.Grant)
	}

	var cred struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	// Fulfilment answers from its own read of the stream, which may not show the grant yet: a client
	// asks again while it says "not granted".
	var status int
	var contentType string
	var body []byte
	poll.Until(t, stepTimeout, "fulfilment to hand out the credential of "+id, func() bool {
		status, contentType, body = frank.call(http.MethodGet, "fulfilment-1", "/v1/requests/"+id+"/credential", "")
		return status != http.StatusConflict
	})
	if status != http.StatusOK {
		t.Fatalf("retrieving the credential answered %d: %s", status, body)
	}
	if err := json.Unmarshal(body, &cred); err != nil {
		t.Fatal(err)
	}
	if cred.Username == "" || cred.Password == "" || cred.Username != v.Grant.Observed.Detail["login_role"] {
		t.Fatalf("credential for %q (password given: %t); the grant's login role is %q", cred.Username, cred.Password != "", v.Grant.Observed.Detail["login_role"])
	}
	status, contentType, body = frank.call(http.MethodGet, "fulfilment-2", "/v1/requests/"+id+"/credential", "")
	if status != http.StatusGone {
		t.Fatalf("a second retrieval answered %d: %s", status, body)
	}
	problem(t, contentType, body)
	if r := targetRole(t, cred.Username); !r.Exists || !r.CanLogin || !slices.Contains(r.MemberOf, "reporting_read") {
		t.Fatalf("on the target the login %s is %+v; want a login in reporting_read", cred.Username, r)
	}

	frank.await(id, events.StatusRevoked, expiryTimeout)
	evs := expectTypes(t, id, "submitted", "policy_decided", "reviewed", "approved", "granted", "revoked")
	if revoked := payload[events.Revoked](t, evs); revoked.Reason != events.RevokeExpired || revoked.Observed.Present {
		t.Fatalf("revoked %+v, want reason expired and the login observed absent", revoked)
	}
	if r := targetRole(t, cred.Username); r.Exists {
		t.Fatalf("the login %s is still on the target after expiry: %+v", cred.Username, r)
	}
	for _, ev := range evs {
		if strings.Contains(string(ev.Data), cred.Password) {
			t.Fatalf("the password is in the %s event", ev.Type.Name())
		}
	}
}

// manualFulfilment: mainframe-operator has no API; security (carol) approves, fulfilment opens a task
// for operations, dave completes it, and the grant records him as the fulfiller.
func manualFulfilment(t *testing.T) {
	alice, carol, dave := as(t, "alice"), as(t, "carol"), as(t, "dave")
	id := alice.submit(`{"entitlement":"mainframe-operator","duration":"1h","justification":"rerun the settlement batch"}`)
	alice.await(id, events.StatusPendingApproval, stepTimeout)
	carol.review(id, "approve", "batch rerun agreed")

	var taskID string
	poll.Until(t, stepTimeout, "a task for operations on "+id, func() bool {
		var list struct {
			Tasks []struct {
				ID          string `json:"id"`
				RequestID   string `json:"request_id"`
				MayComplete bool   `json:"may_complete"`
			} `json:"tasks"`
		}
		dave.expect(http.StatusOK, http.MethodGet, "fulfilment-2", "/v1/tasks", "", &list)
		for _, task := range list.Tasks {
			if task.RequestID == id && task.MayComplete {
				taskID = task.ID
			}
		}
		return taskID != ""
	})
	dave.expect(http.StatusOK, http.MethodPost, "fulfilment-1", "/v1/tasks/"+taskID+"/complete", `{"evidence":"profile OPER01 added, change 4711"}`, nil)

	v := alice.await(id, events.StatusGranted, stepTimeout)
	if g := v.Grant; g.Fulfiller != "dave" || g.Connector != "manual" || g.TaskID != taskID || !g.Observed.Present {
		t.Fatalf("grant %+v, want the manual task %s fulfilled by dave", g, taskID)
	}
	evs := expectTypes(t, id, "submitted", "policy_decided", "reviewed", "approved", "task_opened", "granted")
	if g := payload[events.Granted](t, evs); g.Fulfiller != "dave" {
		t.Fatalf("the granted event records %q as the fulfiller, want dave", g.Fulfiller)
	}
}

// integrationCloudEvent: ServiceNow, configured in examples/integrations.yaml, publishes alice's
// request as a CloudEvent on its NATS subject as its own NATS user, which may do nothing else, reads
// intake's answer on its outcomes subject, and the request goes the way of any other.
func integrationCloudEvent(t *testing.T) {
	nc, err := deployment.ConnectAs(brokeraccess.Integration("servicenow"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// Subscribed before publishing: the answer is a plain message on the outcomes subject.
	outcomes, err := nc.SubscribeSync(topology.IntegrationOutcomes("servicenow"))
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}

	ev := cloudevents.NewEvent()
	ev.SetID("RITM" + events.NewID())
	ev.SetSource("https://servicenow.example/requests")
	ev.SetType("io.grantline.intake.request")
	err = ev.SetData(cloudevents.ApplicationJSON, map[string]any{
		"requester": map[string]any{"id": "alice", "groups": []string{"engineers"}}, "entitlement": "analytics-read",
		"duration": "1h", "justification": "quarterly numbers for finance", "ticket": "RITM0012",
	})
	if err != nil {
		t.Fatal(err)
	}
	body, err := ev.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg(topology.IntegrationRequests("servicenow"))
	msg.Data = body
	if _, err := js.PublishMsg(t.Context(), msg, jetstream.WithMsgID(ev.ID())); err != nil {
		t.Fatal(err)
	}

	outcome := awaitOutcome(t, outcomes, ev.ID())
	if outcome.Type() != "io.grantline.intake.accepted" {
		t.Fatalf("intake answered %s: %s", outcome.Type(), outcome.Data())
	}
	var accepted struct {
		RequestID string `json:"request_id"`
	}
	if err := json.Unmarshal(outcome.Data(), &accepted); err != nil || !events.ValidRequestID(accepted.RequestID) {
		t.Fatalf("accepted outcome %s: %v", outcome.Data(), err)
	}
	id := accepted.RequestID
	v := as(t, "alice").await(id, events.StatusGranted, stepTimeout)
	if v.Channel != "integration:servicenow" || v.Ticket != "RITM0012" {
		t.Fatalf("request %s came through %q with ticket %q", id, v.Channel, v.Ticket)
	}
	expectPersonGrant(t, v, "alice", "analytics_read")
	expectTypes(t, id, "submitted", "policy_decided", "granted")
}

// awaitOutcome reads the integration's outcomes until intake's answer to the CloudEvent ceID arrives.
func awaitOutcome(t *testing.T, outcomes *nats.Subscription, ceID string) cloudevents.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), stepTimeout)
	defer cancel()
	for {
		msg, err := outcomes.NextMsgWithContext(ctx)
		if err != nil {
			t.Fatalf("no outcome for CloudEvent %s: %v", ceID, err)
		}
		out := cloudevents.NewEvent()
		if err := out.UnmarshalJSON(msg.Data); err != nil {
			t.Fatalf("an outcome that is not a CloudEvent: %v: %s", err, msg.Data)
		}
		if out.Subject() == ceID {
			return out
		}
	}
}

// brokerRefusesWhatDutiesForbid probes the broker as every NATS user of the deployment
// (pkg/brokeraccess): each tries to append every event type, delete, purge or reconfigure every stream,
// use every consumer, bucket and timer, and speak for every integration. The broker must refuse
// exactly what DESIGN §3.3 forbids, and the evidence stream must hold nothing more afterwards.
func brokerRefusesWhatDutiesForbid(t *testing.T) {
	logsOnFailure(t)
	users, err := deployment.NATSUsers()
	if err != nil {
		t.Fatal(err)
	}
	before := evidenceLastSeq(t)
	report, err := brokeraccess.Probe(t.Context(), deployment.NATSURLs(), users)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("broker access probe:\n%s", report)
	if len(report.Users) != len(users) || len(report.Unexpected) > 0 {
		t.Fatalf("probed %d of %d users; %d unexpected outcomes", len(report.Users), len(users), len(report.Unexpected))
	}
	for _, u := range report.Users {
		if u != brokeraccess.Operator && report.Refused[u] == 0 {
			t.Errorf("the broker refused %s nothing of %d attempts", u, report.Attempts[u])
		}
	}
	if after := evidenceLastSeq(t); after != before {
		t.Fatalf("the evidence stream went from sequence %d to %d during the probe", before, after)
	}
}

func evidenceLastSeq(t *testing.T) uint64 {
	t.Helper()
	st, err := deployment.JetStream().Stream(t.Context(), topology.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}

// auditVerifyClean runs `grantline audit verify` against the cluster, as an auditor would, after the
// scenarios: every signature, chain, sequence and lifecycle invariant holds.
func auditVerifyClean(t *testing.T) {
	logsOnFailure(t)
	code, out, err := deployment.CLI(context.Background(), "audit", "verify")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("grantline audit verify:\n%s", out)
	if code != 0 || !strings.Contains(out, "nothing found") {
		t.Fatalf("audit verify exited %d", code)
	}
}
