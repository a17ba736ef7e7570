package notifier_test

import (
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/services/notifier"
)

const (
	approve = events.ReviewApprove
	reject  = events.ReviewReject
)

// TestPlanScenarios is the specification of who is told what when an event lands. Each row: the
// request's history, the last event being the one handled, and who is told through which channel
// (bob prefers Slack then e-mail, security is told on Slack and by e-mail, everyone else by e-mail,
// erin has no address), and which reminders are armed.
func TestPlanScenarios(t *testing.T) {
	alicePayments := request(alice, false)
	digest := alicePayments.RequestDigest
	cases := []struct {
		name    string
		history []events.Payload
		told    []string
		armed   []string
	}{
		// Reviewers are asked when their stage opens, and the requester learns whom it waits for.
		{name: "payments-admin needs the owners first: the owners are asked, security not yet",
			history: []events.Payload{alicePayments, paymentsAdmin},
			told: []string{"awaiting_approval alice email", "review_requested bob email", "review_requested bob slack",
				"review_requested frank email"},
			armed: []string{"review at +4h1m0s"}},
		{name: "an owner who asked is not asked to review their own request",
			history: []events.Payload{request(frank, false), paymentsAdmin},
			told:    []string{"awaiting_approval frank email", "review_requested bob email", "review_requested bob slack"},
			armed:   []string{"review at +4h1m0s"}},
		{name: "unordered stages open together: owners and security are asked at once",
			history: []events.Payload{alicePayments, decided(false, stage("owners", 1, "payments-owners"), stage("security", 1, "security"))},
			told: []string{"awaiting_approval alice email", "review_requested bob email", "review_requested bob slack",
				"review_requested carol email", "review_requested carol slack", "review_requested frank email"},
			armed: []string{"review at +4h1m0s"}},
		{name: "the owners' approval moves payments-admin on: security is asked",
			history: []events.Payload{alicePayments, paymentsAdmin, reviewed(bob, 0, approve, digest)},
			told:    []string{"review_requested carol email", "review_requested carol slack"}},
		{name: "a first approval of a stage needing two asks nobody new",
			history: []events.Payload{alicePayments, decided(true, stage("owners", 2, "payments-owners"), stage("security", 1, "security")),
				reviewed(bob, 0, approve, digest)}},
		{name: "a rejection asks nobody (the rejected event tells the requester)",
			history: []events.Payload{alicePayments, paymentsAdmin, reviewed(bob, 0, reject, digest)}},

		// The requester hears the outcome.
		{name: "approved: the requester is told, with the approvers",
			history: []events.Payload{alicePayments, paymentsAdmin, reviewed(bob, 0, approve, digest), reviewed(carol, 1, approve, digest),
				events.Approved{Approvers: []string{"bob", "carol"}}},
			told: []string{"approved alice email"}},
		{name: "rejected: the requester is told",
			history: []events.Payload{alicePayments, paymentsAdmin, reviewed(bob, 0, reject, digest),
				events.Rejected{Reason: events.RejectedByReviewer, RejectedBy: "bob"}},
			told: []string{"rejected alice email"}},
		{name: "denied by policy: the requester is told",
			history: []events.Payload{alicePayments, denied},
			told:    []string{"denied alice email"}},
		{name: "no longer allowed at its start: the requester is told it is denied",
			history: []events.Payload{scheduled(alice, at(1)), autoApproved, checkedAtStart(false)},
			told:    []string{"denied alice email"}},
		{name: "still allowed at its start: nobody is told (the grant will tell)",
			history: []events.Payload{scheduled(alice, at(1)), autoApproved, checkedAtStart(true)}},
		{name: "denied for a service account: the requester and the account's owners are told, each once",
			history: []events.Payload{forReporting(frank), denied},
			told:    []string{"denied bob email", "denied bob slack", "denied frank email"}},
		{name: "auto-approved: nothing yet (the grant follows)",
			history: []events.Payload{alicePayments, autoApproved}},
		{name: "withdrawn: nothing",
			history: []events.Payload{alicePayments, paymentsAdmin, events.Withdrawn{Reason: "not needed"}}},

		// Grants, their end, and failures.
		{name: "granted: the requester is told, the SIEM hears it, the expiry warning is armed 15 minutes before",
			history: []events.Payload{alicePayments, autoApproved, grantedFor(2, time.Hour)},
			told:    []string{"granted alice email", "granted webhook:siem webhook"},
			armed:   []string{"expiry at +47m0s"}},
		{name: "granted for less than the warning: no warning is armed",
			history: []events.Payload{alicePayments, autoApproved, grantedFor(2, 10*time.Minute)},
			told:    []string{"granted alice email", "granted webhook:siem webhook"}},
		{name: "an emergency grant: the requester is told, security is asked to post-review",
			history: []events.Payload{request(alice, true), emergencyDecided, grantedFor(2, 30*time.Minute)},
			told: []string{"granted alice email", "granted webhook:siem webhook", "post_review_due carol email",
				"post_review_due carol slack"},
			armed: []string{"expiry at +17m0s"}},
		{name: "a permanent fulfilment failure: the requester is told",
			history: []events.Payload{alicePayments, autoApproved,
				events.FulfilmentFailed{ErrorClass: "target_refused", Message: "role missing", Attempts: 3, Permanent: true}},
			told: []string{"fulfilment_failed alice email"}},
		{name: "fulfilment gave up on a target that stayed down: the requester is told (the request failed)",
			history: []events.Payload{alicePayments, autoApproved,
				events.FulfilmentFailed{ErrorClass: "target_unavailable", Message: "timeout", Attempts: 9}},
			told: []string{"fulfilment_failed alice email"}},
		{name: "revoked at expiry: the requester is told, with the final state; the SIEM hears it",
			history: []events.Payload{alicePayments, autoApproved, grantedFor(2, time.Hour), events.Expired{ExpiresAt: at(2).Add(time.Hour)},
				events.Revoked{Reason: events.RevokeExpired, Observed: events.Observed{Present: false}}},
			told: []string{"revoked alice email", "revoked webhook:siem webhook"}},

		// Overdue work goes to the people it awaits, then to the escalation groups.
		{name: "a failing revocation: the entitlement's owners, and security as escalation",
			history: []events.Payload{alicePayments, autoApproved, grantedFor(2, time.Minute), events.Expired{ExpiresAt: at(2).Add(time.Minute)},
				events.RevocationFailed{Attempts: 5, OverdueSince: at(3), ErrorClass: "target_unavailable", Message: "connection refused"}},
			told: []string{"revocation_failed bob email", "revocation_failed bob slack", "revocation_failed carol email (escalated)",
				"revocation_failed carol slack (escalated)", "revocation_failed frank email", "revocation_failed webhook:siem webhook"}},

		// Drift the revoker's reconciler found on the target.
		{name: "a live grant's access missing on the target: the holder, the entitlement's owners, and security as escalation",
			history: []events.Payload{alicePayments, autoApproved, grantedFor(2, time.Hour), drift(events.DriftMissing, events.DriftRecorded, false)},
			told: []string{"drift_detected alice email", "drift_detected bob email", "drift_detected bob slack",
				"drift_detected carol email (escalated)", "drift_detected carol slack (escalated)", "drift_detected frank email"}},
		{name: "access back after its revocation, revoked again: the entitlement's owners, and security as escalation",
			history: []events.Payload{alicePayments, autoApproved, grantedFor(2, time.Hour), events.RevocationRequested{By: "alice", Reason: events.RevokeEarly},
				events.Revoked{Reason: events.RevokeEarly, Observed: events.Observed{Present: false}}, drift(events.DriftAfterRevocation, events.DriftRevoke, true)},
			told: []string{"drift_detected bob email", "drift_detected bob slack", "drift_detected carol email (escalated)",
				"drift_detected carol slack (escalated)", "drift_detected frank email"}},
		{name: "access no request explains: a finding of its own, for the escalation groups only",
			history: []events.Payload{drift(events.DriftUnexplained, events.DriftRecorded, true)},
			told:    []string{"drift_detected carol email (escalated)", "drift_detected carol slack (escalated)"}},
		{name: "a manual task: the fulfillers are told and its due time is armed",
			history: []events.Payload{alicePayments, autoApproved,
				events.TaskOpened{TaskID: "T1", Purpose: events.TaskGrant, FulfillerGroups: []string{"operations"}, DueAt: at(2).Add(8 * time.Hour)}},
			told:  []string{"task_opened dave email"},
			armed: []string{"task at +8h2m0s"}},
		{name: "an overdue post-review: security, then the escalation groups (erin has no address); repeated hourly",
			history: []events.Payload{request(alice, true), emergencyDecided, grantedFor(2, 30*time.Minute),
				events.PostReviewOverdue{Deadline: t0.Add(24 * time.Hour)}},
			told: []string{"post_review_overdue carol email", "post_review_overdue carol slack",
				"post_review_overdue dave email (escalated)"},
			armed: []string{"post-review at +25h0m0s"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ev, before, after := history(t, tc.history...)
			plan := rules.Plan(ev, before, after)
			if diff := cmp.Diff(tc.told, told(plan)); diff != "" {
				t.Errorf("told (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.armed, armed(plan)); diff != "" {
				t.Errorf("armed (-want +got):\n%s", diff)
			}
			for _, n := range plan.Notifications {
				if n.Cause != ev.ID || n.RequestID != requestID {
					t.Errorf("%s to %s: cause %q for %q, want the event %q for %q", n.Kind, n.To.ID, n.Cause, n.RequestID, ev.ID, requestID)
				}
			}
		})
	}
}

func drift(kind events.DriftKind, action events.DriftAction, present bool) events.DriftDetected {
	return events.DriftDetected{Kind: kind, Connector: "postgres", TargetRef: "role grantline_x", Observed: events.Observed{Present: present},
		Action: action}
}

// TestRemindScenarios is the specification of reminders: each row is the request as it stands when a
// reminder comes due, the reminder, and who is told and what is armed next. A reminder about something
// that has moved on tells nobody.
func TestRemindScenarios(t *testing.T) {
	alicePayments := request(alice, false)
	digest := alicePayments.RequestDigest
	expires := at(2).Add(time.Hour)
	otherExpiry := at(2).Add(2 * time.Hour)
	task := events.TaskOpened{TaskID: "T1", Purpose: events.TaskGrant, FulfillerGroups: []string{"operations"}, DueAt: at(2).Add(time.Hour)}
	cases := []struct {
		name    string
		history []events.Payload
		timer   notifier.Timer
		told    []string
		armed   []string
	}{
		{name: "expiry warning while the grant stands: the holder is told",
			history: []events.Payload{alicePayments, autoApproved, grantedFor(2, time.Hour)},
			timer:   notifier.Timer{Reminder: notifier.RemindExpiry, At: expires.Add(-15 * time.Minute), ExpiresAt: &expires},
			told:    []string{"expiry_warning alice email"}},
		{name: "expiry warning after an early revocation: nothing",
			history: []events.Payload{alicePayments, autoApproved, grantedFor(2, time.Hour),
				events.RevocationRequested{By: "alice", Reason: events.RevokeEarly},
				events.Revoked{Reason: events.RevokeEarly, Observed: events.Observed{}}},
			timer: notifier.Timer{Reminder: notifier.RemindExpiry, At: expires.Add(-15 * time.Minute), ExpiresAt: &expires}},
		{name: "expiry warning while revocation is already under way: nothing",
			history: []events.Payload{alicePayments, autoApproved, grantedFor(2, time.Hour),
				events.RevocationRequested{By: "alice", Reason: events.RevokeEarly}},
			timer: notifier.Timer{Reminder: notifier.RemindExpiry, At: expires.Add(-15 * time.Minute), ExpiresAt: &expires}},
		{name: "expiry warning armed for another grant: nothing",
			history: []events.Payload{alicePayments, autoApproved, grantedFor(2, time.Hour)},
			timer:   notifier.Timer{Reminder: notifier.RemindExpiry, At: otherExpiry.Add(-15 * time.Minute), ExpiresAt: &otherExpiry}},

		{name: "review reminder while the owners' stage waits: the owners who have not reviewed, and the next reminder",
			history: []events.Payload{alicePayments, decided(true, stage("owners", 2, "payments-owners"), stage("security", 1, "security")),
				reviewed(bob, 0, approve, digest)},
			timer: notifier.Timer{Reminder: notifier.RemindReview, At: at(1).Add(4 * time.Hour)},
			told:  []string{"review_reminder frank email"},
			armed: []string{"review at +8h1m0s"}},
		{name: "review reminder after approval: nothing",
			history: []events.Payload{alicePayments, decided(false, stage("owners", 1, "payments-owners")), reviewed(bob, 0, approve, digest),
				events.Approved{Approvers: []string{"bob"}}},
			timer: notifier.Timer{Reminder: notifier.RemindReview, At: at(1).Add(4 * time.Hour)}},
		{name: "the last review reminder before the window ends arms no next one",
			history: []events.Payload{alicePayments, paymentsAdmin},
			timer:   notifier.Timer{Reminder: notifier.RemindReview, At: at(1).Add(20 * time.Hour)},
			told:    []string{"review_reminder bob email", "review_reminder bob slack", "review_reminder frank email"}},

		{name: "an overdue manual task: the fulfillers and the escalation group, repeated",
			history: []events.Payload{alicePayments, autoApproved, task},
			timer:   notifier.Timer{Reminder: notifier.RemindTask, At: task.DueAt, TaskID: "T1"},
			told:    []string{"task_overdue carol email (escalated)", "task_overdue carol slack (escalated)", "task_overdue dave email"},
			armed:   []string{"task at +2h2m0s"}},
		{name: "a task completed before its due time: nothing",
			history: []events.Payload{alicePayments, autoApproved, task, grantedFor(3, time.Hour)},
			timer:   notifier.Timer{Reminder: notifier.RemindTask, At: task.DueAt, TaskID: "T1"}},

		{name: "a post-review still overdue: told again, and again in an hour",
			history: []events.Payload{request(alice, true), emergencyDecided, grantedFor(2, 30*time.Minute),
				events.PostReviewOverdue{Deadline: t0.Add(24 * time.Hour)}},
			timer: notifier.Timer{Reminder: notifier.RemindPostReview, At: t0.Add(25 * time.Hour)},
			told: []string{"post_review_overdue carol email", "post_review_overdue carol slack",
				"post_review_overdue dave email (escalated)"},
			armed: []string{"post-review at +26h0m0s"}},
		{name: "a post-review done meanwhile: nothing",
			history: []events.Payload{request(alice, true), emergencyDecided, grantedFor(2, 30*time.Minute),
				events.PostReviewOverdue{Deadline: t0.Add(24 * time.Hour)},
				events.PostReviewed{Reviewer: carol, Outcome: events.PostReviewRatified}},
			timer: notifier.Timer{Reminder: notifier.RemindPostReview, At: t0.Add(25 * time.Hour)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, req := history(t, tc.history...)
			plan := rules.Remind(tc.timer, req)
			if diff := cmp.Diff(tc.told, told(plan)); diff != "" {
				t.Errorf("told (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.armed, armed(plan)); diff != "" {
				t.Errorf("armed (-want +got):\n%s", diff)
			}
			for _, n := range plan.Notifications {
				if n.Cause != tc.timer.Cause(requestID) {
					t.Errorf("%s to %s: cause %q, want the reminder's %q", n.Kind, n.To.ID, n.Cause, tc.timer.Cause(requestID))
				}
			}
		})
	}
}

// TestKeys: a notification is named by its cause, recipient and channel, and by nothing else, so a
// redelivered cause sends nothing twice while every recipient and channel still gets theirs.
func TestKeys(t *testing.T) {
	ev, before, after := history(t, request(alice, false), paymentsAdmin)
	first := rules.Plan(ev, before, after)
	again := rules.Plan(ev, before, after)
	var keys []string
	for i, n := range first.Notifications {
		if n.Key() != again.Notifications[i].Key() {
			t.Fatalf("planning the same event twice gave %s two keys", n.To.ID)
		}
		keys = append(keys, n.Key())
	}
	slices.Sort(keys)
	if len(slices.Compact(keys)) != len(first.Notifications) {
		t.Fatalf("two notifications of one event share a key: %v", told(first))
	}
	a := notifier.Timer{Reminder: notifier.RemindReview, At: t0}
	b := notifier.Timer{Reminder: notifier.RemindReview, At: t0.Add(4 * time.Hour)}
	if a.Cause(requestID) == b.Cause(requestID) || a.Cause(requestID) == a.Cause("01KB0000000000000000000002") {
		t.Fatal("two reminder occurrences share a cause")
	}
}

// TestPersonBySlack maps a Slack user back to exactly one person, and nobody else.
func TestPersonBySlack(t *testing.T) {
	for slackID, want := range map[string]string{"U0BOB": "bob", "U0CAROL": "carol", "U0NOBODY": "", "": ""} {
		got, ok := routing.PersonBySlack(slackID)
		if got != want || ok != (want != "") {
			t.Errorf("PersonBySlack(%q) = %q, %v; want %q", slackID, got, ok, want)
		}
	}
}
