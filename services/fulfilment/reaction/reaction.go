// Package reaction is the fulfilment service's side of the stream: the reaction to approvals, allowing
// decisions and allowing start checks (grant through the entitlement's connector and append granted,
// or open a manual task; a request that asked for access from a later time waits for policy's check at
// that time), and the reaction to a due revocation of a manual grant (open a revoke task).
//
// Exactly one grant, whatever happens: the target change is idempotent by the grant ID (the request
// ID; connectors derive every name they create from it, and an issued secret is reserved once in the
// credential store before the grant), and the append is a compare-and-set that drops a granted event
// the request already holds. So a redelivery, a second replica handling the same event, or a crash
// between the grant and the append ends with one grant on the target and one granted event. A request
// withdrawn between the grant and the append has the target change undone.
package reaction

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
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
	"github.com/grantline/grantline/services/fulfilment"
	"github.com/grantline/grantline/services/fulfilment/taskindex"
)

// DefaultRetryFor is how long a transient grant failure is retried before the request is recorded failed.
const DefaultRetryFor = 15 * time.Minute

// minAttempts is how often a grant is tried before a transient failure is recorded, however late: a
// request approved while fulfilment itself was down gets a few tries, not one.
const minAttempts = 3

// forever is the delivery limit of the grant consumers: giving up is decided by the clock (RetryFor),
// and recorded as fulfilment_failed, never by a count that would set the delivery aside unseen.
const forever = math.MaxInt32

// grantBackoff spaces the attempts at a target that is down.
var grantBackoff = consumer.ExponentialBackoff(500*time.Millisecond, 30*time.Second)

func subjects(types ...events.Type) []string {
	var out []string
	for _, t := range types {
		out = append(out, events.NATSSubject("*", t))
	}
	return out
}

// FulfilSpec is the consumer of the events that may lead to a grant.
func FulfilSpec() consumer.Spec {
	return consumer.Spec{Stream: topology.FulfilmentGrants.Stream, Durable: topology.FulfilmentGrants.Durable,
		FilterSubjects: subjects(events.TypeApproved, events.TypePolicyDecided, events.TypeStartChecked),
		MaxDeliveries:  forever, Backoff: grantBackoff}
}

// RevokeTasksSpec is the consumer of the events that make a revocation due. Like the revoker's, it
// never gives up: a manual grant whose revoke task is not opened would never be revoked.
func RevokeTasksSpec() consumer.Spec {
	return consumer.Spec{Stream: topology.FulfilmentRevokeTasks.Stream, Durable: topology.FulfilmentRevokeTasks.Durable,
		FilterSubjects: subjects(events.TypeExpired, events.TypeRevocationRequested, events.TypePostReviewed),
		MaxDeliveries:  forever, Backoff: consumer.ExponentialBackoff(500*time.Millisecond, time.Minute)}
}

// Reactions are the fulfilment service's handlers.
type Reactions struct {
	JS          jetstream.JetStream
	Store       *eventstore.Store
	Catalogue   *catalogue.Catalogue
	Connectors  connector.Set
	Credentials *credential.Store
	Tasks       *taskindex.Index
	Now         func() time.Time
	Log         *slog.Logger
	// TaskDue is how long people have to carry out a manual task.
	TaskDue time.Duration
	// RetryFor is how long a transient grant failure is retried, from the approval (or the requested
	// start); then the request is recorded failed. 0 means DefaultRetryFor.
	RetryFor time.Duration
	// GrantLatency records the time from the event that allowed a grant (an auto-approving decision,
	// the last approval, a requested start) to the grant recorded: fulfilment's own latency, without
	// the time people took to approve. Nil records nothing.
	GrantLatency metric.Float64Histogram
	// ConnectorErrors counts the grants a connector failed.
	ConnectorErrors targets.Errors
}

// Fulfil is the consumer handler for approved and policy_decided.
func (h *Reactions) Fulfil(ctx context.Context, msg jetstream.Msg) error {
	return h.settle(msg, func(d eventstore.Delivery, delivered int) error {
		return h.Handle(ctx, d, delivered)
	})
}

// OpenRevokeTasks is the consumer handler for expired, revocation_requested and post_reviewed: a
// manual grant whose revocation is now due gets a revoke task.
func (h *Reactions) OpenRevokeTasks(ctx context.Context, msg jetstream.Msg) error {
	return h.settle(msg, func(d eventstore.Delivery, _ int) error {
		return h.openRevokeTask(ctx, d)
	})
}

// settle receives msg, runs handle with the delivery count, and sets aside what no retry can help.
func (h *Reactions) settle(msg jetstream.Msg, handle func(eventstore.Delivery, int) error) error {
	d, err := h.Store.Receive(msg)
	if err != nil {
		return consumer.Permanent(err)
	}
	meta, err := msg.Metadata()
	if err != nil {
		return consumer.Permanent(err)
	}
	delivered := int(meta.NumDelivered)
	err = handle(d, delivered)
	if deadletter.Permanent(err) {
		// Set aside here rather than by the runner, whose copy of an event the DLQ stream refuses (see
		// package deadletter).
		return consumer.Permanent(err)
	}
	return err
}

// Handle is the reaction to one delivery of an approved, policy_decided or start_checked event,
// delivered for the delivered-th time: grant, open a task, or nothing (a request approved for a later
// start waits for policy's check then, whose start_checked is delivered here in turn). It is safe to
// run for one delivery in several replicas at once.
func (h *Reactions) Handle(ctx context.Context, d eventstore.Delivery, delivered int) error {
	if !fulfilment.Triggers(d.Event) {
		return nil
	}
	l, err := h.Store.AtDelivery(ctx, d)
	if err != nil {
		return err
	}
	r := l.Request
	log := h.Log.With(telemetry.KeyRequestID, d.RequestID, telemetry.KeyEventType, d.Event.Type.Name())
	ent, ok := h.Catalogue.Entitlement(r.Submitted().Entitlement)
	if !ok {
		err := connector.Permanent("unknown_entitlement", fmt.Errorf("entitlement %s is not in the catalogue", r.Submitted().Entitlement))
		return h.fail(ctx, log, d, r, delivered, err)
	}
	switch fulfilment.Next(r, ent.Connector) {
	case fulfilment.OpenGrantTask:
		if x := r.Submitted().Extends; x != nil {
			// The extended grant's revoke task, opened later, must tell its fulfiller that this one
			// continues the access; the extended request's stream does not know of its extensions.
			if err := h.Tasks.Extended(ctx, x.RequestID, r.ID()); err != nil {
				return err
			}
		}
		return h.openTask(ctx, log, r, ent, events.TaskGrant, d.Seq)
	case fulfilment.Grant:
		return h.grant(ctx, log, d, delivered, r, ent)
	}
	if ent.Connector != fulfilment.Manual && r.Grant() == nil && r.Status().Terminal() {
		// Withdrawn or failed without a grant: a crash between a grant and the append that found the
		// request closed may have left a change on the target. Revoking is idempotent and cheap.
		return h.undo(ctx, log, r, ent)
	}
	return nil
}

func (h *Reactions) grant(ctx context.Context, log *slog.Logger, d eventstore.Delivery, delivered int, r *events.Request, ent catalogue.Entitlement) error {
	conn, err := h.Connectors.For(ent)
	if err != nil {
		return h.fail(ctx, log, d, r, delivered, err)
	}
	expires := fulfilment.ExpiresAt(r, h.Now())
	g := connector.Grant{ID: r.ID(), Entitlement: ent, Subject: r.Submitted().Subject, ExpiresAt: expires}
	fingerprint := ""
	if connector.IssuesCredential(conn, g) {
		if h.Credentials == nil {
			return h.fail(ctx, log, d, r, delivered, connector.Permanent("no_credential_store", errors.New("a credential is issued but no credential store is configured")))
		}
		// Reserved before the grant, so a retried or concurrent grant sets the same secret. Kept a little
		// past the expiry; retrieval refuses it after the expiry anyway.
		ttl := expires.Sub(h.Now()) + time.Minute
		if g.Secret, err = h.Credentials.Reserve(ctx, r.ID(), ttl, connector.NewSecret); err != nil {
			return err
		}
		fingerprint = fulfilment.Fingerprint(g.Secret)
	}
	started := time.Now()
	obs, err := conn.Grant(ctx, g)
	if err == nil && !obs.Present {
		err = connector.Transient("not_applied", errors.New("the target does not show the grant after granting"))
	}
	if err != nil {
		h.ConnectorErrors.Record(ctx, ent.Connector, "grant", err)
		return h.fail(ctx, log, d, r, delivered, err)
	}
	rec := fulfilment.Recorded{Connector: ent.Connector, TargetRef: connector.TargetRef(conn, g), Observed: obs,
		ExpiresAt: expires, Fingerprint: fingerprint}
	u, err := h.Store.UpdateFrom(ctx, r.ID(), d.Seq, fulfilment.DecideGranted(rec, d.Event.ID))
	if errors.Is(err, fulfilment.ErrNotAllowed) {
		log.Info("request closed while granting; undoing the grant")
		return h.undo(ctx, log, r, ent)
	}
	if err != nil {
		return err
	}
	if len(u.Appended) > 0 {
		if h.GrantLatency != nil {
			h.GrantLatency.Record(ctx, h.Now().Sub(d.Event.Time).Seconds())
		}
		log.Info("granted", "connector", ent.Connector, "expires_at", expires.UTC().Format(time.RFC3339),
			"grant_ms", time.Since(started).Milliseconds())
	}
	return nil
}

// fail records a failed grant: a permanent one at once, a transient one once it has been retried for
// RetryFor since fulfilment became due (and tried at least minAttempts times); fulfilment_failed ends the request, with the reason and the
// attempts. Until then the error goes back to the runner for a retry.
func (h *Reactions) fail(ctx context.Context, log *slog.Logger, d eventstore.Delivery, r *events.Request, delivered int, err error) error {
	permanent := connector.IsPermanent(err)
	due := d.Event.Time
	if start := r.Submitted().StartAt; start != nil && start.After(due) {
		due = *start
	}
	last := delivered >= minAttempts && !h.Now().Before(due.Add(h.retryFor()))
	if !permanent && !last {
		if after := connector.RetryAfterOf(err); after > 0 {
			return consumer.RetryAfter(err, after)
		}
		return err
	}
	class := connector.ClassOf(err)
	_, uerr := h.Store.UpdateFrom(ctx, d.RequestID, d.Seq, fulfilment.DecideFailed(class, err.Error(), delivered, permanent, d.Event.ID))
	if uerr != nil {
		return fmt.Errorf("record failed fulfilment: %w (after: %v)", uerr, err)
	}
	log.Warn("fulfilment failed", "permanent", permanent, "attempts", delivered, "error_class", class, telemetry.KeyError, err.Error())
	if h.Credentials != nil {
		_ = h.Credentials.Discard(ctx, d.RequestID)
	}
	if !permanent {
		// A transient failure may have left a change behind on the target (a grant that answered too
		// late); the failed request must hold nothing there.
		if ent, ok := h.Catalogue.Entitlement(r.Submitted().Entitlement); ok {
			return h.undo(ctx, log, r, ent)
		}
	}
	return nil
}

// undo revokes whatever a grant of the closed request r left on the target, and forgets its secret.
func (h *Reactions) undo(ctx context.Context, log *slog.Logger, r *events.Request, ent catalogue.Entitlement) error {
	conn, err := h.Connectors.For(ent)
	if err != nil {
		return nil // nothing could have been granted through a connector that does not exist
	}
	g := connector.Grant{ID: r.ID(), Entitlement: ent, Subject: r.Submitted().Subject}
	obs, err := conn.Revoke(ctx, g)
	if connector.IsPermanent(err) {
		// Nothing this connector can do for the entitlement, so nothing was granted through it either.
		log.Warn("cannot check the target for a closed request", telemetry.KeyError, err.Error())
		return nil
	}
	if err != nil {
		return fmt.Errorf("undo grant of closed request: %w", err)
	}
	if obs.Present {
		return errors.New("undo grant of closed request: the target still shows it")
	}
	if h.Credentials != nil && connector.IssuesCredential(conn, g) {
		if err := h.Credentials.Discard(ctx, r.ID()); err != nil {
			return err
		}
	}
	log.Debug("nothing left on the target for the closed request", "status", r.Status())
	return nil
}

// openTask indexes and appends the task of purpose for r.
func (h *Reactions) openTask(ctx context.Context, log *slog.Logger, r *events.Request, ent catalogue.Entitlement, purpose events.TaskPurpose, seq uint64) error {
	spec := fulfilment.TaskSpec{FulfillerGroups: ent.FulfillerGroups, DueAt: h.Now().Add(h.taskDue())}
	if purpose == events.TaskRevoke {
		by, err := h.continuedBy(ctx, r)
		if err != nil {
			return err
		}
		spec.ContinuedBy = by
	}
	spec.Instructions = instructions(purpose, ent, r.Submitted().Subject, spec.ContinuedBy)
	// Indexed first: a crash before the append leaves a candidate that the list checks against the
	// stream, never an open task that the list cannot find.
	if err := h.Tasks.Put(ctx, indexEntry(r, purpose, spec)); err != nil {
		return err
	}
	u, err := h.Store.UpdateFrom(ctx, r.ID(), seq, fulfilment.DecideOpenTask(purpose, spec))
	if err != nil {
		return err
	}
	if len(u.Appended) > 0 {
		log.Info("task opened", "task_id", manualtask.ID(r.ID(), purpose), "fulfiller_groups", ent.FulfillerGroups, "continued_by", spec.ContinuedBy)
	}
	return nil
}

// continuedBy returns the extension of r whose grant stands (granted, no revocation under way), which
// continues the access r's revoke task is about, or "" if there is none.
func (h *Reactions) continuedBy(ctx context.Context, r *events.Request) (string, error) {
	by, err := h.Tasks.ExtendedBy(ctx, r.ID())
	if err != nil || by == "" {
		return "", err
	}
	l, err := h.Store.Load(ctx, by)
	if err != nil {
		return "", err
	}
	if x := l.Request; x.Status() != events.StatusGranted || x.RevocationDue() != "" {
		return "", nil
	}
	return by, nil
}

func (h *Reactions) openRevokeTask(ctx context.Context, d eventstore.Delivery) error {
	l, err := h.Store.AtDelivery(ctx, d)
	if err != nil {
		return err
	}
	r := l.Request
	ent, ok := h.Catalogue.Entitlement(r.Submitted().Entitlement)
	if !ok || ent.Connector != fulfilment.Manual || r.Status() != events.StatusGranted || r.RevocationDue() == "" {
		return nil
	}
	log := h.Log.With(telemetry.KeyRequestID, d.RequestID, telemetry.KeyEventType, d.Event.Type.Name())
	return h.openTask(ctx, log, r, ent, events.TaskRevoke, d.Seq)
}

// ReindexTasks puts every task that is open according to the stream back into the index: run at start,
// it rebuilds a lost or emptied index. It reads one request at a time.
func (h *Reactions) ReindexTasks(ctx context.Context) error {
	return streamscan.Requests(ctx, h.JS, events.TypeTaskOpened, func(id string, seq uint64) error {
		l, err := h.Store.LoadAtLeast(ctx, id, seq)
		if err != nil {
			if deadletter.Permanent(err) {
				h.Log.Error("reindex tasks: request fails verification", telemetry.KeyRequestID, id, telemetry.KeyError, err.Error())
				return nil
			}
			return err
		}
		for _, purpose := range []events.TaskPurpose{events.TaskGrant, events.TaskRevoke} {
			if t, open := manualtask.Outstanding(l.Request, purpose); open {
				spec := fulfilment.TaskSpec{FulfillerGroups: t.FulfillerGroups, Instructions: t.Instructions, DueAt: t.DueAt, ContinuedBy: t.ContinuedBy}
				if err := h.Tasks.Put(ctx, indexEntry(l.Request, purpose, spec)); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

func indexEntry(r *events.Request, purpose events.TaskPurpose, spec fulfilment.TaskSpec) taskindex.Task {
	s := r.Submitted()
	return taskindex.Task{ID: manualtask.ID(r.ID(), purpose), RequestID: r.ID(), Purpose: purpose,
		FulfillerGroups: spec.FulfillerGroups, Instructions: spec.Instructions, DueAt: spec.DueAt.UTC(),
		Entitlement: s.Entitlement, Requester: s.Requester.ID, Subject: s.Subject.ID, ContinuedBy: spec.ContinuedBy}
}

func instructions(purpose events.TaskPurpose, ent catalogue.Entitlement, subject events.RequestSubject, continuedBy string) string {
	if continuedBy != "" {
		return fmt.Sprintf("Request %s extends this grant and continues the same access: keep %s (%s on %s) for %s %s, "+
			"remove only what this grant alone added (if anything), then complete this task with evidence.",
			continuedBy, ent.ID, ent.Resource, ent.System, subject.Kind, subject.ID)
	}
	verb := "Grant"
	if purpose == events.TaskRevoke {
		verb = "Remove"
	}
	return fmt.Sprintf("%s %s (%s on %s) for %s %s, then complete this task with evidence.",
		verb, ent.ID, ent.Resource, ent.System, subject.Kind, subject.ID)
}

func (h *Reactions) taskDue() time.Duration {
	if h.TaskDue > 0 {
		return h.TaskDue
	}
	return 4 * time.Hour
}

func (h *Reactions) retryFor() time.Duration {
	if h.RetryFor > 0 {
		return h.RetryFor
	}
	return DefaultRetryFor
}
