package events

import (
	"fmt"
	"time"
)

// LockTypePrefix is the common prefix of the lock event types. A lock is its own small aggregate, not
// a request's event, so its types are outside the request catalogue's prefix.
const LockTypePrefix = "io.grantline.lock."

// The lock events (docs/architecture.md, "Incident response"), both emitted by the revoker. They are
// stored in the evidence stream under the lock's ID (grantline.events.<lockID>.lock_placed), so the
// checkpoints, witnesses and audit cover them like a request's events.
const (
	TypeLockPlaced  Type = LockTypePrefix + "lock_placed"
	TypeLockRemoved Type = LockTypePrefix + "lock_removed"
)

// LockScopeKind says what a lock stops: a person, an entitlement or a whole target system.
type LockScopeKind string

// Lock scopes.
const (
	LockUser        LockScopeKind = "user"
	LockEntitlement LockScopeKind = "entitlement"
	LockTarget      LockScopeKind = "target"
)

// LockScope is what a lock covers: the person's immutable IdP subject, the entitlement's ID or the
// target system's name, by Kind.
type LockScope struct {
	Kind LockScopeKind `json:"kind"`
	ID   string        `json:"id"`
}

// LockPlaced records that access covered by Scope is stopped from now until Until (for good when nil),
// because of Reason (emitted by the revoker for a member of the lock admin groups, PlacedBy).
type LockPlaced struct {
	Scope    LockScope  `json:"scope"`
	Reason   string     `json:"reason"`
	PlacedBy Principal  `json:"placed_by"`
	Until    *time.Time `json:"until,omitempty"`
	// EmergencyAllowed lets emergency requests the lock covers through policy; by default a lock
	// denies them too, since an incident is exactly when break-glass is abused.
	EmergencyAllowed bool `json:"emergency_allowed"`
}

// EventType implements Payload.
func (LockPlaced) EventType() Type { return TypeLockPlaced }

// LockRemoved records that a lock stops denying new requests (emitted by the revoker). It restores no
// access: what the lock revoked stays revoked.
type LockRemoved struct {
	RemovedBy Principal `json:"removed_by"`
	Reason    string    `json:"reason,omitempty"`
}

// EventType implements Payload.
func (LockRemoved) EventType() Type { return TypeLockRemoved }

// LockStatus is the lifecycle state of a lock: placed, then removed for good.
type LockStatus string

// Lock statuses. LockStatusNone is a lock with no events yet.
const (
	LockStatusNone    LockStatus = ""
	LockStatusPlaced  LockStatus = "placed"
	LockStatusRemoved LockStatus = "removed"
)

// Lock is the aggregate of one lock folded from its events. Its fields change only through Apply.
type Lock struct {
	id       string
	version  int
	status   LockStatus
	placed   LockPlaced
	placedAt time.Time
	removed  *LockRemoved
}

// NewLock returns the empty aggregate of lock id, ready for its lock_placed.
func NewLock(id string) *Lock { return &Lock{id: id} }

// FoldLock applies evs in order to a new aggregate of lock id and stops at the first refused event.
func FoldLock(id string, evs []Event) (*Lock, error) {
	l := NewLock(id)
	for i, ev := range evs {
		if err := l.Apply(ev); err != nil {
			return nil, fmt.Errorf("event %d (%s): %w", i+1, ev.ID, err)
		}
	}
	return l, nil
}

// ID is the lock ID.
func (l *Lock) ID() string { return l.id }

// Version is the number of events applied.
func (l *Lock) Version() int { return l.version }

// Status is the derived lifecycle status.
func (l *Lock) Status() LockStatus { return l.status }

// Placed is the lock as placed; zero before its first event.
func (l *Lock) Placed() LockPlaced { return l.placed }

// PlacedAt is when the lock was placed.
func (l *Lock) PlacedAt() time.Time { return l.placedAt }

// Removed is the recorded removal, or nil.
func (l *Lock) Removed() *LockRemoved { return l.removed }

// Holds reports whether the lock stops access at now: placed, not removed, and before its Until.
func (l *Lock) Holds(now time.Time) bool {
	return l.status == LockStatusPlaced && (l.placed.Until == nil || now.Before(*l.placed.Until))
}

// Covers reports whether the lock's scope takes in a request for entitlement, held by subjectID and
// asked for by requesterID, on target system. A person's lock covers what they asked for as well as
// what they hold: a stolen session could otherwise ask for a service account's credentials.
func (l *Lock) Covers(requesterID, subjectID, entitlement, system string) bool {
	s := l.placed.Scope
	switch s.Kind {
	case LockUser:
		return s.ID == subjectID || s.ID == requesterID
	case LockEntitlement:
		return s.ID == entitlement
	case LockTarget:
		return s.ID == system
	}
	return false
}

// Apply checks that ev fits the lock's current state and moves the state on. A refused event leaves the
// lock unchanged and returns a *RefusedError whose Status is the lock's.
func (l *Lock) Apply(ev Event) error {
	if ev.Payload == nil || ev.Payload.EventType() != ev.Type {
		return l.refuse(ev.Type, "payload does not match the event type")
	}
	if ev.Subject != l.id {
		return l.refuse(ev.Type, fmt.Sprintf("event is for lock %q", ev.Subject))
	}
	if err := l.check(ev); err != nil {
		return err
	}
	switch p := ev.Payload.(type) {
	case LockPlaced:
		l.status, l.placed, l.placedAt = LockStatusPlaced, p, ev.Time
	case LockRemoved:
		l.status, l.removed = LockStatusRemoved, &p
	}
	l.version++
	return nil
}

func (l *Lock) refuse(t Type, reason string) error {
	return &RefusedError{Status: Status(l.status), Type: t, Reason: reason}
}

// check is the lock's transition table: placed once, then removed once (terminal). Who may place or
// remove a lock at all (the lock admin groups) is the API's rule; the aggregate keeps the ones the
// evidence itself must show: nobody locks or unlocks themselves.
func (l *Lock) check(ev Event) error {
	refuse := func(reason string) error { return l.refuse(ev.Type, reason) }
	switch p := ev.Payload.(type) {
	case LockPlaced:
		switch {
		case l.status != LockStatusNone:
			return refuse("a lock is placed once")
		case p.Scope.Kind != LockUser && p.Scope.Kind != LockEntitlement && p.Scope.Kind != LockTarget:
			return refuse(fmt.Sprintf("unknown lock scope %q", p.Scope.Kind))
		case p.Scope.ID == "":
			return refuse("a lock names what it covers")
		case p.Reason == "":
			return refuse("a lock gives its reason")
		case p.PlacedBy.ID == "" || ev.Actor != p.PlacedBy.ID:
			return refuse("a lock is placed by the person the event names as its actor")
		case p.Scope.Kind == LockUser && p.Scope.ID == p.PlacedBy.ID:
			return refuse("nobody places a lock on themselves")
		case p.Until != nil && !p.Until.After(ev.Time):
			return refuse("a lock ends after it is placed")
		}
	case LockRemoved:
		switch {
		case l.status == LockStatusNone:
			return refuse("a lock begins with lock_placed")
		case l.status == LockStatusRemoved:
			return refuse("the lock was already removed")
		case p.RemovedBy.ID == "" || ev.Actor != p.RemovedBy.ID:
			return refuse("a lock is removed by the person the event names as its actor")
		case l.placed.Scope.Kind == LockUser && l.placed.Scope.ID == p.RemovedBy.ID:
			return refuse("the locked person may not remove their own lock")
		}
	default:
		return refuse("not a lock event")
	}
	return nil
}
