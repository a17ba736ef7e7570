package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json/v2"
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/httpjson"
	"github.com/grantline/grantline/pkg/idempotency"
	"github.com/grantline/grantline/pkg/streamscan"
	"github.com/grantline/grantline/services/revoker"
)

// LockBody is a lock admin's order: what to lock, why, until when, and whether emergencies pass.
type LockBody struct {
	Scope            events.LockScope `json:"scope"`
	Reason           string           `json:"reason"`
	Until            *time.Time       `json:"until,omitempty"`
	EmergencyAllowed bool             `json:"emergency_allowed,omitempty"`
}

// RemoveLockBody says why a lock is removed.
type RemoveLockBody struct {
	Reason string `json:"reason,omitempty"`
}

// LockView is a lock as the API shows it.
type LockView struct {
	ID               string            `json:"id"`
	Scope            events.LockScope  `json:"scope"`
	Reason           string            `json:"reason"`
	PlacedBy         string            `json:"placed_by"`
	PlacedAt         time.Time         `json:"placed_at"`
	Until            *time.Time        `json:"until,omitempty"`
	EmergencyAllowed bool              `json:"emergency_allowed"`
	Status           events.LockStatus `json:"status"`
	// Holds says whether the lock stops access now: placed, not removed, before its until.
	Holds     bool   `json:"holds"`
	RemovedBy string `json:"removed_by,omitempty"`
	// Outstanding is the progress of a holding lock in the listing: how many grants it covers are not
	// revoked yet (0 once every one is gone from its target); absent elsewhere.
	Outstanding *int `json:"outstanding,omitempty"`
}

// LockList answers GET /v1/locks.
type LockList struct {
	Locks []LockView `json:"locks"`
}

func viewOf(l *events.Lock, now time.Time) LockView {
	p := l.Placed()
	v := LockView{ID: l.ID(), Scope: p.Scope, Reason: p.Reason, PlacedBy: p.PlacedBy.ID, PlacedAt: l.PlacedAt().UTC(),
		Until: p.Until, EmergencyAllowed: p.EmergencyAllowed, Status: l.Status(), Holds: l.Holds(now)}
	if r := l.Removed(); r != nil {
		v.RemovedBy = r.RemovedBy.ID
	}
	return v
}

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

func (h *Handler) placeLock(w http.ResponseWriter, r *http.Request) {
	v, err := h.handlePlaceLock(r)
	log := h.Log.With("lock_id", v.ID)
	if err != nil {
		problems.Refuse(w, r, log, "place lock", err)
		return
	}
	log.Info("lock placed", "scope", v.Scope.Kind, "scope_id", v.Scope.ID, "by", v.PlacedBy)
	w.Header().Set("Location", "/v1/locks/"+v.ID)
	httpjson.Write(w, http.StatusCreated, v)
}

func (h *Handler) handlePlaceLock(r *http.Request) (LockView, error) {
	who, err := h.Auth.Authenticate(r)
	if err != nil {
		return LockView{}, err
	}
	var body LockBody
	if err := httpjson.Decode(r, &body, MaxBody); err != nil {
		return LockView{}, err
	}
	key, err := idempotency.FromHeader(r)
	if err != nil {
		return LockView{}, err
	}
	caller := revoker.Caller{ID: who.Subject, Groups: who.Groups}
	order := revoker.LockOrder{Scope: body.Scope, Reason: body.Reason, Until: body.Until, EmergencyAllowed: body.EmergencyAllowed}
	id := events.NewID()
	if key != "" {
		// A retry gets the lock ID of the first attempt, on which placing the same lock again appends
		// nothing (DecidePlaceLock).
		if id, err = h.LockKeys.Claim(r.Context(), "lock-admin:"+who.Subject, key, orderDigest(body)); err != nil {
			return LockView{}, err
		}
	}
	now := h.now()
	l, err := h.Store.UpdateLock(r.Context(), id, revoker.DecidePlaceLock(caller, order, h.LockAdminGroups, now))
	if err != nil {
		return LockView{}, err
	}
	return viewOf(l.Lock, now), nil
}

// orderDigest identifies what a lock admin asked for, so that a key reused for a different lock is
// refused.
func orderDigest(body LockBody) string {
	b, _ := json.Marshal(body)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func (h *Handler) removeLock(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	v, err := h.handleRemoveLock(r, id)
	log := h.Log.With("lock_id", id)
	if err != nil {
		problems.Refuse(w, r, log, "remove lock", err)
		return
	}
	log.Info("lock removed", "by", v.RemovedBy)
	httpjson.Write(w, http.StatusOK, v)
}

func (h *Handler) handleRemoveLock(r *http.Request, id string) (LockView, error) {
	who, err := h.Auth.Authenticate(r)
	if err != nil {
		return LockView{}, err
	}
	if !events.ValidRequestID(id) {
		return LockView{}, revoker.ErrNoLock
	}
	var body RemoveLockBody
	if err := httpjson.Decode(r, &body, MaxBody); err != nil {
		return LockView{}, err
	}
	caller := revoker.Caller{ID: who.Subject, Groups: who.Groups}
	l, err := h.Store.UpdateLock(r.Context(), id, revoker.DecideRemoveLock(caller, body.Reason, h.LockAdminGroups))
	if err != nil {
		return LockView{}, err
	}
	return viewOf(l.Lock, h.now()), nil
}

func (h *Handler) listLocks(w http.ResponseWriter, r *http.Request) {
	list, err := h.handleListLocks(r)
	if err != nil {
		problems.Refuse(w, r, h.Log, "list locks", err)
		return
	}
	httpjson.Write(w, http.StatusOK, list)
}

// handleListLocks lists every lock, newest first, to the lock admin groups only: a lock names a person
// and why they are suspected.
func (h *Handler) handleListLocks(r *http.Request) (LockList, error) {
	who, err := h.Auth.Authenticate(r)
	if err != nil {
		return LockList{}, err
	}
	if !revoker.IsLockAdmin(revoker.Caller{ID: who.Subject, Groups: who.Groups}, h.LockAdminGroups) {
		return LockList{}, revoker.ErrNotLockAdmin
	}
	locks, err := allLocks(r.Context(), h.Store, h.JS)
	if err != nil {
		return LockList{}, err
	}
	now := h.now()
	outstanding, err := h.outstanding(r.Context(), locks, now)
	if err != nil {
		return LockList{}, err
	}
	list := LockList{Locks: []LockView{}}
	for i := len(locks) - 1; i >= 0; i-- {
		v := viewOf(locks[i], now)
		if n, ok := outstanding[locks[i].ID()]; ok {
			v.Outstanding = &n
		}
		list.Locks = append(list.Locks, v)
	}
	return list, nil
}

// outstanding counts, for each lock that holds at now, the live grants it covers: the grants its
// revocation has still to remove. Nothing is read while no lock holds.
func (h *Handler) outstanding(ctx context.Context, locks []*events.Lock, now time.Time) (map[string]int, error) {
	out := map[string]int{}
	for _, l := range locks {
		if l.Holds(now) {
			out[l.ID()] = 0
		}
	}
	if len(out) == 0 {
		return out, nil
	}
	live, err := streamscan.LiveGrants(ctx, h.JS)
	if err != nil {
		return nil, fmt.Errorf("list the live grants: %w", err)
	}
	for _, id := range live {
		g, err := h.Store.Load(ctx, id)
		if err != nil {
			return nil, err
		}
		if g.Request.Status() != events.StatusGranted {
			continue
		}
		s := g.Request.Submitted()
		ent, _ := h.Catalogue.Entitlement(s.Entitlement)
		for _, l := range locks {
			if _, holds := out[l.ID()]; holds && l.Covers(s.Requester.ID, s.Subject.ID, s.Entitlement, ent.System) {
				out[l.ID()]++
			}
		}
	}
	return out, nil
}

// allLocks loads every lock ever placed, oldest first: locks are few, and each is read verified.
func allLocks(ctx context.Context, st *eventstore.Store, js jetstream.JetStream) ([]*events.Lock, error) {
	var ids []string
	if err := streamscan.Requests(ctx, js, events.TypeLockPlaced, func(id string, _ uint64) error {
		ids = append(ids, id)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list locks: %w", err)
	}
	out := make([]*events.Lock, 0, len(ids))
	for _, id := range ids {
		l, err := st.LoadLock(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, l.Lock)
	}
	return out, nil
}
