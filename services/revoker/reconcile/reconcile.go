// Package reconcile is the revoker's reconciler: on a timer it compares what each target holds for
// Grantline-managed access (the connectors' inventories, connector.Inventory) with the evidence, and
// records what differs as drift_detected:
//
//   - access of a revoked grant present on the target: recorded, revoked again through the connector,
//     and the revocation recorded (revoked, reason drift, observed absent);
//   - access of a live grant that the target lacks: recorded once, for the owners to act on;
//   - Grantline-shaped access that no request explains: recorded as a finding of its own
//     (events.FindingID), once.
//
// The evidence side is a scan of the subjects (headers only) of the granted, drift_detected and revoked
// events, which tells the live grants and those with drift still open; only those, and the requests
// whose access is listed, are loaded. A run holds their IDs and the listing: it grows with the live
// grants, as the target does, not with the revoked grants of the past. A target listing and the stream are read at different moments, so nothing
// is recorded on the first listing alone: access found after revocation and unexplained access must be
// listed again after the scan (a revocation is recorded only once the target no longer shows the
// access, so a listing after the scan cannot see access the scan took for revoked before it was), and
// missing access is confirmed by inspecting the grant after the request was loaded (a grant is
// recorded only once the target shows it). Connectors without an inventory (webhook, manual) are
// skipped and said so in the log.
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/connector"
	"github.com/grantline/grantline/pkg/consumer"
	"github.com/grantline/grantline/pkg/deadletter"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/streamscan"
	"github.com/grantline/grantline/pkg/telemetry"
	"github.com/grantline/grantline/pkg/timers"
	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/services/revoker"
)

// Spec is the consumer of the fired reconcile timer. A reconcile is retried until it succeeds, and
// may take minutes on a large history before it is acknowledged: it is kept in progress that long.
func Spec(backoffCap time.Duration) consumer.Spec {
	return consumer.Spec{
		Stream:         topology.RevokerReconcile.Stream,
		Durable:        topology.RevokerReconcile.Durable,
		FilterSubjects: []string{topology.TimerFired(topology.ReconcileTimerID, topology.TimerReconcile)},
		MaxDeliveries:  1 << 30,
		HandleTimeout:  10 * time.Minute,
		Backoff:        consumer.ExponentialBackoff(time.Second, backoffCap),
	}
}

// Reconciler compares the targets with the evidence.
type Reconciler struct {
	JS         jetstream.JetStream
	Store      *eventstore.Store
	Catalogue  *catalogue.Catalogue
	Connectors connector.Set
	// Every is the time between two reconciles.
	Every time.Duration
	Now   func() time.Time
	Log   *slog.Logger
}

// Summary counts what one reconcile found and did.
type Summary struct {
	// Holdings is how many holdings the targets listed.
	Holdings int
	// AfterRevocation, Missing and Unexplained count the drift recorded by this reconcile.
	AfterRevocation, Missing, Unexplained int
	// RevokedAgain counts the revocations again recorded.
	RevokedAgain int
}

// Arm sets the next reconcile Every from now unless one is set already (another replica's, or the last
// run's); the timer then keeps itself going (Fired sets the next).
func (c *Reconciler) Arm(ctx context.Context) error {
	st, err := c.JS.Stream(ctx, topology.TimersStream)
	if err != nil {
		return fmt.Errorf("arm reconcile: %w", err)
	}
	_, err = st.GetLastMsgForSubject(ctx, topology.TimerSchedule(topology.ReconcileTimerID, topology.TimerReconcile))
	if !errors.Is(err, jetstream.ErrMsgNotFound) {
		return err
	}
	return timers.Schedule(ctx, c.JS, topology.ReconcileTimerID, topology.TimerReconcile, c.now().Add(c.Every), nil)
}

// Fired handles the fired reconcile timer: it reconciles, then sets the next one. A failed reconcile is
// retried (the next one is set only after a success, so none is lost).
func (c *Reconciler) Fired(ctx context.Context, msg jetstream.Msg) error {
	if _, kind, _, err := timers.ParseFired(msg); err != nil || kind != topology.TimerReconcile {
		return consumer.Permanent(fmt.Errorf("%s is not the reconcile timer", msg.Subject()))
	}
	sum, err := c.Reconcile(ctx)
	c.Log.Info("reconciled", "holdings", sum.Holdings, "present_after_revocation", sum.AfterRevocation, "missing", sum.Missing,
		"unexplained", sum.Unexplained, "revoked_again", sum.RevokedAgain)
	if err != nil {
		return err
	}
	return timers.Schedule(ctx, c.JS, topology.ReconcileTimerID, topology.TimerReconcile, c.now().Add(c.Every), nil)
}

// held is one listed holding with the connector whose target holds it.
type held struct {
	conn string
	connector.Holding
}

// Reconcile compares every target that has an inventory with the evidence once, records the drift it
// finds and revokes again what was found after revocation. It returns what it did, and the errors it
// met: a target or the stream unavailable stops it; a grant that could not be handled is passed over
// for the others. Drift recorded stays recorded, and the next reconcile picks up the rest.
func (c *Reconciler) Reconcile(ctx context.Context) (Summary, error) {
	var sum Summary
	first, err := c.list(ctx)
	if err != nil {
		return sum, err
	}
	sum.Holdings = len(first)
	byGrant := map[string][]held{}
	var unexplained []held
	for _, h := range first {
		if h.GrantID == "" {
			unexplained = append(unexplained, h)
		} else {
			byGrant[h.GrantID] = append(byGrant[h.GrantID], h)
		}
	}

	// Which requests to look at, with the stream sequence to load from: the live grants (granted, not
	// revoked since), those with drift recorded and not revoked since (a revocation again may still be
	// due), and those whose access was listed. A scan of the subjects alone finds the first two, so
	// neither the time of a reconcile nor its memory grows with the revoked grants of the past.
	look := map[string]uint64{}
	err = streamscan.Events(ctx, c.JS, []events.Type{events.TypeGranted, events.TypeDriftDetected, events.TypeRevoked},
		func(id string, t events.Type, seq uint64) error {
			if t == events.TypeRevoked {
				delete(look, id)
			} else {
				look[id] = seq
			}
			return nil
		})
	if err != nil {
		return sum, fmt.Errorf("reconcile: scan the grants: %w", err)
	}
	for id := range byGrant {
		if _, ok := look[id]; !ok {
			look[id] = 0
		}
	}

	// Revoked grants whose access was listed, by request, with the stream sequence to load from.
	lingering := map[string]uint64{}
	var errs []error
	for _, id := range slices.Sorted(maps.Keys(look)) {
		hs := byGrant[id]
		l, err := c.load(ctx, id, look[id])
		if err != nil {
			return sum, err
		}
		if l == nil {
			continue
		}
		r := l.Request
		if r.Grant() == nil {
			// Listed access of a request that was never granted: on its way (approved: fulfilment grants
			// on the target before it records the grant), or unexplained.
			if r.Status() != events.StatusApproved {
				unexplained = append(unexplained, hs...)
			}
			continue
		}
		conn, inventoried := c.inventoried(r.Grant().Connector)
		switch {
		case !inventoried:
		case r.Status() == events.StatusRevoked && (anyPresent(hs) || r.DriftRevocationDue()):
			lingering[id] = l.LastSeq
		case r.Status() == events.StatusGranted && r.RevocationDue() == "" && !r.AccessMissing() && !anyPresent(hs):
			recorded, err := c.missing(ctx, l, conn)
			sum.Missing += recorded
			errs = append(errs, err)
		}
	}
	if len(lingering) == 0 && len(unexplained) == 0 {
		return sum, errors.Join(errs...)
	}

	second, err := c.list(ctx)
	if err != nil {
		return sum, errors.Join(append(errs, err)...)
	}
	now := map[string]held{}
	for _, h := range second {
		now[h.conn+"\x00"+h.Ref] = h
	}
	for _, id := range slices.Sorted(maps.Keys(lingering)) {
		var still []held
		for _, h := range second {
			if h.GrantID == id && h.Observed.Present {
				still = append(still, h)
			}
		}
		found, again, err := c.revokeAgain(ctx, id, lingering[id], still)
		sum.AfterRevocation += found
		sum.RevokedAgain += again
		errs = append(errs, err)
	}
	for _, h := range unexplained {
		h, ok := now[h.conn+"\x00"+h.Ref]
		if !ok {
			continue // gone meanwhile
		}
		recorded, err := c.unexplained(ctx, h)
		sum.Unexplained += recorded
		errs = append(errs, err)
	}
	return sum, errors.Join(errs...)
}

// unexplained records h as a finding unless it is recorded already; it returns 1 if it recorded it.
func (c *Reconciler) unexplained(ctx context.Context, h held) (int, error) {
	d := revoker.Drift{Connector: h.conn, TargetRef: h.Ref, Observed: h.Observed}
	after, err := c.Store.Update(ctx, events.FindingID(h.conn, h.Ref), revoker.DecideUnexplained(d))
	if err != nil {
		return 0, fmt.Errorf("record the finding on %s: %w", h.Ref, err)
	}
	if len(after.Appended) == 0 {
		return 0, nil
	}
	c.Log.Warn("drift: access no request explains", telemetry.KeyRequestID, after.Request.ID(), "connector", h.conn,
		"target_ref", h.Ref, "present", h.Observed.Present)
	return 1, nil
}

// list lists the holdings of every connector with an inventory, in connector name order.
func (c *Reconciler) list(ctx context.Context) ([]held, error) {
	var out []held
	for _, name := range slices.Sorted(maps.Keys(c.Connectors)) {
		hs, err := connector.Holdings(ctx, name, c.Connectors[name])
		if connector.ClassOf(err) == connector.ClassNoInventory {
			c.Log.Debug("reconcile: skipped", "connector", name, telemetry.KeyError, err.Error())
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reconcile: list the %s target: %w", name, err)
		}
		for _, h := range hs {
			out = append(out, held{conn: name, Holding: h})
		}
	}
	return out, nil
}

// load reads request id from seq; a request whose stream fails verification is logged and skipped (nil).
func (c *Reconciler) load(ctx context.Context, id string, seq uint64) (*eventstore.Loaded, error) {
	l, err := c.Store.LoadAtLeast(ctx, id, seq)
	if deadletter.Permanent(err) {
		c.Log.Error("reconcile: request fails verification", telemetry.KeyRequestID, id, telemetry.KeyError, err.Error())
		return nil, nil
	}
	return l, err
}

// inventoried returns the connector called name if it has an inventory.
func (c *Reconciler) inventoried(name string) (connector.Connector, bool) {
	conn := c.Connectors[name]
	_, ok := conn.(connector.Inventory)
	return conn, ok
}

// missing confirms with the connector that l's live grant is absent from the target and records it; it
// returns 1 if it recorded drift.
func (c *Reconciler) missing(ctx context.Context, l *eventstore.Loaded, conn connector.Connector) (int, error) {
	r := l.Request
	g, ok := c.grantOf(r)
	if !ok {
		return 0, nil
	}
	obs, err := conn.Inspect(ctx, g)
	if err != nil || obs.Present {
		return 0, err
	}
	d := revoker.Drift{Connector: r.Grant().Connector, TargetRef: r.Grant().TargetRef, Observed: obs}
	next, err := c.Store.UpdateFrom(ctx, r.ID(), l.LastSeq, revoker.DecideMissing(d, c.now()))
	if err != nil || len(next.Appended) == 0 {
		return 0, err
	}
	c.Log.Warn("drift: a live grant's access is missing on the target", telemetry.KeyRequestID, r.ID(), "target_ref", d.TargetRef)
	return 1, nil
}

// revokeAgain records access still found after the revocation of request id (the holdings in still),
// revokes it through the connector and records the revocation again; with a revocation again due from
// an earlier reconcile it only retries that. It returns how many drift and revoked events it recorded.
func (c *Reconciler) revokeAgain(ctx context.Context, id string, seq uint64, still []held) (found, again int, err error) {
	l, err := c.load(ctx, id, seq)
	if l == nil || err != nil {
		return 0, 0, err
	}
	r := l.Request
	if !r.DriftRevocationDue() {
		if len(still) == 0 {
			return 0, 0, nil
		}
		h := still[0]
		d := revoker.Drift{Connector: h.conn, TargetRef: h.Ref, Observed: h.Observed}
		next, err := c.Store.UpdateFrom(ctx, id, l.LastSeq, revoker.DecideFoundAfterRevocation(d))
		if err != nil {
			return 0, 0, fmt.Errorf("record access after revocation of %s: %w", id, err)
		}
		if len(next.Appended) > 0 {
			found = 1
			c.Log.Warn("drift: access present after revocation; revoking again", telemetry.KeyRequestID, id, "target_ref", h.Ref)
		}
		l, r = next.Loaded, next.Request
		if !r.DriftRevocationDue() {
			return found, 0, nil
		}
	}
	g, ok := c.grantOf(r)
	if !ok {
		return found, 0, nil
	}
	obs, err := c.Connectors[r.Grant().Connector].Revoke(ctx, g)
	if err == nil && obs.Present {
		err = revoker.ErrStillPresent
	}
	if err != nil {
		return found, 0, fmt.Errorf("revoke %s again: %w", id, err)
	}
	next, err := c.Store.UpdateFrom(ctx, id, l.LastSeq, revoker.DecideRevokedAgain(obs, r.Grant().CredentialFingerprint != ""))
	if err != nil {
		return found, 0, err
	}
	if len(next.Appended) > 0 {
		again = 1
		c.Log.Info("revoked again", telemetry.KeyRequestID, id, "reason", string(events.RevokeDrift))
	}
	return found, again, nil
}

// grantOf is the connector's view of r's grant; false (and logged) when r's entitlement left the
// catalogue, which no retry mends.
func (c *Reconciler) grantOf(r *events.Request) (connector.Grant, bool) {
	ent, ok := c.Catalogue.Entitlement(r.Submitted().Entitlement)
	if !ok {
		c.Log.Error("reconcile: the entitlement is not in the catalogue", telemetry.KeyRequestID, r.ID(),
			"entitlement", r.Submitted().Entitlement)
		return connector.Grant{}, false
	}
	return connector.Grant{ID: r.ID(), Entitlement: ent, Subject: r.Submitted().Subject, ExpiresAt: r.Grant().ExpiresAt}, true
}

func anyPresent(hs []held) bool {
	return slices.ContainsFunc(hs, func(h held) bool { return h.Observed.Present })
}

func (c *Reconciler) now() time.Time {
	if c.Now == nil {
		return time.Now()
	}
	return c.Now()
}
