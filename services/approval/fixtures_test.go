package approval_test

import (
	"encoding/json/v2"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/auth"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/services/approval"
)

// The people of examples/directory.yaml, as their tokens assert them.
var (
	alice = events.Principal{ID: "alice", Groups: []string{"engineers"}}
	bob   = events.Principal{ID: "bob", Groups: []string{"analytics-owners", "payments-owners"}}
	carol = events.Principal{ID: "carol", Groups: []string{"security"}}
	dave  = events.Principal{ID: "dave", Groups: []string{"operations"}}
	frank = events.Principal{ID: "frank", Groups: []string{"engineers", "payments-owners"}}
)

var rules = approval.Rules{Normalize: auth.NormalizeSubject}

var t0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

const requestID = "01KB0000000000000000000001"

// as returns p under another spelling of its subject, with other groups: how a token for a variant
// identity, or a person who changed teams, would present.
func as(id string, groups ...string) events.Principal {
	return events.Principal{ID: id, Groups: groups}
}

// request builds the submission: requester asks for payments-admin (or, with a service account
// subject, reporting-db-credential) for subject.
func request(requester events.Principal, subject events.RequestSubject, emergency bool) events.Submitted {
	s := events.Submitted{Requester: requester, Subject: subject, Entitlement: "payments-admin",
		Justification: "INC-7: fix the settlement job", Ticket: "INC-7", DurationSeconds: 3600, Emergency: emergency, Channel: "http"}
	if subject.Kind == events.SubjectServiceAccount {
		s.Entitlement = "reporting-db-credential"
	}
	s.RequestDigest = s.Digest()
	return s
}

func self(p events.Principal) events.RequestSubject {
	return events.RequestSubject{Kind: events.SubjectHuman, ID: p.ID}
}

var svcReporting = events.RequestSubject{Kind: events.SubjectServiceAccount, ID: "svc-reporting", Owner: "payments-owners"}

func stage(name string, min int, groups ...string) events.Stage {
	return events.Stage{Name: name, Groups: groups, MinApprovals: min}
}

// decided is an approval_required decision with the given stages and a window of a day.
func decided(ordered bool, stages ...events.Stage) events.PolicyDecided {
	deadline := t0.Add(24 * time.Hour)
	return events.PolicyDecided{Outcome: events.OutcomeApprovalRequired, Reasons: []string{"high risk"}, Stages: stages,
		StagesOrdered: ordered, EffectiveDurationSeconds: 3600, ApprovalDeadline: &deadline,
		PolicyRevision: "sha256:rev", InputDigest: "sha256:in"}
}

// paymentsAdmin is the demo decision for payments-admin: the owners, then security.
var paymentsAdmin = decided(true, stage("owners", 1, "payments-owners"), stage("security", 1, "security"))

func emergencyDecided() events.PolicyDecided {
	return events.PolicyDecided{Outcome: events.OutcomeEmergency, Reasons: []string{"break glass"}, EffectiveDurationSeconds: 1800,
		PostReview:     &events.PostReview{Groups: []string{"security"}, Deadline: t0.Add(24 * time.Hour)},
		PolicyRevision: "sha256:rev", InputDigest: "sha256:in"}
}

func granted(at time.Time) events.Granted {
	return events.Granted{Connector: "postgres", TargetRef: "payments/admin", Observed: events.Observed{Present: true},
		ExpiresAt: at.Add(30 * time.Minute), Fulfiller: "service:fulfilment"}
}

// envelope wraps p as an event of the test request at time at.
func envelope(p events.Payload, at time.Time, actor, causation string) events.Event {
	data, err := json.Marshal(p)
	if err != nil {
		panic(err)
	}
	if actor == "" {
		actor = "service:test"
	}
	return events.Event{Envelope: events.Envelope{
		SpecVersion: events.SpecVersion, ID: events.NewID(), Type: p.EventType(), Subject: requestID, Time: at,
		DataContentType: "application/json", DataSchema: events.SchemaURI(p.EventType()), Actor: actor,
		CausationID: causation, Source: "/grantline/test", PrevHash: "sha256:x", Data: data,
	}, Payload: p}
}

// fold builds the aggregate from payloads, a minute apart from t0.
func fold(t *testing.T, payloads ...events.Payload) *events.Request {
	t.Helper()
	r := events.NewRequest(requestID)
	for i, p := range payloads {
		actor := ""
		switch p := p.(type) {
		case events.Submitted:
			actor = p.Requester.ID
		case events.Withdrawn:
			actor = r.Submitted().Requester.ID
		}
		if err := r.Apply(envelope(p, t0.Add(time.Duration(i)*time.Minute), actor, "")); err != nil {
			t.Fatalf("setting up: event %d: %v", i+1, err)
		}
	}
	return r
}

// apply appends drafts to r at time at, the way the event store does: the aggregate must accept each.
func apply(t *testing.T, r *events.Request, at time.Time, drafts []events.Draft) {
	t.Helper()
	for _, d := range drafts {
		if err := r.Apply(envelope(d.Payload, at, d.Actor, d.CausationID)); err != nil {
			t.Fatalf("the aggregate refused what the rules decided: %v", err)
		}
	}
}

func typesOf(drafts []events.Draft) []string {
	var out []string
	for _, d := range drafts {
		out = append(out, d.Payload.EventType().Name())
	}
	return out
}
