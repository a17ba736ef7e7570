package events

import (
	"errors"
	"testing"
	"time"
)

const testLockID = "01KB0000000000000000000ACE"

var (
	lockT0     = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	security   = Principal{ID: "sam", Groups: []string{"security"}}
	lockedUser = "mallory"
)

func lockEvent(actor string, at time.Time, p Payload) Event {
	return Event{Envelope: Envelope{ID: NewID(), Type: p.EventType(), Subject: testLockID, Time: at, Actor: actor}, Payload: p}
}

func placed(scope LockScope) LockPlaced {
	return LockPlaced{Scope: scope, Reason: "laptop stolen", PlacedBy: security}
}

// TestLockRules is the lock's rule table: each row is a story of events before, the event offered, and
// whether the lock accepts it and in which state it ends. Who may place a lock at all (the lock admin
// groups) is the API's rule; these are the ones the evidence itself must keep.
func TestLockRules(t *testing.T) {
	userScope := LockScope{Kind: LockUser, ID: lockedUser}
	until := lockT0.Add(time.Hour)
	past := lockT0.Add(-time.Minute)
	removal := func(by string) Event {
		return lockEvent(by, lockT0.Add(time.Minute), LockRemoved{RemovedBy: Principal{ID: by}, Reason: "laptop found"})
	}
	placeUser := lockEvent(security.ID, lockT0, placed(userScope))
	tests := []struct {
		name   string
		before []Event
		offer  Event
		want   LockStatus // LockStatusNone with refused
		refuse bool
	}{
		{"security locks a person", nil, placeUser, LockStatusPlaced, false},
		{"security locks an entitlement", nil, lockEvent(security.ID, lockT0, placed(LockScope{LockEntitlement, "pg-prod-read"})), LockStatusPlaced, false},
		{"security locks a target system", nil, lockEvent(security.ID, lockT0, placed(LockScope{LockTarget, "pg-prod"})), LockStatusPlaced, false},
		{"a lock until a later time", nil, lockEvent(security.ID, lockT0, LockPlaced{Scope: userScope, Reason: "r", PlacedBy: security, Until: &until}), LockStatusPlaced, false},
		{"a lock that ended before it began", nil, lockEvent(security.ID, lockT0, LockPlaced{Scope: userScope, Reason: "r", PlacedBy: security, Until: &past}), LockStatusNone, true},
		{"nobody locks themselves", nil, lockEvent(security.ID, lockT0, placed(LockScope{LockUser, security.ID})), LockStatusNone, true},
		{"a lock without a reason", nil, lockEvent(security.ID, lockT0, LockPlaced{Scope: userScope, PlacedBy: security}), LockStatusNone, true},
		{"a lock on nothing", nil, lockEvent(security.ID, lockT0, placed(LockScope{LockUser, ""})), LockStatusNone, true},
		{"a lock of an unknown scope", nil, lockEvent(security.ID, lockT0, placed(LockScope{"team", "x"})), LockStatusNone, true},
		{"the actor is not who placed it", nil, lockEvent("eve", lockT0, placed(userScope)), LockStatusNone, true},
		{"a lock is placed once", []Event{placeUser}, placeUser, LockStatusPlaced, true},
		{"removal before placement", nil, removal(security.ID), LockStatusNone, true},
		{"security removes the lock", []Event{placeUser}, removal(security.ID), LockStatusRemoved, false},
		{"another admin removes the lock", []Event{placeUser}, removal("rita"), LockStatusRemoved, false},
		{"the locked person may not remove their own lock", []Event{placeUser}, removal(lockedUser), LockStatusPlaced, true},
		{"removed twice", []Event{placeUser, removal(security.ID)}, removal(security.ID), LockStatusRemoved, true},
		{"a request's event is no lock's", nil, lockEvent(security.ID, lockT0, Withdrawn{}), LockStatusNone, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := FoldLock(testLockID, tt.before)
			if err != nil {
				t.Fatalf("story does not fold: %v", err)
			}
			version := l.Version()
			err = l.Apply(tt.offer)
			if tt.refuse != (err != nil) {
				t.Fatalf("Apply = %v, want refused %v", err, tt.refuse)
			}
			if err != nil && !errors.Is(err, ErrRefused) {
				t.Fatalf("refusal %v is not ErrRefused", err)
			}
			if tt.refuse && l.Version() != version {
				t.Fatalf("a refused event changed the version to %d", l.Version())
			}
			if l.Status() != tt.want {
				t.Fatalf("status %q, want %q", l.Status(), tt.want)
			}
		})
	}
}

// TestLockHoldsAndCovers says what a lock stops and while when.
func TestLockHoldsAndCovers(t *testing.T) {
	until := lockT0.Add(time.Hour)
	lockOn := func(scope LockScope, until *time.Time, removed bool) *Lock {
		evs := []Event{lockEvent(security.ID, lockT0, LockPlaced{Scope: scope, Reason: "r", PlacedBy: security, Until: until})}
		if removed {
			evs = append(evs, lockEvent("rita", lockT0.Add(time.Minute), LockRemoved{RemovedBy: Principal{ID: "rita"}}))
		}
		l, err := FoldLock(testLockID, evs)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	user := LockScope{LockUser, lockedUser}
	tests := []struct {
		name                                 string
		lock                                 *Lock
		at                                   time.Time
		requester, subject, entitlement, sys string
		holds, covers                        bool
	}{
		{"a person's lock covers what they hold", lockOn(user, nil, false), lockT0, "alice", lockedUser, "db", "pg", true, true},
		{"and what they ask for a service account", lockOn(user, nil, false), lockT0, lockedUser, "svc-etl", "db", "pg", true, true},
		{"but not other people's access", lockOn(user, nil, false), lockT0, "alice", "bob", "db", "pg", true, false},
		{"an entitlement's lock covers every holder", lockOn(LockScope{LockEntitlement, "db"}, nil, false), lockT0, "alice", "bob", "db", "pg", true, true},
		{"and no other entitlement", lockOn(LockScope{LockEntitlement, "db"}, nil, false), lockT0, "alice", "bob", "dw", "pg", true, false},
		{"a target's lock covers its entitlements", lockOn(LockScope{LockTarget, "pg"}, nil, false), lockT0, "alice", "bob", "dw", "pg", true, true},
		{"a lock holds until its end", lockOn(user, &until, false), until.Add(-time.Second), "alice", lockedUser, "db", "pg", true, true},
		{"and not from it", lockOn(user, &until, false), until, "alice", lockedUser, "db", "pg", false, true},
		{"a removed lock holds no more", lockOn(user, nil, true), lockT0.Add(time.Hour), "alice", lockedUser, "db", "pg", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.lock.Holds(tt.at); got != tt.holds {
				t.Errorf("Holds = %v, want %v", got, tt.holds)
			}
			if got := tt.lock.Covers(tt.requester, tt.subject, tt.entitlement, tt.sys); got != tt.covers {
				t.Errorf("Covers = %v, want %v", got, tt.covers)
			}
		})
	}
}

// TestRevocationByLock says how a lock asks for a grant's end: with reason locked and the lock's ID,
// and a lock's ID only with that reason.
func TestRevocationByLock(t *testing.T) {
	var granted []Event
	for _, st := range stories() {
		if st.name == "granted" {
			granted = st.events
		}
	}
	at := t0.Add(2 * time.Hour)
	cases := []struct {
		name    string
		ask     RevocationRequested
		refused bool
	}{
		{"a lock ends a grant it covers", RevocationRequested{By: "service:revoker", Reason: RevokeLocked, LockID: testLockID}, false},
		{"a lock that names no lock", RevocationRequested{By: "service:revoker", Reason: RevokeLocked}, true},
		{"a lock named by something that is not a lock ID", RevocationRequested{By: "service:revoker", Reason: RevokeLocked, LockID: "a.b"}, true},
		{"an early revocation that names a lock", RevocationRequested{By: "alice", Reason: RevokeEarly, LockID: testLockID}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Fold(testRequestID, granted)
			if err != nil {
				t.Fatal(err)
			}
			err = r.Apply(event(tc.ask, at, tc.ask.By))
			if tc.refused != (err != nil) {
				t.Fatalf("Apply = %v, want refused %v", err, tc.refused)
			}
			if !tc.refused && r.RevocationDue() != RevokeLocked {
				t.Fatalf("revocation due %q, want locked", r.RevocationDue())
			}
		})
	}
}
