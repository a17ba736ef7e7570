package querytest

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/events"
)

// Bulk publishes requests complete lifecycles straight into the stream, fast, for benchmarks: each
// event sealed, chained and signed by its own service's key exactly as the event store would (so the
// projection verifies and folds them like any other), but published asynchronously without the
// compare-and-set. 64 requests are under way at a time, so their events interleave. Two in three
// requests are auto-approved, granted, expired and revoked; the rest are approved by a reviewer and
// granted (five events each either way). It returns the number of events published.
func Bulk(ctx context.Context, js jetstream.JetStream, signers map[events.Service]*events.Signer, start time.Time, requests int) (int, error) {
	type live struct {
		id    string
		steps []step
		prev  string
		at    time.Time
	}
	newRequest := func(i int) *live {
		id := events.NewID()
		requester := []string{"alice", "dave", "frank"}[i%3]
		s := Submission(requester, []string{"analytics-read", "payments-admin"}[i%2], false)
		at := start.Add(time.Duration(i) * time.Millisecond)
		var steps []step
		if i%3 != 2 {
			expires := at.Add(2*time.Second + 300*time.Second)
			steps = []step{
				{events.Intake, requester, s, 0},
				{events.Policy, "", events.PolicyDecided{Outcome: events.OutcomeAutoApproved, Reasons: []string{"low risk"}, EffectiveDurationSeconds: 300, PolicyRevision: Revision, InputDigest: "sha256:in"}, time.Second},
				{events.Fulfilment, "", events.Granted{Connector: "postgres", TargetRef: "role r", Observed: events.Observed{Present: true}, ExpiresAt: expires, Fulfiller: "service:fulfilment"}, time.Second},
				{events.Revoker, "", events.Expired{ExpiresAt: expires}, 300 * time.Second},
				{events.Revoker, "", events.Revoked{Reason: events.RevokeExpired, Observed: events.Observed{Present: false}}, time.Second},
			}
		} else {
			deadline := at.Add(time.Hour)
			steps = []step{
				{events.Intake, requester, s, 0},
				{events.Policy, "", events.PolicyDecided{Outcome: events.OutcomeApprovalRequired, Reasons: []string{"owners decide"}, EffectiveDurationSeconds: 300,
					ApprovalDeadline: &deadline, PolicyRevision: Revision, InputDigest: "sha256:in",
					Stages: []events.Stage{{Name: "owners", Groups: []string{"payments-owners", "analytics-owners"}, MinApprovals: 1}}}, time.Second},
				{events.Approval, "bob", events.Reviewed{Reviewer: events.Principal{ID: "bob", Groups: Groups["bob"]}, Stage: 0, Decision: events.ReviewApprove, RequestDigest: s.RequestDigest}, time.Second},
				{events.Approval, "", events.Approved{Approvers: []string{"bob"}}, time.Second},
				{events.Fulfilment, "", events.Granted{Connector: "postgres", TargetRef: "role r", Observed: events.Observed{Present: true}, ExpiresAt: at.Add(4*time.Second + 300*time.Second), Fulfiller: "service:fulfilment"}, time.Second},
			}
		}
		return &live{id: id, steps: steps, prev: events.GenesisHash(id), at: at}
	}
	const window = 64
	var active []*live
	next, published := 0, 0
	for next < requests || len(active) > 0 {
		for len(active) < window && next < requests {
			active = append(active, newRequest(next))
			next++
		}
		for i := 0; i < len(active); {
			r := active[i]
			st := r.steps[0]
			r.steps = r.steps[1:]
			r.at = r.at.Add(st.after)
			_, body, err := events.Draft{Payload: st.p, Actor: st.actor}.Seal(r.id, st.svc, r.at, r.prev)
			if err != nil {
				return published, err
			}
			msg := nats.NewMsg(events.NATSSubject(r.id, st.p.EventType()))
			msg.Data = body
			msg.Header.Set(events.SignatureHeader, signers[st.svc].Sign(body))
			if _, err := js.PublishMsgAsync(msg); err != nil {
				return published, fmt.Errorf("publish: %w", err)
			}
			published++
			r.prev = events.ChainHash(body)
			if len(r.steps) == 0 {
				active = append(active[:i], active[i+1:]...)
				continue
			}
			i++
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return published, ctx.Err()
	}
	return published, nil
}

type step struct {
	svc   events.Service
	actor string
	p     events.Payload
	after time.Duration
}
