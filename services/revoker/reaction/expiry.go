package reaction

// Expiry in buckets. A grant's expiry is a key in the index (topology.ExpiriesBucket),
// <second>.<request id>.<sequence of its granted event>, and the second's one timer (kind
// topology.TimerExpiry, ID the second's Unix time) fires for all the grants due in it: a shift change
// that ends ten thousand grants in a minute is sixty timers, and the revoker revokes their grants in
// batches, through each connector's batch revocation where it has one.
//
// Nothing is lost between the two: arming writes the key before it wakes the timer (timers.Wake, which
// makes a timer that fired already fire again), so a fire either finds the key or comes after it. A
// key is removed only once the evidence carries the grant further (revoked, or expired for a failed
// first attempt, whose retries the revocations consumer owns), so a fire whose handling crashed is
// redelivered and finds what is left, and whatever was recorded already is not recorded again (the
// decisions' causations). A grant revoked at the first attempt costs one evidence write: revoked,
// reason expired, straight from granted. The index also holds the start-up sweep's mark, SweptKey,
// which names no second (sweep.go).

import (
	"cmp"
	"context"
	"encoding/json/v2"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/connector"
	"github.com/grantline/grantline/pkg/consumer"
	"github.com/grantline/grantline/pkg/deadletter"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/manualtask"
	"github.com/grantline/grantline/pkg/telemetry"
	"github.com/grantline/grantline/pkg/timers"
	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/services/revoker"
)

// Defaults of the expiry batches.
const (
	// DefaultBatchSize is how many grants of one connector are revoked in one batch.
	DefaultBatchSize = 256
	// batchesAtOnce is how many batches of a second run at once: enough to overlap one batch's
	// loads and appends (NATS round trips) with another's revocation at the target.
	batchesAtOnce = 4
	// requestsAtOnce bounds the loads and appends in flight within one batch: as many as a consumer
	// runs handlers at once (consumer.DefaultConcurrency), for the appends are what a drain waits on.
	requestsAtOnce = 64
	// keyMarkerTTL is how long a removed index key leaves its marker, so the bucket does not keep one
	// marker per grant ever made.
	keyMarkerTTL = time.Minute
)

// ExpiriesConfig is the index of expiries by second; the revoker creates or updates it at start.
func ExpiriesConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{Bucket: topology.ExpiriesBucket, Storage: jetstream.FileStorage, Replicas: max(replicas, 1),
		LimitMarkerTTL: keyMarkerTTL, Description: "Grantline: the revoker's armed expiries by the second they fall due"}
}

// due is one grant in an expiry second.
type due struct {
	id  string
	seq uint64
	key string
	// trace is the trace context of the reaction that armed it: its revocation continues that
	// request's trace, though the second's timer is shared.
	trace nats.Header
}

// expiryKey is the index key of request id, granted at stream sequence seq, due in second sec.
func expiryKey(sec int64, id string, seq uint64) string {
	return strconv.FormatInt(sec, 10) + "." + id + "." + strconv.FormatUint(seq, 10)
}

// dueSecond is the second whose timer revokes a grant expiring at at: rounded up, since the scheduler
// works in whole seconds and a grant is never revoked before its expiry.
func dueSecond(at time.Time) int64 {
	sec := at.Unix()
	if at.After(time.Unix(sec, 0)) {
		sec++
	}
	return sec
}

// arm puts request id's expiry in the index and wakes its second's timer.
func (h *Reactions) arm(ctx context.Context, id string, seq uint64, expiresAt time.Time) error {
	sec, err := h.put(ctx, id, seq, expiresAt)
	if err != nil {
		return err
	}
	return h.wake(ctx, sec)
}

// put puts request id's expiry in the index, with the trace context of ctx, and returns its second. The
// key goes before its second is woken: a fire after the wake finds it.
func (h *Reactions) put(ctx context.Context, id string, seq uint64, expiresAt time.Time) (int64, error) {
	sec := dueSecond(expiresAt)
	carrier := nats.Header{}
	telemetry.Inject(ctx, carrier)
	value, err := json.Marshal(carrier)
	if err != nil {
		return 0, err
	}
	if _, err := h.Expiries.Put(ctx, expiryKey(sec, id, seq), value); err != nil {
		return 0, fmt.Errorf("index expiry of %s: %w", id, err)
	}
	h.Log.Debug("expiry armed", telemetry.KeyRequestID, id, "second", sec)
	return sec, nil
}

// wake (re)sets the timer of second sec.
func (h *Reactions) wake(ctx context.Context, sec int64) error {
	return timers.Wake(ctx, h.JS, strconv.FormatInt(sec, 10), topology.TimerExpiry, time.Unix(sec, 0))
}

// Fired handles a fired expiry timer: every grant the index holds for its second is revoked, in
// batches (ExpireAll). A fire early by this clock is retried at its second. A grant's own timer from
// before expiries were kept by the second is acknowledged: the start-up sweep has put its grant in
// the index.
func (h *Reactions) Fired(ctx context.Context, msg jetstream.Msg) error {
	id, kind, _, err := timers.ParseFired(msg)
	if err == nil && kind != topology.TimerExpiry {
		err = fmt.Errorf("timer %s is not an expiry", kind)
	}
	if err != nil {
		return consumer.Permanent(err)
	}
	if events.ValidRequestID(id) {
		h.Log.Info("a grant's own expiry timer, from before expiries were kept by the second, left to the sweep", telemetry.KeyRequestID, id)
		return nil
	}
	sec, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return consumer.Permanent(fmt.Errorf("expiry timer %q names no second: %w", id, err))
	}
	if wait := time.Unix(sec, 0).Sub(h.now()); wait > 0 {
		return consumer.RetryAfter(fmt.Errorf("expiry second %d not reached by this clock", sec), wait+50*time.Millisecond)
	}
	grants, err := h.dueIn(ctx, sec)
	if err != nil {
		return err
	}
	return h.ExpireAll(ctx, grants)
}

// dueIn lists the grants the index holds for second sec, in one read of the second's keys.
func (h *Reactions) dueIn(ctx context.Context, sec int64) ([]due, error) {
	var out []due
	err := h.readIndex(ctx, strconv.FormatInt(sec, 10)+".>", func(e jetstream.KeyValueEntry) error {
		parts := strings.Split(e.Key(), ".")
		seq, err := strconv.ParseUint(parts[len(parts)-1], 10, 64)
		if len(parts) != 3 || err != nil || !events.ValidRequestID(parts[1]) {
			h.Log.Error("expiry index: a key that names no grant", "key", e.Key())
			return nil
		}
		d := due{id: parts[1], seq: seq, key: e.Key()}
		if len(e.Value()) > 0 && json.Unmarshal(e.Value(), &d.trace) != nil {
			d.trace = nil // a trace lost, nothing more
		}
		out = append(out, d)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list expiries of second %d: %w", sec, err)
	}
	return out, nil
}

// readIndex calls fn with each key of the expiry index that filter matches, as the index holds them
// now (one watch, read to its end), and returns the first error, fn's or the watch's.
func (h *Reactions) readIndex(ctx context.Context, filter string, fn func(jetstream.KeyValueEntry) error, opts ...jetstream.WatchOpt) error {
	w, err := h.Expiries.WatchFiltered(ctx, []string{filter}, append(opts, jetstream.IgnoreDeletes())...)
	if err != nil {
		return err
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case e := <-w.Updates():
			if e == nil { // every key there was is read
				return nil
			}
			if err := fn(e); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// ExpireAll revokes the grants of grants that are due, in batches of BatchSize per connector, a few
// batches at once. A grant revoked and observed absent is
// recorded revoked (reason expired); one whose attempt failed, or that a person revokes (a manual
// grant), is recorded expired, and the revocations consumer retries it from there; either way its
// index key is removed. It returns an error, for a retry of what is left, when something could not be
// recorded.
func (h *Reactions) ExpireAll(ctx context.Context, grants []due) error {
	size := h.batchSize()
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	slots := make(chan struct{}, batchesAtOnce)
	for start := 0; start < len(grants); start += size {
		batch := grants[start:min(start+size, len(grants))]
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			if err := h.expireBatch(ctx, batch); err != nil {
				mu.Lock()
				firstErr = cmp.Or(firstErr, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return firstErr
}

// expiring is one grant of a batch on its way.
type expiring struct {
	due
	l   *eventstore.Loaded
	ent catalogue.Entitlement
	// settle is the decision that records the outcome; nil leaves the grant to another path.
	settle  eventstore.Decide
	revoked bool
	// keep leaves the index key for the next fire: the grant is not due yet by this clock.
	keep bool
}

// expireBatch loads the grants of batch, revokes the live ones through their connectors and records
// each outcome.
func (h *Reactions) expireBatch(ctx context.Context, batch []due) error {
	now := h.now()
	items := make([]*expiring, len(batch))
	var loadErr error
	var mu sync.Mutex
	each(len(batch), func(i int) {
		it := &expiring{due: batch[i]}
		items[i] = it
		l, err := h.Store.LoadAtLeast(ctx, it.id, it.seq)
		switch {
		case deadletter.Permanent(err):
			// No retry can help: the request's stream fails verification (audit verify names it).
			h.Log.Error("expiry: request fails verification", telemetry.KeyRequestID, it.id, telemetry.KeyError, err.Error())
			return
		case err != nil:
			mu.Lock()
			loadErr = cmp.Or(loadErr, fmt.Errorf("load %s: %w", it.id, err))
			mu.Unlock()
			it.keep = true
			return
		}
		it.l = l
	})
	byConnector := map[string][]*expiring{}
	var until time.Time
	for _, it := range items {
		if it.l == nil {
			continue
		}
		r := it.l.Request
		if r.Status() != events.StatusGranted || r.RevocationDue() != "" {
			continue // revoked, or its revocation is under way on the revocations consumer
		}
		if now.Before(r.Grant().ExpiresAt) {
			if r.Grant().ExpiresAt.After(until) {
				until = r.Grant().ExpiresAt
			}
			it.keep = true
			continue
		}
		ent, ok := h.Catalogue.Entitlement(r.Submitted().Entitlement)
		it.ent = ent
		if !ok || ent.Connector == manualtask.Connector {
			// A person revokes a manual grant (expired opens the revoke task); an unknown entitlement
			// fails on the revocations consumer, where its failure is recorded.
			it.settle = revoker.DecideExpire(now)
			continue
		}
		byConnector[ent.Connector] = append(byConnector[ent.Connector], it)
	}
	for name, its := range byConnector {
		h.revokeAtExpiry(ctx, name, its, now)
	}
	recordErr := h.record(ctx, items)
	switch {
	case loadErr != nil:
		return loadErr
	case recordErr != nil:
		return recordErr
	case !until.IsZero():
		return consumer.RetryAfter(errors.New("a grant of this second expires later by this clock"), time.Until(until)+50*time.Millisecond)
	}
	return nil
}

// revokeAtExpiry revokes its, the grants of connector name, in one batch within the attempt timeout,
// and sets each one's decision: revoked when the target shows the access gone, expired otherwise.
func (h *Reactions) revokeAtExpiry(ctx context.Context, name string, its []*expiring, now time.Time) {
	expire := func(it *expiring, err error) {
		h.ConnectorErrors.Record(ctx, name, "revoke", err)
		h.Log.Warn("first revocation at expiry failed; retrying", telemetry.KeyRequestID, it.id, "error_class", connector.ClassOf(err), telemetry.KeyError, err.Error())
		f := revoker.Failure{Attempts: 1, Class: connector.ClassOf(err), Message: err.Error(), OverdueSince: it.l.Request.Grant().ExpiresAt}
		it.settle = revoker.DecideExpireFailed(h.policy(), f, h.now())
	}
	conn, err := h.Connectors.For(its[0].ent)
	if err != nil {
		for _, it := range its {
			expire(it, err)
		}
		return
	}
	gs := make([]connector.Grant, len(its))
	for i, it := range its {
		r := it.l.Request
		gs[i] = connector.Grant{ID: it.id, Entitlement: it.ent, Subject: r.Submitted().Subject, ExpiresAt: r.Grant().ExpiresAt}
	}
	// The attempt ends by the instant the first of its revocations becomes overdue by the clock, as one
	// grant's does, so that a hanging target cannot keep an overdue expiry from being recorded.
	limit := h.attemptTimeout()
	for _, it := range its {
		if at, ok := h.policy().Unreported(revoker.Failure{OverdueSince: it.l.Request.Grant().ExpiresAt}, now); ok {
			limit = min(limit, at.Sub(now))
		}
	}
	actx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for i, out := range connector.RevokeAll(actx, conn, gs) {
		it := its[i]
		switch {
		case out.Err != nil && actx.Err() != nil && !connector.IsPermanent(out.Err):
			expire(it, connector.Transient("timeout", fmt.Errorf("no answer within %s: %w", limit.Round(time.Millisecond), out.Err)))
		case out.Err != nil:
			expire(it, out.Err)
		case out.Observed.Present:
			expire(it, connector.Transient("still_present", revoker.ErrStillPresent))
		default:
			h.ConnectorErrors.Record(ctx, name, "revoke", nil)
			destroyed := it.l.Request.Grant().CredentialFingerprint != ""
			it.settle, it.revoked = revoker.DecideRevokedAtExpiry(out.Observed, destroyed, now), true
		}
	}
}

// record appends each grant's decision and removes the index key of every grant settled: recorded,
// or left to another path. It returns the first failure.
func (h *Reactions) record(ctx context.Context, items []*expiring) error {
	var mu sync.Mutex
	var first error
	each(len(items), func(i int) {
		it := items[i]
		if it.keep {
			return
		}
		if it.settle != nil {
			// The grant's own trace, from its arming: the request's path reads from submission to revocation.
			ctx, span := telemetry.Tracer("services/revoker/reaction").Start(telemetry.Extract(ctx, it.trace), "revoker expire")
			defer span.End()
			u, err := h.Store.UpdateFrom(ctx, it.id, it.l.LastSeq, it.settle)
			if err != nil {
				mu.Lock()
				first = cmp.Or(first, fmt.Errorf("record expiry of %s: %w", it.id, err))
				mu.Unlock()
				return
			}
			if it.revoked && len(u.Appended) > 0 {
				h.revokedAtExpiry(ctx, it.l)
			}
		}
		h.forget(ctx, it.key)
	})
	return first
}

// revokedAtExpiry finishes a grant recorded revoked at its expiry: its unretrieved secret goes, and its
// lag is recorded.
func (h *Reactions) revokedAtExpiry(ctx context.Context, l *eventstore.Loaded) {
	r := l.Request
	destroyed := r.Grant().CredentialFingerprint != ""
	if destroyed && h.Credentials != nil {
		if err := h.Credentials.Discard(ctx, r.ID()); err != nil {
			h.Log.Warn("revoked, but the unretrieved secret stays until it expires", telemetry.KeyRequestID, r.ID(), telemetry.KeyError, err.Error())
		}
	}
	lag := h.now().Sub(r.Grant().ExpiresAt)
	if h.RevocationLag != nil {
		h.RevocationLag.Record(ctx, max(lag, 0).Seconds())
	}
	h.Log.Info("revoked", telemetry.KeyRequestID, r.ID(), "reason", string(events.RevokeExpired), "credential_destroyed", destroyed,
		"overdue_ms", lag.Milliseconds())
}

// forget removes an index key; one left behind costs a look at a settled grant when its second fires
// again, nothing more.
func (h *Reactions) forget(ctx context.Context, key string) {
	if err := h.Expiries.Purge(ctx, key, jetstream.PurgeTTL(keyMarkerTTL)); err != nil {
		h.Log.Warn("expiry index: remove key", "key", key, telemetry.KeyError, err.Error())
	}
}

// each runs fn(0..n-1), requestsAtOnce at a time, and returns when all have.
func each(n int, fn func(i int)) {
	var wg sync.WaitGroup
	slots := make(chan struct{}, requestsAtOnce)
	for i := range n {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			fn(i)
		})
	}
	wg.Wait()
}

func (h *Reactions) batchSize() int {
	if h.BatchSize > 0 {
		return h.BatchSize
	}
	return DefaultBatchSize
}
