// Package fulfilment holds the fulfilment service's rules: which events lead to a grant, what to do
// for a request now (grant through a connector, open a manual task, or nothing), when a grant expires,
// how the granted event is built, when a manual task is opened and how a completed grant task is
// recorded.
//
// The rules are pure: they import the standard library, pkg/events and the rules of manual tasks it
// shares with the revoker (pkg/manualtask) only, and time is a parameter. The connectors that change
// target systems live in pkg/connector, the reactions that run the rules on the stream in reaction/,
// the HTTP edge in httpapi/ and the wiring in fulfilmentd/.
package fulfilment

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/manualtask"
)

// Fulfiller is the recorded fulfiller of a grant the service made through a connector.
const Fulfiller = "service:fulfilment"

// Manual is the catalogue's connector name for systems without an API: people fulfil them by hand,
// through tasks (package manualtask).
const Manual = manualtask.Connector

// Triggers reports whether ev may lead to fulfilment: an approval, a policy decision that allowed
// the request outright (auto_approved) or as an emergency, or policy's check at the start of a request
// that asked for a later start, when it still allows the request. Other decisions wait for approval or
// end the request.
func Triggers(ev events.Event) bool {
	switch p := ev.Payload.(type) {
	case events.Approved:
		return true
	case events.PolicyDecided:
		return p.Outcome == events.OutcomeAutoApproved || p.Outcome == events.OutcomeEmergency
	case events.StartChecked:
		return p.Allowed
	}
	return false
}

// Action is what fulfilment does for a request now.
type Action int

// Actions, from Next.
const (
	// Nothing: the request is not (or no longer, or not yet) allowed, or it is already granted or has
	// its task.
	Nothing Action = iota
	// Grant through the entitlement's connector.
	Grant
	// OpenGrantTask for the fulfiller groups of a manual entitlement.
	OpenGrantTask
)

func (a Action) String() string {
	return [...]string{"nothing", "grant", "open-grant-task"}[a]
}

// Next says what to do for r, whose entitlement is fulfilled by connector. A request that was withdrawn,
// failed or is already granted needs nothing; neither does a manual one whose task is open. Access asked
// for from a later time is not given before policy has checked it at that time (start_checked, which
// triggers fulfilment then).
func Next(r *events.Request, connector string) Action {
	switch {
	case !r.AllowsFulfilment() || r.Grant() != nil:
		return Nothing
	case connector != Manual:
		return Grant
	case manualtask.Opened(r, events.TaskGrant):
		return Nothing
	}
	return OpenGrantTask
}

// ExpiresAt is when a grant recorded at now ends: now plus the effective duration policy decided. It is
// computed once, when the grant is recorded; nothing later extends it.
func ExpiresAt(r *events.Request, now time.Time) time.Time {
	return now.Add(time.Duration(r.Decision().EffectiveDurationSeconds) * time.Second)
}

// ErrNotAllowed is returned by a decision on a request that no longer allows fulfilment (withdrawn or
// failed meanwhile): whatever was changed on the target must be undone.
var ErrNotAllowed = errors.New("the request no longer allows fulfilment")

// Recorded is what a connector grant produced, for the granted event.
type Recorded struct {
	Connector string
	TargetRef string
	Observed  events.Observed
	ExpiresAt time.Time
	// Fingerprint identifies an issued credential without revealing it; "" when none was issued.
	Fingerprint string
}

// DecideGranted returns the decision that records g as the grant of the request, caused by the event
// causation (the approval or decision that triggered fulfilment). It appends nothing to a request that
// is already granted, and returns ErrNotAllowed for one that no longer allows fulfilment. An
// unobserved grant is refused: the target must show it.
func DecideGranted(g Recorded, causation string) func(*events.Request) ([]events.Draft, error) {
	return func(r *events.Request) ([]events.Draft, error) {
		switch {
		case r.Grant() != nil:
			return nil, nil
		case !r.AllowsFulfilment():
			return nil, ErrNotAllowed
		case !g.Observed.Present:
			return nil, errors.New("the target does not show the grant")
		}
		return []events.Draft{{Payload: events.Granted{
			Connector: g.Connector, TargetRef: g.TargetRef, Observed: g.Observed, ExpiresAt: g.ExpiresAt,
			Fulfiller: Fulfiller, CredentialFingerprint: g.Fingerprint,
		}, Actor: Fulfiller, CausationID: causation}}, nil
	}
}

// DecideFailed returns the decision that records a failed grant attempt, once per causation. A
// permanent failure ends the request; a transient one is recorded when the retries are used up. It
// appends nothing to a request that was granted or closed meanwhile.
func DecideFailed(class, message string, attempts int, permanent bool, causation string) func(*events.Request) ([]events.Draft, error) {
	return func(r *events.Request) ([]events.Draft, error) {
		if !r.AllowsFulfilment() || r.Grant() != nil {
			return nil, nil
		}
		return []events.Draft{{Payload: events.FulfilmentFailed{ErrorClass: class, Message: message, Attempts: attempts,
			Permanent: permanent}, Actor: Fulfiller, CausationID: "failed:" + causation}}, nil
	}
}

// Fingerprint identifies secret in events and logs without revealing it: "sha256:" and the first 16
// hex digits of its SHA-256. The secret itself is never recorded.
func Fingerprint(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return "sha256:" + hex.EncodeToString(sum[:8])
}
