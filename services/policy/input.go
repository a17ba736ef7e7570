// Package policy decides access requests with a Rego policy bundle: it builds the input document from a
// submitted request and its catalogue entry, evaluates data.grantline.decision with OPA, checks that the
// answer has the expected shape, and turns it into the policy_decided event. The policy service
// (policyd) runs it on the event stream; the CLI uses Test and Eval.
//
// The input and output documents are described in the comment at the top of
// examples/policies/grantline.rego and by the Input and Decision types.
package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json/jsontext"
	"encoding/json/v2"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/events"
)

// Input is the document the policy evaluates (input in Rego).
type Input struct {
	Request Request `json:"request"`
	// Entitlement is the catalogue entry of the requested entitlement, nil (JSON null) when the
	// catalogue has none of that name: the policy denies it.
	Entitlement *catalogue.Entitlement `json:"entitlement"`
	// Now is the time of the decision, in UTC.
	Now time.Time `json:"now"`
	// OpenEmergencyReviews are the IDs of the requester's emergency requests whose post-review is still
	// open (the request being decided excluded), sorted; never null. The policy service reads them only
	// for an emergency request, the only kind they can decide, and leaves them empty for any other.
	OpenEmergencyReviews []string `json:"open_emergency_reviews"`
	// Locks are the locks holding at Now that cover the request (CoveringLocks), sorted by ID; absent
	// when none does, so the input of a request no lock touches is what it was before locks existed.
	Locks []Lock `json:"locks,omitempty"`
}

// Lock is a lock as the policy sees it (input.locks): enough to deny the request naming it.
type Lock struct {
	ID               string           `json:"id"`
	Reason           string           `json:"reason"`
	Scope            events.LockScope `json:"scope"`
	Until            *time.Time       `json:"until,omitempty"`
	EmergencyAllowed bool             `json:"emergency_allowed"`
}

// CoveringLocks returns the locks among held that hold at now and cover sub (for entitlement ent, nil
// when the catalogue has none), sorted by ID, as the input records them; nil when none does.
func CoveringLocks(held []*events.Lock, sub events.Submitted, ent *catalogue.Entitlement, now time.Time) []Lock {
	system := ""
	if ent != nil {
		system = ent.System
	}
	var out []Lock
	for _, l := range held {
		if !l.Holds(now) || !l.Covers(sub.Requester.ID, sub.Subject.ID, sub.Entitlement, system) {
			continue
		}
		p := l.Placed()
		var until *time.Time
		if p.Until != nil {
			u := p.Until.UTC()
			until = &u
		}
		out = append(out, Lock{ID: l.ID(), Reason: p.Reason, Scope: p.Scope, Until: until, EmergencyAllowed: p.EmergencyAllowed})
	}
	slices.SortFunc(out, func(a, b Lock) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Request is the submitted request as the policy sees it: the substance of events.Submitted without its
// digest.
type Request struct {
	Requester       events.Principal      `json:"requester"`
	Subject         events.RequestSubject `json:"subject"`
	Entitlement     string                `json:"entitlement"`
	Justification   string                `json:"justification"`
	Ticket          string                `json:"ticket"`
	DurationSeconds int64                 `json:"duration_seconds"`
	StartAt         *time.Time            `json:"start_at"`
	Emergency       bool                  `json:"emergency"`
	Channel         string                `json:"channel"`
	// Extends is the active grant the request extends (absent for any other request, so the inputs of
	// those are what they always were).
	Extends *events.Extension `json:"extends,omitempty"`
}

// NewInput builds the input for deciding sub at now: ent is its catalogue entry (nil for an unknown
// entitlement) and open the requester's other emergency requests awaiting post-review.
func NewInput(sub events.Submitted, ent *catalogue.Entitlement, now time.Time, open []string) Input {
	if open == nil {
		open = []string{}
	}
	start := sub.StartAt
	if start != nil {
		utc := start.UTC()
		start = &utc
	}
	var extends *events.Extension
	if x := sub.Extends; x != nil {
		extends = &events.Extension{RequestID: x.RequestID, HeldSince: x.HeldSince.UTC(), ExpiresAt: x.ExpiresAt.UTC(),
			DurationSeconds: x.DurationSeconds}
	}
	groups := sub.Requester.Groups
	if groups == nil {
		groups = []string{}
	}
	return Input{
		Request: Request{
			Requester: events.Principal{ID: sub.Requester.ID, Groups: groups}, Subject: sub.Subject,
			Entitlement: sub.Entitlement, Justification: sub.Justification, Ticket: sub.Ticket,
			DurationSeconds: sub.DurationSeconds, StartAt: start, Emergency: sub.Emergency, Channel: sub.Channel,
			Extends: extends,
		},
		Entitlement: ent, Now: now.UTC(), OpenEmergencyReviews: open,
	}
}

// Canonical returns the input encoded in the JSON Canonicalization Scheme (RFC 8785: sorted members, no
// insignificant whitespace, fixed number and string forms) and its digest, "sha256:" and the hex
// SHA-256 of those bytes. The engine evaluates exactly these bytes, and the digest goes into the
// decision as its input_digest, so an auditor can recompute it from a stored input.
func (in Input) Canonical() ([]byte, string, error) {
	b, err := json.Marshal(in)
	if err != nil {
		return nil, "", fmt.Errorf("encode policy input: %w", err)
	}
	v := jsontext.Value(b)
	if err := v.Canonicalize(); err != nil {
		return nil, "", fmt.Errorf("canonicalize policy input: %w", err)
	}
	return v, Digest(v), nil
}

// Digest is "sha256:" and the hex SHA-256 of b.
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}
