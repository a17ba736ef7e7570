// Package reaction is the revoker's side of the stream: it arms each grant's expiry in the timer of the
// second it falls due (expiry.go), revokes the grants of a second in batches when it fires, and revokes
// through the entitlement's connector whenever a revocation is due otherwise (early request, flagged
// post-review, lock, or an expiry whose first attempt failed), recording what the target shows
// afterwards.
//
// A revocation is never given up: the consumers that revoke retry with a capped backoff for as long as
// it takes (their delivery limit is effectively infinite, so nothing is ever dead-lettered for
// failing), and once the retry budget is spent the failure is recorded as revocation_failed with the
// time the revocation has been overdue since, then again at most every FailurePolicy.Every. The
// revoker holds no per-grant state in memory: every pending expiry is a key in GRANTLINE_EXPIRIES under
// a schedule in GRANTLINE_TIMERS, every pending revocation an unacknowledged message.
package reaction

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric"

	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/connector"
	"github.com/grantline/grantline/pkg/connector/targets"
	"github.com/grantline/grantline/pkg/consumer"
	"github.com/grantline/grantline/pkg/credential"
	"github.com/grantline/grantline/pkg/deadletter"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/manualtask"
	"github.com/grantline/grantline/pkg/streamscan"
	"github.com/grantline/grantline/pkg/telemetry"
	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/services/revoker"
)

// forever is the delivery limit of the consumers that revoke: the runner dead-letters after
// MaxDeliveries, and a revocation must never be dropped.
const forever = math.MaxInt32

// Defaults of Reactions' tunables.
const (
	DefaultBackoffCap     = time.Minute
	DefaultBudget         = 5
	DefaultEvery          = 5 * time.Minute
	DefaultAttemptTimeout = 10 * time.Second
)

// SchedulesSpec is the consumer of granted events, which arms their expiry (in batches: Schedule).
func SchedulesSpec() consumer.Spec {
	return consumer.Spec{
		Stream:         topology.RevokerSchedules.Stream,
		Durable:        topology.RevokerSchedules.Durable,
		FilterSubjects: []string{events.NATSSubject("*", events.TypeGranted)},
	}
}

// RevocationsSpec is the consumer of the events that make a revocation due one grant at a time: before
// expiry, and expired, which records an expiry whose first attempt failed.
func RevocationsSpec(backoffCap time.Duration) consumer.Spec {
	return consumer.Spec{
		Stream:  topology.RevokerRevocations.Stream,
		Durable: topology.RevokerRevocations.Durable,
		FilterSubjects: []string{
			events.NATSSubject("*", events.TypeRevocationRequested),
			events.NATSSubject("*", events.TypeExpired),
			events.NATSSubject("*", events.TypePostReviewed),
			events.NATSSubject("*", events.TypeLockPlaced),
			events.NATSSubject("*", events.TypeCampaignDecided),
			events.NATSSubject("*", events.TypeCampaignClosed),
		},
		MaxDeliveries: forever,
		Backoff:       consumer.ExponentialBackoff(250*time.Millisecond, backoffCap),
	}
}

// ExpirySpec is the consumer of fired expiry timers, one per second with grants due. A second of a
// shift change holds thousands of grants, revoked in one handler run that may take minutes: it is kept
// in progress that long.
func ExpirySpec(backoffCap time.Duration) consumer.Spec {
	return consumer.Spec{
		Stream:         topology.RevokerExpiry.Stream,
		Durable:        topology.RevokerExpiry.Durable,
		FilterSubjects: []string{topology.TimerFired("*", topology.TimerExpiry)},
		HandleTimeout:  10 * time.Minute,
		MaxDeliveries:  forever,
		Backoff:        consumer.ExponentialBackoff(250*time.Millisecond, backoffCap),
	}
}

// Reactions are the revoker's handlers.
type Reactions struct {
	JS jetstream.JetStream
	// Expiries is the index of armed expiries by second (ExpiriesConfig).
	Expiries   jetstream.KeyValue
	Store      *eventstore.Store
	Catalogue  *catalogue.Catalogue
	Connectors connector.Set
	// Credentials, if set, loses a revoked grant's unretrieved secret at once (it would expire anyway).
	Credentials *credential.Store
	Now         func() time.Time
	Log         *slog.Logger
	// Failures says when failing attempts are recorded; zero fields get DefaultBudget and DefaultEvery.
	Failures revoker.FailurePolicy
	// BackoffCap caps the delay between attempts; 0 means DefaultBackoffCap.
	BackoffCap time.Duration
	// AttemptTimeout bounds one attempt at the target (shorter than Failures.SLO, so a hanging target
	// neither hides an overdue revocation nor holds a handler slot for long); 0 means
	// DefaultAttemptTimeout.
	AttemptTimeout time.Duration
	// RevocationLag records the time from a revocation falling due (the expiry, the early request, the
	// flagged post-review) to the revocation recorded with the target's final state. Nil records nothing.
	RevocationLag metric.Float64Histogram
	// ConnectorErrors counts the revocations a connector failed.
	ConnectorErrors targets.Errors
	// BatchSize is how many grants of one connector an expiry revokes at once; 0 means
	// DefaultBatchSize.
	BatchSize int
}

// Schedule handles granted events in batches (consumer.RunBatch): each live grant's expiry goes in the
// index, then each second with grants among them is woken once, so a burst of grants (a revoker
// catching up after a stop) wakes a second once per batch, not once per grant. Arming twice stores one
// key. An error fails the batch, whose deliveries the runner then hands over one at a time.
func (h *Reactions) Schedule(ctx context.Context, msgs []jetstream.Msg) error {
	var mu sync.Mutex
	var first error
	seconds := map[int64]bool{}
	each(len(msgs), func(i int) {
		sec, armed, err := h.index(ctx, msgs[i])
		mu.Lock()
		defer mu.Unlock()
		first = cmp.Or(first, err)
		if armed {
			seconds[sec] = true
		}
	})
	if first != nil {
		return first
	}
	for sec := range seconds {
		if err := h.wake(ctx, sec); err != nil {
			return err
		}
	}
	return nil
}

// index puts the expiry of the grant msg records in the index, continuing msg's trace, and returns its
// second; armed is false for a request no longer live.
func (h *Reactions) index(ctx context.Context, msg jetstream.Msg) (sec int64, armed bool, err error) {
	d, err := h.Store.Receive(msg)
	if err != nil {
		return 0, false, consumer.Permanent(err)
	}
	l, err := h.Store.AtDelivery(ctx, d)
	if deadletter.Permanent(err) {
		return 0, false, consumer.Permanent(err)
	}
	if err != nil {
		return 0, false, err
	}
	r := l.Request
	if r.Status() != events.StatusGranted || r.RevocationDue() != "" {
		return 0, false, nil
	}
	sec, err = h.put(telemetry.Extract(ctx, msg.Headers()), r.ID(), d.Seq, r.Grant().ExpiresAt)
	return sec, err == nil, err
}

// Revocations handles revocation_requested, expired and post_reviewed: a grant whose revocation is due
// is revoked; lock_placed: every live grant the lock covers is asked to end (Lock); and campaign_decided
// and campaign_closed: every grant the access review revoked is asked to end (Review).
func (h *Reactions) Revocations(ctx context.Context, msg jetstream.Msg) error {
	if id, t, err := events.ParseNATSSubject(msg.Subject()); err == nil && t == events.TypeLockPlaced {
		return h.settle(ctx, msg, topology.RevokerRevocations.Durable, func(int) error { return h.Lock(ctx, id) })
	} else if err == nil && t.Campaign() {
		meta, merr := msg.Metadata()
		if merr != nil {
			return consumer.Permanent(merr)
		}
		return h.settle(ctx, msg, topology.RevokerRevocations.Durable, func(int) error { return h.Review(ctx, id, meta.Sequence.Stream) })
	}
	d, err := h.Store.Receive(msg)
	if err != nil {
		return consumer.Permanent(err)
	}
	return h.settle(ctx, msg, topology.RevokerRevocations.Durable, func(delivered int) error {
		l, err := h.Store.AtDelivery(ctx, d)
		if err != nil {
			return err
		}
		return h.Revoke(ctx, l, delivered)
	})
}

// settle runs handle with the delivery count and sets aside what no retry can help (a request whose
// stream fails verification); every other failure is retried, without end.
func (h *Reactions) settle(ctx context.Context, msg jetstream.Msg, durable string, handle func(delivered int) error) error {
	meta, err := msg.Metadata()
	if err != nil {
		return consumer.Permanent(err)
	}
	err = handle(int(meta.NumDelivered))
	if deadletter.Permanent(err) {
		return consumer.Permanent(err)
	}
	return err
}

// Revoke revokes the grant of l's request if its revocation is due, and records revoked with what the
// target shows; for a manual grant it does nothing (fulfilment opens a revoke task, completed by a
// person). A failure is recorded per the failure policy and returned for a retry after a capped delay.
func (h *Reactions) Revoke(ctx context.Context, l *eventstore.Loaded, delivered int) error {
	r := l.Request
	if r.Status() != events.StatusGranted || r.RevocationDue() == "" {
		return nil
	}
	log := h.Log.With(telemetry.KeyRequestID, r.ID(), "reason", string(r.RevocationDue()))
	ent, ok := h.Catalogue.Entitlement(r.Submitted().Entitlement)
	if ok && ent.Connector == manualtask.Connector {
		return nil
	}
	var obs events.Observed
	var err error
	fail := revoker.Failure{OverdueSince: revoker.OverdueSince(r, l.Events), LastReport: revoker.LastFailureReport(l.Events)}
	conn, cerr := h.Connectors.For(ent)
	switch {
	case !ok:
		err = connector.Permanent("unknown_entitlement", fmt.Errorf("entitlement %s is not in the catalogue", r.Submitted().Entitlement))
	case cerr != nil:
		err = cerr
	default:
		g := connector.Grant{ID: r.ID(), Entitlement: ent, Subject: r.Submitted().Subject, ExpiresAt: r.Grant().ExpiresAt}
		if obs, err = h.attempt(ctx, conn, g, fail); err == nil && obs.Present {
			err = connector.Transient("still_present", revoker.ErrStillPresent)
		}
		h.ConnectorErrors.Record(ctx, ent.Connector, "revoke", err)
	}
	if err != nil {
		return h.failed(ctx, log, r, l.LastSeq, delivered, fail, err)
	}
	destroyed := r.Grant().CredentialFingerprint != ""
	u, err := h.Store.UpdateFrom(ctx, r.ID(), l.LastSeq, revoker.DecideRevoked(obs, destroyed))
	if err != nil {
		return err
	}
	if destroyed && h.Credentials != nil {
		if err := h.Credentials.Discard(ctx, r.ID()); err != nil {
			log.Warn("revoked, but the unretrieved secret stays until it expires", telemetry.KeyError, err.Error())
		}
	}
	if len(u.Appended) > 0 {
		lag := h.now().Sub(revoker.OverdueSince(r, l.Events))
		if h.RevocationLag != nil {
			h.RevocationLag.Record(ctx, max(lag, 0).Seconds())
		}
		log.Info("revoked", "attempts", delivered, "credential_destroyed", destroyed, "overdue_ms", lag.Milliseconds())
	}
	return nil
}

// attempt revokes g through conn within the attempt timeout, cut short at the instant the failing
// revocation becomes overdue by the clock, so that it is recorded then and not after a hung attempt.
func (h *Reactions) attempt(ctx context.Context, conn connector.Connector, g connector.Grant, f revoker.Failure) (events.Observed, error) {
	limit := h.attemptTimeout()
	if at, ok := h.policy().Unreported(f, h.now()); ok {
		limit = min(limit, at.Sub(h.now()))
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	obs, err := conn.Revoke(ctx, g)
	if err != nil && ctx.Err() != nil && !connector.IsPermanent(err) {
		err = connector.Transient("timeout", fmt.Errorf("no answer within %s: %w", limit.Round(time.Millisecond), err))
	}
	return obs, err
}

// failed records a failed attempt if the policy says so, and returns the error for a retry after a
// capped delay (never past the instant the revocation becomes overdue): a revocation is never dropped.
func (h *Reactions) failed(ctx context.Context, log *slog.Logger, r *events.Request, lastSeq uint64, delivered int, f revoker.Failure, err error) error {
	now := h.now()
	f.Attempts, f.Class, f.Message = delivered, connector.ClassOf(err), err.Error()
	policy := h.policy()
	if policy.Due(f, now) {
		if _, uerr := h.Store.UpdateFrom(ctx, r.ID(), lastSeq, revoker.DecideFailed(policy, f, now)); uerr != nil {
			log.Warn("record failed revocation", telemetry.KeyError, uerr.Error())
		} else {
			log.Error("revocation overdue", "attempts", delivered, "overdue_since", f.OverdueSince.UTC().Format(time.RFC3339),
				"error_class", f.Class, telemetry.KeyError, err.Error())
		}
	}
	delay := consumer.ExponentialBackoff(250*time.Millisecond, h.backoffCap())(delivered)
	if after := connector.RetryAfterOf(err); after > 0 {
		// The target's own word wins, shorter or longer: an open circuit breaker says when it lets a
		// probe through, and a revocation waiting on it goes then, not after its own growing backoff.
		delay = min(after, h.backoffCap())
	}
	if at, ok := policy.Unreported(f, now); ok {
		delay = min(delay, at.Sub(now))
	}
	return consumer.RetryAfter(fmt.Errorf("revoke (attempt %d): %w", delivered, err), delay)
}

func (h *Reactions) now() time.Time {
	if h.Now == nil {
		return time.Now()
	}
	return h.Now()
}

func (h *Reactions) policy() revoker.FailurePolicy {
	p := h.Failures
	if p.Budget <= 0 {
		p.Budget = DefaultBudget
	}
	if p.Every <= 0 {
		p.Every = DefaultEvery
	}
	return p
}

func (h *Reactions) attemptTimeout() time.Duration {
	if h.AttemptTimeout > 0 {
		return h.AttemptTimeout
	}
	return DefaultAttemptTimeout
}

func (h *Reactions) backoffCap() time.Duration {
	if h.BackoffCap > 0 {
		return h.BackoffCap
	}
	return DefaultBackoffCap
}

// Lock asks every live grant that lock id covers to end, with reason locked, while the lock holds; the
// revocations then go as early ones do (Revocations). The live grants are those granted and not
// revoked, found from the headers of the stream; each is loaded and decided on its own, so a failure
// leaves the rest to the redelivery, which appends nothing twice.
func (h *Reactions) Lock(ctx context.Context, id string) error {
	l, err := h.Store.LoadLock(ctx, id)
	if err != nil {
		return err
	}
	if !l.Lock.Holds(h.now()) {
		return nil
	}
	live, err := streamscan.LiveGrants(ctx, h.JS)
	if err != nil {
		return err
	}
	asked := 0
	for _, rid := range live {
		u, err := h.Store.Update(ctx, rid, func(r *events.Request) ([]events.Draft, error) {
			ent, _ := h.Catalogue.Entitlement(r.Submitted().Entitlement)
			return revoker.DecideLocked(l.Lock, ent.System)(r)
		})
		if err != nil {
			return fmt.Errorf("lock %s: request %s: %w", id, rid, err)
		}
		asked += len(u.Appended)
	}
	h.Log.Info("lock placed", "lock_id", id, "scope", string(l.Lock.Placed().Scope.Kind), "scope_id", l.Lock.Placed().Scope.ID, "revocations_requested", asked)
	return nil
}

// Review asks each live grant access review id revoked (by an owner's decision, or unanswered at the
// deadline under the rule revoke) to end, with reason review_revoked and the campaign's ID
// (revoker.DecideReviewRevoked); the revocation_requested it appends is then revoked like any early
// revocation. seq is the delivered campaign event's: a replica that does not yet show it is retried.
func (h *Reactions) Review(ctx context.Context, id string, seq uint64) error {
	c, err := h.Store.LoadCampaign(ctx, id)
	if err != nil {
		return err
	}
	if c.LastSeq() < seq {
		return fmt.Errorf("campaign %s: want stream sequence %d: %w", id, seq, eventstore.ErrStale)
	}
	asked := 0
	for _, it := range c.Campaign.Opened().Items {
		if state, _ := c.Campaign.State(it.RequestID); state != events.ItemRevoked && state != events.ItemRevokedUnanswered {
			continue
		}
		u, err := h.Store.Update(ctx, it.RequestID, revoker.DecideReviewRevoked(c.Campaign))
		if err != nil {
			return fmt.Errorf("campaign %s: request %s: %w", id, it.RequestID, err)
		}
		asked += len(u.Appended)
	}
	if asked > 0 {
		h.Log.Info("access review revoked grants", "campaign", id, "revocations_requested", asked)
	}
	return nil
}
