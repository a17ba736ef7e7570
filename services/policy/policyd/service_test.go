package policyd

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/natstest"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/services/policy"
)

// TestDecidesDemoRequests runs the policy service on real NATS with the demo bundle and catalogue: each
// submitted request gets exactly one policy_decided, caused by the submission and signed by policy.
func TestDecidesDemoRequests(t *testing.T) {
	w := newWorld(t)
	engine := loadEngine(t, demoBundle)
	w.serve(t, engine, nil)

	tests := []struct {
		name    string
		ask     ask
		outcome events.Outcome
		stages  []string // the groups of each stage
		minutes int64    // effective duration
		reason  string
	}{
		{name: "an engineer reads analytics without review",
			ask: ask{who: "alice", entitlement: "analytics-read", minutes: 240}, outcome: events.OutcomeAutoApproved, minutes: 240},
		{name: "an auditor reading analytics needs its owners",
			ask: ask{who: "erin", entitlement: "analytics-read", minutes: 60}, outcome: events.OutcomeApprovalRequired,
			stages: []string{"analytics-owners"}, minutes: 60},
		{name: "payments admin needs its owners and security",
			ask: ask{who: "alice", entitlement: "payments-admin", minutes: 60}, outcome: events.OutcomeApprovalRequired,
			stages: []string{"payments-owners", "security"}, minutes: 60},
		{name: "payments admin beyond 2h is denied",
			ask: ask{who: "alice", entitlement: "payments-admin", minutes: 180}, outcome: events.OutcomeDeny, reason: "at most 7200 seconds"},
		{name: "emergency payments admin lasts 30 minutes",
			ask: ask{who: "carol", entitlement: "payments-admin", minutes: 60, emergency: true}, outcome: events.OutcomeEmergency, minutes: 30},
		{name: "a credential for svc-reporting needs its owning team",
			ask:     ask{who: "frank", entitlement: "reporting-db-credential", minutes: 30, subject: "svc-reporting"},
			outcome: events.OutcomeApprovalRequired, stages: []string{"payments-owners"}, minutes: 30},
		{name: "a reporting credential for a person is denied",
			ask: ask{who: "alice", entitlement: "reporting-db-credential", minutes: 30}, outcome: events.OutcomeDeny, reason: "human subject"},
		{name: "the mainframe operator profile needs security",
			ask: ask{who: "dave", entitlement: "mainframe-operator", minutes: 240}, outcome: events.OutcomeApprovalRequired,
			stages: []string{"security"}, minutes: 240},
		{name: "an entitlement outside the catalogue is denied",
			ask: ask{who: "alice", entitlement: "root-everywhere", minutes: 60}, outcome: events.OutcomeDeny, reason: "unknown entitlement"},
		{name: "an emergency on an entitlement without an emergency path is denied",
			ask: ask{who: "alice", entitlement: "analytics-read", minutes: 60, emergency: true}, outcome: events.OutcomeDeny, reason: "no emergency path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := time.Now()
			id := w.submit(t, tt.ask)
			pd := w.decision(t, id)
			if pd.Outcome != tt.outcome {
				t.Fatalf("outcome %s, want %s; reasons %q", pd.Outcome, tt.outcome, pd.Reasons)
			}
			var groups []string
			for _, st := range pd.Stages {
				groups = append(groups, strings.Join(st.Groups, "+"))
			}
			if strings.Join(groups, ",") != strings.Join(tt.stages, ",") {
				t.Errorf("stages %v, want %v", groups, tt.stages)
			}
			if pd.EffectiveDurationSeconds != tt.minutes*60 {
				t.Errorf("effective duration %ds, want %dm", pd.EffectiveDurationSeconds, tt.minutes)
			}
			if tt.reason != "" && !strings.Contains(strings.Join(pd.Reasons, "\n"), tt.reason) {
				t.Errorf("reasons %q do not mention %q", pd.Reasons, tt.reason)
			}
			if pd.PolicyRevision != engine.Revision() || !strings.HasPrefix(pd.InputDigest, "sha256:") {
				t.Errorf("revision %q, input digest %q", pd.PolicyRevision, pd.InputDigest)
			}
			if tt.outcome == events.OutcomeApprovalRequired {
				if d := pd.ApprovalDeadline; d == nil || d.Before(before.Add(24*time.Hour-time.Second)) || d.After(time.Now().Add(24*time.Hour)) {
					t.Errorf("approval deadline %v, want 24h from the decision", d)
				}
			}
			l := w.load(t, id)
			if len(l.Events) != 2 {
				t.Fatalf("%d events, want the submission and one decision", len(l.Events))
			}
			if got := l.Events[1]; got.CausationID != l.Events[0].ID || got.Actor != "service:policy" || got.Source != events.Policy.Source() {
				t.Errorf("decision caused by %q, actor %q, source %q; want the submission %q, service:policy", got.CausationID, got.Actor, got.Source, l.Events[0].ID)
			}
		})
	}
}

// TestSecondEmergencyWaitsForPostReview follows one requester through two emergencies: the second is
// denied while the first awaits its post-review, and allowed once security has reviewed it.
func TestSecondEmergencyWaitsForPostReview(t *testing.T) {
	w := newWorld(t)
	w.serve(t, loadEngine(t, demoBundle), nil)
	emergency := ask{who: "alice", entitlement: "payments-admin", minutes: 60, emergency: true}

	first := w.submit(t, emergency)
	pd := w.decision(t, first)
	if pd.Outcome != events.OutcomeEmergency || pd.EffectiveDurationSeconds != 1800 || pd.PostReview == nil ||
		strings.Join(pd.PostReview.Groups, ",") != "security" {
		t.Fatalf("first emergency: %+v", pd)
	}
	if d := pd.PostReview.Deadline; d.Before(time.Now().Add(23*time.Hour)) || d.After(time.Now().Add(24*time.Hour)) {
		t.Errorf("post-review deadline %v, want 24h from the decision", d)
	}
	w.openReviews(t, "alice", first)
	w.append(t, events.Fulfilment, first, events.Draft{Payload: events.Granted{
		Connector: "postgres", TargetRef: "role payments_admin", Observed: events.Observed{Present: true},
		ExpiresAt: time.Now().Add(20 * time.Minute), Fulfiller: "service:fulfilment",
	}, CausationID: "grant-" + first})

	second := w.submit(t, emergency)
	pd = w.decision(t, second)
	if pd.Outcome != events.OutcomeDeny || !strings.Contains(strings.Join(pd.Reasons, "\n"), "open emergency review ("+first+")") {
		t.Fatalf("second emergency while the first is open: %s %q", pd.Outcome, pd.Reasons)
	}
	w.openReviews(t, "alice", first)

	// Someone else's emergency is not held up by alice's.
	if pd := w.decision(t, w.submit(t, ask{who: "frank", entitlement: "payments-admin", minutes: 60, emergency: true})); pd.Outcome != events.OutcomeEmergency {
		t.Errorf("frank's emergency: %s %q", pd.Outcome, pd.Reasons)
	}

	w.append(t, events.Approval, first, events.Draft{Payload: events.PostReviewed{
		Reviewer: events.Principal{ID: "carol", Groups: []string{"security"}}, Outcome: events.PostReviewRatified,
	}, Actor: "carol", CausationID: "post-review-" + first})
	w.openReviews(t, "alice")

	third := w.submit(t, emergency)
	if pd := w.decision(t, third); pd.Outcome != events.OutcomeEmergency {
		t.Fatalf("emergency after the post-review: %s %q", pd.Outcome, pd.Reasons)
	}
	w.openReviews(t, "alice", third)
}

// TestConcurrentEmergenciesNeverBothPass: two emergencies of one requester decided at the same time
// each see the other's reservation, so at most one of them passes (both may be denied: policy fails
// closed).
func TestConcurrentEmergenciesNeverBothPass(t *testing.T) {
	w := newWorld(t)
	var pairs [][2]string
	for _, who := range []string{"alice", "bob", "erin", "frank"} {
		emergency := ask{who: who, entitlement: "payments-admin", minutes: 30, emergency: true}
		pairs = append(pairs, [2]string{w.submit(t, emergency), w.submit(t, emergency)})
	}
	w.serve(t, loadEngine(t, demoBundle), func(d *Deps) { d.Concurrency = 2 })
	for _, p := range pairs {
		a, b := w.decision(t, p[0]), w.decision(t, p[1])
		if a.Outcome == events.OutcomeEmergency && b.Outcome == events.OutcomeEmergency {
			t.Errorf("both emergencies of one requester passed: %s and %s", p[0], p[1])
		}
		for _, pd := range []events.PolicyDecided{a, b} {
			if pd.Outcome != events.OutcomeEmergency && pd.Outcome != events.OutcomeDeny {
				t.Errorf("outcome %s", pd.Outcome)
			}
		}
	}
}

// TestWithdrawnEmergencyOwesNoReview: an emergency withdrawn before it was granted will never be
// post-reviewed, so it does not hold up the next one.
func TestWithdrawnEmergencyOwesNoReview(t *testing.T) {
	w := newWorld(t)
	w.serve(t, loadEngine(t, demoBundle), nil)
	emergency := ask{who: "alice", entitlement: "payments-admin", minutes: 60, emergency: true}

	first := w.submit(t, emergency)
	if pd := w.decision(t, first); pd.Outcome != events.OutcomeEmergency {
		t.Fatalf("first emergency: %s %q", pd.Outcome, pd.Reasons)
	}
	w.openReviews(t, "alice", first)
	w.append(t, events.Intake, first, events.Draft{Payload: events.Withdrawn{Reason: "fixed it another way"}, Actor: "alice", CausationID: "withdraw-" + first})
	w.openReviews(t, "alice")
	if pd := w.decision(t, w.submit(t, emergency)); pd.Outcome != events.OutcomeEmergency {
		t.Fatalf("emergency after a withdrawn one: %s %q", pd.Outcome, pd.Reasons)
	}
}

// countingEngine counts evaluations of the engine it wraps.
type countingEngine struct {
	Evaluator
	calls atomic.Int32
}

func (c *countingEngine) Evaluate(ctx context.Context, in policy.Input) (policy.Evaluation, error) {
	c.calls.Add(1)
	return c.Evaluator.Evaluate(ctx, in)
}

// TestFailsClosed: when the policy cannot decide, the service retries, and after the last allowed
// delivery records a deny carrying the error, never an approval and never a dead letter.
func TestFailsClosed(t *testing.T) {
	tests := []struct {
		name    string
		policy  string
		timeout time.Duration
		says    string
	}{
		{name: "a policy that errors at evaluation", says: "eval_conflict_error", policy: `package grantline

decision := {"outcome": "auto_approved"} if input.request
decision := {"outcome": "deny"} if input.request
`},
		{name: "a policy that outlasts its timeout", timeout: 50 * time.Millisecond, says: "gave up after 50ms", policy: `package grantline

decision := {"outcome": "auto_approved", "reasons": ["slow"], "stages": [], "stages_ordered": false,
	"effective_duration_seconds": input.request.duration_seconds, "approval_window_seconds": 0} if {
	some i in numbers.range(1, 100000)
	some j in numbers.range(1, 100000)
	i * j == -1
}
`},
		{name: "a policy answering out of shape", says: "grant_forever", policy: `package grantline

decision := {"outcome": "auto_approved", "reasons": ["x"], "stages": [], "stages_ordered": false,
	"effective_duration_seconds": input.request.duration_seconds, "approval_window_seconds": 0, "grant_forever": true}
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			dir := t.TempDir()
			writeFile(t, dir, "grantline.rego", tt.policy)
			var opts []policy.Option
			if tt.timeout > 0 {
				opts = append(opts, policy.WithTimeout(tt.timeout))
			}
			engine := &countingEngine{Evaluator: loadEngine(t, dir, opts...)}
			w.serve(t, engine, func(d *Deps) { d.MaxDeliveries = 3 })

			id := w.submit(t, ask{who: "alice", entitlement: "analytics-read", minutes: 60})
			pd := w.decision(t, id)
			if pd.Outcome != events.OutcomeDeny {
				t.Fatalf("outcome %s, want deny; reasons %q", pd.Outcome, pd.Reasons)
			}
			reasons := strings.Join(pd.Reasons, "\n")
			if !strings.Contains(reasons, "policy could not decide") || !strings.Contains(reasons, tt.says) {
				t.Errorf("reasons %q do not carry the error %q", pd.Reasons, tt.says)
			}
			if pd.PolicyRevision != engine.Revision() || !strings.HasPrefix(pd.InputDigest, "sha256:") {
				t.Errorf("revision %q, input digest %q", pd.PolicyRevision, pd.InputDigest)
			}
			if n := engine.calls.Load(); n != 3 {
				t.Errorf("%d evaluations, want one per allowed delivery (3)", n)
			}
			w.idle(t, topology.PolicyDecisions.Durable)
			if n := w.deadLetters(t, topology.PolicyDecisions.Durable); n != 0 {
				t.Errorf("%d dead letters; the deny should have settled the request", n)
			}
		})
	}
}

// TestLeavesUndecidableRequestsAlone: a request withdrawn before policy saw it gets no decision, and a
// message that is not an event is dead-lettered at once.
func TestLeavesUndecidableRequestsAlone(t *testing.T) {
	w := newWorld(t)
	withdrawn := events.NewID()
	w.append(t, events.Intake, withdrawn,
		events.Draft{Payload: w.submitted(ask{who: "alice", entitlement: "analytics-read", minutes: 60}), Actor: "alice", CausationID: "http:" + withdrawn},
		events.Draft{Payload: events.Withdrawn{}, Actor: "alice", CausationID: "withdraw:" + withdrawn})
	nc := w.js.Conn()
	if err := nc.PublishMsg(&nats.Msg{Subject: events.NATSSubject(events.NewID(), events.TypeSubmitted), Data: []byte(`{"not": "an event"}`)}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	w.serve(t, loadEngine(t, demoBundle), nil)

	w.idle(t, topology.PolicyDecisions.Durable)
	if l := w.load(t, withdrawn); len(l.Events) != 2 || l.Request.Status() != events.StatusWithdrawn {
		t.Errorf("withdrawn request: %d events, status %s", len(l.Events), l.Request.Status())
	}
	if n := w.deadLetters(t, topology.PolicyDecisions.Durable); n != 1 {
		t.Errorf("%d dead letters, want the malformed message", n)
	}
}

// TestOnlyEmergenciesReadTheReviewDebt watches the requests for the review-debt state: deciding an
// ordinary request reads none of it, deciding an emergency reads the requester's open reviews.
func TestOnlyEmergenciesReadTheReviewDebt(t *testing.T) {
	w := newWorld(t)
	w.serve(t, loadEngine(t, demoBundle), nil)
	nc, _ := natstest.Connect(t, w.ns.ClientURL())
	var reads atomic.Int64
	// Every read of the state is a direct get on its bucket's stream; a second subscriber sees each.
	sub, err := nc.Subscribe("$JS.API.DIRECT.GET."+topology.BucketStream(topology.PolicyStateBucket)+".>", func(*nats.Msg) { reads.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	sub2, err := nc.Subscribe("$JS.API.DIRECT.GET."+topology.BucketStream(topology.PolicyStateBucket), func(*nats.Msg) { reads.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub2.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	if pd := w.decision(t, w.submit(t, ask{who: "alice", entitlement: "analytics-read", minutes: 60})); pd.Outcome != events.OutcomeAutoApproved {
		t.Fatalf("ordinary request: %s %q", pd.Outcome, pd.Reasons)
	}
	if n := reads.Load(); n != 0 {
		t.Fatalf("deciding an ordinary request read the review debt %d times", n)
	}
	if pd := w.decision(t, w.submit(t, ask{who: "carol", entitlement: "payments-admin", minutes: 60, emergency: true})); pd.Outcome != events.OutcomeEmergency {
		t.Fatalf("emergency: %s %q", pd.Outcome, pd.Reasons)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if reads.Load() == 0 {
		t.Fatalf("deciding an emergency did not read the review debt: the test watches the wrong subject")
	}
}

// panicsOn is an engine with a bug: it panics on requests with one justification, and decides the
// rest with the engine it wraps.
type panicsOn struct {
	Evaluator
	justification string
}

func (p panicsOn) Evaluate(ctx context.Context, in policy.Input) (policy.Evaluation, error) {
	if in.Request.Justification == p.justification {
		panic("policy engine bug")
	}
	return p.Evaluator.Evaluate(ctx, in)
}

// TestDeadLetteredEmergencyReleasesItsReservation: an emergency is reserved before it is decided,
// so that a concurrent one sees it. If deciding it fails on every delivery and its submitted event is
// dead-lettered, nothing will ever decide it, grant it or review it: its reservation is released, and
// the requester's next emergency is decided on its merits instead of being denied for an open review
// nobody owes.
func TestDeadLetteredEmergencyReleasesItsReservation(t *testing.T) {
	w := newWorld(t)
	w.serve(t, panicsOn{Evaluator: loadEngine(t, demoBundle), justification: "crashes the engine"}, func(d *Deps) { d.MaxDeliveries = 2 })

	crashing := w.submitted(ask{who: "alice", entitlement: "payments-admin", minutes: 60, emergency: true})
	crashing.Justification = "crashes the engine"
	crashing.RequestDigest = crashing.Digest()
	orphan := events.NewID()
	w.append(t, events.Intake, orphan, events.Draft{Payload: crashing, Actor: "alice", CausationID: "http:" + orphan})
	poll.Until(t, 30*time.Second, "the crashing emergency to be dead-lettered", func() bool {
		return w.deadLetters(t, topology.PolicyDecisions.Durable) == 1
	})
	if st := w.load(t, orphan).Request.Status(); st != events.StatusSubmitted {
		t.Fatalf("the crashing emergency is %s, want still submitted (undecided)", st)
	}
	w.openReviews(t, "alice")

	next := w.submit(t, ask{who: "alice", entitlement: "payments-admin", minutes: 60, emergency: true})
	if pd := w.decision(t, next); pd.Outcome != events.OutcomeEmergency {
		t.Fatalf("alice's next emergency: %s %q, want emergency (nothing is owed for the set-aside one)", pd.Outcome, pd.Reasons)
	}
	w.openReviews(t, "alice", next)
}
