// Package visibility is who may see a request. It is one rule for every route that names a request
// (intake's view and withdrawal, approval's reviews, fulfilment's credential, the revoker's early
// revocation, the read side's events), so that a caller who may not see a request is answered the
// same everywhere, exactly as for a request that does not exist: whether a request ID exists is itself
// something only the request's readers learn. What a reader may then do with it (withdraw, review,
// revoke, take the credential) is each service's own rule, and may be refused as forbidden.
//
// The rule is pure: it reads the folded request, the caller as authenticated, and the one fact the
// events do not carry, the entitlement's owner groups from the catalogue.
package visibility

import (
	"errors"
	"slices"

	"github.com/grantline/grantline/pkg/events"
)

// ErrNotFound is the answer for a request that does not exist and for one the caller may not see:
// one error, so that even the problem's detail cannot tell the two apart.
var ErrNotFound = errors.New("no such request")

// Viewer is a caller as authenticated: the normalised subject and the groups.
type Viewer struct {
	Subject string
	Groups  []string
	// SeesAll is set for a member of a group the service lets see every request: intake's readers,
	// the read side's auditors, the revoker's administrators.
	SeesAll bool
}

// NewViewer returns the viewer for subject in groups; seeAllGroups see every request.
func NewViewer(subject string, groups, seeAllGroups []string) Viewer {
	v := Viewer{Subject: subject, Groups: groups}
	v.SeesAll = v.inAny(seeAllGroups)
	return v
}

func (v Viewer) inAny(groups []string) bool {
	return slices.ContainsFunc(v.Groups, func(g string) bool { return g != "" && slices.Contains(groups, g) })
}

// Reason says why a viewer sees a request; the empty Reason means they may not.
type Reason string

// The reasons, in the order the rule tries them.
const (
	SeesAll          Reason = "sees_all"          // a member of a group that sees every request
	Requester        Reason = "requester"         // asked for it
	Subject          Reason = "subject"           // would hold the access
	SubjectOwner     Reason = "subject_owner"     // a member of the team owning the service account or workload
	EntitlementOwner Reason = "entitlement_owner" // a member of the entitlement's owner groups
	Reviewer         Reason = "reviewer"          // a member of a group named by its approval stages or post-review
)

// fact is what one row of the rule reads.
type fact struct {
	req               *events.Request
	viewer            Viewer
	entitlementOwners []string
}

// rule is the whole of who sees a request: the first row that holds gives the reason.
var rule = []struct {
	reason Reason
	holds  func(f fact) bool
}{
	{SeesAll, func(f fact) bool { return f.viewer.SeesAll }},
	{Requester, func(f fact) bool { return f.viewer.Subject == f.req.Submitted().Requester.ID }},
	{Subject, func(f fact) bool { return f.viewer.Subject == f.req.Submitted().Subject.ID }},
	{SubjectOwner, func(f fact) bool { return f.viewer.inAny([]string{f.req.Submitted().Subject.Owner}) }},
	{EntitlementOwner, func(f fact) bool { return f.viewer.inAny(f.entitlementOwners) }},
	{Reviewer, func(f fact) bool { return f.viewer.inAny(ReviewGroups(f.req)) }},
}

// Why returns why v sees r, whose entitlement the catalogue says entitlementOwners own, or "" if v
// may not see it. Nobody sees a request that does not exist (no events); a finding (drift no request
// explains, events.FindingID) has no requester, subject or owner, so only those who see everything see
// it; and a viewer without a subject sees nothing but as a member of a group.
func Why(r *events.Request, v Viewer, entitlementOwners []string) Reason {
	switch {
	case r.Status() == events.StatusNone:
		return ""
	case r.Status() == events.StatusFinding && !v.SeesAll:
		return ""
	}
	f := fact{req: r, viewer: v, entitlementOwners: entitlementOwners}
	for _, row := range rule {
		if (v.Subject != "" || !personal(row.reason)) && row.holds(f) {
			return row.reason
		}
	}
	return ""
}

// personal rows compare the viewer's subject, which an empty subject must never match.
func personal(r Reason) bool { return r == Requester || r == Subject }

// Check returns nil if v may see r, else ErrNotFound, also when r does not exist: the one answer a
// route gives before anything that depends on the request's state.
func Check(r *events.Request, v Viewer, entitlementOwners []string) error {
	if Why(r, v, entitlementOwners) == "" {
		return ErrNotFound
	}
	return nil
}

// ReviewGroups are the groups r's decision names to review it: its approval stages' and its
// post-review's, in that order, possibly repeated.
func ReviewGroups(r *events.Request) []string {
	d := r.Decision()
	var gs []string
	for _, st := range d.Stages {
		gs = append(gs, st.Groups...)
	}
	if d.PostReview != nil {
		gs = append(gs, d.PostReview.Groups...)
	}
	return gs
}
