// Package policyd is the policy service: it decides every submitted request with the policy engine and
// appends the policy_decided event. New builds it for the skeleton (pkg/ops) from a Config, Run runs it
// as a process of its own (the grantline-policy binary), and Serve runs it on dependencies that are
// already built (New, tests).
package policyd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/consumer"
	"github.com/grantline/grantline/pkg/deadletter"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/ops"
	"github.com/grantline/grantline/pkg/telemetry"
	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/services/policy"
)

// Evaluator decides policy inputs; *policy.Engine is the real one.
type Evaluator interface {
	// Evaluate returns a checked decision, or an error: never a decision on error.
	Evaluate(ctx context.Context, in policy.Input) (policy.Evaluation, error)
	// Revision names the loaded policy, recorded even on a decision the policy failed to make.
	Revision() string
}

// Deps are what Serve runs on, built by the caller.
type Deps struct {
	// JS is the JetStream context the consumers and the state bucket use.
	JS jetstream.JetStream
	// Store reads requests and appends as the policy service (it must sign with the policy key).
	Store *eventstore.Store
	// Catalogue supplies each request's entitlement.
	Catalogue *catalogue.Catalogue
	// Engine decides; see policy.Load.
	Engine Evaluator
	// Groups gives the requester's groups at the start of a request approved for a later start; nil
	// checks it with the groups recorded at submission (and the catalogue, locks and policy of then).
	Groups Groups
	// Now is the clock of decisions (the input's now and the deadlines); defaults to time.Now.
	Now func() time.Time
	// MaxDeliveries bounds the attempts per submitted event; the last one records a deny if policy still
	// cannot decide. Defaults to 5.
	MaxDeliveries int
	// Backoff is the delay before redelivering after a failed attempt; defaults to the consumer's
	// (250ms doubling up to 30s).
	Backoff func(delivered int) time.Duration
	// Concurrency is how many requests each of this replica's consumers handles at once; defaults to
	// consumer.DefaultConcurrency. A decision spends most of its time waiting on NATS (load, state read,
	// fsync'd append), not evaluating: with 2, policy was the system's bottleneck at a tenth of a core
	// (docs/benchmarks.md, system benchmark).
	Concurrency int
	// StateReplicas is the replica count of the state bucket when Serve creates it: 1 in development,
	// 3 in production. Defaults to 1.
	StateReplicas int
	// Meter receives the service's metrics; nil means none.
	Meter metric.MeterProvider
	// AckWait is its consumers\' ack wait (ops.Host.AckWait); zero is consumer.DefaultAckWait.
	AckWait time.Duration
}

// Serve runs the policy service until ctx ends: it creates the state bucket if needed, then runs the
// lock index (an ordered consumer following the evidence stream, see lockIndex) and the durable
// consumers, topology.PolicyDecisions on grantline.events.*.submitted,
// topology.PolicyReviewDebt on the events that settle an emergency's post-review,
// topology.PolicyStartSchedules on approvals (arming the start check of a request that asked for a later
// start) and topology.PolicyStart on the fired start timers (the checks). It returns once all have stopped (in-flight handlers
// finish within the consumer's grace period): nil after ctx ended, or the error that stopped a consumer
// or prevented the start. Call it in its own goroutine and cancel ctx to stop it.
func Serve(ctx context.Context, deps Deps, log *slog.Logger) error {
	s, err := newService(ctx, deps, log)
	if err != nil {
		return err
	}
	return ops.RunAll(ctx, s.locks.run,
		ops.Consumer(deps.JS, deps.Meter, deps.AckWait, consumer.Spec{Stream: topology.PolicyDecisions.Stream, Durable: topology.PolicyDecisions.Durable,
			FilterSubjects: []string{events.NATSSubject("*", events.TypeSubmitted)},
			MaxDeliveries:  s.maxDeliveries, Backoff: deps.Backoff, Concurrency: s.concurrency,
			SetAside: s.releaseUndecided}, s.handleSubmitted, log),
		ops.Consumer(deps.JS, deps.Meter, deps.AckWait, consumer.Spec{Stream: topology.PolicyReviewDebt.Stream, Durable: topology.PolicyReviewDebt.Durable,
			FilterSubjects: []string{
				events.NATSSubject("*", events.TypePostReviewed), events.NATSSubject("*", events.TypeWithdrawn),
				events.NATSSubject("*", events.TypeFulfilmentFailed),
			},
			MaxDeliveries: s.maxDeliveries, Backoff: deps.Backoff, Concurrency: s.concurrency}, s.handleSettling, log),
		ops.Consumer(deps.JS, deps.Meter, deps.AckWait, consumer.Spec{Stream: topology.PolicyStartSchedules.Stream, Durable: topology.PolicyStartSchedules.Durable,
			FilterSubjects: []string{events.NATSSubject("*", events.TypeApproved)},
			MaxDeliveries:  s.maxDeliveries, Backoff: deps.Backoff, Concurrency: s.concurrency}, s.handleApproved, log),
		ops.Consumer(deps.JS, deps.Meter, deps.AckWait, consumer.Spec{Stream: topology.PolicyStart.Stream, Durable: topology.PolicyStart.Durable,
			FilterSubjects: []string{topology.TimerFired("*", topology.TimerGrantStart)},
			MaxDeliveries:  s.maxDeliveries, Backoff: deps.Backoff, Concurrency: s.concurrency}, s.handleStart, log))
}

type service struct {
	js            jetstream.JetStream
	groups        Groups
	store         *eventstore.Store
	cat           *catalogue.Catalogue
	engine        Evaluator
	reviews       *reviews
	locks         *lockIndex
	now           func() time.Time
	maxDeliveries int
	concurrency   int
	log           *slog.Logger
	decisions     metric.Int64Counter
	evalTime      metric.Float64Histogram
	latency       metric.Float64Histogram
	startChecks   metric.Int64Counter
}

func newService(ctx context.Context, deps Deps, log *slog.Logger) (*service, error) {
	if deps.JS == nil || deps.Store == nil || deps.Catalogue == nil || deps.Engine == nil {
		return nil, errors.New("policy service needs JetStream, a store, a catalogue and an engine")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &service{js: deps.JS, groups: deps.Groups, store: deps.Store, cat: deps.Catalogue, engine: deps.Engine, locks: newLockIndex(deps.JS, deps.Store, log), now: deps.Now,
		maxDeliveries: deps.MaxDeliveries, concurrency: deps.Concurrency, log: log}
	if s.now == nil {
		s.now = time.Now
	}
	if s.maxDeliveries <= 0 {
		s.maxDeliveries = 5
	}
	meter := deps.Meter
	if meter == nil {
		meter = noop.NewMeterProvider()
	}
	m := meter.Meter("grantline/policy")
	var err error
	if s.decisions, err = m.Int64Counter("grantline_policy_decisions",
		metric.WithDescription("policy_decided events appended, by outcome and whether policy failed to decide")); err != nil {
		return nil, err
	}
	if s.startChecks, err = m.Int64Counter("grantline_policy_start_checks",
		metric.WithDescription("start_checked events appended, by whether the request may still be granted and whether policy failed to check")); err != nil {
		return nil, err
	}
	if s.evalTime, err = m.Float64Histogram("grantline_policy_evaluation_duration", metric.WithUnit("s"),
		metric.WithDescription("time to evaluate the policy for one request")); err != nil {
		return nil, err
	}
	s.latency = telemetry.LatencyHistogram(meter, "grantline/policy", "grantline_decision_latency",
		"time from a request's submission to its recorded policy decision")
	if s.reviews, err = openReviews(ctx, deps.JS, deps.StateReplicas); err != nil {
		return nil, err
	}
	return s, nil
}

// handleSubmitted decides one submitted request, unless it no longer awaits a decision (decided already,
// or withdrawn first). If policy cannot decide, the delivery fails and is retried with backoff; on the
// last allowed delivery a deny carrying the error is recorded instead. Policy never approves on error.
func (s *service) handleSubmitted(ctx context.Context, msg jetstream.Msg) error {
	d, err := s.store.Receive(msg)
	if err != nil {
		return consumer.Permanent(fmt.Errorf("receive delivery: %w", err))
	}
	log := s.log.With(telemetry.KeyRequestID, d.RequestID, telemetry.KeyEventType, d.Event.Type.Name())
	if tid := telemetry.TraceID(ctx); tid != "" {
		log = log.With(telemetry.KeyTraceID, tid)
	}
	if d.Event.Type != events.TypeSubmitted {
		return consumer.Permanent(fmt.Errorf("event %s is %s, not submitted", d.Event.ID, d.Event.Type.Name()))
	}
	meta, err := msg.Metadata()
	if err != nil {
		return consumer.Permanent(fmt.Errorf("delivery metadata: %w", err))
	}
	last := int(meta.NumDelivered) >= s.maxDeliveries

	// failure is why policy could not decide, as the last decision taken says; it is reported only if
	// that decision was appended.
	var failure error
	u, err := s.store.React(ctx, d, func(r *events.Request) ([]events.Draft, error) {
		if r.Status() != events.StatusSubmitted {
			return nil, nil
		}
		dec, err := s.decide(ctx, r, last)
		if err != nil {
			return nil, err
		}
		failure = dec.failure
		return []events.Draft{{Payload: dec.event, CausationID: d.Event.ID}}, nil
	})
	if err != nil {
		log.Warn("policy could not decide", telemetry.KeyError, err.Error(), "delivered", meta.NumDelivered)
		return fmt.Errorf("decide request %s: %w", d.RequestID, err)
	}
	if err := s.reviews.sync(ctx, u.Request); err != nil {
		return fmt.Errorf("request %s: %w", d.RequestID, err)
	}
	// Allowed outright for a later start: policy checks it again then. Armed on a redelivery too, in
	// case the last attempt stopped between the append and the timer.
	if err := s.armStart(ctx, u.Request, u.LastSeq); err != nil {
		return err
	}
	outcome := string(u.Request.Decision().Outcome)
	if len(u.Appended) == 0 {
		// A reload after a conflict or a lost ack found the request decided already.
		if outcome == "" {
			outcome = "none"
		}
		log.Info("nothing to decide", "outcome", outcome, "status", string(u.Request.Status()))
		return nil
	}
	revision := u.Request.Decision().PolicyRevision
	s.decisions.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", outcome), attribute.Bool("failed", failure != nil)))
	s.latency.Record(ctx, s.now().Sub(d.Event.Time).Seconds())
	if failure != nil {
		log.Error("policy could not decide; request denied", "outcome", outcome,
			"policy_revision", revision, telemetry.KeyError, failure.Error())
		return nil
	}
	log.Info("policy decided", "outcome", outcome, "policy_revision", revision)
	return nil
}

// decided is a decision ready to append, and the error it records if policy failed to decide.
type decided struct {
	event   events.PolicyDecided
	failure error
}

// decide builds the input for r (catalogue entry, the requester's open emergency reviews) and evaluates
// it. An emergency request is marked open before it is evaluated, so two emergencies of one requester
// decided at once each see the other and are both denied, rather than neither seeing the other and both
// passing. If anything fails, it returns the error, or on the last attempt a deny recording it.
func (s *service) decide(ctx context.Context, r *events.Request, last bool) (decided, error) {
	sub := r.Submitted()
	now := s.now()
	in := s.input(sub, now)
	ev, err := s.evaluateInput(ctx, r.ID(), sub, &in)
	if err == nil {
		return decided{event: ev.Event(now)}, nil
	}
	if !last || ctx.Err() != nil {
		// A shutdown is not the policy failing: the next replica decides.
		return decided{}, err
	}
	return decided{event: policy.FailedDecision(err, s.engine.Revision(), inputDigest(in)), failure: err}, nil
}

// input is the input for deciding sub at now, with its catalogue entry; the locks are added by
// evaluateInput.
func (s *service) input(sub events.Submitted, now time.Time) policy.Input {
	var ent *catalogue.Entitlement
	if e, ok := s.cat.Entitlement(sub.Entitlement); ok {
		ent = &e
	}
	return policy.NewInput(sub, ent, now, nil)
}

// evaluateInput adds the locks holding at the input's time that cover sub, and evaluates it. Never
// evaluated without knowing the locks: failing to read them fails the attempt like the policy.
func (s *service) evaluateInput(ctx context.Context, id string, sub events.Submitted, in *policy.Input) (policy.Evaluation, error) {
	locks, err := s.locks.current(ctx)
	if err != nil {
		return policy.Evaluation{}, err
	}
	in.Locks = policy.CoveringLocks(locks, sub, in.Entitlement, in.Now)
	return s.evaluate(ctx, id, sub, in)
}

// inputDigest is the digest of in, or "" when it cannot be encoded.
func inputDigest(in policy.Input) string {
	_, digest, err := in.Canonical()
	if err != nil {
		return ""
	}
	return digest
}

func (s *service) evaluate(ctx context.Context, id string, sub events.Submitted, in *policy.Input) (policy.Evaluation, error) {
	// Review debt decides only emergencies: any other request is decided without reading it.
	if sub.Emergency {
		if err := s.reviews.reserve(ctx, sub.Requester.ID, id); err != nil {
			return policy.Evaluation{}, err
		}
		open, err := s.reviews.open(ctx, sub.Requester.ID, id)
		if err != nil {
			return policy.Evaluation{}, err
		}
		in.OpenEmergencyReviews = open
	}
	start := time.Now()
	ev, err := s.engine.Evaluate(ctx, *in)
	s.evalTime.Record(ctx, time.Since(start).Seconds())
	if err != nil {
		return policy.Evaluation{}, fmt.Errorf("evaluate policy %s: %w", s.engine.Revision(), err)
	}
	return ev, nil
}

// releaseUndecided runs before a submitted event is dead-lettered (its decision failed on every
// delivery, or the handler never answered): an emergency reserved before deciding, and still
// undecided, owes no post-review, so its reservation is released rather than left to hold up the
// requester's next emergency until an operator notices. If the request was decided after all (an
// append whose acknowledgement was lost), the decision's own marker stands. An error keeps the event
// from being set aside, and it is delivered again.
func (s *service) releaseUndecided(ctx context.Context, msg jetstream.Msg) error {
	d, err := s.store.Receive(msg)
	if err != nil || d.Event.Type != events.TypeSubmitted {
		return nil // a message that is not a verified submitted event was never decided on
	}
	l, err := s.store.LoadAtLeast(ctx, d.RequestID, d.Seq)
	switch {
	case deadletter.Permanent(err):
		return nil // a history that fails verification was never decided on, so nothing was reserved
	case err != nil:
		return fmt.Errorf("load request %s: %w", d.RequestID, err)
	}
	sub := l.Request.Submitted()
	if !sub.Emergency || l.Request.Status() != events.StatusSubmitted {
		return nil
	}
	if err := s.reviews.release(ctx, sub.Requester.ID, d.RequestID); err != nil {
		return err
	}
	s.log.Warn("emergency set aside undecided; its reservation is released", telemetry.KeyRequestID, d.RequestID,
		"requester", sub.Requester.ID)
	return nil
}

// handleSettling brings the open-review marker of the delivered event's request up to date: a
// post-review settles an emergency, and so does its withdrawal or failure before anything was granted.
func (s *service) handleSettling(ctx context.Context, msg jetstream.Msg) error {
	d, l, err := s.delivered(ctx, msg)
	if err != nil {
		return err
	}
	if err := s.reviews.sync(ctx, l.Request); err != nil {
		return fmt.Errorf("request %s: %w", d.RequestID, err)
	}
	outcome := "not an emergency"
	switch {
	case l.Request.Decision().Outcome != events.OutcomeEmergency:
	case emergencyOpen(l.Request):
		outcome = "emergency review still open"
	default:
		outcome = "emergency review settled"
	}
	s.log.Info("emergency review state", telemetry.KeyRequestID, d.RequestID, telemetry.KeyEventType, d.Event.Type.Name(), "outcome", outcome)
	return nil
}

// delivered receives msg and loads its request as of the delivered event; a message that is not a
// verified event is set aside at once.
func (s *service) delivered(ctx context.Context, msg jetstream.Msg) (eventstore.Delivery, *eventstore.Loaded, error) {
	d, err := s.store.Receive(msg)
	if err != nil {
		return d, nil, consumer.Permanent(fmt.Errorf("receive delivery: %w", err))
	}
	l, err := s.store.AtDelivery(ctx, d)
	if err != nil {
		return d, nil, fmt.Errorf("load request %s: %w", d.RequestID, err)
	}
	return d, l, nil
}
