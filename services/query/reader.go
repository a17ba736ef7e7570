package query

import (
	"slices"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/visibility"
)

// Reader is a caller of the query API and what they may read: the requests visibility.Why lets them
// see (their own, as requester or subject; those of the service accounts their team owns; those they
// decide on, as an owner of the entitlement or a member of a stage's or the post-review's groups),
// and everything if they belong to an auditor group.
type Reader struct {
	Subject string
	Groups  []string
	// Everything is set for members of an auditor group.
	Everything bool
	// Owns lists the entitlements whose owner groups include one of Groups, sorted.
	Owns []string
	// ownerGroups maps each entitlement to its owner groups, for visibility.Why.
	ownerGroups map[string][]string
}

// NewReader returns the reader for an authenticated caller. auditorGroups may read everything;
// ownerGroups maps each entitlement of the catalogue to its owner groups.
func NewReader(subject string, groups, auditorGroups []string, ownerGroups map[string][]string) Reader {
	in := func(gs []string) bool {
		return slices.ContainsFunc(groups, func(g string) bool { return slices.Contains(gs, g) })
	}
	r := Reader{Subject: subject, Groups: set(groups), Everything: in(auditorGroups), Owns: []string{}, ownerGroups: ownerGroups}
	for ent, owners := range ownerGroups {
		if in(owners) {
			r.Owns = append(r.Owns, ent)
		}
	}
	slices.Sort(r.Owns)
	return r
}

// MayRead reports whether the reader may see request r (a verified, submitted request): the rule of
// pkg/visibility, which every route naming a request applies. The postgres queries apply the same
// rule in SQL; the tests hold the two equal.
func (rd Reader) MayRead(r *events.Request) bool {
	v := visibility.Viewer{Subject: rd.Subject, Groups: rd.Groups, SeesAll: rd.Everything}
	return visibility.Why(r, v, rd.ownerGroups[r.Submitted().Entitlement]) != ""
}

// Filter selects requests for the list.
type Filter struct {
	Status      events.Status
	Requester   string
	Entitlement string
	// Chain keeps the requests of the chain of extensions that holds this request: the grant first
	// extended, and every request extending it or one of its extensions.
	Chain string
	// AwaitingReview keeps the requests awaiting a review the reader may give (see AwaitsReviewBy).
	AwaitingReview bool
	// After continues a listing after this request ID (lists run newest first).
	After string
	Limit int
}

// FindingFilter pages through findings.
type FindingFilter struct {
	After string
	Limit int
}

// GrantFilter selects grants; Active nil means active and past.
type GrantFilter struct {
	Active *bool
	// Holder keeps the grants whose subject (who holds the access) is this normalised ID.
	Holder string
	// Entitlement keeps the grants of this entitlement.
	Entitlement string
	After       string
	Limit       int
}
