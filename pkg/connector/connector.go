// Package connector is the contract between Grantline and the systems it grants access on: a
// Connector grants, revokes and inspects one grant, identified by its grant ID (the request ID), and
// each operation is idempotent by that ID, so a redelivered or concurrent fulfilment never makes a
// second grant. Errors say whether a retry can help (*Error, Transient or Permanent).
//
// A connector may also list what exists on its target for Grantline-managed access (Inventory), which
// the revoker's reconciler compares with the evidence to find drift.
//
// Adapters live in subpackages named by technology: postgres and webhook. Manual fulfilment has no
// connector: people carry out a task and record evidence.
package connector

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/events"
)

// Grant is one grant as connectors see it.
type Grant struct {
	// ID is the grant ID, the request ID: connectors derive whatever they create on the target from it,
	// which makes every operation idempotent.
	ID          string
	Entitlement catalogue.Entitlement
	Subject     events.RequestSubject
	// ExpiresAt is when the grant ends; a connector that can make the target enforce it does (VALID
	// UNTIL), on top of the revoker's revocation.
	ExpiresAt time.Time
	// Secret is the credential a credential-issuing connector sets for this grant. Fulfilment reserves it
	// (stored encrypted) before the grant, so a retried grant issues the same one. It must never appear in
	// an event, a log line or an error. Empty for revoke and inspect.
	Secret string
}

// Connector grants, revokes and inspects access on one kind of target system. Every method is
// idempotent by g.ID and returns what the target shows afterwards. Errors are *Error; anything else
// counts as transient.
type Connector interface {
	// Grant makes the access of g exist on the target (a no-op if it does) and returns what the target
	// shows.
	Grant(ctx context.Context, g Grant) (events.Observed, error)
	// Revoke removes the access of g (a no-op if it is gone) and returns what the target shows.
	Revoke(ctx context.Context, g Grant) (events.Observed, error)
	// Inspect reads what the target shows for g, changing nothing.
	Inspect(ctx context.Context, g Grant) (events.Observed, error)
}

// Revocation is one grant's outcome in a batch revocation: what the target shows afterwards, or why
// the grant was not revoked (an *Error, as Revoke's).
type Revocation struct {
	Observed events.Observed
	Err      error
}

// BatchRevoker is implemented by a connector that revokes many grants at less cost than one at a time
// (PostgreSQL: one transaction). Like Revoke it is idempotent by each grant's ID.
type BatchRevoker interface {
	// RevokeBatch removes the access of every grant of gs and returns one Revocation per grant, in the
	// order of gs. One grant's failure is its own: the others are revoked all the same.
	RevokeBatch(ctx context.Context, gs []Grant) []Revocation
}

// RevokeAll revokes gs through c: in batches if c is a BatchRevoker, otherwise one at a time. It
// returns one Revocation per grant, in the order of gs.
func RevokeAll(ctx context.Context, c Connector, gs []Grant) []Revocation {
	if b, ok := c.(BatchRevoker); ok {
		return b.RevokeBatch(ctx, gs)
	}
	return RevokeEach(ctx, c, gs)
}

// RevokeEach revokes gs through c one at a time; a connector's RevokeBatch falls back on it for grants
// it cannot batch.
func RevokeEach(ctx context.Context, c Connector, gs []Grant) []Revocation {
	out := make([]Revocation, len(gs))
	for i, g := range gs {
		out[i].Observed, out[i].Err = c.Revoke(ctx, g)
	}
	return out
}

// batchFailure is the error a batch counts as for a circuit breaker: the first error when every grant
// failed and none permanently (the target itself failing), nil otherwise (a target that revoked some
// grants, or refused some as such, answers).
func batchFailure(out []Revocation) error {
	var first error
	for _, r := range out {
		if r.Err == nil || IsPermanent(r.Err) {
			return nil
		}
		if first == nil {
			first = r.Err
		}
	}
	return first
}

// Issuer is implemented by a connector that issues a credential for some grants (a login for a service
// account): fulfilment then reserves a secret for the grant before calling Grant, and hands it out once.
type Issuer interface {
	// IssuesCredential reports whether granting g issues a credential.
	IssuesCredential(g Grant) bool
	// Username is the login that the credential of g belongs to.
	Username(g Grant) string
}

// Referrer is implemented by a connector that can name what it changed for g on the target (the
// target_ref of the granted event).
type Referrer interface {
	TargetRef(g Grant) string
}

// Holding is one piece of Grantline-shaped access found on a target: something named the way the
// connector names what it creates for a grant.
type Holding struct {
	// GrantID is the grant (request) ID the target's naming ties it to; empty when the name ties it
	// to no valid request ID.
	GrantID string
	// Ref names it on the target, the same way however often it is listed ("role grantline_01j…").
	Ref string
	// Observed is what the target shows for it: Present when it gives access now, and the target's
	// evidence (names, members, validity) in Detail.
	Observed events.Observed
}

// Inventory is implemented by a connector that can list everything on its target that looks like
// access Grantline manages, whether or not Grantline made it.
type Inventory interface {
	// Holdings lists what exists on the target now, changing nothing.
	Holdings(ctx context.Context) ([]Holding, error)
}

// ClassNoInventory is the class of the error for a connector that cannot list its target.
const ClassNoInventory = "inventory_unsupported"

// Holdings lists what c's target holds for Grantline-managed access. A connector that cannot list its
// target (a webhook receiver answers for one grant at a time) fails with a permanent error of class
// ClassNoInventory, naming it as name.
func Holdings(ctx context.Context, name string, c Connector) ([]Holding, error) {
	inv, ok := c.(Inventory)
	if !ok {
		return nil, Permanent(ClassNoInventory, fmt.Errorf("the %s connector cannot list what exists on its target", name))
	}
	return inv.Holdings(ctx)
}

// TargetRef names what c changes for g: the connector's own name for it, or the entitlement's system
// and resource.
func TargetRef(c Connector, g Grant) string {
	if r, ok := c.(Referrer); ok {
		return r.TargetRef(g)
	}
	return g.Entitlement.System + " " + g.Entitlement.Resource
}

// IssuesCredential reports whether c issues a credential for g.
func IssuesCredential(c Connector, g Grant) bool {
	i, ok := c.(Issuer)
	return ok && i.IssuesCredential(g)
}

// wrapper is what a connector wrapping inner (Shield, Traced) shares: it answers what does not reach
// the target, whether and as whom a grant issues a credential and what it changes, as inner does.
type wrapper struct{ inner Connector }

var (
	_ Issuer   = wrapper{}
	_ Referrer = wrapper{}
)

func (w wrapper) IssuesCredential(g Grant) bool { return IssuesCredential(w.inner, g) }

func (w wrapper) Username(g Grant) string {
	if i, ok := w.inner.(Issuer); ok {
		return i.Username(g)
	}
	return ""
}

func (w wrapper) TargetRef(g Grant) string { return TargetRef(w.inner, g) }

// Set is the connectors by their catalogue name ("postgres", "webhook").
type Set map[string]Connector

// For returns the connector of entitlement e, or a permanent error if none is configured.
func (s Set) For(e catalogue.Entitlement) (Connector, error) {
	c, ok := s[e.Connector]
	if !ok || c == nil {
		return nil, Permanent("no_connector", fmt.Errorf("no %s connector is configured for entitlement %s", e.Connector, e.ID))
	}
	return c, nil
}

// Error is a connector failure with its class ("target_unavailable", "target_role_missing", ...) and
// whether a retry can help.
type Error struct {
	Class     string
	Permanent bool
	// RetryAfter is how long the target asked to be left alone (a circuit breaker's open period, a
	// Retry-After header); 0 for the caller's own backoff.
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string { return e.Class + ": " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Permanent returns an error of class that no retry can fix (the entitlement maps to nothing, the
// target refuses the request as such).
func Permanent(class string, err error) error { return &Error{Class: class, Permanent: true, Err: err} }

// Transient returns an error of class that a later attempt may not meet (the target is down, busy or
// slow).
func Transient(class string, err error) error { return &Error{Class: class, Err: err} }

// IsPermanent reports whether err is a permanent connector error.
func IsPermanent(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Permanent
}

// ClassOf returns the class of a connector error, "internal" for any other error.
func ClassOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Class
	}
	return "internal"
}

// RetryAfterOf returns the delay a connector error asks for, 0 if none.
func RetryAfterOf(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// NewSecret returns a fresh credential: 32 random bytes, base64url without padding (43 characters from
// [A-Za-z0-9_-], safe in any SQL literal or URL).
func NewSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
