package policyd

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/grantline/grantline/pkg/auth"
	"github.com/grantline/grantline/pkg/consumer"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/telemetry"
	"github.com/grantline/grantline/pkg/timers"
	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/services/policy"
)

// Groups tells the start check which groups a person is in now.
type Groups interface {
	// Groups returns id's groups now: none for a person the source does not know (they left), an error
	// when it cannot tell, and then the check fails the attempt like the policy would.
	Groups(ctx context.Context, id string) ([]string, error)
}

// DirectoryGroups reads the people directory file (pkg/auth's format, the notifier's
// GRANTLINE_DIRECTORY) at every call: start checks are rare, and so a change to the file (a person
// leaving a group, a ConfigMap updated in place) counts from the next check without a restart.
type DirectoryGroups struct{ Path string }

// Groups implements Groups.
func (d DirectoryGroups) Groups(_ context.Context, id string) ([]string, error) {
	dir, err := auth.LoadDirectory(d.Path)
	if err != nil {
		return nil, err
	}
	u, ok := dir.User(id)
	if !ok {
		return nil, nil
	}
	return u.Groups, nil
}

// startCausation is the causation of every start check: a request is checked once.
const startCausation = "start-check"

// armStart sets the start timer of r if it awaits its start check, to fire at its start (at once for a
// start already past); seq is the stream sequence of the event that made r approved, so the check reads
// the request at least that far. Arming again is harmless: the timer is replaced by the same one.
func (s *service) armStart(ctx context.Context, r *events.Request, seq uint64) error {
	if !r.StartCheckDue() {
		return nil
	}
	start := *r.Submitted().StartAt
	if err := timers.Arm(ctx, s.js, timers.Armed{RequestID: r.ID(), Kind: topology.TimerGrantStart, AfterSeq: seq}, start); err != nil {
		return fmt.Errorf("arm the start check of %s: %w", r.ID(), err)
	}
	return nil
}

// handleApproved arms the start check of an approved request that asked for a later start.
func (s *service) handleApproved(ctx context.Context, msg jetstream.Msg) error {
	d, l, err := s.delivered(ctx, msg)
	if err != nil {
		return err
	}
	return s.armStart(ctx, l.Request, d.Seq)
}

// errEarly is the start timer firing before the start by this service's clock.
var errEarly = errors.New("before the requested start")

// handleStart is the reaction to a fired start timer: a request approved for access from a later time
// is evaluated again now, with its requester's groups, the catalogue and the locks as they are now, and
// start_checked records whether it may still be granted. If policy cannot evaluate it, the delivery
// fails and is retried; on the last allowed delivery a check that is not allowed is recorded with the
// error. Policy never lets a request through on error.
func (s *service) handleStart(ctx context.Context, msg jetstream.Msg) error {
	fired, err := timers.ParseArmed(msg)
	if err == nil && !events.ValidRequestID(fired.RequestID) {
		err = fmt.Errorf("start timer for %q: not a request ID", fired.RequestID)
	}
	if err != nil {
		return consumer.Permanent(err)
	}
	meta, err := msg.Metadata()
	if err != nil {
		return consumer.Permanent(fmt.Errorf("delivery metadata: %w", err))
	}
	last := int(meta.NumDelivered) >= s.maxDeliveries
	log := s.log.With(telemetry.KeyRequestID, fired.RequestID)
	var early time.Duration
	var failure error
	u, err := s.store.UpdateFrom(ctx, fired.RequestID, fired.AfterSeq, func(r *events.Request) ([]events.Draft, error) {
		if !r.StartCheckDue() {
			return nil, nil
		}
		now := s.now()
		if start := *r.Submitted().StartAt; now.Before(start) {
			early = start.Sub(now)
			return nil, nil
		}
		chk, err := s.checkStart(ctx, r, now, last)
		if err != nil {
			return nil, err
		}
		failure = chk.failure
		return []events.Draft{{Payload: chk.event, CausationID: startCausation}}, nil
	})
	if err == nil {
		// An emergency denied at its start owes no post-review: its open-review marker is settled.
		err = s.reviews.sync(ctx, u.Request)
	}
	switch {
	case err != nil:
		log.Warn("policy could not check the request at its start", telemetry.KeyError, err.Error(), "delivered", meta.NumDelivered)
		return fmt.Errorf("check request %s at its start: %w", fired.RequestID, err)
	case early > 0:
		// The scheduler fires on the server's clock, in whole seconds: look again at the start.
		return consumer.RetryAfter(errEarly, early+50*time.Millisecond)
	case len(u.Appended) == 0:
		log.Info("nothing to check at the start", "status", string(u.Request.Status()))
		return nil
	}
	chk := u.Request.StartCheck()
	s.startChecks.Add(ctx, 1, metric.WithAttributes(attribute.Bool("allowed", chk.Allowed), attribute.Bool("failed", failure != nil)))
	if failure != nil {
		log.Error("policy could not check the request at its start; it is not granted", "policy_revision", chk.PolicyRevision,
			telemetry.KeyError, failure.Error())
		return nil
	}
	log.Info("checked at the start", "allowed", chk.Allowed, "outcome", string(chk.Outcome), "groups_from", string(chk.GroupsFrom),
		"policy_revision", chk.PolicyRevision)
	return nil
}

// startChecked is a start check ready to append, and the error it records if policy failed to check.
type startChecked struct {
	event   events.StartChecked
	failure error
}

// checkStart evaluates r at now with its requester's groups now (from the directory, or as submitted
// when the service has none). If anything fails, it returns the error, or on the last attempt a check
// that is not allowed, recording it.
func (s *service) checkStart(ctx context.Context, r *events.Request, now time.Time, last bool) (startChecked, error) {
	sub := r.Submitted()
	c := policy.Checked{Groups: sub.Requester.Groups, From: events.GroupsFromSubmission}
	var err error
	if s.groups != nil {
		c.From = events.GroupsFromDirectory
		c.Groups, err = s.groups.Groups(ctx, sub.Requester.ID)
	}
	sub.Requester.Groups = c.Groups
	var ev policy.Evaluation
	in := s.input(sub, now)
	if err == nil {
		ev, err = s.evaluateInput(ctx, r.ID(), sub, &in)
	}
	if err == nil {
		return startChecked{event: ev.StartCheck(r, c)}, nil
	}
	if !last || ctx.Err() != nil {
		return startChecked{}, err
	}
	return startChecked{event: policy.FailedStartCheck(err, s.engine.Revision(), inputDigest(in), c), failure: err}, nil
}
