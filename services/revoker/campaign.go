package revoker

import (
	"fmt"

	"github.com/grantline/grantline/pkg/events"
)

// DecideReviewRevoked returns the decision on a grant reviewed by campaign c: revocation_requested with
// reason review_revoked and the campaign's ID for a live grant the campaign revoked, in the name of the
// owner who decided it, or of whoever opened the campaign when its rule revoked the grant unanswered;
// nothing for any other request, or one whose revocation is under way or done. Redelivered, it appends
// nothing (the causation is the campaign).
func DecideReviewRevoked(c *events.Campaign) func(*events.Request) ([]events.Draft, error) {
	return func(r *events.Request) ([]events.Draft, error) {
		state, _ := c.State(r.ID())
		if r.Status() != events.StatusGranted || r.RevocationDue() != "" {
			return nil, nil
		}
		by, note := c.Opened().CreatedBy.ID, fmt.Sprintf("unanswered at the deadline of access review %q", c.Opened().Name)
		switch state {
		case events.ItemRevoked:
			d, _ := c.Decision(r.ID())
			by, note = d.Reviewer.ID, d.Note
		case events.ItemRevokedUnanswered:
		default:
			return nil, nil
		}
		return []events.Draft{{Payload: events.RevocationRequested{By: by, Reason: events.RevokeReviewRevoked, CampaignID: c.ID(), Note: note},
			Actor: by, CausationID: "campaign:" + c.ID()}}, nil
	}
}
