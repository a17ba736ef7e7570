package notifier_test

import (
	"encoding/json/v2"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/services/notifier"
)

// people is the demo directory (examples/directory.yaml) with its e-mail addresses; erin has none.
var people = []struct {
	notifier.Person
	groups []string
}{
	{notifier.Person{ID: "alice", Name: "Alice Engineer", Email: "alice@example.test"}, []string{"engineers"}},
	{notifier.Person{ID: "bob", Name: "Bob Owner", Email: "bob@example.test"}, []string{"analytics-owners", "payments-owners"}},
	{notifier.Person{ID: "carol", Name: "Carol Security", Email: "carol@example.test"}, []string{"security"}},
	{notifier.Person{ID: "dave", Name: "Dave Operations", Email: "dave@example.test"}, []string{"operations"}},
	{notifier.Person{ID: "erin", Name: "Erin Auditor"}, []string{"auditors"}},
	{notifier.Person{ID: "frank", Name: "Frank Engineer", Email: "frank@example.test"}, []string{"engineers", "payments-owners"}},
}

type directory struct{}

func (directory) Person(id string) (notifier.Person, bool) {
	for _, p := range people {
		if p.ID == id {
			return p.Person, true
		}
	}
	return notifier.Person{}, false
}

func (directory) Members(group string) []notifier.Person {
	var out []notifier.Person
	for _, p := range people {
		if slices.Contains(p.groups, group) {
			out = append(out, p.Person)
		}
	}
	return out
}

type catalogue struct{}

func (catalogue) Entitlement(id string) (notifier.Entitlement, bool) {
	switch id {
	case "payments-admin":
		return notifier.Entitlement{ID: id, Description: "Administrator of the payments database", System: "postgres/payments",
			Resource: "role payments_admin", OwnerGroups: []string{"payments-owners"}}, true
	case "reporting-db-credential":
		return notifier.Entitlement{ID: id, Description: "A short-lived login for svc-reporting", System: "postgres/payments",
			OwnerGroups: []string{"payments-owners"}}, true
	}
	return notifier.Entitlement{}, false
}

// routing is examples/notifications.yaml in Go: e-mail by default, bob on Slack first, security on
// Slack and e-mail, carol linked to Slack, a SIEM webhook hearing grants and revocations.
var routing = notifier.Routing{
	Default: []notifier.Channel{notifier.Email},
	People: map[string]notifier.PersonRoute{
		"bob":   {Channels: []notifier.Channel{notifier.Slack, notifier.Email}, Slack: "U0BOB"},
		"carol": {Slack: "U0CAROL"},
	},
	Groups:   map[string][]notifier.Channel{"security": {notifier.Slack, notifier.Email}},
	Webhooks: []notifier.WebhookRoute{{Name: "siem", Kinds: []notifier.Kind{notifier.Granted, notifier.Revoked, notifier.RevocationFailed}}},
	Timing:   notifier.Timing{ExpiryWarning: 15 * time.Minute, ReviewReminder: 4 * time.Hour, OverdueRepeat: time.Hour},
	Escalation: notifier.Escalation{PostReview: []string{"auditors", "operations"}, ManualTask: []string{"security"},
		RevocationFailed: []string{"security"}, Drift: []string{"security"}},
}

var rules = notifier.Rules{Directory: directory{}, Catalogue: catalogue{}, Routing: routing}

var t0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

const requestID = "01KB0000000000000000000001"

var (
	alice = events.Principal{ID: "alice", Groups: []string{"engineers"}}
	bob   = events.Principal{ID: "bob", Groups: []string{"analytics-owners", "payments-owners"}}
	carol = events.Principal{ID: "carol", Groups: []string{"security"}}
	frank = events.Principal{ID: "frank", Groups: []string{"engineers", "payments-owners"}}
)

func request(requester events.Principal, emergency bool) events.Submitted {
	s := events.Submitted{Requester: requester, Subject: events.RequestSubject{Kind: events.SubjectHuman, ID: requester.ID},
		Entitlement: "payments-admin", Justification: "INC-7: fix the settlement job", Ticket: "INC-7", DurationSeconds: 3600,
		Emergency: emergency, Channel: "http"}
	s.RequestDigest = s.Digest()
	return s
}

func forReporting(requester events.Principal) events.Submitted {
	s := events.Submitted{Requester: requester, Subject: events.RequestSubject{Kind: events.SubjectServiceAccount, ID: "svc-reporting",
		Owner: "payments-owners"}, Entitlement: "reporting-db-credential", Justification: "monthly report", DurationSeconds: 3600, Channel: "http"}
	s.RequestDigest = s.Digest()
	return s
}

// scheduled is who's request for access from start.
func scheduled(who events.Principal, start time.Time) events.Submitted {
	s := request(who, false)
	s.StartAt = &start
	s.RequestDigest = s.Digest()
	return s
}

// checkedAtStart is policy's check at the start: still routine, or, the requester having left the
// group that made it routine, needing approvals never given.
func checkedAtStart(allowed bool) events.StartChecked {
	c := events.StartChecked{Allowed: true, Outcome: events.OutcomeAutoApproved, Reasons: []string{"low risk"}, RequesterGroups: []string{"engineers"},
		GroupsFrom: events.GroupsFromDirectory, PolicyRevision: "sha256:rev", InputDigest: "sha256:in"}
	if !allowed {
		c.Allowed, c.Outcome, c.Stages, c.RequesterGroups = false, events.OutcomeApprovalRequired, []events.Stage{stage("owners", 1, "payments-owners")}, []string{}
	}
	return c
}

func stage(name string, min int, groups ...string) events.Stage {
	return events.Stage{Name: name, Groups: groups, MinApprovals: min}
}

func decided(ordered bool, stages ...events.Stage) events.PolicyDecided {
	deadline := t0.Add(24 * time.Hour)
	return events.PolicyDecided{Outcome: events.OutcomeApprovalRequired, Reasons: []string{"high risk"}, Stages: stages,
		StagesOrdered: ordered, EffectiveDurationSeconds: 3600, ApprovalDeadline: &deadline,
		PolicyRevision: "sha256:rev", InputDigest: "sha256:in"}
}

var paymentsAdmin = decided(true, stage("owners", 1, "payments-owners"), stage("security", 1, "security"))

var denied = events.PolicyDecided{Outcome: events.OutcomeDeny, Reasons: []string{"outside business hours"},
	PolicyRevision: "sha256:rev", InputDigest: "sha256:in"}

var autoApproved = events.PolicyDecided{Outcome: events.OutcomeAutoApproved, Reasons: []string{"low risk"},
	EffectiveDurationSeconds: 3600, PolicyRevision: "sha256:rev", InputDigest: "sha256:in"}

var emergencyDecided = events.PolicyDecided{Outcome: events.OutcomeEmergency, Reasons: []string{"break glass"}, EffectiveDurationSeconds: 1800,
	PostReview: &events.PostReview{Groups: []string{"security"}, Deadline: t0.Add(24 * time.Hour)}, PolicyRevision: "sha256:rev", InputDigest: "sha256:in"}

func reviewed(who events.Principal, st int, d events.ReviewDecision, digest string) events.Reviewed {
	return events.Reviewed{Reviewer: who, Stage: st, Decision: d, RequestDigest: digest}
}

// grantedFor is a grant recorded at minute i of the scenario, lasting expires.
func grantedFor(i int, expires time.Duration) events.Granted {
	return events.Granted{Connector: "postgres", TargetRef: "payments/admin", Observed: events.Observed{Present: true},
		ExpiresAt: at(i).Add(expires), Fulfiller: "service:fulfilment"}
}

// at is the time of the scenario's i-th event.
func at(i int) time.Time { return t0.Add(time.Duration(i) * time.Minute) }

func envelope(p events.Payload, when time.Time, actor string) events.Event {
	data, err := json.Marshal(p)
	if err != nil {
		panic(err)
	}
	return events.Event{Envelope: events.Envelope{
		SpecVersion: events.SpecVersion, ID: events.NewID(), Type: p.EventType(), Subject: requestID, Time: when,
		DataContentType: "application/json", DataSchema: events.SchemaURI(p.EventType()), Actor: actor,
		Source: "/grantline/test", PrevHash: "sha256:x", Data: data,
	}, Payload: p}
}

// history folds payloads a minute apart from t0 (an expiry or an overdue post-review at its own time,
// and what follows after it) and returns the last event with the request before it and after it.
func history(t *testing.T, payloads ...events.Payload) (last events.Event, before, after *events.Request) {
	t.Helper()
	before = events.NewRequest(requestID)
	after = events.NewRequest(requestID)
	var clock time.Time
	for i, p := range payloads {
		clock = later(clock, at(i))
		switch p := p.(type) {
		case events.Expired:
			clock = later(clock, p.ExpiresAt)
		case events.PostReviewOverdue:
			clock = later(clock, p.Deadline)
		}
		actor := "service:test"
		switch p := p.(type) {
		case events.Submitted:
			actor = p.Requester.ID
		case events.Withdrawn:
			actor = after.Submitted().Requester.ID
		case events.Reviewed:
			actor = p.Reviewer.ID
		}
		ev := envelope(p, clock, actor)
		if i < len(payloads)-1 {
			if err := before.Apply(ev); err != nil {
				t.Fatalf("setting up: event %d: %v", i+1, err)
			}
		}
		if err := after.Apply(ev); err != nil {
			t.Fatalf("setting up: event %d: %v", i+1, err)
		}
		last = ev
	}
	return last, before, after
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// told lists a plan's notifications as "kind person channel" lines, with "(escalated)" for
// escalations, sorted.
func told(plan notifier.Plan) []string {
	var out []string
	for _, n := range plan.Notifications {
		line := fmt.Sprintf("%s %s %s", n.Kind, n.To.ID, n.Channel)
		if n.Escalated {
			line += " (escalated)"
		}
		out = append(out, line)
	}
	slices.Sort(out)
	return out
}

// armed lists a plan's timers as "reminder at +duration from t0".
func armed(plan notifier.Plan) []string {
	var out []string
	for _, tm := range plan.Timers {
		out = append(out, fmt.Sprintf("%s at +%s", tm.Reminder, tm.At.Sub(t0)))
	}
	return out
}
