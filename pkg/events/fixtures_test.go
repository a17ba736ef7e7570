package events

import (
	"encoding/json/v2"
	"time"
)

// The fixtures tell one story: alice (an engineer) asks for a PostgreSQL admin role. The owners (carol,
// dave in db-owners) and security (erin in security) approve; frank fulfils manual tasks.
var t0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

const testRequestID = "01KB0000000000000000000000"

func submittedPayload(emergency bool) Submitted {
	s := Submitted{
		Requester:       Principal{ID: "alice", Groups: []string{"engineers"}},
		Subject:         RequestSubject{Kind: SubjectHuman, ID: "alice"},
		Entitlement:     "pg-prod-admin",
		Justification:   "INC-42: repair a stuck migration",
		Ticket:          "INC-42",
		DurationSeconds: 7200,
		Emergency:       emergency,
		Channel:         "http",
	}
	s.RequestDigest = s.Digest()
	return s
}

// scheduledPayload is alice's request for access from start on.
func scheduledPayload(start time.Time) Submitted {
	s := submittedPayload(false)
	s.StartAt = &start
	s.RequestDigest = s.Digest()
	return s
}

// startCheck is policy's check at the start with outcome o, groups from the directory.
func startCheck(o Outcome) StartChecked {
	return StartChecked{Allowed: o != OutcomeDeny, Outcome: o, Reasons: []string{"checked at the start"},
		RequesterGroups: []string{"engineers"}, GroupsFrom: GroupsFromDirectory, PolicyRevision: "sha256:policy", InputDigest: "sha256:input"}
}

func twoStageDecision(ordered bool) PolicyDecided {
	deadline := t0.Add(24 * time.Hour)
	return PolicyDecided{
		Outcome: OutcomeApprovalRequired, Reasons: []string{"high risk"},
		Stages: []Stage{
			{Name: "owners", Groups: []string{"db-owners"}, MinApprovals: 1},
			{Name: "security", Groups: []string{"security"}, MinApprovals: 1},
		},
		StagesOrdered: ordered, EffectiveDurationSeconds: 3600, ApprovalDeadline: &deadline,
		PolicyRevision: "sha256:policy", InputDigest: "sha256:input",
	}
}

func autoDecision() PolicyDecided {
	return PolicyDecided{Outcome: OutcomeAutoApproved, Reasons: []string{"low risk"}, EffectiveDurationSeconds: 3600,
		PolicyRevision: "sha256:policy", InputDigest: "sha256:input"}
}

func emergencyDecision() PolicyDecided {
	return PolicyDecided{Outcome: OutcomeEmergency, Reasons: []string{"break glass"}, EffectiveDurationSeconds: 1800,
		PostReview:     &PostReview{Groups: []string{"security"}, Deadline: t0.Add(24 * time.Hour)},
		PolicyRevision: "sha256:policy", InputDigest: "sha256:input"}
}

func review(reviewer, group string, stage int, d ReviewDecision) Reviewed {
	return Reviewed{Reviewer: Principal{ID: reviewer, Groups: []string{group}}, Stage: stage, Decision: d,
		RequestDigest: submittedPayload(false).Digest()}
}

// drift is what the reconciler records of kind k: access found after revocation is revoked again, the
// rest is recorded; missing access is observed absent.
func drift(k DriftKind) DriftDetected {
	d := DriftDetected{Kind: k, Connector: "postgres", TargetRef: "role grantline_x", Observed: Observed{Present: k != DriftMissing},
		Action: DriftRecorded}
	if k == DriftAfterRevocation {
		d.Action = DriftRevoke
	}
	return d
}

func grantAt(at time.Time, d time.Duration) Granted {
	return Granted{Connector: "postgres", TargetRef: "pg-prod/admin", Observed: Observed{Present: true},
		ExpiresAt: at.Add(d), Fulfiller: "service:fulfilment"}
}

// event wraps a payload in an envelope at time at, caused by actor.
func event(p Payload, at time.Time, actor string) Event {
	data, err := json.Marshal(p)
	if err != nil {
		panic(err)
	}
	return Event{Envelope: Envelope{
		SpecVersion: SpecVersion, ID: NewID(), Type: p.EventType(), Subject: testRequestID, Time: at,
		DataContentType: "application/json", DataSchema: SchemaURI(p.EventType()), Actor: actor,
		Source: "/grantline/test", PrevHash: "sha256:x", Data: data,
	}, Payload: p}
}

// story is a named sequence of events that brings a request into one state.
type story struct {
	name   string
	events []Event
}

func stories() []story {
	sub := event(submittedPayload(false), t0, "alice")
	emSub := event(submittedPayload(true), t0, "alice")
	emSub.Payload = func() Submitted { s := submittedPayload(true); return s }()
	pending := event(twoStageDecision(true), t0.Add(time.Minute), "service:policy")
	auto := event(autoDecision(), t0.Add(time.Minute), "service:policy")
	emergency := event(emergencyDecision(), t0.Add(time.Minute), "service:policy")
	ownerOK := event(review("carol", "db-owners", 0, ReviewApprove), t0.Add(2*time.Minute), "carol")
	securityOK := event(review("erin", "security", 1, ReviewApprove), t0.Add(3*time.Minute), "erin")
	grantTime := t0.Add(5 * time.Minute)
	granted := event(grantAt(grantTime, time.Hour), grantTime, "service:fulfilment")
	emGranted := event(grantAt(grantTime, 30*time.Minute), grantTime, "service:fulfilment")
	expired := event(Expired{ExpiresAt: grantTime.Add(time.Hour)}, grantTime.Add(time.Hour), "service:revoker")
	emExpired := event(Expired{ExpiresAt: grantTime.Add(30 * time.Minute)}, grantTime.Add(30*time.Minute), "service:revoker")
	revoked := event(Revoked{Reason: RevokeExpired, Observed: Observed{Present: false}}, grantTime.Add(time.Hour+time.Second), "service:revoker")
	emRevoked := event(Revoked{Reason: RevokeExpired, Observed: Observed{Present: false}}, grantTime.Add(31*time.Minute), "service:revoker")
	found := event(drift(DriftAfterRevocation), grantTime.Add(2*time.Hour), "service:revoker")
	// A request for access from five minutes after submission, checked at its start.
	schedSub := event(scheduledPayload(t0.Add(5*time.Minute)), t0, "alice")
	checked := event(startCheck(OutcomeAutoApproved), t0.Add(5*time.Minute), "service:policy")

	return []story{
		{"none", nil},
		{"submitted", []Event{sub}},
		{"pending_approval", []Event{sub, pending}},
		{"pending_satisfied", []Event{sub, pending, ownerOK, securityOK}},
		{"approved", []Event{sub, auto}},
		{"granted", []Event{sub, auto, granted}},
		{"revoking", []Event{sub, auto, granted, expired}},
		{"revoked", []Event{sub, auto, granted, expired, revoked}},
		{"revoked_at_expiry", []Event{sub, auto, granted, revoked}},
		{"denied", []Event{sub, event(PolicyDecided{Outcome: OutcomeDeny, Reasons: []string{"no"}, PolicyRevision: "sha256:policy"}, t0.Add(time.Minute), "service:policy")}},
		{"rejected", []Event{sub, pending, event(review("carol", "db-owners", 0, ReviewReject), t0.Add(2*time.Minute), "carol"),
			event(Rejected{Reason: RejectedByReviewer, RejectedBy: "carol"}, t0.Add(2*time.Minute), "service:approval")}},
		{"withdrawn", []Event{sub, event(Withdrawn{}, t0.Add(time.Minute), "alice")}},
		{"failed", []Event{sub, auto, event(FulfilmentFailed{ErrorClass: "target", Message: "no such role", Attempts: 3, Permanent: true}, t0.Add(2*time.Minute), "service:fulfilment")}},
		{"emergency_granted", []Event{emSub, emergency, emGranted}},
		{"emergency_revoked", []Event{emSub, emergency, emGranted, emExpired, emRevoked}},
		{"drift_missing", []Event{sub, auto, granted, event(drift(DriftMissing), grantTime.Add(time.Minute), "service:revoker")}},
		{"drift_revoking", []Event{sub, auto, granted, expired, revoked, found}},
		{"drift_revoked", []Event{sub, auto, granted, expired, revoked, found,
			event(Revoked{Reason: RevokeDrift, Observed: Observed{Present: false}}, grantTime.Add(2*time.Hour+time.Second), "service:revoker")}},
		{"finding", []Event{event(drift(DriftUnexplained), t0, "service:revoker")}},
		{"scheduled", []Event{schedSub, auto}},
		{"start_checked", []Event{schedSub, auto, checked}},
		{"start_denied", []Event{schedSub, auto, event(startCheck(OutcomeDeny), t0.Add(5*time.Minute), "service:policy")}},
	}
}

// candidate returns the most plausible event of type t for a request in its current state: the one a
// correct service would emit if t were legal now. The transition table then says whether it is.
func candidate(t Type, r *Request) Event {
	now := t0.Add(10 * time.Minute)
	if g := r.Grant(); g != nil {
		now = g.ExpiresAt.Add(time.Second)
	}
	switch t {
	case TypeLockPlaced, TypeLockRemoved:
		// A lock's events are no request's: every state refuses them, even under the request's ID.
		ev := lockEvent(security.ID, now, map[Type]Payload{TypeLockPlaced: placed(LockScope{LockUser, lockedUser}),
			TypeLockRemoved: LockRemoved{RemovedBy: security}}[t])
		ev.Subject = r.ID()
		return ev
	case TypeCampaignOpened, TypeCampaignReminded, TypeCampaignDecided, TypeCampaignEscalated, TypeCampaignClosed:
		// A campaign's events are no request's either.
		ev := campaignEvent(owner.ID, now, map[Type]Payload{TypeCampaignOpened: escalatingCampaign(),
			TypeCampaignReminded: CampaignReminded{Pending: []string{itemA}}, TypeCampaignDecided: decided(itemA, CampaignKeep, owner),
			TypeCampaignEscalated: CampaignEscalated{Items: []string{itemA}}, TypeCampaignClosed: CampaignClosed{}}[t])
		ev.Subject = r.ID()
		return ev
	case TypeSubmitted:
		return event(submittedPayload(false), t0, "alice")
	case TypeWithdrawn:
		return event(Withdrawn{Reason: "not needed"}, now, "alice")
	case TypePolicyDecided:
		return event(twoStageDecision(false), now, "service:policy")
	case TypeReviewed:
		stage, reviewer, group := 0, "carol", "db-owners"
		if open := r.OpenStages(); len(open) > 0 && open[0] == 1 {
			stage, reviewer, group = 1, "erin", "security"
		}
		return event(review(reviewer, group, stage, ReviewApprove), now, reviewer)
	case TypeApproved:
		return event(r.ApprovedDraft(), now, "service:approval")
	case TypeRejected:
		return event(Rejected{Reason: RejectedTimeout}, t0.Add(25*time.Hour), "service:approval")
	case TypeStartChecked:
		return event(startCheck(OutcomeAutoApproved), now, "service:policy")
	case TypePostReviewed:
		return event(PostReviewed{Reviewer: Principal{ID: "erin", Groups: []string{"security"}}, Outcome: PostReviewRatified}, now, "erin")
	case TypePostReviewOverdue:
		return event(PostReviewOverdue{Deadline: t0.Add(24 * time.Hour)}, t0.Add(25*time.Hour), "service:approval")
	case TypeTaskOpened:
		purpose := TaskGrant
		if r.Status() == StatusGranted {
			purpose = TaskRevoke
		}
		return event(TaskOpened{TaskID: "task-1", Purpose: purpose, FulfillerGroups: []string{"dba"}, DueAt: now.Add(time.Hour)}, now, "service:fulfilment")
	case TypeGranted:
		return event(grantAt(now, time.Hour), now, "service:fulfilment")
	case TypeFulfilmentFailed:
		return event(FulfilmentFailed{ErrorClass: "target", Message: "refused", Attempts: 1, Permanent: true}, now, "service:fulfilment")
	case TypeRevocationRequested:
		return event(RevocationRequested{By: "alice", Reason: RevokeEarly}, now, "alice")
	case TypeExpired:
		exp := t0
		if g := r.Grant(); g != nil {
			exp = g.ExpiresAt
		}
		return event(Expired{ExpiresAt: exp}, now, "service:revoker")
	case TypeRevoked:
		reason := r.RevocationDue()
		if reason == "" {
			// The revoker revokes a live grant at its expiry without recording expired first.
			reason = RevokeExpired
		}
		return event(Revoked{Reason: reason, Observed: Observed{Present: false}}, now, "service:revoker")
	case TypeRevocationFailed:
		return event(RevocationFailed{Attempts: 1, OverdueSince: now, ErrorClass: "target", Message: "timeout"}, now, "service:revoker")
	case TypeDriftDetected:
		switch r.Status() {
		case StatusNone:
			return event(drift(DriftUnexplained), now, "service:revoker")
		case StatusGranted:
			return event(drift(DriftMissing), now, "service:revoker")
		}
		return event(drift(DriftAfterRevocation), now, "service:revoker")
	}
	panic("no candidate for " + t)
}
