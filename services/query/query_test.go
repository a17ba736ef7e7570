package query_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/services/query"
)

var t0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

// history seals payloads as request id's events, each signed by the given service's key and chained,
// one minute apart, as the stream would store them.
type history struct {
	signers map[events.Service]*events.Signer
	trust   *events.Verifier
}

func newHistory(t *testing.T) *history {
	t.Helper()
	h := &history{signers: map[events.Service]*events.Signer{}}
	var all []*events.Signer
	for _, svc := range events.Services {
		s, err := events.GenerateSigner(svc, string(svc)+"-1")
		if err != nil {
			t.Fatal(err)
		}
		h.signers[svc], all = s, append(all, s)
	}
	var err error
	if h.trust, err = events.NewVerifier(events.NewTrustFile(t0.Add(-time.Hour), all...)); err != nil {
		t.Fatal(err)
	}
	return h
}

type step struct {
	svc events.Service
	p   events.Payload
}

func (h *history) records(t *testing.T, id string, steps ...step) []events.Record {
	t.Helper()
	var recs []events.Record
	prev := events.GenesisHash(id)
	for i, s := range steps {
		at := t0.Add(time.Duration(i) * time.Minute)
		_, body, err := events.Draft{Payload: s.p}.Seal(id, s.svc, at, prev)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, events.Record{Seq: uint64(10 + i), Subject: events.NATSSubject(id, s.p.EventType()), Body: body,
			Signature: h.signers[s.svc].Sign(body), StoredAt: at})
		prev = events.ChainHash(body)
	}
	return recs
}

func submitted(requester string) events.Submitted {
	s := events.Submitted{Requester: events.Principal{ID: requester, Groups: []string{"engineers"}},
		Subject: events.RequestSubject{Kind: events.SubjectHuman, ID: requester}, Entitlement: "analytics-read",
		Justification: "report", DurationSeconds: 600, Channel: "http"}
	s.RequestDigest = s.Digest()
	return s
}

var auto = events.PolicyDecided{Outcome: events.OutcomeAutoApproved, Reasons: []string{"low"}, EffectiveDurationSeconds: 600, PolicyRevision: "rev"}

// TestVerify: a history is verified and folded up to its first problem, which is reported with its
// position and sequence; what came before stays usable.
func TestVerify(t *testing.T) {
	h := newHistory(t)
	id := events.NewID()
	grant := events.Granted{Connector: "postgres", TargetRef: "r", Observed: events.Observed{Present: true},
		ExpiresAt: t0.Add(2*time.Minute + 5*time.Minute), Fulfiller: "service:fulfilment"}
	clean := h.records(t, id, step{events.Intake, submitted("alice")}, step{events.Policy, auto}, step{events.Fulfilment, grant})
	cases := []struct {
		name     string
		recs     func() []events.Record
		kind     string
		position int
		status   events.Status
	}{
		{"a clean history", func() []events.Record { return clean }, "", 0, events.StatusGranted},
		{"a byte flipped in the second event", func() []events.Record {
			recs := append([]events.Record{}, clean...)
			recs[1].Body = bytes.Replace(recs[1].Body, []byte(`"low"`), []byte(`"lox"`), 1)
			return recs
		}, string(events.ViolationBadSignature), 2, events.StatusSubmitted},
		{"the decision signed by intake", func() []events.Record {
			return h.records(t, id, step{events.Intake, submitted("alice")}, step{events.Intake, auto})
		}, string(events.ViolationTypeNotAllowed), 2, events.StatusSubmitted},
		{"a grant without a decision, properly signed", func() []events.Record {
			return h.records(t, id, step{events.Intake, submitted("alice")}, step{events.Fulfilment, grant})
		}, query.ProblemInvariant, 2, events.StatusSubmitted},
		{"the first event missing", func() []events.Record { return clean[1:] }, string(events.ViolationChainBroken), 1, events.StatusNone},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			recs := c.recs()
			got := query.Verify(h.trust, id, recs)
			switch {
			case c.kind == "" && got.Problem != nil:
				t.Fatalf("problem %v in a clean history", got.Problem)
			case c.kind != "" && (got.Problem == nil || got.Problem.Kind != c.kind || got.Problem.Position != c.position || got.Problem.Seq != recs[c.position-1].Seq):
				t.Fatalf("problem %+v, want %s at position %d", got.Problem, c.kind, c.position)
			}
			if got.Request.Status() != c.status || len(got.Events) != len(got.Records) {
				t.Fatalf("verified prefix ends in %q with %d events, want %q", got.Request.Status(), len(got.Events), c.status)
			}
			if n := len(got.Records); n > 0 && got.LastSeq != got.Records[n-1].Seq {
				t.Fatalf("LastSeq %d, last record %d", got.LastSeq, got.Records[n-1].Seq)
			}
		})
	}
}

// TestHeldAt: when a grant counts as holding its entitlement, as a table of instants.
func TestHeldAt(t *testing.T) {
	granted, expires, revoked, now := t0, t0.Add(time.Hour), t0.Add(30*time.Minute), t0.Add(3*time.Hour)
	open := query.Grant{GrantedAt: granted, ExpiresAt: expires}
	closed := open
	closed.RevokedAt = &revoked
	late := open
	lateRevocation := t0.Add(2 * time.Hour)
	late.RevokedAt = &lateRevocation
	cases := []struct {
		name         string
		g            query.Grant
		at           time.Time
		held, beyond bool
	}{
		{"before the grant", open, granted.Add(-time.Nanosecond), false, false},
		{"at the grant", open, granted, true, false},
		{"just before expiry", open, expires.Add(-time.Nanosecond), true, false},
		{"past expiry, no revocation recorded, before now", open, expires, true, true},
		{"past expiry, no revocation recorded, after now", open, now.Add(time.Second), false, false},
		{"revoked early: before the revocation", closed, revoked.Add(-time.Nanosecond), true, false},
		{"revoked early: at the revocation", closed, revoked, false, false},
		{"revoked early: before what was the expiry", closed, expires.Add(-time.Minute), false, false},
		{"revoked late: past expiry, before the revocation", late, expires.Add(time.Minute), true, false},
		{"revoked late: at the revocation", late, lateRevocation, false, false},
	}
	for _, c := range cases {
		if held, beyond := query.HeldAt(c.g, c.at, now); held != c.held || beyond != c.beyond {
			t.Errorf("%s: held %v beyond %v, want %v %v", c.name, held, beyond, c.held, c.beyond)
		}
	}
}

// TestMayRead: who reads a request, as a table of callers.
func TestMayRead(t *testing.T) {
	h := newHistory(t)
	id := events.NewID()
	decision := events.PolicyDecided{Outcome: events.OutcomeApprovalRequired, Reasons: []string{"r"}, EffectiveDurationSeconds: 600, PolicyRevision: "rev",
		Stages: []events.Stage{{Name: "security", Groups: []string{"security"}, MinApprovals: 1}}}
	req := query.Verify(h.trust, id, h.records(t, id, step{events.Intake, submitted("alice")}, step{events.Policy, decision})).Request
	owners := map[string][]string{"analytics-read": {"analytics-owners"}, "payments-admin": {"payments-owners"}}
	cases := []struct {
		name   string
		who    string
		groups []string
		reads  bool
	}{
		{"the requester", "alice", []string{"engineers"}, true},
		{"another engineer", "frank", []string{"engineers", "payments-owners"}, false},
		{"an owner of the entitlement", "bob", []string{"analytics-owners"}, true},
		{"a member of a stage's groups", "carol", []string{"security"}, true},
		{"an auditor", "erin", []string{"auditors"}, true},
		{"someone in no group", "mallory", nil, false},
	}
	for _, c := range cases {
		if got := query.NewReader(c.who, c.groups, []string{"auditors"}, owners).MayRead(req); got != c.reads {
			t.Errorf("%s (%s): reads %v, want %v", c.name, c.who, got, c.reads)
		}
	}
	// The team owning a service account reads the requests for it (visibility.SubjectOwner); so do
	// the postgres queries, on subject_owner.
	forAccount := submitted("frank")
	forAccount.Subject = events.RequestSubject{Kind: events.SubjectServiceAccount, ID: "svc-reporting", Owner: "reporting-team"}
	forAccount.RequestDigest = forAccount.Digest()
	sa := events.NewID()
	saReq := query.Verify(h.trust, sa, h.records(t, sa, step{events.Intake, forAccount})).Request
	if !query.NewReader("gina", []string{"reporting-team"}, nil, owners).MayRead(saReq) ||
		query.NewReader("gina", []string{"engineers"}, nil, owners).MayRead(saReq) {
		t.Error("only the owning team (besides the requester) should read a request for its service account")
	}
	if !query.AwaitsReviewBy(req, "carol", []string{"security"}) || query.AwaitsReviewBy(req, "alice", []string{"security"}) {
		t.Error("the security stage should await carol and never the requester")
	}
}
