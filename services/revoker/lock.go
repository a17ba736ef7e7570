package revoker

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/grantline/grantline/pkg/events"
)

// Errors of lock commands; the HTTP edge maps each to a problem.
var (
	// ErrNotLockAdmin means the caller is in none of the lock admin groups.
	ErrNotLockAdmin = errors.New("only the lock admin groups place and remove locks")
	// ErrOwnLock means the caller asked to place or remove a lock on themselves (separation of duties).
	ErrOwnLock = errors.New("nobody places or removes a lock on themselves")
	// ErrNoLock means no lock has the ID.
	ErrNoLock = errors.New("no such lock")
	// ErrInvalidLock wraps what is wrong with a lock asked for.
	ErrInvalidLock = errors.New("invalid lock")
)

// LockOrder is what a lock admin asks for: what to lock, why, until when (nil: until removed) and
// whether emergencies still pass.
type LockOrder struct {
	Scope            events.LockScope
	Reason           string
	Until            *time.Time
	EmergencyAllowed bool
}

// mayLock says whether caller may place or remove a lock on scope, or why not: a member of the lock
// admin groups, and never on themselves.
func mayLock(caller Caller, scope events.LockScope, adminGroups []string) error {
	if scope.Kind == events.LockUser && scope.ID == caller.ID {
		return ErrOwnLock
	}
	if !IsLockAdmin(caller, adminGroups) {
		return ErrNotLockAdmin
	}
	return nil
}

// IsLockAdmin reports whether caller is in one of the lock admin groups.
func IsLockAdmin(caller Caller, adminGroups []string) bool {
	return caller.ID != "" && slices.ContainsFunc(caller.Groups, func(g string) bool { return slices.Contains(adminGroups, g) })
}

// DecidePlaceLock returns the decision on caller's order at now: lock_placed on a lock with no events;
// nothing when the same lock was placed already (a retried command); the reason from mayLock, or an
// ErrInvalidLock, otherwise.
func DecidePlaceLock(caller Caller, o LockOrder, adminGroups []string, now time.Time) func(*events.Lock) ([]events.Draft, error) {
	return func(l *events.Lock) ([]events.Draft, error) {
		if err := mayLock(caller, o.Scope, adminGroups); err != nil {
			return nil, err
		}
		switch {
		case o.Scope.Kind != events.LockUser && o.Scope.Kind != events.LockEntitlement && o.Scope.Kind != events.LockTarget:
			return nil, fmt.Errorf("%w: a lock covers a user, an entitlement or a target, not %q", ErrInvalidLock, o.Scope.Kind)
		case o.Scope.ID == "":
			return nil, fmt.Errorf("%w: name what the lock covers", ErrInvalidLock)
		case o.Reason == "" || len(o.Reason) > 1024:
			return nil, fmt.Errorf("%w: a reason of 1 to 1024 bytes is required", ErrInvalidLock)
		case o.Until != nil && !o.Until.After(now):
			return nil, fmt.Errorf("%w: until must be in the future", ErrInvalidLock)
		case l.Status() != events.LockStatusNone:
			return nil, nil
		}
		return []events.Draft{{Actor: caller.ID, CausationID: "lock-placed", Payload: events.LockPlaced{
			Scope: o.Scope, Reason: o.Reason, PlacedBy: events.Principal{ID: caller.ID, Groups: caller.Groups},
			Until: o.Until, EmergencyAllowed: o.EmergencyAllowed}}}, nil
	}
}

// DecideRemoveLock returns the decision on caller's removal of a lock with note: lock_removed on a
// placed lock; nothing on one removed already (asking twice is answered the same); ErrNoLock for an ID
// with no lock; the reason from mayLock otherwise. Removing a lock restores no access.
func DecideRemoveLock(caller Caller, note string, adminGroups []string) func(*events.Lock) ([]events.Draft, error) {
	return func(l *events.Lock) ([]events.Draft, error) {
		if l.Status() == events.LockStatusNone {
			return nil, ErrNoLock
		}
		if err := mayLock(caller, l.Placed().Scope, adminGroups); err != nil {
			return nil, err
		}
		if l.Status() == events.LockStatusRemoved {
			return nil, nil
		}
		return []events.Draft{{Actor: caller.ID, CausationID: "lock-removed", Payload: events.LockRemoved{
			RemovedBy: events.Principal{ID: caller.ID, Groups: caller.Groups}, Reason: note}}}, nil
	}
}

// DecideLocked returns the decision on a grant while lock l holds: revocation_requested with reason
// locked and the lock's ID, in the name of whoever placed it, for a live grant the lock covers (system
// is the target system of the grant's entitlement); nothing for any other request, or one whose
// revocation is under way or done. Redelivered, it appends nothing (the causation is the lock).
func DecideLocked(l *events.Lock, system string) func(*events.Request) ([]events.Draft, error) {
	return func(r *events.Request) ([]events.Draft, error) {
		s := r.Submitted()
		if r.Status() != events.StatusGranted || r.RevocationDue() != "" || !l.Covers(s.Requester.ID, s.Subject.ID, s.Entitlement, system) {
			return nil, nil
		}
		by := l.Placed().PlacedBy.ID
		return []events.Draft{{Payload: events.RevocationRequested{By: by, Reason: events.RevokeLocked, LockID: l.ID(),
			Note: l.Placed().Reason}, Actor: by, CausationID: "lock:" + l.ID()}}, nil
	}
}
