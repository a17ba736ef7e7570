package revoker

import (
	"errors"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/events"
)

// TestLockCommands is who may place and remove locks, as scenarios: the lock admin groups may, on anyone
// but themselves; nobody else may; placing or removing twice is answered the same and appends nothing.
func TestLockCommands(t *testing.T) {
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	admins := []string{"security"}
	sam := Caller{ID: "sam", Groups: []string{"security"}}
	mallory := Caller{ID: "mallory", Groups: []string{"security", "engineers"}}
	eve := Caller{ID: "eve", Groups: []string{"engineers"}}
	onMallory := LockOrder{Scope: events.LockScope{Kind: events.LockUser, ID: "mallory"}, Reason: "laptop stolen"}
	past := now.Add(-time.Minute)
	fold := func(t *testing.T, decide func(*events.Lock) ([]events.Draft, error), l *events.Lock) ([]events.Draft, error) {
		t.Helper()
		drafts, err := decide(l)
		for _, d := range drafts {
			ev := events.Event{Envelope: events.Envelope{ID: events.NewID(), Type: d.Payload.EventType(), Subject: l.ID(), Time: now, Actor: d.Actor}, Payload: d.Payload}
			if aerr := l.Apply(ev); aerr != nil {
				t.Fatalf("the lock refuses the decision: %v", aerr)
			}
		}
		return drafts, err
	}
	placedBySam := func(t *testing.T) *events.Lock {
		l := events.NewLock(events.NewID())
		if _, err := fold(t, DecidePlaceLock(sam, onMallory, admins, now), l); err != nil {
			t.Fatal(err)
		}
		return l
	}
	tests := []struct {
		name   string
		lock   func(*testing.T) *events.Lock
		decide func(*events.Lock) ([]events.Draft, error)
		events int
		err    error
	}{
		{"security locks a person", func(*testing.T) *events.Lock { return events.NewLock(events.NewID()) }, DecidePlaceLock(sam, onMallory, admins, now), 1, nil},
		{"a person outside the admin groups may not", func(*testing.T) *events.Lock { return events.NewLock(events.NewID()) }, DecidePlaceLock(eve, onMallory, admins, now), 0, ErrNotLockAdmin},
		{"an admin may not lock themselves", func(*testing.T) *events.Lock { return events.NewLock(events.NewID()) }, DecidePlaceLock(mallory, onMallory, admins, now), 0, ErrOwnLock},
		{"a lock that ended already", func(*testing.T) *events.Lock { return events.NewLock(events.NewID()) },
			DecidePlaceLock(sam, LockOrder{Scope: onMallory.Scope, Reason: "r", Until: &past}, admins, now), 0, ErrInvalidLock},
		{"a lock without a reason", func(*testing.T) *events.Lock { return events.NewLock(events.NewID()) },
			DecidePlaceLock(sam, LockOrder{Scope: onMallory.Scope}, admins, now), 0, ErrInvalidLock},
		{"placing it again appends nothing", placedBySam, DecidePlaceLock(sam, onMallory, admins, now), 0, nil},
		{"another admin removes it", placedBySam, DecideRemoveLock(Caller{ID: "rita", Groups: []string{"security"}}, "found", admins), 1, nil},
		{"the locked admin may not remove their own lock", placedBySam, DecideRemoveLock(mallory, "mine", admins), 0, ErrOwnLock},
		{"someone outside the admin groups may not remove it", placedBySam, DecideRemoveLock(eve, "", admins), 0, ErrNotLockAdmin},
		{"removing a lock that does not exist", func(*testing.T) *events.Lock { return events.NewLock(events.NewID()) }, DecideRemoveLock(sam, "", admins), 0, ErrNoLock},
		{"removing it twice appends nothing the second time", func(t *testing.T) *events.Lock {
			l := placedBySam(t)
			if _, err := fold(t, DecideRemoveLock(sam, "", admins), l); err != nil {
				t.Fatal(err)
			}
			return l
		}, DecideRemoveLock(sam, "", admins), 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			drafts, err := fold(t, tt.decide, tt.lock(t))
			if !errors.Is(err, tt.err) || len(drafts) != tt.events {
				t.Fatalf("%d events, %v; want %d, %v", len(drafts), err, tt.events, tt.err)
			}
		})
	}
}
