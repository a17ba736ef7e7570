// Package reaction is the approval service's side of the stream: the reaction that arms timers
// (policy_decided → the approval window, or an emergency's post-review deadline), the reaction to
// fired timers (rejected for timeout, post_review_overdue), and the projection of the review inbox.
//
// Every handler that appends or projects reads the request through the event store, which verifies
// each event's signature, type and chain: an event no service may have written (a reviewed or approved
// event signed with another service's key) makes the load fail with a *events.Violation, and the
// handler dead-letters the delivery instead of acting on it or appending on top of it. Arming a timer
// writes no evidence, so it relies on the delivered decision alone, verified on receipt.
package reaction

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/consumer"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/telemetry"
	"github.com/grantline/grantline/pkg/timers"
	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/services/approval"
)

// InboxTypes are the event types that change what a request awaits from reviewers.
var InboxTypes = []events.Type{
	events.TypePolicyDecided, events.TypeReviewed, events.TypeApproved, events.TypeRejected, events.TypeWithdrawn,
	events.TypeGranted, events.TypePostReviewed, events.TypePostReviewOverdue,
}

func subjects(types ...events.Type) []string {
	var out []string
	for _, t := range types {
		out = append(out, events.NATSSubject("*", t))
	}
	return out
}

// SchedulesSpec is the consumer of the events that arm timers: policy decisions, since a decision
// carries every deadline the approval service keeps for a request (the approval window, an emergency's
// post-review), and the opening of access reviews, which carries the campaign's.
func SchedulesSpec() consumer.Spec {
	return consumer.Spec{Stream: topology.ApprovalSchedules.Stream, Durable: topology.ApprovalSchedules.Durable,
		FilterSubjects: subjects(events.TypePolicyDecided, events.TypeCampaignOpened)}
}

// TimersSpec is the consumer of the approval service's fired timers.
func TimersSpec() consumer.Spec {
	return consumer.Spec{Stream: topology.ApprovalTimers.Stream, Durable: topology.ApprovalTimers.Durable,
		FilterSubjects: []string{topology.TimerFired("*", topology.TimerApprovalWindow), topology.TimerFired("*", topology.TimerPostReview),
			topology.TimerFired("*", topology.TimerCampaign)}}
}

// InboxSpec is the consumer feeding the review inbox, in batches (consumer.RunBatch): one batch at a
// time keeps the checkpoint moving forward in stream order; correctness does not depend on it (rows
// are versioned per request). stall (may be nil) reports a delivery held while the database or the
// broker is down.
func InboxSpec(stall *consumer.Stall) consumer.Spec {
	return consumer.Spec{Stream: topology.ApprovalInbox.Stream, Durable: topology.ApprovalInbox.Durable, FilterSubjects: subjects(InboxTypes...),
		Stall: stall}
}

// Reactions are the approval service's handlers.
type Reactions struct {
	JS    jetstream.JetStream
	Store *eventstore.Store
	Now   func() time.Time
	Log   *slog.Logger
}

// Schedule handles policy_decided: it arms the approval window of a decision that asks for approval,
// and the post-review deadline of an emergency; and campaign_opened: it arms the campaign's clock
// (Campaign). Arming twice stores one schedule.
//
// It decides on the delivered decision alone (verified: policy's signature, a type policy may emit),
// without loading the request: arming a timer writes no evidence, and the reaction to the fired timer
// loads and verifies the whole request before it appends anything. The post-review deadline is armed
// at the decision rather than at the grant, since the decision fixes it; a deadline that passes before
// the grant is made waits for the grant (approval.Overdue).
func (h *Reactions) Schedule(ctx context.Context, msg jetstream.Msg) error {
	if id, t, err := events.ParseNATSSubject(msg.Subject()); err == nil && t == events.TypeCampaignOpened {
		return h.Campaign(ctx, id)
	}
	d, err := h.Store.Receive(msg)
	if err != nil {
		return consumer.Permanent(err)
	}
	decision, ok := d.Event.Payload.(events.PolicyDecided)
	if !ok {
		return consumer.Permanent(fmt.Errorf("schedules: %s is not a policy decision", d.Event.Type.Name()))
	}
	log := h.Log.With(telemetry.KeyRequestID, d.RequestID, telemetry.KeyEventType, d.Event.Type.Name())
	if decision.Outcome == events.OutcomeApprovalRequired && decision.ApprovalDeadline != nil {
		deadline := *decision.ApprovalDeadline
		if err := timers.Arm(ctx, h.JS, timers.Armed{RequestID: d.RequestID, Kind: topology.TimerApprovalWindow, AfterSeq: d.Seq}, deadline); err != nil {
			return err
		}
		log.Info("approval window armed", "deadline", deadline.UTC().Format(time.RFC3339))
	}
	if decision.Outcome == events.OutcomeEmergency && decision.PostReview != nil {
		deadline := decision.PostReview.Deadline
		if err := timers.Arm(ctx, h.JS, timers.Armed{RequestID: d.RequestID, Kind: topology.TimerPostReview, AfterSeq: d.Seq}, deadline); err != nil {
			return err
		}
		log.Info("post-review deadline armed", "deadline", deadline.UTC().Format(time.RFC3339))
	}
	return nil
}

// Fired handles a fired timer: the approval window appends rejected (timeout) to a request still
// pending, the post-review deadline appends post_review_overdue to an emergency grant still not
// post-reviewed; a timer that finds nothing to do (the request moved on) is acknowledged. A timer that
// fires before the deadline by this clock is retried at the deadline.
func (h *Reactions) Fired(ctx context.Context, msg jetstream.Msg) error {
	fired, err := timers.ParseArmed(msg)
	if err != nil {
		return consumer.Permanent(err)
	}
	id, kind := fired.RequestID, fired.Kind
	if !events.ValidRequestID(id) {
		return consumer.Permanent(fmt.Errorf("timer %s for %q: not a request ID", kind, id))
	}
	if kind == topology.TimerCampaign {
		return h.Campaign(ctx, id)
	}
	var decide func(*events.Request, time.Time) ([]events.Draft, error)
	switch kind {
	case topology.TimerApprovalWindow:
		decide = approval.Timeout
	case topology.TimerPostReview:
		decide = approval.Overdue
	default:
		return consumer.Permanent(fmt.Errorf("timer kind %q is not the approval service's", kind))
	}
	u, err := h.Store.UpdateFrom(ctx, id, fired.AfterSeq, func(r *events.Request) ([]events.Draft, error) {
		return decide(r, h.Now())
	})
	var early *approval.TooEarlyError
	if errors.As(err, &early) {
		return consumer.RetryAfter(err, time.Until(early.Until)+50*time.Millisecond)
	}
	if permanent(err) {
		return consumer.Permanent(err)
	}
	if err != nil {
		return err
	}
	log := h.Log.With(telemetry.KeyRequestID, id, "timer", kind)
	if len(u.Appended) > 0 {
		log.Info("deadline passed", "status", u.Request.Status())
	} else {
		log.Debug("timer found nothing to do", "status", u.Request.Status())
	}
	return nil
}

// Campaign runs campaign id's clock: it appends what is due now (a reminder, the escalation, the
// closing; approval.CampaignDue) and arms the timer for the next reminder or deadline. A campaign whose
// next time has not come by this clock, within the second the scheduler rounds to, is retried then
// rather than armed again for the same second (which the scheduler would take for a repeat).
func (h *Reactions) Campaign(ctx context.Context, id string) error {
	var next time.Time
	now := h.Now()
	u, err := h.Store.UpdateCampaign(ctx, id, func(c *events.Campaign) ([]events.Draft, error) {
		var drafts []events.Draft
		drafts, next = approval.CampaignDue(c, now)
		return drafts, nil
	})
	if permanent(err) {
		return consumer.Permanent(err)
	}
	if err != nil {
		return err
	}
	if u.Campaign.Status() == events.CampaignStatusNone {
		// campaign_opened was delivered, so it is stored: this replica has yet to show it.
		return fmt.Errorf("campaign %s: not yet readable", id)
	}
	if next.IsZero() {
		return nil
	}
	if next.Sub(now) < 2*time.Second {
		return consumer.RetryAfter(fmt.Errorf("campaign %s is next due at %s", id, next.UTC().Format(time.RFC3339Nano)), time.Until(next)+50*time.Millisecond)
	}
	if err := timers.Arm(ctx, h.JS, timers.Armed{RequestID: id, Kind: topology.TimerCampaign, AfterSeq: u.LastSeq()}, next); err != nil {
		return err
	}
	h.Log.Info("campaign clock armed", "campaign", id, "status", u.Campaign.Status(), "next", next.UTC().Format(time.RFC3339))
	return nil
}

// Inbox is where the projection writes; *postgres.Inbox implements it.
type Inbox interface {
	Applied(ctx context.Context, requestIDs []string) (map[string]uint64, error)
	Apply(ctx context.Context, delivered uint64, snaps []approval.Snapshot) (int, error)
	Advance(ctx context.Context, delivered uint64) error
}

// Project is the inbox projection's handler (consumer.RunBatch): of a batch of deliveries it skips
// those the inbox already reflects, reads each other request once, as the verified stream has it now,
// and writes their rows and the checkpoint in one transaction. A delivery that can never be applied
// fails its batch; alone (the runner hands a failed batch back one delivery at a time) it is set aside
// for good: the checkpoint moves past it, so a restart does not mistake the dead letter for a lost
// database and rebuild. Any other failure (the database, the broker) is Unavailable: the delivery is
// held, in order, until it can be written, and never dead-lettered for it.
func (h *Reactions) Project(inbox Inbox) consumer.BatchHandler {
	return func(ctx context.Context, msgs []jetstream.Msg) error {
		setAside := func(seq uint64, err error) error {
			if len(msgs) > 1 {
				return err
			}
			if aerr := inbox.Advance(ctx, seq); aerr != nil {
				return unavailable(aerr)
			}
			return consumer.Permanent(err)
		}
		// through is, per request, the stream sequence of its last event in the batch; awaits says
		// whether one of them shows that the request awaits (or awaited) reviewers.
		through := map[string]uint64{}
		awaits := map[string]bool{}
		var ids []string
		var last uint64
		for _, msg := range msgs {
			d, err := h.Store.Receive(msg)
			if err != nil {
				meta, merr := msg.Metadata()
				if merr != nil {
					return consumer.Permanent(err)
				}
				return setAside(meta.Sequence.Stream, err)
			}
			if _, ok := through[d.RequestID]; !ok {
				ids = append(ids, d.RequestID)
			}
			through[d.RequestID] = max(through[d.RequestID], d.Seq)
			awaits[d.RequestID] = awaits[d.RequestID] || awaitsReviewers(d.Event)
			last = max(last, d.Seq)
		}
		applied, err := inbox.Applied(ctx, ids)
		if err != nil {
			return unavailable(err)
		}
		var snaps []approval.Snapshot
		for _, id := range ids {
			if applied[id] >= through[id] {
				continue
			}
			// A request that never awaited reviewers has no row and needs none: most requests are
			// decided without review, and reading them only to write nothing is most of this work.
			if applied[id] == 0 && !awaits[id] {
				continue
			}
			l, err := h.Store.LoadAtLeast(ctx, id, through[id])
			if permanent(err) {
				return setAside(last, err)
			}
			if err != nil {
				return unavailable(err)
			}
			snaps = append(snaps, approval.Snapshot{Request: l.Request, Seq: l.LastSeq})
		}
		if len(snaps) == 0 {
			return unavailable(inbox.Advance(ctx, last))
		}
		_, err = inbox.Apply(ctx, last, snaps)
		return unavailable(err)
	}
}

// awaitsReviewers reports whether ev shows, on its own, that its request awaits or awaited reviewers:
// a decision asking for approval or for an emergency's post-review, and every event of a review. A
// grant or a withdrawal says nothing either way; it concerns the inbox only if the request has a row
// there already (written when its decision was projected, which comes first in stream order).
func awaitsReviewers(ev events.Event) bool {
	switch p := ev.Payload.(type) {
	case events.PolicyDecided:
		return p.Outcome == events.OutcomeApprovalRequired || p.PostReview != nil
	case events.Granted, events.Withdrawn:
		return false
	}
	return true
}

// unavailable marks a failure of a dependency (the inbox's database, the broker) as Unavailable; nil
// stays nil.
func unavailable(err error) error {
	if err == nil {
		return nil
	}
	return consumer.Unavailable(err)
}

// permanent reports what no retry can change: a stream that fails verification or that the aggregate
// refuses is not what Grantline wrote.
func permanent(err error) bool {
	return errors.Is(err, events.ErrViolation) || errors.Is(err, events.ErrRefused) || errors.Is(err, events.ErrMalformed)
}

// ResetInboxIfBehind deletes the inbox's durable consumer when the database has applied less than the
// consumer has acknowledged (a new or restored database), so that the consumer is created again from
// the start of the stream and the inbox is rebuilt. checkpoint is the database's Inbox.Checkpoint.
func ResetInboxIfBehind(ctx context.Context, js jetstream.JetStream, checkpoint uint64, log *slog.Logger) error {
	c, err := js.Consumer(ctx, topology.ApprovalInbox.Stream, topology.ApprovalInbox.Durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("inbox consumer: %w", err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		return fmt.Errorf("inbox consumer: %w", err)
	}
	if checkpoint >= info.AckFloor.Stream {
		return nil
	}
	log.Warn("review inbox is behind its consumer; rebuilding from the stream", "checkpoint", checkpoint, "ack_floor", info.AckFloor.Stream)
	if err := js.DeleteConsumer(ctx, topology.ApprovalInbox.Stream, topology.ApprovalInbox.Durable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("reset inbox consumer: %w", err)
	}
	return nil
}
