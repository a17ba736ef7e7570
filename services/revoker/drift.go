package revoker

import (
	"strconv"
	"time"

	"github.com/grantline/grantline/pkg/events"
)

// Drift is what the reconciler found about one grant or one piece of unexplained access: the
// connector whose target shows it, the target's name for it, and what the target shows.
type Drift struct {
	Connector string
	TargetRef string
	Observed  events.Observed
}

// DecideFoundAfterRevocation returns the decision on access d found on the target of a revoked
// request: drift_detected (present_after_revocation, to be revoked again) for a revoked request whose
// access is observed present and not already being revoked again; nothing otherwise (the request is not
// revoked, or its revocation again is under way). The causation is the request's version, so each time
// the access comes back is recorded once.
func DecideFoundAfterRevocation(d Drift) func(*events.Request) ([]events.Draft, error) {
	return func(r *events.Request) ([]events.Draft, error) {
		if r.Status() != events.StatusRevoked || r.DriftRevocationDue() || !d.Observed.Present {
			return nil, nil
		}
		return []events.Draft{drift(r, events.DriftAfterRevocation, events.DriftRevoke, d)}, nil
	}
}

// DecideMissing returns the decision on a live grant whose access the target lacks (d observed absent)
// at now: drift_detected (missing, recorded) once per grant; nothing for a request that is not granted,
// whose revocation is under way, whose grant has reached its expiry (the revoker's expiry owns it from
// then: a login's VALID UNTIL ends it on the target a moment before expired is recorded), or whose
// missing access is recorded already.
func DecideMissing(d Drift, now time.Time) func(*events.Request) ([]events.Draft, error) {
	return func(r *events.Request) ([]events.Draft, error) {
		if r.Status() != events.StatusGranted || r.RevocationDue() != "" || r.AccessMissing() || d.Observed.Present ||
			!now.Before(r.Grant().ExpiresAt) {
			return nil, nil
		}
		return []events.Draft{drift(r, events.DriftMissing, events.DriftRecorded, d)}, nil
	}
}

// DecideUnexplained returns the decision on access d that no request explains, for the finding
// events.FindingID(d.Connector, d.TargetRef): drift_detected (unexplained, recorded) once; nothing when
// the finding is recorded already.
func DecideUnexplained(d Drift) func(*events.Request) ([]events.Draft, error) {
	return func(r *events.Request) ([]events.Draft, error) {
		if r.Status() != events.StatusNone {
			return nil, nil
		}
		return []events.Draft{drift(r, events.DriftUnexplained, events.DriftRecorded, d)}, nil
	}
}

// DecideRevokedAgain returns the decision that records the revocation again of access found after
// revocation, with what the target shows now: revoked (reason drift), and whether a credential was
// destroyed. Nothing when no revocation again is due; ErrStillPresent if the target still shows it.
func DecideRevokedAgain(observed events.Observed, credentialDestroyed bool) func(*events.Request) ([]events.Draft, error) {
	return func(r *events.Request) ([]events.Draft, error) {
		switch {
		case !r.DriftRevocationDue():
			return nil, nil
		case observed.Present:
			return nil, ErrStillPresent
		}
		return []events.Draft{{Payload: events.Revoked{Reason: events.RevokeDrift, Observed: observed,
			CredentialDestroyed: credentialDestroyed}, Actor: Revoker, CausationID: "drift-revoked:" + strconv.Itoa(r.Version())}}, nil
	}
}

func drift(r *events.Request, kind events.DriftKind, action events.DriftAction, d Drift) events.Draft {
	return events.Draft{Payload: events.DriftDetected{Kind: kind, Connector: d.Connector, TargetRef: d.TargetRef,
		Observed: d.Observed, Action: action}, Actor: Revoker, CausationID: "drift:" + string(kind) + ":" + strconv.Itoa(r.Version())}
}
