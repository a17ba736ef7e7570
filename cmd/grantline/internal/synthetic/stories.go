package synthetic

import (
	"fmt"
	"time"

	"github.com/grantline/grantline/pkg/events"
)

// entitlements are the catalogue the generated requests ask for; each has its owners' group.
var entitlements = []string{
	"analytics-read", "analytics-write", "payments-admin", "payments-read", "billing-db-read", "billing-db-admin",
	"crm-read", "crm-export", "warehouse-read", "warehouse-admin", "ci-deploy", "prod-shell",
}

const (
	engineers = 5000 // people who ask
	owners    = 200  // people who review, per group
	// grantFor and emergencyFor are the effective durations of ordinary and emergency grants.
	grantFor     = time.Hour
	emergencyFor = 30 * time.Minute
)

// pick chooses a story by its weight.
func (g *generator) pick() Story {
	n := g.rng.IntN(100)
	for _, w := range weights {
		if n < w.weight {
			return w.story
		}
		n -= w.weight
	}
	return AutoApproved
}

// newRequest starts the n-th request, submitted at at, on a story chosen by weight.
func (g *generator) newRequest(n int, at time.Time) *request {
	id := events.NewID()
	r := &request{agg: events.NewRequest(id), head: events.GenesisHash(id), story: g.pick(), at: at}
	g.res.Requests++
	g.res.Stories[r.story]++
	requester := fmt.Sprintf("engineer-%04d", g.rng.IntN(engineers))
	ent := entitlements[g.rng.IntN(len(entitlements))]
	ownerGroup := "owners-" + ent
	owner := func() events.Principal {
		return events.Principal{ID: fmt.Sprintf("owner-%s-%03d", ent, g.rng.IntN(owners)), Groups: []string{ownerGroup}}
	}
	duration := grantFor
	if r.story == Emergency {
		duration = emergencyFor
	}
	sub := events.Submitted{Requester: events.Principal{ID: requester, Groups: []string{"engineers"}},
		Subject: events.RequestSubject{Kind: events.SubjectHuman, ID: requester}, Entitlement: ent,
		Justification: fmt.Sprintf("on-call work for OPS-%d", 10000+n), Ticket: fmt.Sprintf("OPS-%d", 10000+n),
		DurationSeconds: int64(duration / time.Second), Emergency: r.story == Emergency, Channel: "http"}
	sub.RequestDigest = sub.Digest()
	fixed := func(p events.Payload) func(*request) events.Payload {
		return func(*request) events.Payload { return p }
	}
	decided := func(p events.PolicyDecided) step {
		p.Reasons, p.PolicyRevision, p.EffectiveDurationSeconds = []string{"catalogue risk tier"}, "sha256:synthetic-policy", int64(duration/time.Second)
		return step{svc: events.Policy, after: 40 * time.Millisecond, payload: fixed(p)}
	}
	review := func(after time.Duration, stage int, reviewer events.Principal, d events.ReviewDecision) step {
		return step{svc: events.Approval, actor: reviewer.ID, after: after,
			payload: fixed(events.Reviewed{Reviewer: reviewer, Stage: stage, Decision: d, RequestDigest: sub.RequestDigest})}
	}
	granted := step{svc: events.Fulfilment, after: 300 * time.Millisecond, payload: func(r *request) events.Payload {
		return events.Granted{Connector: "postgres", TargetRef: "role grantline_" + ent, ExpiresAt: r.at.Add(duration),
			Observed: events.Observed{Present: true, Detail: map[string]string{"grant_role": "grantline_" + ent, "member": requester}}, Fulfiller: "service:fulfilment"}
	}}
	// An expiry revoked at the first attempt is one event, revoked; expired comes first only when that
	// attempt failed (RevocationFailed).
	expired := func(after time.Duration) step {
		return step{svc: events.Revoker, after: after, payload: func(r *request) events.Payload { return events.Expired{ExpiresAt: r.agg.Grant().ExpiresAt} }}
	}
	revoked := func(after time.Duration, reason events.RevocationReason) step {
		return step{svc: events.Revoker, after: after, payload: fixed(events.Revoked{Reason: reason, Observed: events.Observed{Present: false}})}
	}
	minutes := func(lo, hi int) time.Duration { return time.Duration(lo+g.rng.IntN(hi-lo+1)) * time.Minute }

	r.steps = []step{{svc: events.Intake, actor: requester, payload: fixed(sub)}}
	auto := decided(events.PolicyDecided{Outcome: events.OutcomeAutoApproved})
	switch r.story {
	case AutoApproved:
		r.steps = append(r.steps, auto, granted, revoked(duration+200*time.Millisecond, events.RevokeExpired))
	case Staged:
		first, second := owner(), events.Principal{ID: fmt.Sprintf("security-%03d", g.rng.IntN(owners)), Groups: []string{"security"}}
		r.steps = append(r.steps,
			decided(events.PolicyDecided{Outcome: events.OutcomeApprovalRequired, StagesOrdered: true, Stages: []events.Stage{
				{Name: "owners", Groups: []string{ownerGroup}, MinApprovals: 1}, {Name: "security", Groups: []string{"security"}, MinApprovals: 1}}}),
			review(minutes(2, 60), 0, first, events.ReviewApprove),
			review(minutes(2, 60), 1, second, events.ReviewApprove),
			step{svc: events.Approval, after: 50 * time.Millisecond, payload: func(r *request) events.Payload { return r.agg.ApprovedDraft() }},
			granted, revoked(duration+200*time.Millisecond, events.RevokeExpired))
	case Rejected:
		reviewer := owner()
		r.steps = append(r.steps,
			decided(events.PolicyDecided{Outcome: events.OutcomeApprovalRequired, Stages: []events.Stage{{Name: "owners", Groups: []string{ownerGroup}, MinApprovals: 1}}}),
			review(minutes(2, 60), 0, reviewer, events.ReviewReject),
			step{svc: events.Approval, after: 50 * time.Millisecond, payload: fixed(events.Rejected{Reason: events.RejectedByReviewer, RejectedBy: reviewer.ID})})
	case Denied:
		r.steps = append(r.steps, decided(events.PolicyDecided{Outcome: events.OutcomeDeny}))
	case Emergency:
		reviewer, reviewAfter := owner(), minutes(5, 25)
		r.steps = append(r.steps,
			decided(events.PolicyDecided{Outcome: events.OutcomeEmergency, PostReview: &events.PostReview{Groups: []string{ownerGroup}, Deadline: at.Add(24 * time.Hour)}}),
			granted,
			step{svc: events.Approval, actor: reviewer.ID, after: reviewAfter, payload: fixed(events.PostReviewed{Reviewer: reviewer, Outcome: events.PostReviewRatified})},
			revoked(duration-reviewAfter+200*time.Millisecond, events.RevokeExpired))
	case EarlyRevocation:
		r.steps = append(r.steps, auto, granted,
			step{svc: events.Revoker, actor: requester, after: minutes(5, 50), payload: fixed(events.RevocationRequested{By: requester, Reason: events.RevokeEarly, Note: "done early"})},
			revoked(200*time.Millisecond, events.RevokeEarly))
	case FulfilmentFailed:
		r.steps = append(r.steps, auto, step{svc: events.Fulfilment, after: 2 * time.Second, payload: fixed(events.FulfilmentFailed{
			ErrorClass: "target_refused", Message: "role does not exist on the target", Attempts: 1, Permanent: true})})
	case RevocationFailed:
		r.steps = append(r.steps, auto, granted, expired(duration),
			step{svc: events.Revoker, after: 30 * time.Second, payload: func(r *request) events.Payload {
				return events.RevocationFailed{Attempts: 3, OverdueSince: r.agg.Grant().ExpiresAt, ErrorClass: "target_unavailable", Message: "connection refused"}
			}},
			revoked(2*time.Minute, events.RevokeExpired))
	}
	return r
}
