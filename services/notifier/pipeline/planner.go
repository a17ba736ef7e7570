package pipeline

import (
	"context"
	"encoding/json/v2"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/telemetry"
	"github.com/grantline/grantline/pkg/timers"
	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/services/notifier"
	"github.com/grantline/grantline/services/notifier/channel"
	"github.com/grantline/grantline/services/notifier/natskv"
)

// reminderKinds maps each reminder to the timer kind it is armed as (pkg/topology's names).
var reminderKinds = map[notifier.Reminder]string{
	notifier.RemindExpiry:     topology.TimerNotifyExpiry,
	notifier.RemindReview:     topology.TimerNotifyReview,
	notifier.RemindPostReview: topology.TimerNotifyPostReview,
	notifier.RemindTask:       topology.TimerNotifyTask,
}

// planner turns events and fired reminders into outbox entries and arms the next reminders.
type planner struct {
	rules notifier.Rules
	store *eventstore.Store
	js    jetstream.JetStream
	// hold is how long an e-mail or a Slack message waits in the outbox for more to coalesce with.
	hold          time.Duration
	maxDeliveries int
	now           func() time.Time
	log           *slog.Logger
}

// errPermanent marks what no redelivery can fix; the poison queue takes it.
type errPermanent struct{ error }

func (e errPermanent) Unwrap() error { return e.error }

func isPermanent(err error) bool {
	var p errPermanent
	return errors.As(err, &p) || channel.IsPermanent(err)
}

// giveUp turns a failure into a permanent one once msg was delivered maxDeliveries times: planning
// that keeps failing (a request that cannot be loaded) is set aside with its reason, not retried for
// ever.
func (p *planner) giveUp(msg *message.Message, err error) error {
	if err != nil && !isPermanent(err) && delivered(msg) >= p.maxDeliveries {
		return errPermanent{fmt.Errorf("failed %d deliveries, last: %w", delivered(msg), err)}
	}
	return err
}

// event plans the notifications of one event of the evidence stream: the request is loaded (verified)
// at least up to the event, folded before and after it, and the rules decide.
func (p *planner) event(msg *message.Message) ([]*message.Message, error) {
	out, err := p.planEvent(msg)
	return out, p.giveUp(msg, err)
}

func (p *planner) planEvent(msg *message.Message) ([]*message.Message, error) {
	ctx := msg.Context()
	id, typ, err := events.ParseNATSSubject(msg.Metadata.Get(metaSubject))
	if err != nil {
		return nil, errPermanent{err}
	}
	if !typ.Request() && !typ.Campaign() {
		return nil, nil // a lock is no request: nobody is told of it through a request's rules
	}
	seq, err := strconv.ParseUint(msg.Metadata.Get(metaSeq), 10, 64)
	if err != nil {
		return nil, errPermanent{fmt.Errorf("stream sequence: %w", err)}
	}
	if typ.Campaign() {
		return p.planCampaign(ctx, id, seq)
	}
	log := p.log.With(telemetry.KeyRequestID, id, telemetry.KeyEventType, typ.Name())
	l, err := p.store.LoadAtLeast(ctx, id, seq)
	if err != nil {
		var violation *events.Violation
		if errors.As(err, &violation) || errors.Is(err, events.ErrRefused) {
			return nil, errPermanent{err}
		}
		return nil, err
	}
	before, after := events.NewRequest(id), events.NewRequest(id)
	for i, rec := range l.Records {
		if rec.Seq > seq {
			break
		}
		if err := after.Apply(l.Events[i]); err != nil {
			return nil, errPermanent{err}
		}
		if rec.Seq == seq {
			plan := p.rules.Plan(l.Events[i], before, after)
			return p.carryOut(ctx, log, id, plan)
		}
		_ = before.Apply(l.Events[i]) // accepted by after just now
	}
	return nil, errPermanent{fmt.Errorf("request %s has no event at stream sequence %d", id, seq)}
}

// planCampaign plans what an access review's event at stream sequence seq tells, on the campaign as
// it stands then (the campaign's events after it change no one's audience for it).
func (p *planner) planCampaign(ctx context.Context, id string, seq uint64) ([]*message.Message, error) {
	c, err := p.store.LoadCampaign(ctx, id)
	if err != nil {
		var violation *events.Violation
		if errors.As(err, &violation) || errors.Is(err, events.ErrRefused) {
			return nil, errPermanent{err}
		}
		return nil, err
	}
	ev, then, ok := c.At(seq)
	if !ok {
		return nil, fmt.Errorf("campaign %s: want stream sequence %d: %w", id, seq, eventstore.ErrStale)
	}
	log := p.log.With("campaign", id, telemetry.KeyEventType, ev.Type.Name())
	return p.carryOut(ctx, log, id, p.rules.PlanCampaign(ev, then))
}

// reminder plans what a fired reminder tells, on the request as it is now.
func (p *planner) reminder(msg *message.Message) ([]*message.Message, error) {
	out, err := p.planReminder(msg)
	return out, p.giveUp(msg, err)
}

func (p *planner) planReminder(msg *message.Message) ([]*message.Message, error) {
	ctx := msg.Context()
	id, kind, ok := topology.ParseTimerFired(msg.Metadata.Get(metaSubject))
	if !ok || !events.ValidRequestID(id) {
		return nil, errPermanent{fmt.Errorf("%q is not a notifier reminder", msg.Metadata.Get(metaSubject))}
	}
	var t notifier.Timer
	if err := json.Unmarshal(msg.Payload, &t); err != nil || reminderKinds[t.Reminder] != kind {
		return nil, errPermanent{fmt.Errorf("reminder %s for %s: payload %q does not match", kind, id, msg.Payload)}
	}
	l, err := p.store.Load(ctx, id)
	if err != nil {
		var violation *events.Violation
		if errors.As(err, &violation) || errors.Is(err, events.ErrRefused) {
			return nil, errPermanent{err}
		}
		return nil, err
	}
	log := p.log.With(telemetry.KeyRequestID, id, "reminder", string(t.Reminder))
	return p.carryOut(ctx, log, id, p.rules.Remind(t, l.Request))
}

// carryOut arms the plan's reminders and returns its notifications as outbox entries, for the router
// to store before it acknowledges the cause.
func (p *planner) carryOut(ctx context.Context, log *slog.Logger, id string, plan notifier.Plan) ([]*message.Message, error) {
	for _, t := range plan.Timers {
		payload, err := json.Marshal(t)
		if err != nil {
			return nil, errPermanent{err}
		}
		if err := timers.Schedule(ctx, p.js, id, reminderKinds[t.Reminder], t.At, payload); err != nil {
			return nil, err
		}
	}
	now := p.now()
	var out []*message.Message
	for _, n := range plan.Notifications {
		e := natskv.Entry{Notification: n, NotBefore: now}
		if n.Channel != notifier.Webhook {
			e.NotBefore = now.Add(p.hold)
		}
		b, err := natskv.Encode(e)
		if err != nil {
			return nil, errPermanent{err}
		}
		out = append(out, message.NewMessage(natskv.Key(n), b))
	}
	if len(out) > 0 || len(plan.Timers) > 0 {
		log.Info("planned", "notifications", len(out), "reminders", len(plan.Timers))
	}
	return out, nil
}
