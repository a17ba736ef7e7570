package visibility_test

import (
	"encoding/json/v2"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/visibility"
)

var t0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

const requestID = "01KB0000000000000000000001"

// fold builds a request from payloads, a minute apart, the way the store folds it.
func fold(t *testing.T, payloads ...events.Payload) *events.Request {
	t.Helper()
	r := events.NewRequest(requestID)
	for i, p := range payloads {
		data, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		actor := "service:test"
		if s, ok := p.(events.Submitted); ok {
			actor = s.Requester.ID
		}
		ev := events.Event{Envelope: events.Envelope{SpecVersion: events.SpecVersion, ID: events.NewID(), Type: p.EventType(),
			Subject: requestID, Time: t0.Add(time.Duration(i) * time.Minute), DataContentType: "application/json",
			DataSchema: events.SchemaURI(p.EventType()), Actor: actor, Source: "/grantline/test", PrevHash: "sha256:x", Data: data},
			Payload: p}
		if err := r.Apply(ev); err != nil {
			t.Fatalf("setting up: event %d: %v", i+1, err)
		}
	}
	return r
}

func submitted(requester string, subject events.RequestSubject) events.Submitted {
	s := events.Submitted{Requester: events.Principal{ID: requester, Groups: []string{"engineers"}}, Subject: subject,
		Entitlement: "payments-admin", Justification: "INC-7", DurationSeconds: 3600, Channel: "http"}
	s.RequestDigest = s.Digest()
	return s
}

func human(id string) events.RequestSubject {
	return events.RequestSubject{Kind: events.SubjectHuman, ID: id}
}

// TestWhoSeesARequest is the specification of who may see a request, and so of who is told it exists.
// Each row: the request, the caller (subject, groups, whether a see-all group of the service holds
// them), and why they see it, or that they are answered exactly as for a request that does not exist.
func TestWhoSeesARequest(t *testing.T) {
	alicesOwn := fold(t, submitted("alice", human("alice")))
	forDave := fold(t, submitted("alice", human("dave")))
	forService := fold(t, submitted("frank", events.RequestSubject{Kind: events.SubjectServiceAccount, ID: "svc-reporting", Owner: "reporting-team"}))
	deadline := t0.Add(time.Hour)
	staged := fold(t, submitted("alice", human("alice")), events.PolicyDecided{Outcome: events.OutcomeApprovalRequired,
		Reasons: []string{"high risk"}, Stages: []events.Stage{{Name: "security", Groups: []string{"security"}, MinApprovals: 1}},
		EffectiveDurationSeconds: 3600, ApprovalDeadline: &deadline, PolicyRevision: "sha256:rev", InputDigest: "sha256:in"})
	breakGlass := submitted("alice", human("alice"))
	breakGlass.Emergency = true
	breakGlass.RequestDigest = breakGlass.Digest()
	emergency := fold(t, breakGlass, events.PolicyDecided{Outcome: events.OutcomeEmergency,
		Reasons: []string{"break glass"}, EffectiveDurationSeconds: 1800, PolicyRevision: "sha256:rev", InputDigest: "sha256:in",
		PostReview: &events.PostReview{Groups: []string{"incident-review"}, Deadline: t0.Add(24 * time.Hour)}})
	finding := fold(t, events.DriftDetected{Kind: events.DriftUnexplained, Connector: "postgres", TargetRef: "role grantline_hotfix",
		Observed: events.Observed{Present: true}, Action: events.DriftRecorded})
	owners := []string{"payments-owners"}
	seeAll := []string{"auditors"}

	cases := []struct {
		name   string
		req    *events.Request
		who    string
		groups []string
		want   visibility.Reason
	}{
		{"the requester sees her own request", alicesOwn, "alice", nil, visibility.Requester},
		{"the person who would hold the access sees the request made for him", forDave, "dave", nil, visibility.Subject},
		{"a member of the service account's owning team sees requests for it", forService, "gina", []string{"reporting-team"}, visibility.SubjectOwner},
		{"an owner of the entitlement sees every request for it", alicesOwn, "bob", []string{"payments-owners"}, visibility.EntitlementOwner},
		{"a member of a stage's groups sees the request it reviews", staged, "carol", []string{"security"}, visibility.Reviewer},
		{"a member of the post-review's groups sees the emergency request", emergency, "ivan", []string{"incident-review"}, visibility.Reviewer},
		{"a member of a see-all group sees everything", alicesOwn, "erin", []string{"auditors"}, visibility.SeesAll},

		{"another engineer does not see a colleague's request", alicesOwn, "frank", []string{"engineers"}, ""},
		{"a security member does not see a request policy never sent to security", alicesOwn, "carol", []string{"security"}, ""},
		{"the requester's team does not see it through the requester's own groups", alicesOwn, "hank", []string{"engineers"}, ""},
		{"a person in no group sees nothing", staged, "mallory", nil, ""},
		{"a caller without a subject is nobody, even where the request has no subject owner", alicesOwn, "", []string{""}, ""},
		{"nobody sees a request that does not exist, not even a see-all group", events.NewRequest(requestID), "erin", []string{"auditors"}, ""},
		{"a see-all group sees a finding of access no request explains", finding, "erin", []string{"auditors"}, visibility.SeesAll},
		{"an entitlement owner does not see a finding, which belongs to no entitlement", finding, "bob", []string{"payments-owners"}, ""},
		{"a caller without a subject does not see a finding, whose requester is nobody", finding, "", []string{"engineers"}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := visibility.NewViewer(c.who, c.groups, seeAll)
			if got := visibility.Why(c.req, v, owners); got != c.want {
				t.Fatalf("%s (%v) sees it because %q, want %q", c.who, c.groups, got, c.want)
			}
			err := visibility.Check(c.req, v, owners)
			if (err == nil) != (c.want != "") || err != nil && err != visibility.ErrNotFound {
				t.Fatalf("Check = %v, want nil exactly when the caller sees it, else ErrNotFound itself", err)
			}
		})
	}
}
