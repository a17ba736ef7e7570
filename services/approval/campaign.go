package approval

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/grantline/grantline/pkg/events"
)

// Errors of the campaign rules, on top of the review errors they share (ErrNotFound, ErrInvalid,
// ErrNotReviewer, ErrNotPending, *DutyError).
var (
	// ErrNotCampaignAdmin: the caller is in none of the groups that open access reviews.
	ErrNotCampaignAdmin = errors.New("not allowed to open access reviews")
	// ErrNothingToReview: no active grant matches the campaign's filter.
	ErrNothingToReview = errors.New("no active grant matches the filter")
)

// CampaignSpec is an access review as a campaign admin asks for it.
type CampaignSpec struct {
	Name               string
	Filter             events.CampaignFilter
	Deadline           time.Time
	RemindAt           []time.Time
	Unanswered         events.CampaignRule
	EscalateTo         []string
	EscalationDeadline *time.Time
}

// IsCampaignAdmin reports whether a person in groups may open access reviews and see every item of
// every campaign.
func IsCampaignAdmin(groups, admins []string) bool { return sharesGroup(groups, admins) }

// SeesItem reports whether a person in groups may see item it of campaign c: a campaign admin sees
// every item; anyone else the items whose owners they are in, or whose escalation groups once the item
// is escalated.
func SeesItem(groups, admins []string, c *events.Campaign, it events.CampaignItem) bool {
	state, _ := c.State(it.RequestID)
	return IsCampaignAdmin(groups, admins) || sharesGroup(groups, it.Owners) ||
		(state == events.ItemEscalated && sharesGroup(groups, c.Opened().EscalateTo))
}

// Owners names an entitlement's owner groups (the catalogue's), and false for an unknown entitlement.
type Owners func(entitlement string) ([]string, bool)

// CampaignItems selects, from the requests given, the active grants f matches at now (granted, before
// their expiry, no revocation under way): of f's entitlement if set, and lasting longer than f's
// length, from when the access began to be held through its extensions to its expiry, if set. Each
// item records the entitlement's owners; a grant of an entitlement no longer in the catalogue has no
// owner to ask and is left out.
func CampaignItems(reqs []*events.Request, f events.CampaignFilter, owners Owners, now time.Time) []events.CampaignItem {
	var out []events.CampaignItem
	for _, r := range reqs {
		s, g := r.Submitted(), r.Grant()
		if r.Status() != events.StatusGranted || r.RevocationDue() != "" || !g.ExpiresAt.After(now) {
			continue
		}
		if f.Entitlement != "" && s.Entitlement != f.Entitlement {
			continue
		}
		if f.LongerThanSeconds > 0 && g.ExpiresAt.Sub(r.HeldSince()) <= time.Duration(f.LongerThanSeconds)*time.Second {
			continue
		}
		groups, ok := owners(s.Entitlement)
		if !ok || len(groups) == 0 {
			continue
		}
		out = append(out, events.CampaignItem{RequestID: r.ID(), Entitlement: s.Entitlement, SubjectID: s.Subject.ID,
			RequesterID: s.Requester.ID, ExpiresAt: g.ExpiresAt, Owners: slices.Clone(groups)})
	}
	return out
}

// OpenCampaign decides the opening of campaign spec over items by creator at now: campaign_opened in
// the creator's name. It returns ErrNotCampaignAdmin for a creator in none of admins; ErrNothingToReview
// for no items; ErrInvalid for a spec the campaign's rules refuse (no name or filter, a deadline not in
// the future, an unknown rule, escalation without its groups and later deadline, reminders outside the
// campaign, more than events.MaxCampaignItems items).
func (ru Rules) OpenCampaign(id string, creator events.Principal, admins []string, spec CampaignSpec, items []events.CampaignItem, now time.Time) ([]events.Draft, error) {
	me, err := ru.Normalize(creator.ID)
	if err != nil {
		return nil, fmt.Errorf("%w: creator identity: %v", ErrInvalid, err)
	}
	if !IsCampaignAdmin(creator.Groups, admins) {
		return nil, ErrNotCampaignAdmin
	}
	if len(items) == 0 {
		return nil, ErrNothingToReview
	}
	opened := events.CampaignOpened{Name: spec.Name, Filter: spec.Filter, CreatedBy: events.Principal{ID: me, Groups: creator.Groups},
		Deadline: spec.Deadline.UTC(), RemindAt: spec.RemindAt, Unanswered: spec.Unanswered, EscalateTo: spec.EscalateTo,
		EscalationDeadline: spec.EscalationDeadline, Items: items}
	draft := events.Draft{Actor: me, Payload: opened}
	// The campaign's own rules say what a campaign must be; asked here, they answer before any append.
	ev := events.Event{Envelope: events.Envelope{Type: events.TypeCampaignOpened, Subject: id, Time: now, Actor: me}, Payload: opened}
	if err := events.NewCampaign(id).Apply(ev); err != nil {
		var refused *events.RefusedError
		if errors.As(err, &refused) {
			return nil, fmt.Errorf("%w: %s", ErrInvalid, refused.Reason)
		}
		return nil, err
	}
	return []events.Draft{draft}, nil
}

// Certification is an owner's answer on one item of a campaign, as the edge received it.
type Certification struct {
	Reviewer  events.Principal
	RequestID string
	Decision  events.CampaignDecision
	Note      string
}

// Certify decides the event for cert on campaign c at now: campaign_decided in the reviewer's name, or
// nothing when the reviewer already gave this same answer (a retry whose answer was lost).
//
// It returns ErrNotFound for a campaign with no events or an item it does not review; ErrInvalid for an
// unknown decision or an over-long note; a *DutyError (ErrSeparationOfDuties) when the reviewer holds
// the grant or asked for it (nobody certifies their own access), in any state; ErrNotPending once the
// item is answered, the campaign closed or the deadline in force passed; ErrNotReviewer for a reviewer
// outside the item's owners (or the escalation groups, once escalated).
func (ru Rules) Certify(c *events.Campaign, cert Certification, now time.Time) ([]events.Draft, error) {
	it, ok := c.Item(cert.RequestID)
	if c.Status() == events.CampaignStatusNone || !ok {
		return nil, ErrNotFound
	}
	if cert.Decision != events.CampaignKeep && cert.Decision != events.CampaignRevokes {
		return nil, fmt.Errorf("%w: decision %q is neither keep nor revoke", ErrInvalid, cert.Decision)
	}
	if len(cert.Note) > MaxComment {
		return nil, fmt.Errorf("%w: the note is longer than %d bytes", ErrInvalid, MaxComment)
	}
	me, err := ru.Normalize(cert.Reviewer.ID)
	if err != nil {
		return nil, fmt.Errorf("%w: reviewer identity: %v", ErrInvalid, err)
	}
	switch {
	case ru.same(it.SubjectID, me):
		return nil, &DutyError{Reviewer: me, Reason: DutySubject}
	case ru.same(it.RequesterID, me):
		return nil, &DutyError{Reviewer: me, Reason: DutyRequester}
	}
	if prior, ok := c.Decision(cert.RequestID); ok && ru.same(prior.Reviewer.ID, me) && prior.Decision == cert.Decision {
		return nil, nil
	}
	state, _ := c.State(cert.RequestID)
	if state.Answered() || c.Status() == events.CampaignStatusClosed {
		return nil, fmt.Errorf("%w: the item is %s", ErrNotPending, state)
	}
	if now.After(c.Deadline()) {
		return nil, fmt.Errorf("%w: the deadline %s has passed", ErrNotPending, c.Deadline().UTC().Format(time.RFC3339))
	}
	reviewer := events.Principal{ID: me, Groups: cert.Reviewer.Groups}
	if err := c.MayCertify(reviewer, cert.RequestID); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotReviewer, err)
	}
	return []events.Draft{{Actor: me, Payload: events.CampaignDecided{RequestID: cert.RequestID, Decision: cert.Decision,
		Reviewer: reviewer, Note: cert.Note}}}, nil
}

// CampaignDue decides what campaign c's clock appends at now, and when to look next (zero once the
// campaign is closed): at the deadline in force, campaign_escalated under the rule escalate (when
// anything is unanswered), else campaign_closed revoking what is unanswered; before it, a
// campaign_reminded at each reminder time that passed, while anything is pending. A repeated timer
// finds the campaign moved on and appends nothing twice; the causations, which name the campaign, keep
// the deterministic message IDs of two campaigns apart.
func CampaignDue(c *events.Campaign, now time.Time) (drafts []events.Draft, next time.Time) {
	if c.Status() == events.CampaignStatusNone || c.Status() == events.CampaignStatusClosed {
		return nil, time.Time{}
	}
	o, awaiting := c.Opened(), c.Awaiting()
	deadline := c.Deadline()
	switch {
	case now.Before(deadline):
		remind := o.RemindAt[min(c.Reminders(), len(o.RemindAt)):]
		if len(remind) > 0 && !now.Before(remind[0]) && len(awaiting) > 0 {
			drafts = []events.Draft{{Payload: events.CampaignReminded{Pending: awaiting}, CausationID: fmt.Sprintf("campaign-reminder:%s:%d", c.ID(), c.Reminders())}}
			remind = remind[1:]
		}
		next = deadline
		if len(remind) > 0 && remind[0].Before(deadline) {
			next = remind[0]
		}
		return drafts, next
	case c.Status() == events.CampaignStatusOpen && o.Unanswered == events.CampaignEscalate && len(awaiting) > 0:
		return []events.Draft{{Payload: events.CampaignEscalated{Items: awaiting}, CausationID: "campaign-escalated:" + c.ID()}}, *o.EscalationDeadline
	}
	return []events.Draft{{Payload: events.CampaignClosed{RevokedUnanswered: awaiting}, CausationID: "campaign-closed:" + c.ID()}}, time.Time{}
}
