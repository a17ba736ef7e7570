package approval_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/services/approval"
)

// step is a review already recorded before the scenario's own, taken through the same rules.
type step struct {
	who      events.Principal
	decision events.ReviewDecision
}

func approves(p events.Principal) step { return step{p, events.ReviewApprove} }

const (
	approve = events.ReviewApprove
	reject  = events.ReviewReject
)

// TestReviewScenarios is the specification of who may review what and what each review appends. Each
// row: the request as it stands (who asked, what policy decided, which reviews are in), who reviews
// and how, and the outcome: the events appended and the status after, or the refusal.
func TestReviewScenarios(t *testing.T) {
	alicePayments := request(alice, self(alice), false)
	cases := []struct {
		name   string
		setup  []events.Payload
		before []step
		who    events.Principal
		does   events.ReviewDecision
		digest string
		want   []string
		status events.Status
		err    error
	}{
		// One stage, threshold: a stage needing two owners waits for the second.
		{name: "one stage needing two: the first owner's approval leaves it pending",
			setup: []events.Payload{alicePayments, decided(false, stage("owners", 2, "payments-owners"))},
			who:   bob, does: approve, want: []string{"reviewed"}, status: events.StatusPendingApproval},
		{name: "one stage needing two: the second owner's approval approves it",
			setup:  []events.Payload{alicePayments, decided(false, stage("owners", 2, "payments-owners"))},
			before: []step{approves(bob)},
			who:    frank, does: approve, want: []string{"reviewed", "approved"}, status: events.StatusApproved},
		{name: "one stage needing one: a single owner approves it",
			setup: []events.Payload{alicePayments, decided(false, stage("owners", 1, "payments-owners"))},
			who:   frank, does: approve, want: []string{"reviewed", "approved"}, status: events.StatusApproved},

		// Two stages are AND: both must be satisfied, in any order when unordered.
		{name: "two unordered stages: security first leaves the owners' stage open",
			setup: []events.Payload{alicePayments, decided(false, stage("owners", 1, "payments-owners"), stage("security", 1, "security"))},
			who:   carol, does: approve, want: []string{"reviewed"}, status: events.StatusPendingApproval},
		{name: "two unordered stages: the owners after security approve it",
			setup:  []events.Payload{alicePayments, decided(false, stage("owners", 1, "payments-owners"), stage("security", 1, "security"))},
			before: []step{approves(carol)},
			who:    bob, does: approve, want: []string{"reviewed", "approved"}, status: events.StatusApproved},

		// Ordered stages open one at a time.
		{name: "ordered stages: security may not review before the owners",
			setup: []events.Payload{alicePayments, paymentsAdmin},
			who:   carol, does: approve, err: approval.ErrNotReviewer},
		{name: "ordered stages: the owners open the security stage",
			setup: []events.Payload{alicePayments, paymentsAdmin},
			who:   bob, does: approve, want: []string{"reviewed"}, status: events.StatusPendingApproval},
		{name: "ordered stages: security after the owners approves it",
			setup:  []events.Payload{alicePayments, paymentsAdmin},
			before: []step{approves(bob)},
			who:    carol, does: approve, want: []string{"reviewed", "approved"}, status: events.StatusApproved},

		// A rejection in any stage ends the request.
		{name: "a rejection in the first stage rejects the request",
			setup: []events.Payload{alicePayments, paymentsAdmin},
			who:   bob, does: reject, want: []string{"reviewed", "rejected"}, status: events.StatusRejected},
		{name: "a rejection in the last stage rejects the request although the owners approved",
			setup:  []events.Payload{alicePayments, paymentsAdmin},
			before: []step{approves(bob)},
			who:    carol, does: reject, want: []string{"reviewed", "rejected"}, status: events.StatusRejected},

		// Each person counts once, whatever their groups.
		{name: "a reviewer in the groups of two stages counts for the first open one only",
			setup: []events.Payload{alicePayments, decided(false, stage("owners", 1, "payments-owners"), stage("engineering", 1, "engineers"))},
			who:   frank, does: approve, want: []string{"reviewed"}, status: events.StatusPendingApproval},
		{name: "that reviewer may not approve again for the other stage",
			setup:  []events.Payload{alicePayments, decided(false, stage("owners", 1, "payments-owners"), stage("engineering", 1, "engineers"))},
			before: []step{approves(frank)},
			who:    frank, does: approve, err: approval.ErrSeparationOfDuties},
		{name: "the same person reviewing twice in one stage is refused",
			setup:  []events.Payload{alicePayments, decided(false, stage("owners", 2, "payments-owners"))},
			before: []step{approves(bob)},
			who:    bob, does: approve, err: approval.ErrSeparationOfDuties},
		{name: "the same person under a case variant reviewing twice is refused",
			setup:  []events.Payload{alicePayments, decided(false, stage("owners", 2, "payments-owners"))},
			before: []step{approves(bob)},
			who:    as("BOB", "payments-owners"), does: approve, err: approval.ErrSeparationOfDuties},

		// Nobody approves their own access.
		{name: "self-approval: the requester in the owners' group",
			setup: []events.Payload{request(frank, self(frank), false), paymentsAdmin},
			who:   frank, does: approve, err: approval.ErrSeparationOfDuties},
		{name: "self-approval under a capitalised spelling of the requester",
			setup: []events.Payload{request(frank, self(frank), false), paymentsAdmin},
			who:   as("Frank", "payments-owners"), does: approve, err: approval.ErrSeparationOfDuties},
		{name: "self-approval under the spelling Alice",
			setup: []events.Payload{alicePayments, decided(false, stage("owners", 1, "payments-owners"))},
			who:   as("Alice", "payments-owners"), does: approve, err: approval.ErrSeparationOfDuties},
		{name: "self-approval under the full-width spelling ａｌｉｃｅ",
			setup: []events.Payload{alicePayments, decided(false, stage("owners", 1, "payments-owners"))},
			who:   as("ａｌｉｃｅ", "payments-owners"), does: approve, err: approval.ErrSeparationOfDuties},
		{name: "self-rejection is refused too: the requester does not review at all",
			setup: []events.Payload{request(frank, self(frank), false), paymentsAdmin},
			who:   frank, does: reject, err: approval.ErrSeparationOfDuties},
		{name: "the subject may not approve access for themselves that someone else asked for",
			setup: []events.Payload{request(frank, self(bob), false), paymentsAdmin},
			who:   bob, does: approve, err: approval.ErrSeparationOfDuties},
		{name: "a service account's owner who requested its access may not approve it",
			setup: []events.Payload{request(frank, svcReporting, false), decided(false, stage("owners", 1, "payments-owners"))},
			who:   frank, does: approve, err: approval.ErrSeparationOfDuties},
		{name: "another owner of the service account may approve its access",
			setup: []events.Payload{request(frank, svcReporting, false), decided(false, stage("owners", 1, "payments-owners"))},
			who:   bob, does: approve, want: []string{"reviewed", "approved"}, status: events.StatusApproved},
		{name: "the service account itself may not approve its own access",
			setup: []events.Payload{request(frank, svcReporting, false), decided(false, stage("owners", 1, "payments-owners"))},
			who:   as("svc-reporting", "payments-owners"), does: approve, err: approval.ErrSeparationOfDuties},
		{name: "self-approval is refused even after the request was approved",
			setup:  []events.Payload{request(frank, self(frank), false), decided(false, stage("owners", 1, "payments-owners"))},
			before: []step{approves(bob)},
			who:    frank, does: approve, err: approval.ErrSeparationOfDuties},

		// Only the stages' groups review.
		{name: "someone in no stage's group is not a reviewer",
			setup: []events.Payload{alicePayments, paymentsAdmin},
			who:   dave, does: approve, err: approval.ErrNotReviewer},

		// A request that no longer awaits review answers "not pending".
		{name: "a review after the request was approved",
			setup:  []events.Payload{alicePayments, decided(false, stage("owners", 1, "payments-owners"))},
			before: []step{approves(bob)},
			who:    frank, does: approve, err: approval.ErrNotPending},
		{name: "a review after the request was rejected",
			setup:  []events.Payload{alicePayments, decided(false, stage("owners", 2, "payments-owners"))},
			before: []step{{bob, reject}},
			who:    frank, does: approve, err: approval.ErrNotPending},
		{name: "a review after the requester withdrew",
			setup: []events.Payload{alicePayments, paymentsAdmin, events.Withdrawn{Reason: "done without it"}},
			who:   bob, does: approve, err: approval.ErrNotPending},
		{name: "a review of a request policy auto-approved",
			setup: []events.Payload{alicePayments, events.PolicyDecided{Outcome: events.OutcomeAutoApproved, Reasons: []string{"low risk"},
				EffectiveDurationSeconds: 600, PolicyRevision: "sha256:rev", InputDigest: "sha256:in"}},
			who: bob, does: approve, err: approval.ErrNotPending},
		{name: "a review before policy decided",
			setup: []events.Payload{alicePayments},
			who:   bob, does: approve, err: approval.ErrNotPending},
		{name: "a review of a request that does not exist",
			who: bob, does: approve, err: approval.ErrNotFound},

		// Every review is bound to the request digest.
		{name: "a review of a stale digest (the request the reviewer saw was different)",
			setup: []events.Payload{alicePayments, paymentsAdmin},
			who:   bob, does: approve, digest: request(alice, self(alice), true).Digest(), err: approval.ErrStaleDigest},
		{name: "a review naming the current digest",
			setup: []events.Payload{alicePayments, paymentsAdmin},
			who:   bob, does: approve, digest: alicePayments.RequestDigest, want: []string{"reviewed"}, status: events.StatusPendingApproval},

		{name: "a decision that is neither approve nor reject",
			setup: []events.Payload{alicePayments, paymentsAdmin},
			who:   bob, does: "abstain", err: approval.ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := fold(t, tc.setup...)
			at := t0.Add(time.Hour)
			for _, s := range tc.before {
				drafts, err := rules.Review(req, approval.Review{Reviewer: s.who, Decision: s.decision})
				if err != nil {
					t.Fatalf("earlier review by %s: %v", s.who.ID, err)
				}
				apply(t, req, at, drafts)
			}
			drafts, err := rules.Review(req, approval.Review{Reviewer: tc.who, Decision: tc.does, Comment: "looked at INC-7", RequestDigest: tc.digest})
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("%s %ss: got %v (events %v), want %v", tc.who.ID, tc.does, err, typesOf(drafts), tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("%s %ss: refused: %v", tc.who.ID, tc.does, err)
			}
			if got := typesOf(drafts); !slices.Equal(got, tc.want) {
				t.Fatalf("%s %ss: appends %v, want %v", tc.who.ID, tc.does, got, tc.want)
			}
			apply(t, req, at, drafts)
			if req.Status() != tc.status {
				t.Fatalf("status after: %s, want %s", req.Status(), tc.status)
			}
		})
	}
}

// TestReviewRecordsTheNormalisedReviewer: what reaches the stream is the one spelling of the reviewer,
// with the groups the token asserted, the stage it counted for and the request's digest.
func TestReviewRecordsTheNormalisedReviewer(t *testing.T) {
	req := fold(t, request(alice, self(alice), false), decided(false, stage("owners", 1, "payments-owners")))
	drafts, err := rules.Review(req, approval.Review{Reviewer: as("ＢＯＢ", "payments-owners"), Decision: approve, Comment: "ok"})
	if err != nil {
		t.Fatal(err)
	}
	rv := drafts[0].Payload.(events.Reviewed)
	if rv.Reviewer.ID != "bob" || drafts[0].Actor != "bob" || rv.Stage != 0 || rv.Comment != "ok" || rv.RequestDigest != req.Submitted().RequestDigest ||
		rv.Via != "" {
		t.Fatalf("reviewed %+v by %s", rv, drafts[0].Actor)
	}
	if ap := drafts[1].Payload.(events.Approved); !slices.Equal(ap.Approvers, []string{"bob"}) {
		t.Fatalf("approvers %v", ap.Approvers)
	}
	var duty *approval.DutyError
	_, err = rules.Review(req, approval.Review{Reviewer: as("Alice", "payments-owners"), Decision: approve})
	if !errors.As(err, &duty) || duty.Reviewer != "alice" || duty.Reason != approval.DutyRequester {
		t.Fatalf("Alice reviewing alice's request: %v", err)
	}
}

// TestRetriedReviewIsAnsweredWithWhatWasRecorded: bob's review was recorded but his answer was lost;
// the same action sent again (its idempotency key) is the recorded review, not a refusal. Without the
// key, or with it from someone else, it is a second review and the usual rules apply.
func TestRetriedReviewIsAnsweredWithWhatWasRecorded(t *testing.T) {
	req := fold(t, request(alice, self(alice), false), decided(false, stage("owners", 1, "payments-owners"), stage("security", 1, "security")))
	first := approval.Review{Reviewer: bob, Decision: approve, Comment: "ok", IdempotencyKey: "k-1"}
	drafts, err := rules.Review(req, first)
	if err != nil {
		t.Fatal(err)
	}
	if drafts[0].CausationID != approval.ReviewCausation("k-1") {
		t.Fatalf("the review carries causation %q, want its key's", drafts[0].CausationID)
	}
	apply(t, req, t0.Add(time.Hour), drafts)

	prior, ok := rules.Recorded(req, approval.Review{Reviewer: as("BOB", "payments-owners"), Decision: approve, IdempotencyKey: "k-1"})
	if !ok || prior.Reviewer.ID != "bob" || prior.Comment != "ok" {
		t.Fatalf("bob's retry: recorded %+v %v, want his review", prior, ok)
	}
	var duty *approval.DutyError
	if _, ok := rules.Recorded(req, approval.Review{Reviewer: bob, Decision: approve}); ok {
		t.Fatal("a review without a key matched a recorded one")
	}
	if _, err := rules.Review(req, approval.Review{Reviewer: bob, Decision: approve}); !errors.As(err, &duty) || duty.Reason != approval.DutyAlreadyReviewed {
		t.Fatalf("bob again without the key: %v, want already reviewed", err)
	}
	if _, ok := rules.Recorded(req, approval.Review{Reviewer: carol, Decision: approve, IdempotencyKey: "k-1"}); ok {
		t.Fatal("carol's review matched bob's key")
	}
}

// TestReviewRecordsWhoActedForTheReviewer: a review pressed in Slack comes with a token the notifier
// obtained for bob. It is bob's review, under the same rules (alice still may not approve her own
// request that way), and the event records that the notifier carried it.
func TestReviewRecordsWhoActedForTheReviewer(t *testing.T) {
	req := fold(t, request(alice, self(alice), false), decided(false, stage("owners", 1, "payments-owners")))
	drafts, err := rules.Review(req, approval.Review{Reviewer: as("bob", "payments-owners"), Decision: approve, Via: "grantline-notifier"})
	if err != nil {
		t.Fatal(err)
	}
	if rv := drafts[0].Payload.(events.Reviewed); rv.Reviewer.ID != "bob" || drafts[0].Actor != "bob" || rv.Via != "grantline-notifier" {
		t.Fatalf("reviewed %+v by %s, want bob's review via grantline-notifier", rv, drafts[0].Actor)
	}
	_, err = rules.Review(req, approval.Review{Reviewer: as("alice", "payments-owners"), Decision: approve, Via: "grantline-notifier"})
	if !errors.Is(err, approval.ErrSeparationOfDuties) {
		t.Fatalf("alice approving her own request through the notifier: %v", err)
	}
}

// TestAggregateRefusesAStaleDigest: even a review that skipped these rules cannot carry an approval
// over to a changed request; the aggregate refuses it before it reaches the stream.
func TestAggregateRefusesAStaleDigest(t *testing.T) {
	req := fold(t, request(alice, self(alice), false), paymentsAdmin)
	stale := events.Reviewed{Reviewer: bob, Stage: 0, Decision: approve, RequestDigest: request(alice, self(alice), true).Digest()}
	if err := req.Apply(envelope(stale, t0.Add(time.Hour), "bob", "")); !errors.Is(err, events.ErrRefused) {
		t.Fatalf("a reviewed event with a stale digest: %v, want a refusal", err)
	}
}

// TestPostReviewScenarios: the review an emergency grant owes afterwards.
func TestPostReviewScenarios(t *testing.T) {
	emergency := request(alice, self(alice), true)
	grantedEmergency := []events.Payload{emergency, emergencyDecided(), granted(t0.Add(2 * time.Minute))}
	cases := []struct {
		name    string
		setup   []events.Payload
		who     events.Principal
		outcome events.PostReviewOutcome
		reason  string
		revoke  events.RevocationReason
		err     error
	}{
		{name: "security ratifies the emergency grant", setup: grantedEmergency, who: carol, outcome: events.PostReviewRatified},
		{name: "security flags it with a reason: the grant must be revoked", setup: grantedEmergency, who: carol,
			outcome: events.PostReviewFlagged, reason: "no incident matched", revoke: events.RevokeReviewFailed},
		{name: "a flag without a reason is refused", setup: grantedEmergency, who: carol, outcome: events.PostReviewFlagged, err: approval.ErrInvalid},
		{name: "the requester may not post-review their own emergency access", setup: grantedEmergency,
			who: as("alice", "security"), outcome: events.PostReviewRatified, err: approval.ErrSeparationOfDuties},
		{name: "nor under a full-width spelling", setup: grantedEmergency,
			who: as("ａｌｉｃｅ", "security"), outcome: events.PostReviewRatified, err: approval.ErrSeparationOfDuties},
		{name: "someone outside the post-review groups may not", setup: grantedEmergency, who: bob,
			outcome: events.PostReviewRatified, err: approval.ErrNotReviewer},
		{name: "a second post-review is refused",
			setup: append(slices.Clone(grantedEmergency), events.PostReviewed{Reviewer: carol, Outcome: events.PostReviewRatified}),
			who:   as("grace", "security"), outcome: events.PostReviewFlagged, reason: "late doubt", err: approval.ErrNotPending},
		{name: "a post-review before the grant is refused", setup: grantedEmergency[:2], who: carol,
			outcome: events.PostReviewRatified, err: approval.ErrNotPending},
		{name: "a request that was not an emergency has no post-review",
			setup: []events.Payload{request(alice, self(alice), false), paymentsAdmin}, who: carol,
			outcome: events.PostReviewRatified, err: approval.ErrNotPending},
		{name: "an overdue post-review may still be done",
			setup: append(slices.Clone(grantedEmergency), events.PostReviewOverdue{Deadline: t0.Add(24 * time.Hour)}),
			who:   carol, outcome: events.PostReviewRatified},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var req *events.Request
			if last, ok := tc.setup[len(tc.setup)-1].(events.PostReviewOverdue); ok {
				// fold stamps events a minute apart; an overdue marker needs a time after the deadline.
				req = fold(t, tc.setup[:len(tc.setup)-1]...)
				apply(t, req, last.Deadline.Add(time.Second), []events.Draft{{Payload: last}})
			} else {
				req = fold(t, tc.setup...)
			}
			drafts, err := rules.PostReview(req, approval.PostReview{Reviewer: tc.who, Outcome: tc.outcome, Reason: tc.reason})
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("got %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			apply(t, req, t0.Add(time.Hour), drafts)
			if req.PostReviewOpen() || req.PostReview().Outcome != tc.outcome || req.RevocationDue() != tc.revoke {
				t.Fatalf("after: open %v, outcome %s, revocation due %q", req.PostReviewOpen(), req.PostReview().Outcome, req.RevocationDue())
			}
		})
	}
}

// TestDeadlines: what the approval window and the post-review deadline append when their timers fire.
func TestDeadlines(t *testing.T) {
	deadline := t0.Add(24 * time.Hour)
	pending := []events.Payload{request(alice, self(alice), false), paymentsAdmin}
	emergencyDecided := []events.Payload{request(alice, self(alice), true), emergencyDecided()}
	emergencyGranted := append(slices.Clone(emergencyDecided), granted(t0.Add(2*time.Minute)))
	cases := []struct {
		name  string
		setup []events.Payload
		fire  func(*events.Request, time.Time) ([]events.Draft, error)
		now   time.Time
		want  []string
		// comeBack is when a timer that fired too early must look again; zero if it decides now.
		comeBack time.Time
	}{
		{"the approval window ends on a pending request: rejected for timeout", pending, approval.Timeout, deadline, []string{"rejected"}, time.Time{}},
		{"a timer that fires before the window ends asks to come back", pending, approval.Timeout, deadline.Add(-time.Second), nil, deadline},
		{"the window ends on an approved request: nothing (a stale timer)",
			[]events.Payload{request(alice, self(alice), false), decided(false, stage("owners", 1, "payments-owners")),
				events.Reviewed{Reviewer: bob, Stage: 0, Decision: approve, RequestDigest: request(alice, self(alice), false).RequestDigest},
				events.Approved{Approvers: []string{"bob"}}},
			approval.Timeout, deadline.Add(time.Hour), nil, time.Time{}},
		{"the window ends on a withdrawn request: nothing", append(slices.Clone(pending), events.Withdrawn{}), approval.Timeout, deadline, nil, time.Time{}},
		{"the post-review deadline passes with nobody reviewing: overdue", emergencyGranted, approval.Overdue, deadline, []string{"post_review_overdue"}, time.Time{}},
		{"the post-review deadline has not passed", emergencyGranted, approval.Overdue, deadline.Add(-time.Minute), nil, deadline},
		{"the post-review was done in time: nothing",
			append(slices.Clone(emergencyGranted), events.PostReviewed{Reviewer: carol, Outcome: events.PostReviewRatified}),
			approval.Overdue, deadline, nil, time.Time{}},
		// The post-review deadline is armed at the decision, so it can pass before the grant is made.
		{"the post-review deadline passes before the emergency is granted: it waits for the grant",
			emergencyDecided, approval.Overdue, deadline, nil, deadline.Add(approval.GrantWait)},
		{"the post-review deadline of an emergency whose grant failed: nothing",
			append(slices.Clone(emergencyDecided), events.FulfilmentFailed{ErrorClass: "target_refused", Message: "role missing", Attempts: 1, Permanent: true}),
			approval.Overdue, deadline, nil, time.Time{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := fold(t, tc.setup...)
			drafts, err := tc.fire(req, tc.now)
			var early *approval.TooEarlyError
			if !tc.comeBack.IsZero() {
				if !errors.As(err, &early) || !early.Until.Equal(tc.comeBack) {
					t.Fatalf("got %v, want too early until %s", err, tc.comeBack)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := typesOf(drafts); !slices.Equal(got, tc.want) {
				t.Fatalf("appends %v, want %v", got, tc.want)
			}
			apply(t, req, tc.now, drafts)
			// The causation makes a second firing of the same timer append nothing.
			for _, d := range drafts {
				if !req.HasCaused(d.Payload.EventType(), d.CausationID) {
					t.Fatalf("%s carries no causation a redelivery could recognise", d.Payload.EventType().Name())
				}
			}
		})
	}
}

// TestAwaiting: what the inbox keeps per request.
func TestAwaiting(t *testing.T) {
	req := fold(t, request(alice, self(alice), false), paymentsAdmin)
	slots := approval.Awaiting(req)
	if len(slots) != 1 || slots[0].StageName != "owners" || slots[0].Kind != approval.AwaitsReview {
		t.Fatalf("ordered stages, nothing reviewed: %+v", slots)
	}
	drafts, _ := rules.Review(req, approval.Review{Reviewer: bob, Decision: approve})
	apply(t, req, t0.Add(time.Hour), drafts)
	if slots = approval.Awaiting(req); len(slots) != 1 || slots[0].StageName != "security" || slots[0].Stage != 1 {
		t.Fatalf("after the owners: %+v", slots)
	}
	if ex := approval.Excluded(req); !slices.Equal(ex, []string{"alice", "bob"}) {
		t.Fatalf("excluded %v", ex)
	}
	em := fold(t, request(alice, self(alice), true), emergencyDecided(), granted(t0.Add(2*time.Minute)))
	if slots = approval.Awaiting(em); len(slots) != 1 || slots[0].Kind != approval.AwaitsPostReview || !slices.Equal(slots[0].Groups, []string{"security"}) {
		t.Fatalf("emergency grant: %+v", slots)
	}
}
