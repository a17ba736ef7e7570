// Package revoker holds the revoker's rules: when a grant has expired, who may ask for an early
// revocation, how the revoked event is built from what the target shows, when a failing revocation is
// reported as overdue, how a revoke task is completed, and what drift between a target and the evidence
// is recorded (drift.go).
//
// The rules are pure: they import the standard library, pkg/events and the rules of manual tasks
// (pkg/manualtask) only, and time is a parameter. The reactions that run them on the stream live in
// reaction/, the reconciler that compares the targets with the evidence in reconcile/, the HTTP edge in
// httpapi/ and the wiring in revokerd/.
package revoker

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/manualtask"
)

// Revoker is the actor of the events the service appends on its own.
const Revoker = "service:revoker"

// TooEarlyError says an expiry timer fired before the grant's expiry by this clock (clocks differ by a
// little, and the scheduler works in whole seconds): look again at Until.
type TooEarlyError struct{ Until time.Time }

func (e *TooEarlyError) Error() string {
	return "the grant expires at " + e.Until.UTC().Format(time.RFC3339Nano)
}

// DecideExpire returns the decision on an expiry whose first revocation attempt failed, at now: expired
// for a grant that is still live and has reached its expiry, so the overdue grant shows while the
// attempts go on (and a manual grant's revoke task opens); nothing for a request that is not granted or
// whose revocation is under way already (a stale or repeated timer); *TooEarlyError before the expiry.
// The causation is derived from the request, so however often it is decided there is one expired event.
func DecideExpire(now time.Time) func(*events.Request) ([]events.Draft, error) {
	return func(r *events.Request) ([]events.Draft, error) {
		g := r.Grant()
		switch {
		case r.Status() != events.StatusGranted || r.RevocationDue() != "":
			return nil, nil
		case now.Before(g.ExpiresAt):
			return nil, &TooEarlyError{Until: g.ExpiresAt}
		}
		return []events.Draft{{Payload: events.Expired{ExpiresAt: g.ExpiresAt}, Actor: Revoker,
			CausationID: "expiry:" + r.ID()}}, nil
	}
}

// Errors of revocation commands; the HTTP edge maps each to a problem.
var (
	// ErrForbidden wraps why this person may not ask for the revocation.
	ErrForbidden = errors.New("not allowed to revoke this grant")
	// ErrNotGranted means there is no live grant to revoke.
	ErrNotGranted = errors.New("the request holds no grant to revoke")
	// ErrStillPresent means the target still shows the access after revoking it.
	ErrStillPresent = errors.New("the target still shows the access")
)

// Caller is a person asking for something, as authenticated.
type Caller struct {
	ID     string
	Groups []string
}

// MayRequest says whether caller may ask for r's grant to end early, or why not: the requester may,
// and so may the entitlement's owners (ownerGroups) and the admin groups.
func MayRequest(r *events.Request, caller Caller, ownerGroups, adminGroups []string) error {
	if caller.ID != "" && caller.ID == r.Submitted().Requester.ID {
		return nil
	}
	in := func(groups []string) bool {
		return slices.ContainsFunc(caller.Groups, func(g string) bool { return slices.Contains(groups, g) })
	}
	if in(ownerGroups) || in(adminGroups) {
		return nil
	}
	return fmt.Errorf("%w: only the requester, the entitlement's owners or an administrator may revoke it", ErrForbidden)
}

// DecideRequest returns the decision on caller's early revocation with note: revocation_requested
// (reason early) for a live grant; nothing when its revocation is under way or done (asking twice is
// answered the same); ErrNotGranted for a request that was never granted; the reason from MayRequest
// for a caller who may not.
func DecideRequest(caller Caller, note string, ownerGroups, adminGroups []string) func(*events.Request) ([]events.Draft, error) {
	return func(r *events.Request) ([]events.Draft, error) {
		if r.Status() == events.StatusNone {
			return nil, ErrNotGranted
		}
		if err := MayRequest(r, caller, ownerGroups, adminGroups); err != nil {
			return nil, err
		}
		switch {
		case r.Status() == events.StatusRevoked, r.Status() == events.StatusGranted && r.RevocationDue() != "":
			return nil, nil
		case r.Status() != events.StatusGranted:
			return nil, fmt.Errorf("%w (status %s)", ErrNotGranted, r.Status())
		}
		return []events.Draft{{Payload: events.RevocationRequested{By: caller.ID, Reason: events.RevokeEarly, Note: note},
			Actor: caller.ID, CausationID: "revocation-requested"}}, nil
	}
}

// DecideRevoked returns the decision that records the revocation of r's grant with what the target
// shows now: revoked with the reason that was due, and whether the credential was destroyed. Nothing
// for a request already revoked or whose revocation is not due; ErrStillPresent if the target still
// shows the access.
func DecideRevoked(observed events.Observed, credentialDestroyed bool) func(*events.Request) ([]events.Draft, error) {
	return func(r *events.Request) ([]events.Draft, error) {
		switch {
		case r.Status() != events.StatusGranted || r.RevocationDue() == "":
			return nil, nil
		case observed.Present:
			return nil, ErrStillPresent
		}
		return []events.Draft{{Payload: events.Revoked{Reason: r.RevocationDue(), Observed: observed,
			CredentialDestroyed: credentialDestroyed}, Actor: Revoker, CausationID: "revoked"}}, nil
	}
}

// DecideExpireFailed returns the decision on an expiry whose first revocation attempt failed with f, at
// now: DecideExpire's expired, and with it revocation_failed when p says f is due already (a revoker
// that comes back long after the expiry, an SLO shorter than the attempt), so an overdue revocation is
// recorded as such at once, as a failed attempt of an early revocation would be.
func DecideExpireFailed(p FailurePolicy, f Failure, now time.Time) func(*events.Request) ([]events.Draft, error) {
	return func(r *events.Request) ([]events.Draft, error) {
		drafts, err := DecideExpire(now)(r)
		if err != nil || len(drafts) == 0 || !p.Due(f, now) {
			return drafts, err
		}
		return append(drafts, failedDraft(f)), nil
	}
}

// DecideRevokedAtExpiry returns the decision that records the revocation of r's grant at its expiry, at
// now, with what the target shows: revoked (reason expired) straight from granted when the first
// attempt succeeded, or after expired when an earlier one failed. Nothing for a request that is not
// granted or whose revocation is due for another reason (the early revocation records its own);
// *TooEarlyError before the expiry; ErrStillPresent if the target still shows the access. Its
// causation is DecideRevoked's, so whichever path records the revocation, there is one revoked event.
func DecideRevokedAtExpiry(observed events.Observed, credentialDestroyed bool, now time.Time) func(*events.Request) ([]events.Draft, error) {
	return func(r *events.Request) ([]events.Draft, error) {
		switch {
		case r.Status() != events.StatusGranted:
			return nil, nil
		case r.RevocationDue() != "" && r.RevocationDue() != events.RevokeExpired:
			return nil, nil
		case now.Before(r.Grant().ExpiresAt):
			return nil, &TooEarlyError{Until: r.Grant().ExpiresAt}
		case observed.Present:
			return nil, ErrStillPresent
		}
		return []events.Draft{{Payload: events.Revoked{Reason: events.RevokeExpired, Observed: observed,
			CredentialDestroyed: credentialDestroyed}, Actor: Revoker, CausationID: "revoked"}}, nil
	}
}

// FailurePolicy says when failing revocation attempts are recorded: once Budget attempts have failed
// (a brief outage is retried quietly) or once the revocation is overdue by SLO, whichever comes first,
// then again at most every Every while the attempts keep failing; never once per retry. The SLO makes
// overdue a matter of the clock: attempts that each hang for long are few, and must not keep an
// overdue revocation quiet.
type FailurePolicy struct {
	Budget int
	Every  time.Duration
	// SLO is how long after it became due a failing revocation is recorded whatever the attempts; 0
	// leaves it to Budget.
	SLO time.Duration
}

// Failure is one failed revocation attempt.
type Failure struct {
	Attempts int
	Class    string
	Message  string
	// OverdueSince is when the revocation became due (see OverdueSince).
	OverdueSince time.Time
	// LastReport is when the previous revocation_failed was recorded; zero if none was.
	LastReport time.Time
}

// Due reports whether f should be recorded at now under p.
func (p FailurePolicy) Due(f Failure, now time.Time) bool {
	overdue := p.SLO > 0 && !f.OverdueSince.IsZero() && !now.Before(f.OverdueSince.Add(p.SLO))
	return (f.Attempts >= p.Budget || overdue) && (f.LastReport.IsZero() || now.Sub(f.LastReport) >= p.Every)
}

// Unreported reports when f, not recorded yet, becomes due under p by the clock: the instant an attempt
// or a wait must not run past, so that the overdue revocation is recorded on time. ok is false when
// there is no such instant ahead (no SLO, already reported, or already past it).
func (p FailurePolicy) Unreported(f Failure, now time.Time) (at time.Time, ok bool) {
	if p.SLO <= 0 || f.OverdueSince.IsZero() || !f.LastReport.IsZero() {
		return time.Time{}, false
	}
	at = f.OverdueSince.Add(p.SLO)
	return at, at.After(now)
}

// DecideFailed returns the decision that records f at now if p says so: revocation_failed with the
// attempts and the time the revocation has been overdue since, for a grant still awaiting revocation.
func DecideFailed(p FailurePolicy, f Failure, now time.Time) func(*events.Request) ([]events.Draft, error) {
	return func(r *events.Request) ([]events.Draft, error) {
		if r.Status() != events.StatusGranted || r.RevocationDue() == "" || !p.Due(f, now) {
			return nil, nil
		}
		return []events.Draft{failedDraft(f)}, nil
	}
}

// failedDraft is the revocation_failed that records f.
func failedDraft(f Failure) events.Draft {
	return events.Draft{Payload: events.RevocationFailed{Attempts: f.Attempts, OverdueSince: f.OverdueSince,
		ErrorClass: f.Class, Message: f.Message}, Actor: Revoker, CausationID: "revocation-failed:" + strconv.Itoa(f.Attempts)}
}

// OverdueSince is when r's revocation became due, from its events: the grant's expiry for an expired
// grant, otherwise the time of the event that asked for it (revocation_requested, or a flagged
// post_reviewed). Zero if no revocation is due.
func OverdueSince(r *events.Request, evs []events.Event) time.Time {
	if r.RevocationDue() == events.RevokeExpired && r.Grant() != nil {
		return r.Grant().ExpiresAt
	}
	for _, ev := range evs {
		switch p := ev.Payload.(type) {
		case events.RevocationRequested:
			return ev.Time
		case events.PostReviewed:
			if p.Outcome == events.PostReviewFlagged && r.Grant() != nil && !ev.Time.Before(r.GrantedAt()) {
				return ev.Time
			}
		}
	}
	return time.Time{}
}

// LastFailureReport is the time of the last revocation_failed event in evs, zero if none.
func LastFailureReport(evs []events.Event) time.Time {
	for _, ev := range slices.Backward(evs) {
		if ev.Type == events.TypeRevocationFailed {
			return ev.Time
		}
	}
	return time.Time{}
}

// DecideCompleteRevoke returns the decision that records a completed revoke task: revoked with the
// reason that was due, observed absent with the person's evidence. Who may complete it is decided by
// manualtask.Check, as for a grant task; the same person's retry of a completion that landed appends
// nothing.
func DecideCompleteRevoke(c manualtask.Completion) func(*events.Request) ([]events.Draft, error) {
	return func(r *events.Request) ([]events.Draft, error) {
		if r.HasCaused(events.TypeRevoked, "task:"+c.TaskID) && r.Revoked().Observed.Detail["completed_by"] == c.Person {
			return nil, nil // the same person's retry of a completion that landed
		}
		if _, err := manualtask.Check(r, events.TaskRevoke, c); err != nil {
			return nil, err
		}
		return []events.Draft{{Payload: events.Revoked{Reason: r.RevocationDue(), Observed: events.Observed{Present: false,
			Detail: map[string]string{"evidence": c.Evidence, "completed_by": c.Person}}},
			Actor: c.Person, CausationID: "task:" + c.TaskID}}, nil
	}
}
