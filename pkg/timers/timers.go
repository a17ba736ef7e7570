// Package timers schedules one-shot timers per request with the JetStream message scheduler in
// GRANTLINE_TIMERS: a schedule message on grantline.timers.sched.<requestID>.<kind> makes the server
// publish its payload to grantline.timers.fired.<requestID>.<kind> at the given time. Services consume
// the fired subjects of their kinds and decide on the request as it is then; a timer is a reminder to
// look, never evidence, so a stale or repeated fire must be harmless to its handler.
//
// How the scheduler behaves (server 2.14+, ADR-51): one schedule per subject (the server rolls the
// subject up, so scheduling again replaces the earlier timer); a schedule already past due fires at
// once; nothing fires sooner than 250 ms after it is set; the fired copy carries the schedule's body and
// headers minus the scheduling ones and Nats-Msg-Id, and the schedule message is purged when it fires.
package timers

import (
	"context"
	"encoding/json/jsontext"
	"encoding/json/v2"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/telemetry"
	"github.com/grantline/grantline/pkg/topology"
)

// ErrInvalid is wrapped by the errors for a request ID, kind or payload a timer cannot carry.
var ErrInvalid = errors.New("invalid timer")

// FiredTTL is how long a fired trigger stays in GRANTLINE_TIMERS. Consumers handle it within seconds;
// without a TTL the disposable stream would keep every trigger for ever. A service down for longer
// relies on its start-up sweep (the revoker's) rather than on old triggers.
const FiredTTL = 30 * 24 * time.Hour

// Schedule sets timer kind of requestID to fire at at, carrying payload (JSON, or nil for "{}"). Scheduling
// the same timer again replaces it, whether it moves earlier or later; a time already past fires at once.
//
// The scheduler works in whole seconds, so at is rounded up to the next second: a timer never fires
// before the time it was set for. The message ID is derived from the request, the kind and that second,
// so repeating one call (a redelivered reaction) stores one schedule; a different time replaces it.
// One consequence of the ID: within the server's duplicate window (10 minutes), setting a timer back
// to a second it was already set to in that window (A, then B, then A again) is taken for a repeat
// and B stays in force.
// It returns an error wrapping ErrInvalid for a request ID or kind that is not one subject token or a
// payload that is not JSON, and the server's error if the schedule was not stored.
//
// The fire carries no trace context: a timer that reschedules itself from its own fire (the
// reconciler's) would otherwise chain every run into one endless trace. Arm's timers carry it.
func Schedule(ctx context.Context, js jetstream.JetStream, requestID, kind string, at time.Time, payload []byte) error {
	return schedule(ctx, js, requestID, kind, at, payload, false)
}

// Wake sets timer kind of id to fire at at, as Schedule does (and with its errors), but every call
// stores a schedule: one still waiting is replaced (one fire), and one that fired already fires again,
// at once for a time past. It is for a timer shared by many things due at the same time (the revoker's
// expiries of one second): whoever adds one after the timer fired must make it fire again, and
// Schedule's message ID would take that for a repeat within the server's duplicate window.
func Wake(ctx context.Context, js jetstream.JetStream, id, kind string, at time.Time) error {
	return store(ctx, js, id, kind, at, nil, false, false)
}

// schedule is Schedule, with the trace context of ctx in the schedule's headers when traced.
func schedule(ctx context.Context, js jetstream.JetStream, requestID, kind string, at time.Time, payload []byte, traced bool) error {
	return store(ctx, js, requestID, kind, at, payload, traced, true)
}

// store stores the schedule, with a message ID derived from the timer and its second when deduped.
func store(ctx context.Context, js jetstream.JetStream, requestID, kind string, at time.Time, payload []byte, traced, deduped bool) error {
	if err := checkToken("request ID", requestID); err != nil {
		return err
	}
	if err := checkToken("kind", kind); err != nil {
		return err
	}
	if payload == nil {
		payload = []byte("{}")
	}
	if !jsontext.Value(payload).IsValid() {
		return fmt.Errorf("%w: payload of %s timer for %s is not JSON", ErrInvalid, kind, requestID)
	}
	at = ceilSecond(at)
	msgID := fmt.Sprintf("timer:%s:%s:%d", requestID, kind, at.Unix())
	msg := nats.NewMsg(topology.TimerSchedule(requestID, kind))
	msg.Data = payload
	if traced {
		// The fired copy keeps the schedule's headers: its handler continues the trace that armed it.
		telemetry.Inject(ctx, msg.Header)
	}
	opts := []jetstream.PublishOpt{jetstream.WithScheduleAt(at), jetstream.WithScheduleTarget(topology.TimerFired(requestID, kind)),
		jetstream.WithScheduleTTL(FiredTTL), jetstream.WithExpectStream(topology.TimersStream)}
	if deduped {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	_, err := js.PublishMsg(ctx, msg, opts...)
	if err != nil {
		return fmt.Errorf("schedule %s timer for request %s at %s: %w", kind, requestID, at.Format(time.RFC3339), err)
	}
	return nil
}

// Msg is what ParseFired reads from a delivered message; jetstream.Msg satisfies it.
type Msg interface {
	Subject() string
	Data() []byte
}

// ParseFired splits a fired timer into its request ID, kind and payload. It returns an error wrapping
// ErrInvalid for a message that is not on grantline.timers.fired.<requestID>.<kind>.
func ParseFired(msg Msg) (requestID, kind string, payload []byte, err error) {
	requestID, kind, ok := topology.ParseTimerFired(msg.Subject())
	if !ok || checkToken("request ID", requestID) != nil || checkToken("kind", kind) != nil {
		return "", "", nil, fmt.Errorf("%w: %q is not grantline.timers.fired.<request>.<kind>", ErrInvalid, msg.Subject())
	}
	return requestID, kind, msg.Data(), nil
}

// Armed is a timer a reaction armed on the evidence stream, as Arm stores it and ParseArmed reads it
// back when it fires: the reaction to the fired timer decides on the request as it is then, and at
// least as far as AfterSeq.
type Armed struct {
	RequestID string
	Kind      string
	// AfterSeq is the stream sequence of the evidence event that armed the timer.
	AfterSeq uint64
}

// armedPayload is Armed's wire form; the subject carries the request ID and the kind.
type armedPayload struct {
	AfterSeq uint64 `json:"after_seq"`
}

// Arm schedules timer a to fire at at, as Schedule does (and with its errors), and its fire continues
// the trace of ctx: the reaction that armed it and the one to its fire read as one request's path.
func Arm(ctx context.Context, js jetstream.JetStream, a Armed, at time.Time) error {
	payload, err := json.Marshal(armedPayload{AfterSeq: a.AfterSeq})
	if err != nil {
		return err
	}
	return schedule(ctx, js, a.RequestID, a.Kind, at, payload, true)
}

// ParseArmed reads a fired timer that Arm scheduled. It returns an error wrapping ErrInvalid for a
// message that is not on grantline.timers.fired.<requestID>.<kind> or whose payload is not Arm's,
// strictly decoded.
func ParseArmed(msg Msg) (Armed, error) {
	id, kind, raw, err := ParseFired(msg)
	if err != nil {
		return Armed{}, err
	}
	var p armedPayload
	if err := json.Unmarshal(raw, &p, json.RejectUnknownMembers(true)); err != nil {
		return Armed{}, fmt.Errorf("%w: payload of %s timer for %s: %v", ErrInvalid, kind, id, err)
	}
	return Armed{RequestID: id, Kind: kind, AfterSeq: p.AfterSeq}, nil
}

// checkToken refuses anything that is not exactly one NATS subject token: an ID with a dot or a
// wildcard would schedule or fire outside its own subject.
func checkToken(what, s string) error {
	if s == "" || strings.ContainsAny(s, ".*> \t\r\n") {
		return fmt.Errorf("%w: %s %q is not a single subject token", ErrInvalid, what, s)
	}
	return nil
}

// ceilSecond rounds t up to a whole second: WithScheduleAt drops the fraction, which would fire early.
func ceilSecond(t time.Time) time.Time {
	if s := t.Truncate(time.Second); s.Before(t) {
		return s.Add(time.Second)
	}
	return t
}
