package events

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// TestTransitions is the lifecycle of DESIGN §3.4 as a table over every (state, event type) pair. Each
// row names a state (reached by the story of the same name) and the status the request must have after
// the most plausible event of each type; a type missing from a row must be refused, leaving the request
// unchanged. An auditor can read it as the specification of the state machine.
func TestTransitions(t *testing.T) {
	legal := map[string]map[Type]Status{
		// A subject begins with submitted, or it is a finding: drift that no request explains.
		"none":      {TypeSubmitted: StatusSubmitted, TypeDriftDetected: StatusFinding},
		"submitted": {TypeWithdrawn: StatusWithdrawn, TypePolicyDecided: StatusPendingApproval},
		// Reviews accumulate; approval needs satisfied stages; the window can run out.
		"pending_approval":  {TypeWithdrawn: StatusWithdrawn, TypeReviewed: StatusPendingApproval, TypeRejected: StatusRejected},
		"pending_satisfied": {TypeWithdrawn: StatusWithdrawn, TypeApproved: StatusApproved, TypeRejected: StatusRejected},
		// Approved: fulfilment grants, opens a manual task, or fails; the requester may still withdraw.
		"approved": {TypeWithdrawn: StatusWithdrawn, TypeTaskOpened: StatusApproved, TypeGranted: StatusGranted, TypeFulfilmentFailed: StatusFailed},
		// Granted: only expiry or a revocation request start the end of access; the reconciler may find
		// the access missing on the target. At its expiry the grant is revoked at once, or, when that
		// first attempt fails, expired keeps it visible as overdue.
		"granted": {TypeRevocationRequested: StatusGranted, TypeExpired: StatusGranted, TypeDriftDetected: StatusGranted,
			TypeRevoked: StatusRevoked},
		// Revocation under way: revoke (or open a manual revoke task), or record a failed attempt.
		"revoking": {TypeRevoked: StatusRevoked, TypeRevocationFailed: StatusGranted, TypeTaskOpened: StatusGranted},
		// Revoked: the reconciler may find the access on the target again, and then revokes it again.
		"revoked": {TypeDriftDetected: StatusRevoked},
		// Revoked at expiry in one event: absorbs like any revoked grant.
		"revoked_at_expiry": {TypeDriftDetected: StatusRevoked},
		"denied":            {}, "rejected": {}, "withdrawn": {}, "failed": {},
		// Emergency: granted without approvals, then post-reviewed (or overdue) while access lasts.
		"emergency_granted": {TypeRevocationRequested: StatusGranted, TypeExpired: StatusGranted, TypePostReviewed: StatusGranted,
			TypePostReviewOverdue: StatusGranted, TypeDriftDetected: StatusGranted, TypeRevoked: StatusRevoked},
		// The post-review stays owed after an emergency grant was revoked, and drift can be found on it:
		// the exceptions to absorption.
		"emergency_revoked": {TypePostReviewed: StatusRevoked, TypePostReviewOverdue: StatusRevoked, TypeDriftDetected: StatusRevoked},
		// Missing access is recorded once; the grant still ends the usual ways.
		"drift_missing": {TypeRevocationRequested: StatusGranted, TypeExpired: StatusGranted, TypeRevoked: StatusRevoked},
		// Access found after revocation: only its revocation again (reason drift) is accepted.
		"drift_revoking": {TypeRevoked: StatusRevoked},
		// Revoked again: the next drift found is a new one.
		"drift_revoked": {TypeDriftDetected: StatusRevoked},
		// A finding holds its one event.
		"finding": {},
		// Approved for a later start: policy checks it then. A grant before the check is not refused by
		// the aggregate (histories from before start checks hold such grants); fulfilment waits for it.
		"scheduled": {TypeWithdrawn: StatusWithdrawn, TypeStartChecked: StatusApproved, TypeTaskOpened: StatusApproved,
			TypeGranted: StatusGranted, TypeFulfilmentFailed: StatusFailed},
		// Checked and still allowed: on as any approved request, and checked once only.
		"start_checked": {TypeWithdrawn: StatusWithdrawn, TypeTaskOpened: StatusApproved, TypeGranted: StatusGranted,
			TypeFulfilmentFailed: StatusFailed},
		// No longer allowed at the start: denied, and closed.
		"start_denied": {},
	}
	for _, st := range stories() {
		want, ok := legal[st.name]
		if !ok {
			t.Fatalf("story %q has no row in the table", st.name)
		}
		for _, typ := range AllTypes {
			t.Run(st.name+"/"+typ.Name(), func(t *testing.T) {
				r, err := Fold(testRequestID, st.events)
				if err != nil {
					t.Fatalf("story %s does not fold: %v", st.name, err)
				}
				before := r.Version()
				err = r.Apply(candidate(typ, r))
				wantStatus, isLegal := want[typ]
				switch {
				case isLegal && err != nil:
					t.Fatalf("in %s, %s should be accepted, got %v", st.name, typ.Name(), err)
				case isLegal && r.Status() != wantStatus:
					t.Fatalf("in %s, %s moved to %q, want %q", st.name, typ.Name(), r.Status(), wantStatus)
				case !isLegal && err == nil:
					t.Fatalf("in %s, %s should be refused, was accepted (now %q)", st.name, typ.Name(), r.Status())
				case !isLegal:
					var refused *RefusedError
					if !errors.As(err, &refused) || !errors.Is(err, ErrRefused) {
						t.Fatalf("refusal is %T %v, want *RefusedError", err, err)
					}
					if r.Version() != before {
						t.Fatalf("a refused event changed the version from %d to %d", before, r.Version())
					}
				}
			})
		}
	}
}

// TestStartCheckRules covers the facts a start check must agree with, and what it allows: fulfilment
// only once an allowed check is recorded, and a check that is not allowed denies the request.
func TestStartCheckRules(t *testing.T) {
	start := t0.Add(time.Hour)
	scheduled := []Event{event(scheduledPayload(start), t0, "alice"), event(autoDecision(), t0.Add(time.Minute), "service:policy")}
	pending := []Event{event(scheduledPayload(start), t0, "alice"), event(twoStageDecision(false), t0.Add(time.Minute), "service:policy")}
	// The reviews are bound to the scheduled request's digest.
	rv := func(who, group string, stage int) Reviewed {
		x := review(who, group, stage, ReviewApprove)
		x.RequestDigest = scheduledPayload(start).RequestDigest
		return x
	}
	approvedScheduled := append(slices.Clone(pending), event(rv("carol", "db-owners", 0), t0.Add(2*time.Minute), "carol"),
		event(rv("erin", "security", 1), t0.Add(3*time.Minute), "erin"),
		event(Approved{Approvers: []string{"carol", "erin"}}, t0.Add(3*time.Minute), "service:approval"))
	withCheck := func(mut func(*StartChecked)) StartChecked { c := startCheck(OutcomeAutoApproved); mut(&c); return c }
	cases := []struct {
		name    string
		history []Event
		next    Event
		refused bool
	}{
		{"checked at the start", scheduled, event(startCheck(OutcomeAutoApproved), start, "service:policy"), false},
		{"denied at the start", scheduled, event(startCheck(OutcomeDeny), start, "service:policy"), false},
		{"checked before the start", scheduled, event(startCheck(OutcomeAutoApproved), start.Add(-time.Second), "service:policy"), true},
		{"checked while approvals are outstanding", pending, event(startCheck(OutcomeAutoApproved), start, "service:policy"), true},
		{"a request asking for access at once", []Event{event(submittedPayload(false), t0, "alice"), event(autoDecision(), t0, "service:policy")},
			event(startCheck(OutcomeAutoApproved), start, "service:policy"), true},
		{"checked twice", append(slices.Clone(scheduled), event(startCheck(OutcomeAutoApproved), start, "service:policy")),
			event(startCheck(OutcomeAutoApproved), start.Add(time.Second), "service:policy"), true},
		{"approval now required, and none was given", scheduled, event(withCheck(func(c *StartChecked) {
			c.Outcome, c.Stages = OutcomeApprovalRequired, []Stage{{Name: "owners", Groups: []string{"db-owners"}, MinApprovals: 1}}
		}), start, "service:policy"), true},
		{"approval now required, none given, and not allowed", scheduled, event(withCheck(func(c *StartChecked) {
			c.Outcome, c.Allowed, c.Stages = OutcomeApprovalRequired, false, []Stage{{Name: "owners", Groups: []string{"db-owners"}, MinApprovals: 1}}
		}), start, "service:policy"), false},
		{"the approvals given satisfy the stages required now", approvedScheduled, event(withCheck(func(c *StartChecked) {
			c.Outcome, c.Stages = OutcomeApprovalRequired, []Stage{{Name: "security", Groups: []string{"security"}, MinApprovals: 1}}
		}), start, "service:policy"), false},
		{"the stages required now want two owners; one approved", approvedScheduled, event(withCheck(func(c *StartChecked) {
			c.Outcome, c.Stages = OutcomeApprovalRequired, []Stage{{Name: "owners", Groups: []string{"db-owners"}, MinApprovals: 2}}
		}), start, "service:policy"), true},
		{"approval_required without stages", scheduled, event(withCheck(func(c *StartChecked) { c.Outcome = OutcomeApprovalRequired }), start, "service:policy"), true},
		{"allowed although policy denied", scheduled, event(withCheck(func(c *StartChecked) { c.Outcome = OutcomeDeny }), start, "service:policy"), true},
		{"not allowed although policy allowed", scheduled, event(withCheck(func(c *StartChecked) { c.Allowed = false }), start, "service:policy"), true},
		{"no policy revision", scheduled, event(withCheck(func(c *StartChecked) { c.PolicyRevision = "" }), start, "service:policy"), true},
		{"groups from nowhere", scheduled, event(withCheck(func(c *StartChecked) { c.GroupsFrom = "" }), start, "service:policy"), true},
		{"an unknown outcome", scheduled, event(withCheck(func(c *StartChecked) { c.Outcome = "maybe" }), start, "service:policy"), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Fold(testRequestID, tc.history)
			if err != nil {
				t.Fatal(err)
			}
			err = r.Apply(tc.next)
			if tc.refused != (err != nil) {
				t.Fatalf("refused = %v, want %v (err %v)", err != nil, tc.refused, err)
			}
		})
	}

	r, err := Fold(testRequestID, scheduled)
	if err != nil {
		t.Fatal(err)
	}
	if !r.StartCheckDue() || r.AllowsFulfilment() {
		t.Fatalf("before its check a scheduled request must await it: due %v, allows %v", r.StartCheckDue(), r.AllowsFulfilment())
	}
	if err := r.Apply(event(startCheck(OutcomeAutoApproved), start, "service:policy")); err != nil {
		t.Fatal(err)
	}
	if r.StartCheckDue() || !r.AllowsFulfilment() || r.StartCheck() == nil {
		t.Fatalf("an allowed check must allow fulfilment: due %v, allows %v", r.StartCheckDue(), r.AllowsFulfilment())
	}
	denied, err := Fold(testRequestID, append(slices.Clone(scheduled), event(startCheck(OutcomeDeny), start, "service:policy")))
	if err != nil {
		t.Fatal(err)
	}
	if denied.Status() != StatusDenied || denied.AllowsFulfilment() || !denied.Status().Terminal() {
		t.Fatalf("a check that is not allowed must deny: status %q, allows %v", denied.Status(), denied.AllowsFulfilment())
	}
}

// TestApprovalRules covers the facts a legal-looking event must agree with; each row is a scenario.
func TestApprovalRules(t *testing.T) {
	pendingOrdered := []Event{event(submittedPayload(false), t0, "alice"), event(twoStageDecision(true), t0.Add(time.Minute), "service:policy")}
	pendingParallel := []Event{event(submittedPayload(false), t0, "alice"), event(twoStageDecision(false), t0.Add(time.Minute), "service:policy")}
	at := t0.Add(2 * time.Minute)
	other := submittedPayload(false)
	other.DurationSeconds = 99999
	cases := []struct {
		name    string
		history []Event
		next    Event
		refused bool
	}{
		{"the requester approves their own request", pendingOrdered, event(review("alice", "db-owners", 0, ReviewApprove), at, "alice"), true},
		{"an owner approves stage 1", pendingOrdered, event(review("carol", "db-owners", 0, ReviewApprove), at, "carol"), false},
		{"security approves stage 2 before the owners in ordered stages", pendingOrdered, event(review("erin", "security", 1, ReviewApprove), at, "erin"), true},
		{"security approves stage 2 first when stages are parallel", pendingParallel, event(review("erin", "security", 1, ReviewApprove), at, "erin"), false},
		{"a reviewer outside the stage's groups", pendingOrdered, event(review("mallory", "engineers", 0, ReviewApprove), at, "mallory"), true},
		{"a review bound to another request digest (replayed approval)", pendingOrdered,
			event(Reviewed{Reviewer: Principal{ID: "carol", Groups: []string{"db-owners"}}, Stage: 0, Decision: ReviewApprove, RequestDigest: other.Digest()}, at, "carol"), true},
		{"the same person reviews twice, in two groups", append(slices.Clone(pendingParallel), event(review("carol", "db-owners", 0, ReviewApprove), at, "carol")),
			event(Reviewed{Reviewer: Principal{ID: "carol", Groups: []string{"security", "db-owners"}}, Stage: 1, Decision: ReviewApprove, RequestDigest: submittedPayload(false).Digest()}, at, "carol"), true},
		{"approved with one stage missing", append(slices.Clone(pendingOrdered), event(review("carol", "db-owners", 0, ReviewApprove), at, "carol")),
			event(Approved{Approvers: []string{"carol"}}, at, "service:approval"), true},
		{"a timeout before the window ends", pendingOrdered, event(Rejected{Reason: RejectedTimeout}, at, "service:approval"), true},
		{"someone else withdraws alice's request", pendingOrdered, event(Withdrawn{}, at, "mallory"), true},
		{"a decision that lengthens the requested duration", []Event{event(submittedPayload(false), t0, "alice")},
			event(PolicyDecided{Outcome: OutcomeAutoApproved, EffectiveDurationSeconds: 7201, PolicyRevision: "r"}, at, "service:policy"), true},
		{"an emergency decision on a normal request", []Event{event(submittedPayload(false), t0, "alice")}, event(emergencyDecision(), at, "service:policy"), true},
		{"a grant that outlives the effective duration", []Event{event(submittedPayload(false), t0, "alice"), event(autoDecision(), t0, "service:policy")},
			event(grantAt(at, 3601*time.Second), at, "service:fulfilment"), true},
		{"a grant not observed on the target", []Event{event(submittedPayload(false), t0, "alice"), event(autoDecision(), t0, "service:policy")},
			event(Granted{Connector: "postgres", Observed: Observed{Present: false}, ExpiresAt: at.Add(time.Minute), Fulfiller: "service:fulfilment"}, at, "service:fulfilment"), true},
		{"the requester fulfils their own manual task", []Event{event(submittedPayload(false), t0, "alice"), event(autoDecision(), t0, "service:policy")},
			event(Granted{Connector: "manual", Observed: Observed{Present: true}, ExpiresAt: at.Add(time.Minute), Fulfiller: "alice"}, at, "alice"), true},
		{"a submitted event whose digest does not match", nil, event(func() Submitted { s := submittedPayload(false); s.Ticket = "INC-43"; return s }(), t0, "alice"), true},
		{"a service account without an owner", nil, event(func() Submitted {
			s := submittedPayload(false)
			s.Subject = RequestSubject{Kind: SubjectServiceAccount, ID: "svc-report"}
			s.RequestDigest = s.Digest()
			return s
		}(), t0, "alice"), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Fold(testRequestID, tc.history)
			if err != nil {
				t.Fatalf("history does not fold: %v", err)
			}
			err = r.Apply(tc.next)
			if tc.refused && err == nil {
				t.Fatalf("accepted, want refused")
			}
			if !tc.refused && err != nil {
				t.Fatalf("refused: %v", err)
			}
		})
	}
}

// TestDriftRules: what each kind of drift must say and the state it fits; each row is a scenario of
// the reconciler (or of a forger) appending drift_detected or the revocation that follows it.
func TestDriftRules(t *testing.T) {
	byName := map[string][]Event{}
	for _, st := range stories() {
		byName[st.name] = st.events
	}
	at := t0.Add(3 * time.Hour)
	with := func(k DriftKind, change func(*DriftDetected)) Event {
		d := drift(k)
		change(&d)
		return event(d, at, "service:revoker")
	}
	same := func(*DriftDetected) {}
	cases := []struct {
		name    string
		history string
		next    Event
		refused bool
	}{
		{"access found after revocation, revoked again", "revoked", with(DriftAfterRevocation, same), false},
		{"access found after revocation, merely recorded", "revoked", with(DriftAfterRevocation, func(d *DriftDetected) { d.Action = DriftRecorded }), true},
		{"access found after revocation but observed absent", "revoked", with(DriftAfterRevocation, func(d *DriftDetected) { d.Observed.Present = false }), true},
		{"access found after revocation of a live grant", "granted", with(DriftAfterRevocation, same), true},
		{"access found again while its revocation again is under way", "drift_revoking", with(DriftAfterRevocation, same), true},
		{"access found on a request that was never granted", "denied", with(DriftAfterRevocation, same), true},
		{"the revocation again with the original reason", "drift_revoking",
			event(Revoked{Reason: RevokeExpired, Observed: Observed{Present: false}}, at, "service:revoker"), true},
		{"the revocation again still observing the access", "drift_revoking",
			event(Revoked{Reason: RevokeDrift, Observed: Observed{Present: true}}, at, "service:revoker"), true},
		{"a second revocation nothing asked for", "revoked", event(Revoked{Reason: RevokeDrift, Observed: Observed{Present: false}}, at, "service:revoker"), true},
		{"a live grant's access missing", "granted", with(DriftMissing, same), false},
		{"missing access observed present", "granted", with(DriftMissing, func(d *DriftDetected) { d.Observed.Present = true }), true},
		{"missing access recorded twice", "drift_missing", with(DriftMissing, same), true},
		{"missing access of a grant being revoked", "revoking", with(DriftMissing, same), true},
		{"drift that names no connector", "granted", with(DriftMissing, func(d *DriftDetected) { d.Connector = "" }), true},
		{"drift of an unknown kind", "granted", with("gone_fishing", same), true},
		{"unexplained access as a finding of its own", "none", with(DriftUnexplained, same), false},
		{"unexplained access revoked by the reconciler", "none", with(DriftUnexplained, func(d *DriftDetected) { d.Action = DriftRevoke }), true},
		{"unexplained access inside a request", "granted", with(DriftUnexplained, same), true},
		{"a finding followed by a submission", "finding", event(submittedPayload(false), at, "alice"), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Fold(testRequestID, byName[tc.history])
			if err != nil {
				t.Fatalf("history %s does not fold: %v", tc.history, err)
			}
			err = r.Apply(tc.next)
			if tc.refused && err == nil {
				t.Fatalf("accepted, want refused")
			}
			if !tc.refused && err != nil {
				t.Fatalf("refused: %v", err)
			}
		})
	}

	r, err := Fold(testRequestID, byName["drift_revoking"])
	if err != nil {
		t.Fatal(err)
	}
	if !r.DriftRevocationDue() || r.RevocationDue() != RevokeDrift || len(r.Drift()) != 1 {
		t.Fatalf("after access found again: due %v, reason %q, drift %v", r.DriftRevocationDue(), r.RevocationDue(), r.Drift())
	}
	if err := r.Apply(event(Revoked{Reason: RevokeDrift, Observed: Observed{Present: false}}, at, "service:revoker")); err != nil {
		t.Fatal(err)
	}
	if r.DriftRevocationDue() || r.Revoked().Reason != RevokeDrift || r.Status() != StatusRevoked {
		t.Fatalf("after the revocation again: due %v, revoked %+v, status %s", r.DriftRevocationDue(), r.Revoked(), r.Status())
	}
}

// TestTaskOpenedRules: a revoke task may name the extension that continues its access (issue 16);
// nothing else may.
func TestTaskOpenedRules(t *testing.T) {
	byName := map[string][]Event{}
	for _, st := range stories() {
		byName[st.name] = st.events
	}
	other := NewID()
	task := func(purpose TaskPurpose, continuedBy string) Event {
		return event(TaskOpened{TaskID: "task-1", Purpose: purpose, FulfillerGroups: []string{"dba"}, DueAt: t0.Add(5 * time.Hour),
			ContinuedBy: continuedBy}, t0.Add(3*time.Hour), "service:fulfilment")
	}
	cases := []struct {
		name    string
		history string
		next    Event
		refused bool
	}{
		{"a revoke task", "revoking", task(TaskRevoke, ""), false},
		{"a revoke task continued by an extension", "revoking", task(TaskRevoke, other), false},
		{"a revoke task continued by the request itself", "revoking", task(TaskRevoke, testRequestID), true},
		{"a revoke task continued by something not a request", "revoking", task(TaskRevoke, "carol"), true},
		{"a grant task continued by an extension", "approved", task(TaskGrant, other), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Fold(testRequestID, byName[tc.history])
			if err != nil {
				t.Fatalf("history %s does not fold: %v", tc.history, err)
			}
			if err := r.Apply(tc.next); (err != nil) != tc.refused {
				t.Fatalf("%v, want refused %v", err, tc.refused)
			}
		})
	}
}

// TestRevokedAtExpiry is when a grant may end in one revoked event, with no expired before it: the
// revoker's first attempt at the expiry succeeded. Anything else still needs what asked for it.
func TestRevokedAtExpiry(t *testing.T) {
	byName := map[string][]Event{}
	for _, st := range stories() {
		byName[st.name] = st.events
	}
	live, err := Fold(testRequestID, byName["granted"])
	if err != nil {
		t.Fatal(err)
	}
	expiry := live.Grant().ExpiresAt
	revoked := func(reason RevocationReason, at time.Time) Event {
		return event(Revoked{Reason: reason, Observed: Observed{Present: false}}, at, "service:revoker")
	}
	cases := []struct {
		name    string
		history string
		next    Event
		refused bool
	}{
		{"revoked for its expiry at the expiry", "granted", revoked(RevokeExpired, expiry), false},
		{"revoked for its expiry a minute late", "granted", revoked(RevokeExpired, expiry.Add(time.Minute)), false},
		{"revoked for its expiry a second early", "granted", revoked(RevokeExpired, expiry.Add(-time.Second)), true},
		{"revoked early with nothing asking for it", "granted", revoked(RevokeEarly, expiry.Add(time.Minute)), true},
		{"revoked for its expiry while an early revocation is under way", "emergency_flagged", revoked(RevokeExpired, expiry.Add(time.Minute)), true},
		{"revoked for its expiry after expired was recorded", "revoking", revoked(RevokeExpired, expiry.Add(time.Minute)), false},
		{"revoked for its expiry a second time", "revoked_at_expiry", revoked(RevokeExpired, expiry.Add(time.Minute)), true},
		{"an emergency grant revoked at its expiry", "emergency_granted", revoked(RevokeExpired, expiry), false},
	}
	flagged := append(slices.Clone(byName["emergency_granted"]), event(PostReviewed{Reviewer: Principal{ID: "erin", Groups: []string{"security"}},
		Outcome: PostReviewFlagged, Reason: "no incident"}, t0.Add(10*time.Minute), "erin"))
	byName["emergency_flagged"] = flagged
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Fold(testRequestID, byName[tc.history])
			if err != nil {
				t.Fatalf("history %s does not fold: %v", tc.history, err)
			}
			err = r.Apply(tc.next)
			switch {
			case tc.refused && err == nil:
				t.Fatalf("accepted, want refused")
			case !tc.refused && err != nil:
				t.Fatalf("refused: %v", err)
			case !tc.refused && (r.Status() != StatusRevoked || r.Revoked().Reason != RevokeExpired):
				t.Fatalf("status %s, revoked %+v; want revoked for the expiry", r.Status(), r.Revoked())
			}
		})
	}
}

func TestFindingIDsAreStableSubjects(t *testing.T) {
	a, b := FindingID("postgres", "role grantline_hotfix"), FindingID("postgres", "role grantline_hotfix")
	if a != b || !ValidRequestID(a) || a == FindingID("postgres", "role grantline_other") || a == FindingID("webhook", "role grantline_hotfix") {
		t.Fatalf("finding IDs %s %s are not stable, distinct request-ID-shaped subjects", a, b)
	}
}

func TestPostReviewFlaggedRequiresRevocation(t *testing.T) {
	st := stories()
	var granted story
	for _, s := range st {
		if s.name == "emergency_granted" {
			granted = s
		}
	}
	r, err := Fold(testRequestID, granted.events)
	if err != nil {
		t.Fatal(err)
	}
	if !r.PostReviewOpen() {
		t.Fatal("an emergency grant must open a post-review")
	}
	if err := r.Apply(event(PostReviewed{Reviewer: Principal{ID: "alice", Groups: []string{"security"}}, Outcome: PostReviewRatified}, t0.Add(time.Hour), "alice")); err == nil {
		t.Fatal("the requester ratified their own emergency access")
	}
	if err := r.Apply(event(PostReviewed{Reviewer: Principal{ID: "erin", Groups: []string{"security"}}, Outcome: PostReviewFlagged, Reason: "no incident"}, t0.Add(time.Hour), "erin")); err != nil {
		t.Fatal(err)
	}
	if r.RevocationDue() != RevokeReviewFailed {
		t.Fatalf("revocation due = %q, want review_failed", r.RevocationDue())
	}
	if err := r.Apply(event(Revoked{Reason: RevokeReviewFailed}, t0.Add(time.Hour), "service:revoker")); err != nil {
		t.Fatal(err)
	}
	if r.Status() != StatusRevoked {
		t.Fatalf("status %q, want revoked", r.Status())
	}
}

// TestGivingUpOnATransientFailureEndsTheRequest: fulfilment records a transient failure only once it
// stops retrying, so the request ends as failed, where people see it, never stuck as approved.
func TestGivingUpOnATransientFailureEndsTheRequest(t *testing.T) {
	var approved story
	for _, st := range stories() {
		if st.name == "approved" {
			approved = st
		}
	}
	r, err := Fold(testRequestID, approved.events)
	if err != nil {
		t.Fatal(err)
	}
	gaveUp := FulfilmentFailed{ErrorClass: "unavailable", Message: "connection refused", Attempts: 9, Permanent: false}
	if err := r.Apply(event(gaveUp, t0.Add(time.Hour), "service:fulfilment")); err != nil {
		t.Fatal(err)
	}
	if r.Status() != StatusFailed || r.Failure() == nil || r.Failure().Attempts != 9 {
		t.Fatalf("status %q, failure %+v; want failed after 9 attempts", r.Status(), r.Failure())
	}
}

// TestFoldProperties drives the aggregate with random event sequences built from a small cast, and
// checks that folding is deterministic and that nothing reaches granted without a decision that allows
// it: auto-approval, the emergency outcome of an emergency request, or every stage satisfied by
// distinct reviewers who are neither the requester nor the subject.
func TestFoldProperties(t *testing.T) {
	people := []string{"alice", "bob", "carol", "dave", "erin"}
	groups := []string{"engineers", "db-owners", "security"}
	rapid.Check(t, func(t *rapid.T) {
		emergency := rapid.Bool().Draw(t, "emergency")
		sub := submittedPayload(emergency)
		if rapid.Bool().Draw(t, "for bob") {
			sub.Subject = RequestSubject{Kind: SubjectHuman, ID: "bob"}
			sub.RequestDigest = sub.Digest()
		}
		r := NewRequest(testRequestID)
		var accepted []Event
		clock := t0
		steps := rapid.IntRange(1, 30).Draw(t, "steps")
		for i := range steps {
			clock = clock.Add(time.Duration(rapid.IntRange(0, 90).Draw(t, fmt.Sprintf("minutes%d", i))) * time.Minute)
			var p Payload
			actor := "service:test"
			switch rapid.IntRange(0, 12).Draw(t, fmt.Sprintf("kind%d", i)) {
			case 0:
				p = sub
				actor = "alice"
			case 1:
				p = [](PolicyDecided){twoStageDecision(true), twoStageDecision(false), autoDecision(), emergencyDecision(),
					{Outcome: OutcomeDeny, PolicyRevision: "r"}}[rapid.IntRange(0, 4).Draw(t, fmt.Sprintf("decision%d", i))]
			case 2, 3, 4:
				who := rapid.SampledFrom(people).Draw(t, fmt.Sprintf("reviewer%d", i))
				rv := Reviewed{Reviewer: Principal{ID: who, Groups: []string{rapid.SampledFrom(groups).Draw(t, fmt.Sprintf("group%d", i))}},
					Stage: rapid.IntRange(0, 1).Draw(t, fmt.Sprintf("stage%d", i)), Decision: ReviewApprove, RequestDigest: sub.RequestDigest}
				if rapid.IntRange(0, 5).Draw(t, fmt.Sprintf("reject%d", i)) == 0 {
					rv.Decision = ReviewReject
				}
				p = rv
			case 5:
				p = r.ApprovedDraft()
				if rapid.Bool().Draw(t, fmt.Sprintf("forged approvers%d", i)) {
					p = Approved{Approvers: []string{"carol", "erin"}}
				}
			case 6:
				p = grantAt(clock, time.Duration(rapid.IntRange(1, 7200).Draw(t, fmt.Sprintf("grant%d", i)))*time.Second)
			case 7:
				p = Rejected{Reason: rapid.SampledFrom([]string{RejectedByReviewer, RejectedTimeout}).Draw(t, fmt.Sprintf("rej%d", i))}
			case 8:
				if g := r.Grant(); g != nil {
					p = Expired{ExpiresAt: g.ExpiresAt}
				} else {
					p = Expired{ExpiresAt: clock}
				}
			case 9:
				p = Revoked{Reason: rapid.SampledFrom([]RevocationReason{RevokeExpired, RevokeEarly, RevokeReviewFailed}).Draw(t, fmt.Sprintf("rr%d", i))}
			case 10:
				p = RevocationRequested{By: "alice", Reason: RevokeEarly}
			case 11:
				p = PostReviewed{Reviewer: Principal{ID: rapid.SampledFrom(people).Draw(t, fmt.Sprintf("post%d", i)), Groups: []string{"security"}},
					Outcome: rapid.SampledFrom([]PostReviewOutcome{PostReviewRatified, PostReviewFlagged}).Draw(t, fmt.Sprintf("po%d", i))}
			case 12:
				p = Withdrawn{}
				actor = rapid.SampledFrom(people).Draw(t, fmt.Sprintf("withdrawer%d", i))
			}
			ev := event(p, clock, actor)
			if err := r.Apply(ev); err == nil {
				accepted = append(accepted, ev)
			}
			if r.Status() == StatusGranted || r.Grant() != nil {
				assertGrantAllowed(t, r)
			}
		}
		again, err := Fold(testRequestID, accepted)
		if err != nil {
			t.Fatalf("refolding the accepted events failed: %v", err)
		}
		if again.Status() != r.Status() || again.Version() != r.Version() || again.RevocationDue() != r.RevocationDue() ||
			!slices.Equal(again.Approvers(), r.Approvers()) {
			t.Fatalf("fold is not deterministic: %v/%d vs %v/%d", again.Status(), again.Version(), r.Status(), r.Version())
		}
	})
}

func assertGrantAllowed(t *rapid.T, r *Request) {
	d := r.Decision()
	sub := r.Submitted()
	switch d.Outcome {
	case OutcomeAutoApproved:
	case OutcomeEmergency:
		if !sub.Emergency {
			t.Fatalf("emergency grant for a non-emergency request")
		}
	case OutcomeApprovalRequired:
		if !r.StagesSatisfied() {
			t.Fatalf("granted with unsatisfied stages")
		}
		seen := map[string]bool{}
		for _, a := range r.Approvers() {
			if a == sub.Requester.ID || a == sub.Subject.ID || seen[a] {
				t.Fatalf("approver %q counted illegally (approvers %v)", a, r.Approvers())
			}
			seen[a] = true
		}
		for _, rv := range r.Reviews() {
			if rv.Decision == ReviewReject {
				t.Fatalf("granted despite a rejection")
			}
		}
	default:
		t.Fatalf("granted with outcome %q", d.Outcome)
	}
}

// extensionOf is alice's request to extend a grant of the fixtures' entitlement by d, as requester.
func extensionOf(requester Principal, entitlement string, d time.Duration) Submitted {
	s := submittedPayload(false)
	s.Requester, s.Entitlement, s.DurationSeconds = requester, entitlement, int64(d/time.Second)
	return s
}

// TestExtensionRules is who may extend which grant, and for how long (issue 16): each row is a
// submission asking to extend the grant of a story, at a moment, under the entitlement's max_total.
func TestExtensionRules(t *testing.T) {
	byName := map[string][]Event{}
	for _, st := range stories() {
		byName[st.name] = st.events
	}
	alice := Principal{ID: "alice", Groups: []string{"engineers"}}
	grantTime := t0.Add(5 * time.Minute) // the stories' grant, for an hour
	during := grantTime.Add(50 * time.Minute)
	cases := []struct {
		name     string
		grant    string
		ext      Submitted
		at       time.Time
		maxTotal time.Duration
		refused  string // a part of the refusal's reason; "" when allowed
	}{
		{"the requester extends her active grant by an hour", "granted", extensionOf(alice, "pg-prod-admin", time.Hour), during, 8 * time.Hour, ""},
		{"an extension ending exactly at the maximum total", "granted", extensionOf(alice, "pg-prod-admin", 7*time.Hour+10*time.Minute), during, 8 * time.Hour, ""},
		{"an extension longer than the maximum total allows", "granted", extensionOf(alice, "pg-prod-admin", 7*time.Hour+11*time.Minute), during, 8 * time.Hour, "at most"},
		{"extending a revoked grant", "revoked", extensionOf(alice, "pg-prod-admin", time.Hour), during, 8 * time.Hour, "revoked"},
		{"extending a grant that expired, revocation under way", "revoking", extensionOf(alice, "pg-prod-admin", time.Hour), during, 8 * time.Hour, "being revoked"},
		{"extending a grant past its expiry that the revoker has not reached", "granted", extensionOf(alice, "pg-prod-admin", time.Hour), grantTime.Add(time.Hour), 8 * time.Hour, "past its expiry"},
		{"extending a request that was never granted", "pending_approval", extensionOf(alice, "pg-prod-admin", time.Hour), during, 8 * time.Hour, "pending_approval"},
		{"mallory extends alice's grant", "granted", extensionOf(Principal{ID: "mallory", Groups: []string{"engineers"}}, "pg-prod-admin", time.Hour), during, 8 * time.Hour, "requester or its subject's owners"},
		{"an extension for a different entitlement", "granted", extensionOf(alice, "analytics-read", time.Hour), during, 8 * time.Hour, "not analytics-read"},
		{"an extension for a different subject", "granted", func() Submitted {
			s := extensionOf(alice, "pg-prod-admin", time.Hour)
			s.Subject = RequestSubject{Kind: SubjectServiceAccount, ID: "svc-report", Owner: "engineers"}
			return s
		}(), during, 8 * time.Hour, "held by human alice"},
		{"a scheduled extension", "granted", func() Submitted {
			s := extensionOf(alice, "pg-prod-admin", time.Hour)
			start := during.Add(time.Hour)
			s.StartAt = &start
			return s
		}(), during, 8 * time.Hour, "begins at once"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Fold(testRequestID, byName[tc.grant])
			if err != nil {
				t.Fatalf("story %s does not fold: %v", tc.grant, err)
			}
			x, err := r.MayExtend(tc.ext, tc.at, tc.maxTotal)
			switch {
			case tc.refused == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.refused == "":
				want := Extension{RequestID: testRequestID, HeldSince: grantTime, ExpiresAt: grantTime.Add(time.Hour), DurationSeconds: 3600}
				if x != want {
					t.Fatalf("extension records %+v, want %+v", x, want)
				}
			case err == nil:
				t.Fatalf("allowed, want refused (%s)", tc.refused)
			case !errors.Is(err, ErrNotExtendable) || !strings.Contains(err.Error(), tc.refused):
				t.Fatalf("refusal %v, want ErrNotExtendable saying %q", err, tc.refused)
			}
		})
	}
}

// TestExtensionChain: the owners of a service account extend its grant, and the extension's own grant
// counts its time held from the first grant of the chain, so a chain cannot outgrow max_total.
func TestExtensionChain(t *testing.T) {
	orig := submittedPayload(false)
	orig.Subject = RequestSubject{Kind: SubjectServiceAccount, ID: "svc-report", Owner: "reporting"}
	orig.RequestDigest = orig.Digest()
	grantTime := t0.Add(5 * time.Minute)
	first, err := Fold(testRequestID, []Event{event(orig, t0, "alice"), event(autoDecision(), t0, "service:policy"),
		event(grantAt(grantTime, time.Hour), grantTime, "service:fulfilment")})
	if err != nil {
		t.Fatal(err)
	}
	ext := orig
	ext.Requester = Principal{ID: "bob", Groups: []string{"reporting"}}
	at := grantTime.Add(55 * time.Minute)
	x, err := first.MayExtend(ext, at, 3*time.Hour)
	if err != nil {
		t.Fatalf("an owner of the subject may extend: %v", err)
	}
	ext.Extends = &x
	ext.RequestDigest = ext.Digest()
	if ext.RequestDigest == orig.Digest() {
		t.Fatal("the digest does not bind the extended request")
	}
	const extID = "01KB0000000000000000000001"
	ev := func(p Payload, at time.Time, actor string) Event {
		e := event(p, at, actor)
		e.Subject = extID
		return e
	}
	second, err := Fold(extID, []Event{ev(ext, at, "bob"), ev(autoDecision(), at, "service:policy"), ev(grantAt(at, time.Hour), at, "service:fulfilment")})
	if err != nil {
		t.Fatalf("the extension does not fold: %v", err)
	}
	if !second.HeldSince().Equal(grantTime) {
		t.Fatalf("the extension is held since %s, want the first grant's %s", second.HeldSince(), grantTime)
	}
	// 5 minutes before the extension's end, another hour would make 3h55m held since the first grant.
	if _, err := second.MayExtend(ext, at.Add(55*time.Minute), 3*time.Hour); !errors.Is(err, ErrNotExtendable) {
		t.Fatalf("a chain beyond max_total: got %v, want ErrNotExtendable", err)
	}
}

// TestSubmittedLinkRules: what a submitted event that extends a grant, or that was submitted together
// with others, must say of the request it names.
func TestSubmittedLinkRules(t *testing.T) {
	valid := Extension{RequestID: "01KB0000000000000000000009", HeldSince: t0, ExpiresAt: t0.Add(time.Hour), DurationSeconds: 3600}
	with := func(change func(*Submitted)) Event {
		s := submittedPayload(false)
		x := valid
		s.Extends = &x
		change(&s)
		s.RequestDigest = s.Digest()
		return event(s, t0, "alice")
	}
	cases := []struct {
		name    string
		next    Event
		refused bool
	}{
		{"an extension of another request", with(func(*Submitted) {}), false},
		{"an extension of itself", with(func(s *Submitted) { s.Extends.RequestID = testRequestID }), true},
		{"an extension naming no request", with(func(s *Submitted) { s.Extends.RequestID = "" }), true},
		{"an emergency extension", with(func(s *Submitted) { s.Emergency = true }), true},
		{"an extension of a grant that expired before it was held", with(func(s *Submitted) { s.Extends.ExpiresAt = t0 }), true},
		{"one of several requests submitted together", with(func(s *Submitted) { s.Extends, s.CorrelationID = nil, "01KB0000000000000000000009" }), false},
		{"a correlation ID that is not a ULID", with(func(s *Submitted) { s.Extends, s.CorrelationID = nil, "batch-1" }), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := NewRequest(testRequestID).Apply(tc.next)
			if tc.refused != (err != nil) {
				t.Fatalf("refused = %v (%v), want %v", err != nil, err, tc.refused)
			}
		})
	}
}
