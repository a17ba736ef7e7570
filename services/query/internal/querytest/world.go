// Package querytest builds request histories on a real JetStream server for the read side's tests: each
// event appended through an event store signed with its own service's key, on a fake clock, so that
// expiries and deadlines pass without waiting; and a randomized workload of requests through random
// legal paths.
package querytest

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/natstest"
	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/services/query/natsjs"
)

// Clock is a fake time the stores stamp events with.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// Now is the fake time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Add moves the clock on by d.
func (c *Clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// AdvanceTo moves the clock to t if t is later.
func (c *Clock) AdvanceTo(t time.Time) {
	c.mu.Lock()
	if t.After(c.t) {
		c.t = t
	}
	c.mu.Unlock()
}

// World is a JetStream server with the streams provisioned, a key per service, the trust file that
// trusts them, and an event store per service.
type World struct {
	NS      *server.Server
	JS      jetstream.JetStream
	Signers map[events.Service]*events.Signer
	Trust   *events.Verifier
	Clock   *Clock
	stores  map[events.Service]*eventstore.Store
}

// NewWorld starts the server and opens the stores; everything stops with the test.
func NewWorld(t testing.TB) *World {
	t.Helper()
	ctx := context.Background()
	ns := natstest.RunServer(t)
	_, js := natstest.Connect(t, ns.ClientURL())
	if err := eventstore.Provision(ctx, js, eventstore.DefaultSettings); err != nil {
		t.Fatal(err)
	}
	// The fake clock starts in the past; keys are trusted from before it (the broker stamps real times).
	w := &World{NS: ns, JS: js, Signers: map[events.Service]*events.Signer{}, Clock: &Clock{t: time.Now().Add(-6 * time.Hour).UTC()},
		stores: map[events.Service]*eventstore.Store{}}
	var all []*events.Signer
	for _, svc := range events.Services {
		s, err := events.GenerateSigner(svc, string(svc)+"-test")
		if err != nil {
			t.Fatal(err)
		}
		w.Signers[svc] = s
		all = append(all, s)
	}
	trust, err := events.NewVerifier(events.NewTrustFile(w.Clock.Now().Add(-time.Hour), all...))
	if err != nil {
		t.Fatal(err)
	}
	w.Trust = trust
	for _, svc := range events.Services {
		st, err := eventstore.Open(ctx, js, eventstore.Config{Signer: w.Signers[svc], Verifier: trust,
			Durability: eventstore.EmbeddedProbe(ns), Now: w.Clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		w.stores[svc] = st
	}
	return w
}

// LastSeq is the stream sequence of the last stored event.
func (w *World) LastSeq(t testing.TB) uint64 {
	t.Helper()
	st, err := w.JS.Stream(context.Background(), topology.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}

// Load reads request id back through an event store.
func (w *World) Load(t testing.TB, id string) *eventstore.Loaded {
	t.Helper()
	l, err := w.stores[events.Intake].Load(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Groups are the demo directory's (examples/directory.yaml) people and their groups.
var Groups = map[string][]string{
	"alice": {"engineers"},
	"bob":   {"analytics-owners", "payments-owners"},
	"carol": {"security"},
	"dave":  {"operations"},
	"erin":  {"auditors"},
	"frank": {"engineers", "payments-owners"},
}

// Req is one request being driven through its lifecycle.
type Req struct {
	w  *World
	ID string
}

// Make returns a handle on a new request ID; nothing is stored until its first step.
func (w *World) Make() *Req { return &Req{w: w, ID: events.NewID()} }

// Step appends the payload that build returns (given the event's time and the request as it stands) as
// svc, caused by actor ("" for the service itself), one fake second after the previous event.
func (r *Req) Step(t testing.TB, svc events.Service, actor string, build func(now time.Time, req *events.Request) events.Payload) *events.Request {
	t.Helper()
	r.w.Clock.Add(time.Second)
	now := r.w.Clock.Now()
	l, err := r.w.stores[svc].Update(context.Background(), r.ID, func(req *events.Request) ([]events.Draft, error) {
		return []events.Draft{{Payload: build(now, req), Actor: actor}}, nil
	})
	if err != nil {
		t.Fatalf("request %s: %v", r.ID, err)
	}
	return l.Request
}

func fixed(p events.Payload) func(time.Time, *events.Request) events.Payload {
	return func(time.Time, *events.Request) events.Payload { return p }
}

// Submission is a request by requester for entitlement; a service-account entitlement
// (reporting-db-credential) is for svc-reporting, owned by payments-owners, anything else for the
// requester.
func Submission(requester, entitlement string, emergency bool) events.Submitted {
	subject := events.RequestSubject{Kind: events.SubjectHuman, ID: requester}
	if entitlement == "reporting-db-credential" {
		subject = events.RequestSubject{Kind: events.SubjectServiceAccount, ID: "svc-reporting", Owner: "payments-owners"}
	}
	s := events.Submitted{Requester: events.Principal{ID: requester, Groups: Groups[requester]}, Subject: subject,
		Entitlement: entitlement, Justification: "INC-" + requester, Ticket: "OPS-1", DurationSeconds: 600,
		Emergency: emergency, Channel: "http"}
	s.RequestDigest = s.Digest()
	return s
}

// Submit stores the submission.
func (r *Req) Submit(t testing.TB, requester, entitlement string, emergency bool) *Req {
	t.Helper()
	r.Step(t, events.Intake, requester, fixed(Submission(requester, entitlement, emergency)))
	return r
}

// Extend stores requester's submission extending the active grant of request of, recorded as intake
// records it (events.Request.MayExtend, within a day in all).
func (r *Req) Extend(t testing.TB, requester string, of *Req) *Req {
	t.Helper()
	r.Step(t, events.Intake, requester, func(now time.Time, _ *events.Request) events.Payload {
		orig := r.w.Load(t, of.ID).Request
		s := Submission(requester, orig.Submitted().Entitlement, false)
		x, err := orig.MayExtend(s, now, 24*time.Hour)
		if err != nil {
			t.Fatalf("extend %s: %v", of.ID, err)
		}
		s.Extends = &x
		s.RequestDigest = s.Digest()
		return s
	})
	return r
}

// Withdraw is the requester's withdrawal.
func (r *Req) Withdraw(t testing.TB) *Req {
	t.Helper()
	r.Step(t, events.Intake, r.w.Load(t, r.ID).Request.Submitted().Requester.ID, fixed(events.Withdrawn{Reason: "no longer needed"}))
	return r
}

// Revision is the policy revision every test decision records.
const Revision = "sha256:test-policy"

// Decide records the policy's decision with outcome: stages for approval_required, a post-review by
// security for an emergency.
func (r *Req) Decide(t testing.TB, outcome events.Outcome, ordered bool, stages ...events.Stage) *Req {
	t.Helper()
	r.Step(t, events.Policy, "", func(now time.Time, _ *events.Request) events.Payload {
		d := events.PolicyDecided{Outcome: outcome, Reasons: []string{"test"}, Stages: stages, StagesOrdered: ordered,
			EffectiveDurationSeconds: 300, PolicyRevision: Revision, InputDigest: "sha256:input"}
		switch outcome {
		case events.OutcomeApprovalRequired:
			deadline := now.Add(5 * time.Minute)
			d.ApprovalDeadline = &deadline
		case events.OutcomeEmergency:
			d.PostReview = &events.PostReview{Groups: []string{"security"}, Deadline: now.Add(5 * time.Minute)}
		case events.OutcomeDeny:
			d.EffectiveDurationSeconds = 0
		}
		return d
	})
	return r
}

// Stage is an approval stage of min approvals from groups.
func Stage(name string, min int, groups ...string) events.Stage {
	return events.Stage{Name: name, Groups: groups, MinApprovals: min}
}

// Review records who's review of stage.
func (r *Req) Review(t testing.TB, who string, stage int, d events.ReviewDecision) *Req {
	t.Helper()
	r.Step(t, events.Approval, who, func(_ time.Time, req *events.Request) events.Payload {
		return events.Reviewed{Reviewer: events.Principal{ID: who, Groups: Groups[who]}, Stage: stage, Decision: d,
			Comment: "looked at it", RequestDigest: req.Submitted().RequestDigest}
	})
	return r
}

// Approve records that every stage is satisfied.
func (r *Req) Approve(t testing.TB) *Req {
	t.Helper()
	r.Step(t, events.Approval, "", func(_ time.Time, req *events.Request) events.Payload { return req.ApprovedDraft() })
	return r
}

// Reject records a rejection by reviewer, or for timeout (moving the clock to the deadline).
func (r *Req) Reject(t testing.TB, reason string) *Req {
	t.Helper()
	if reason == events.RejectedTimeout {
		r.w.Clock.AdvanceTo(*r.w.Load(t, r.ID).Request.Decision().ApprovalDeadline)
	}
	r.Step(t, events.Approval, "", func(_ time.Time, req *events.Request) events.Payload {
		rej := events.Rejected{Reason: reason}
		if reason == events.RejectedByReviewer {
			for _, rv := range req.Reviews() {
				if rv.Decision == events.ReviewReject {
					rej.RejectedBy = rv.Reviewer.ID
				}
			}
		}
		return rej
	})
	return r
}

// Grant records access observed on the target, expiring at the end of the effective duration.
func (r *Req) Grant(t testing.TB) *Req {
	t.Helper()
	r.Step(t, events.Fulfilment, "", func(now time.Time, req *events.Request) events.Payload {
		ent := req.Submitted().Entitlement
		return events.Granted{Connector: "postgres", TargetRef: "role " + ent,
			Observed:  events.Observed{Present: true, Detail: map[string]string{"role": ent, "member": req.Submitted().Subject.ID}},
			ExpiresAt: now.Add(time.Duration(req.Decision().EffectiveDurationSeconds) * time.Second), Fulfiller: "service:fulfilment"}
	})
	return r
}

// Fail records that fulfilment gave up, for good (permanent) or after retrying.
func (r *Req) Fail(t testing.TB, permanent bool) *Req {
	t.Helper()
	r.Step(t, events.Fulfilment, "", fixed(events.FulfilmentFailed{ErrorClass: "target_unavailable", Message: "connection refused", Attempts: 1, Permanent: permanent}))
	return r
}

// Expire moves the clock to the grant's expiry and records it.
func (r *Req) Expire(t testing.TB) *Req {
	t.Helper()
	r.w.Clock.AdvanceTo(r.w.Load(t, r.ID).Request.Grant().ExpiresAt)
	r.Step(t, events.Revoker, "", func(_ time.Time, req *events.Request) events.Payload {
		return events.Expired{ExpiresAt: req.Grant().ExpiresAt}
	})
	return r
}

// RequestRevocation asks for early revocation by who.
func (r *Req) RequestRevocation(t testing.TB, who string, reason events.RevocationReason) *Req {
	t.Helper()
	r.Step(t, events.Revoker, who, fixed(events.RevocationRequested{By: who, Reason: reason}))
	return r
}

// Revoke records access removed, observed absent, for the reason that is due.
func (r *Req) Revoke(t testing.TB) *Req {
	t.Helper()
	r.Step(t, events.Revoker, "", func(_ time.Time, req *events.Request) events.Payload {
		return events.Revoked{Reason: req.RevocationDue(), Observed: events.Observed{Present: false}}
	})
	return r
}

// FailRevocation records a failed revocation attempt.
func (r *Req) FailRevocation(t testing.TB) *Req {
	t.Helper()
	r.Step(t, events.Revoker, "", func(now time.Time, _ *events.Request) events.Payload {
		return events.RevocationFailed{Attempts: 1, OverdueSince: now, ErrorClass: "target_unavailable", Message: "timeout"}
	})
	return r
}

// PostReview records who's post-review of an emergency grant.
func (r *Req) PostReview(t testing.TB, who string, outcome events.PostReviewOutcome) *Req {
	t.Helper()
	reason := ""
	if outcome == events.PostReviewFlagged {
		reason = "no incident on record"
	}
	r.Step(t, events.Approval, who, fixed(events.PostReviewed{Reviewer: events.Principal{ID: who, Groups: Groups[who]}, Outcome: outcome, Reason: reason}))
	return r
}

// PostReviewOverdue moves the clock past the post-review deadline and records it as overdue.
func (r *Req) PostReviewOverdue(t testing.TB) *Req {
	t.Helper()
	r.w.Clock.AdvanceTo(r.w.Load(t, r.ID).Request.Decision().PostReview.Deadline)
	r.Step(t, events.Approval, "", func(_ time.Time, req *events.Request) events.Payload {
		return events.PostReviewOverdue{Deadline: req.Decision().PostReview.Deadline}
	})
	return r
}

// Forge publishes payload as the next event of request id straight into the stream, signed by svc's
// key and correctly chained, bypassing the event store (and so the aggregate and the type rules): what
// an attacker holding one service's key could do.
func (w *World) Forge(t testing.TB, id string, svc events.Service, p events.Payload) uint64 {
	t.Helper()
	// Read raw: the request may be forged already, and a verified load would refuse it.
	recs, err := (&natsjs.Reader{JS: w.JS}).Records(context.Background(), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	prev := events.GenesisHash(id)
	if n := len(recs); n > 0 {
		prev = events.ChainHash(recs[n-1].Body)
	}
	_, body, err := events.Draft{Payload: p}.Seal(id, svc, w.Clock.Now(), prev)
	if err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg(events.NATSSubject(id, p.EventType()))
	msg.Data = body
	msg.Header.Set(events.SignatureHeader, w.Signers[svc].Sign(body))
	ack, err := w.JS.PublishMsg(context.Background(), msg)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// Workload drives n requests through random legal paths chosen by rng, one step of a random unfinished
// request at a time, so their events interleave in the stream; some stop part way, as live requests do.
// It returns the request IDs.
func (w *World) Workload(t testing.TB, rng *rand.Rand, n int) []string {
	t.Helper()
	return w.WorkloadWith(t, rng, n, 0, nil)
}

// WorkloadWith is Workload calling between after every few steps (at random, about every `every`).
func (w *World) WorkloadWith(t testing.TB, rng *rand.Rand, n, every int, between func()) []string {
	t.Helper()
	type run struct {
		r     *Req
		steps []func()
	}
	var runs []*run
	var ids []string
	for range n {
		r := w.Make()
		ids = append(ids, r.ID)
		steps := Path(t, r, rng)
		if rng.IntN(5) == 0 {
			steps = steps[:1+rng.IntN(len(steps))]
		}
		runs = append(runs, &run{r: r, steps: steps})
	}
	for len(runs) > 0 {
		i := rng.IntN(len(runs))
		runs[i].steps[0]()
		runs[i].steps = runs[i].steps[1:]
		if len(runs[i].steps) == 0 {
			runs = slices.Delete(runs, i, i+1)
		}
		if between != nil && rng.IntN(every) == 0 {
			between()
		}
	}
	return ids
}

// Path returns the steps of one random legal lifecycle of r, starting with its submission.
func Path(t testing.TB, r *Req, rng *rand.Rand) []func() {
	requester := []string{"alice", "dave", "frank"}[rng.IntN(3)]
	ent := []string{"analytics-read", "payments-admin", "reporting-db-credential"}[rng.IntN(3)]
	// Owners who may review: never the requester.
	var owners []string
	for _, p := range []string{"bob", "frank"} {
		if p != requester {
			owners = append(owners, p)
		}
	}
	submit := func() { r.Submit(t, requester, ent, false) }
	grantAndEnd := []func(){
		func() { r.Grant(t) },
	}
	switch rng.IntN(4) {
	case 0: // left granted
	case 1:
		grantAndEnd = append(grantAndEnd, func() { r.Expire(t) }, func() { r.Revoke(t) })
	case 2:
		grantAndEnd = append(grantAndEnd, func() { r.RequestRevocation(t, requester, events.RevokeEarly) }, func() { r.FailRevocation(t) }, func() { r.Revoke(t) })
	case 3:
		grantAndEnd = append(grantAndEnd, func() { r.Expire(t) }, func() { r.FailRevocation(t) })
	}
	approval := func(stages ...events.Stage) func() {
		return func() { r.Decide(t, events.OutcomeApprovalRequired, rng.IntN(2) == 0, stages...) }
	}
	owner := owners[rng.IntN(len(owners))]
	switch rng.IntN(10) {
	case 0:
		return []func(){submit, func() { r.Decide(t, events.OutcomeDeny, false) }}
	case 1:
		return []func(){submit, func() { r.Withdraw(t) }}
	case 2:
		return append([]func(){submit, func() { r.Decide(t, events.OutcomeAutoApproved, false) }}, grantAndEnd...)
	case 3: // what no retry fixes
		return []func(){submit, func() { r.Decide(t, events.OutcomeAutoApproved, false) }, func() { r.Fail(t, true) }}
	case 4: // a target down for longer than fulfilment retries
		return []func(){submit, func() { r.Decide(t, events.OutcomeAutoApproved, false) }, func() { r.Fail(t, false) }}
	case 5: // one owner approves
		return append([]func(){submit, approval(Stage("owners", 1, "payments-owners", "analytics-owners")),
			func() { r.Review(t, owner, 0, events.ReviewApprove) }, func() { r.Approve(t) }}, grantAndEnd...)
	case 6: // owners, then security
		return append([]func(){submit, approval(Stage("owners", 1, "payments-owners", "analytics-owners"), Stage("security", 1, "security")),
			func() { r.Review(t, owner, 0, events.ReviewApprove) }, func() { r.Review(t, "carol", 1, events.ReviewApprove) },
			func() { r.Approve(t) }}, grantAndEnd...)
	case 7: // rejected by a reviewer, or by the clock
		if rng.IntN(2) == 0 {
			return []func(){submit, approval(Stage("owners", 1, "payments-owners", "analytics-owners")),
				func() { r.Review(t, owner, 0, events.ReviewReject) }, func() { r.Reject(t, events.RejectedByReviewer) }}
		}
		return []func(){submit, approval(Stage("security", 1, "security")), func() { r.Reject(t, events.RejectedTimeout) }}
	case 8: // withdrawn while pending
		return []func(){submit, approval(Stage("security", 1, "security")), func() { r.Withdraw(t) }}
	default: // emergency, post-reviewed or overdue
		emergency := []func(){func() { r.Submit(t, requester, ent, true) }, func() { r.Decide(t, events.OutcomeEmergency, false) }, func() { r.Grant(t) }}
		switch rng.IntN(3) {
		case 0:
			return append(emergency, func() { r.PostReview(t, "carol", events.PostReviewRatified) })
		case 1:
			return append(emergency, func() { r.PostReview(t, "carol", events.PostReviewFlagged) }, func() { r.Revoke(t) })
		}
		return append(emergency, func() { r.Expire(t) }, func() { r.Revoke(t) }, func() { r.PostReviewOverdue(t) })
	}
}
