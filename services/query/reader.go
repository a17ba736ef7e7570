package query

import (
	"slices"

	"github.com/grantline/grantline/pkg/events"
)

// Reader is a caller of the query API and what they may read: their own requests (as requester or as
// subject), the requests they decide on (as a member of a stage's or the post-review's groups, or of the
// entitlement's owner groups), and everything if they belong to an auditor group.
type Reader struct {
	Subject string
	Groups  []string
	// Everything is set for members of an auditor group.
	Everything bool
	// Owns lists the entitlements whose owner groups include one of Groups, sorted.
	Owns []string
}

// NewReader returns the reader for an authenticated caller. auditorGroups may read everything;
// ownerGroups maps each entitlement of the catalogue to its owner groups.
func NewReader(subject string, groups, auditorGroups []string, ownerGroups map[string][]string) Reader {
	in := func(gs []string) bool {
		return slices.ContainsFunc(groups, func(g string) bool { return slices.Contains(gs, g) })
	}
	r := Reader{Subject: subject, Groups: set(groups), Everything: in(auditorGroups), Owns: []string{}}
	for ent, owners := range ownerGroups {
		if in(owners) {
			r.Owns = append(r.Owns, ent)
		}
	}
	slices.Sort(r.Owns)
	return r
}

// MayRead reports whether the reader may see request r (a verified, submitted request). The postgres
// queries apply the same rule in SQL; the tests hold the two equal.
func (rd Reader) MayRead(r *events.Request) bool {
	s := r.Submitted()
	switch {
	case rd.Everything:
		return true
	case rd.Subject != "" && (rd.Subject == s.Requester.ID || rd.Subject == s.Subject.ID):
		return true
	case slices.Contains(rd.Owns, s.Entitlement):
		return true
	}
	return slices.ContainsFunc(ReviewGroups(r), func(g string) bool { return slices.Contains(rd.Groups, g) })
}

// Filter selects requests for the list.
type Filter struct {
	Status      events.Status
	Requester   string
	Entitlement string
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
	After  string
	Limit  int
}
