package events

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// CampaignTypePrefix is the common prefix of the access review campaign event types. A campaign is its
// own aggregate, like a lock, so its types are outside the request catalogue's prefix.
const CampaignTypePrefix = "io.grantline.campaign."

// The campaign events (docs/architecture.md, "Access reviews"), all emitted by the approval service,
// the one service that records people's decisions on access. They are stored in the evidence stream
// under the campaign's ID (grantline.events.<campaignID>.campaign_opened), so the checkpoints,
// witnesses and audit cover them like a request's events.
const (
	TypeCampaignOpened    Type = CampaignTypePrefix + "campaign_opened"
	TypeCampaignReminded  Type = CampaignTypePrefix + "campaign_reminded"
	TypeCampaignDecided   Type = CampaignTypePrefix + "campaign_decided"
	TypeCampaignEscalated Type = CampaignTypePrefix + "campaign_escalated"
	TypeCampaignClosed    Type = CampaignTypePrefix + "campaign_closed"
)

// Campaign reports whether t is a campaign's event rather than a request's.
func (t Type) Campaign() bool { return strings.HasPrefix(string(t), CampaignTypePrefix) }

// Request reports whether t is a request's event. A reader that folds every event of the stream into
// requests skips the others (a lock's, a campaign's), which obey their own aggregates.
func (t Type) Request() bool { return strings.HasPrefix(string(t), TypePrefix) }

// MaxCampaignItems bounds the grants one campaign reviews: campaign_opened records them all and must
// stay within MaxEventSize. A larger review is split, by entitlement for instance.
const MaxCampaignItems = 200

// CampaignFilter selects the active grants a campaign reviews; every set field must match.
type CampaignFilter struct {
	// Entitlement keeps only grants of this entitlement.
	Entitlement string `json:"entitlement,omitempty"`
	// LongerThanSeconds keeps only grants whose access, held without a gap through its extensions,
	// lasts longer than this from its start to its expiry.
	LongerThanSeconds int64 `json:"longer_than_seconds,omitempty"`
}

// CampaignRule says what happens to an item nobody answered by the deadline.
type CampaignRule string

// Campaign rules. Escalation passes the item to the escalation groups until the escalation deadline;
// what they leave unanswered then is revoked, since a review fails closed.
const (
	CampaignRevoke   CampaignRule = "revoke"
	CampaignEscalate CampaignRule = "escalate"
)

// CampaignItem is one active grant under review, as it was when the campaign opened.
type CampaignItem struct {
	RequestID   string `json:"request_id"`
	Entitlement string `json:"entitlement"`
	// SubjectID holds the access and RequesterID asked for it: neither may certify it.
	SubjectID   string    `json:"subject_id"`
	RequesterID string    `json:"requester_id"`
	ExpiresAt   time.Time `json:"expires_at"`
	// Owners are the entitlement's owner groups, the people asked to keep or revoke the grant.
	Owners []string `json:"owners"`
}

// CampaignOpened records an access review over the items, opened by CreatedBy with a deadline and a
// rule for what is unanswered (emitted by approval).
type CampaignOpened struct {
	Name      string         `json:"name"`
	Filter    CampaignFilter `json:"filter"`
	CreatedBy Principal      `json:"created_by"`
	Deadline  time.Time      `json:"deadline"`
	// RemindAt are the times the owners of items still pending are reminded, before the deadline.
	RemindAt   []time.Time  `json:"remind_at,omitempty"`
	Unanswered CampaignRule `json:"unanswered"`
	// EscalateTo and EscalationDeadline are set exactly with the rule escalate.
	EscalateTo         []string       `json:"escalate_to,omitempty"`
	EscalationDeadline *time.Time     `json:"escalation_deadline,omitempty"`
	Items              []CampaignItem `json:"items"`
}

// CampaignReminded records that the owners of the pending items were reminded (emitted by approval).
type CampaignReminded struct {
	Pending []string `json:"pending"`
}

// CampaignDecision is an owner's answer on one item.
type CampaignDecision string

// Campaign decisions.
const (
	CampaignKeep    CampaignDecision = "keep"
	CampaignRevokes CampaignDecision = "revoke"
)

// CampaignDecided records an owner's decision to keep or revoke one item's grant (emitted by approval
// in the reviewer's name). A revoke is carried out by the revoker, reason review_revoked.
type CampaignDecided struct {
	RequestID string           `json:"request_id"`
	Decision  CampaignDecision `json:"decision"`
	Reviewer  Principal        `json:"reviewer"`
	Note      string           `json:"note,omitempty"`
}

// CampaignEscalated records that the items unanswered at the deadline passed to the campaign's
// escalation groups until its escalation deadline (emitted by approval).
type CampaignEscalated struct {
	Items []string `json:"items"`
}

// CampaignClosed records the end of the campaign: the items unanswered at its last deadline are revoked
// by rule (the revoker carries it out, reason review_revoked) (emitted by approval).
type CampaignClosed struct {
	RevokedUnanswered []string `json:"revoked_unanswered"`
}

func (CampaignOpened) EventType() Type    { return TypeCampaignOpened }
func (CampaignReminded) EventType() Type  { return TypeCampaignReminded }
func (CampaignDecided) EventType() Type   { return TypeCampaignDecided }
func (CampaignEscalated) EventType() Type { return TypeCampaignEscalated }
func (CampaignClosed) EventType() Type    { return TypeCampaignClosed }

// CampaignStatus is the lifecycle state of a campaign.
type CampaignStatus string

// Campaign statuses. CampaignStatusNone is a campaign with no events yet.
const (
	CampaignStatusNone      CampaignStatus = ""
	CampaignStatusOpen      CampaignStatus = "open"
	CampaignStatusEscalated CampaignStatus = "escalated"
	CampaignStatusClosed    CampaignStatus = "closed"
)

// ItemState is where one item of a campaign stands.
type ItemState string

// Item states: pending until decided, or escalated; revoked_unanswered once the rule revoked it.
const (
	ItemPending           ItemState = "pending"
	ItemEscalated         ItemState = "escalated"
	ItemKept              ItemState = "kept"
	ItemRevoked           ItemState = "revoked"
	ItemRevokedUnanswered ItemState = "revoked_unanswered"
)

// Answered reports whether the item no longer awaits anyone.
func (s ItemState) Answered() bool { return s != ItemPending && s != ItemEscalated }

// Campaign is the aggregate of one access review folded from its events. Its fields change only
// through Apply.
type Campaign struct {
	id       string
	version  int
	status   CampaignStatus
	opened   CampaignOpened
	openedAt time.Time
	states   map[string]ItemState
	decided  map[string]CampaignDecided
	reminded int
}

// NewCampaign returns the empty aggregate of campaign id, ready for its campaign_opened.
func NewCampaign(id string) *Campaign {
	return &Campaign{id: id, states: map[string]ItemState{}, decided: map[string]CampaignDecided{}}
}

// FoldCampaign applies evs in order to a new aggregate of campaign id and stops at the first refused
// event.
func FoldCampaign(id string, evs []Event) (*Campaign, error) {
	c := NewCampaign(id)
	for i, ev := range evs {
		if err := c.Apply(ev); err != nil {
			return nil, fmt.Errorf("event %d (%s): %w", i+1, ev.ID, err)
		}
	}
	return c, nil
}

// ID is the campaign ID.
func (c *Campaign) ID() string { return c.id }

// Version is the number of events applied.
func (c *Campaign) Version() int { return c.version }

// Status is the derived lifecycle status.
func (c *Campaign) Status() CampaignStatus { return c.status }

// Opened is the campaign as opened; zero before its first event.
func (c *Campaign) Opened() CampaignOpened { return c.opened }

// OpenedAt is when the campaign opened.
func (c *Campaign) OpenedAt() time.Time { return c.openedAt }

// Reminders is the number of reminders recorded.
func (c *Campaign) Reminders() int { return c.reminded }

// State is where item requestID stands, and false for a request the campaign does not review.
func (c *Campaign) State(requestID string) (ItemState, bool) {
	s, ok := c.states[requestID]
	return s, ok
}

// Decision is the recorded decision on item requestID, and false while there is none.
func (c *Campaign) Decision(requestID string) (CampaignDecided, bool) {
	d, ok := c.decided[requestID]
	return d, ok
}

// Awaiting lists the items still awaiting an answer, in the campaign's order.
func (c *Campaign) Awaiting() []string {
	var out []string
	for _, it := range c.opened.Items {
		if !c.states[it.RequestID].Answered() {
			out = append(out, it.RequestID)
		}
	}
	return out
}

// Deadline is when the items now awaiting an answer are due: the deadline, or the escalation deadline
// once escalated; zero once closed.
func (c *Campaign) Deadline() time.Time {
	switch c.status {
	case CampaignStatusOpen:
		return c.opened.Deadline
	case CampaignStatusEscalated:
		return *c.opened.EscalationDeadline
	}
	return time.Time{}
}

// Item returns the item for requestID, and false for a request the campaign does not review.
func (c *Campaign) Item(requestID string) (CampaignItem, bool) {
	i := slices.IndexFunc(c.opened.Items, func(it CampaignItem) bool { return it.RequestID == requestID })
	if i < 0 {
		return CampaignItem{}, false
	}
	return c.opened.Items[i], true
}

// MayCertify says whether person p, in groups, may decide item requestID now, or why not: separation of
// duties forbids the grant's holder and its requester (nobody certifies their own access), and only the
// item's owners may answer it, or the escalation groups once it is escalated.
func (c *Campaign) MayCertify(p Principal, requestID string) error {
	it, ok := c.Item(requestID)
	switch {
	case !ok:
		return fmt.Errorf("the campaign does not review request %s", requestID)
	case p.ID == "":
		return errors.New("the reviewer has no identity")
	case p.ID == it.SubjectID:
		return errors.New("nobody certifies their own access")
	case p.ID == it.RequesterID:
		return errors.New("the requester may not certify the access they asked for")
	}
	switch c.states[requestID] {
	case ItemPending:
		if !sharesGroup(p.Groups, it.Owners) {
			return fmt.Errorf("only the owners of %s (%s) certify its grants", it.Entitlement, strings.Join(it.Owners, ", "))
		}
	case ItemEscalated:
		if !sharesGroup(p.Groups, c.opened.EscalateTo) {
			return fmt.Errorf("the item is escalated to %s", strings.Join(c.opened.EscalateTo, ", "))
		}
	default:
		return fmt.Errorf("the item is already %s", c.states[requestID])
	}
	return nil
}

// Apply checks that ev fits the campaign's current state and moves the state on. A refused event leaves
// the campaign unchanged and returns a *RefusedError whose Status is the campaign's.
func (c *Campaign) Apply(ev Event) error {
	if ev.Payload == nil || ev.Payload.EventType() != ev.Type {
		return c.refuse(ev.Type, "payload does not match the event type")
	}
	if ev.Subject != c.id {
		return c.refuse(ev.Type, fmt.Sprintf("event is for campaign %q", ev.Subject))
	}
	if err := c.check(ev); err != nil {
		return err
	}
	switch p := ev.Payload.(type) {
	case CampaignOpened:
		c.status, c.opened, c.openedAt = CampaignStatusOpen, p, ev.Time
		for _, it := range p.Items {
			c.states[it.RequestID] = ItemPending
		}
	case CampaignReminded:
		c.reminded++
	case CampaignDecided:
		c.decided[p.RequestID] = p
		c.states[p.RequestID] = map[CampaignDecision]ItemState{CampaignKeep: ItemKept, CampaignRevokes: ItemRevoked}[p.Decision]
	case CampaignEscalated:
		c.status = CampaignStatusEscalated
		for _, id := range p.Items {
			c.states[id] = ItemEscalated
		}
	case CampaignClosed:
		c.status = CampaignStatusClosed
		for _, id := range p.RevokedUnanswered {
			c.states[id] = ItemRevokedUnanswered
		}
	}
	c.version++
	return nil
}

func (c *Campaign) refuse(t Type, reason string) error {
	return &RefusedError{Status: Status(c.status), Type: t, Reason: reason}
}

// check is the campaign's transition table: opened once; reminded and decided before the deadline in
// force; escalated (with the rule escalate) or closed at the deadline, naming exactly the items still
// awaiting an answer; closed is terminal.
func (c *Campaign) check(ev Event) error {
	refuse := func(reason string) error { return c.refuse(ev.Type, reason) }
	if _, opening := ev.Payload.(CampaignOpened); !opening {
		switch {
		case !ev.Type.Campaign():
			return refuse("not a campaign event")
		case c.status == CampaignStatusNone:
			return refuse("a campaign begins with campaign_opened")
		case c.status == CampaignStatusClosed:
			return refuse("the campaign is closed")
		}
	}
	switch p := ev.Payload.(type) {
	case CampaignOpened:
		if c.status != CampaignStatusNone {
			return refuse("a campaign is opened once")
		}
		return checkOpened(ev, p)
	case CampaignReminded:
		switch {
		case !ev.Time.Before(c.Deadline()):
			return refuse("reminders come before the deadline")
		case len(p.Pending) == 0 || !slices.Equal(p.Pending, c.Awaiting()):
			return refuse("a reminder names exactly the items awaiting an answer")
		}
	case CampaignDecided:
		switch {
		case p.Decision != CampaignKeep && p.Decision != CampaignRevokes:
			return refuse(fmt.Sprintf("unknown decision %q", p.Decision))
		case ev.Actor != p.Reviewer.ID:
			return refuse("a decision is made by the person the event names as its actor")
		case ev.Time.After(c.Deadline()):
			return refuse("the deadline has passed")
		}
		if err := c.MayCertify(p.Reviewer, p.RequestID); err != nil {
			return refuse(err.Error())
		}
	case CampaignEscalated:
		switch {
		case c.status != CampaignStatusOpen || c.opened.Unanswered != CampaignEscalate:
			return refuse("only an open campaign with the rule escalate escalates")
		case ev.Time.Before(c.opened.Deadline):
			return refuse("the deadline has not passed")
		case len(p.Items) == 0 || !slices.Equal(p.Items, c.Awaiting()):
			return refuse("escalation names exactly the items awaiting an answer")
		}
	case CampaignClosed:
		switch {
		case ev.Time.Before(c.Deadline()):
			return refuse("the deadline has not passed")
		case c.status == CampaignStatusOpen && c.opened.Unanswered == CampaignEscalate && len(c.Awaiting()) > 0:
			return refuse("the rule escalates what is unanswered before the campaign closes")
		case !slices.Equal(p.RevokedUnanswered, c.Awaiting()):
			return refuse("closing revokes exactly the items awaiting an answer")
		}
	default:
		return refuse("not a campaign event")
	}
	return nil
}

// checkOpened is the part of the table for campaign_opened: what a campaign must say for its rules to
// be followed later.
func checkOpened(ev Event, p CampaignOpened) error {
	refuse := func(reason string) error { return &RefusedError{Type: ev.Type, Reason: reason} }
	switch {
	case p.Name == "":
		return refuse("a campaign has a name")
	case p.CreatedBy.ID == "" || ev.Actor != p.CreatedBy.ID:
		return refuse("a campaign is opened by the person the event names as its actor")
	case p.Filter.Entitlement == "" && p.Filter.LongerThanSeconds <= 0:
		return refuse("a campaign filters by entitlement, by length, or both")
	case p.Filter.LongerThanSeconds < 0:
		return refuse("a length filter is positive")
	case !p.Deadline.After(ev.Time):
		return refuse("the deadline lies after the opening")
	case len(p.Items) == 0 || len(p.Items) > MaxCampaignItems:
		return refuse(fmt.Sprintf("a campaign reviews 1 to %d grants", MaxCampaignItems))
	}
	switch p.Unanswered {
	case CampaignRevoke:
		if len(p.EscalateTo) > 0 || p.EscalationDeadline != nil {
			return refuse("only the rule escalate names escalation groups and deadline")
		}
	case CampaignEscalate:
		if len(p.EscalateTo) == 0 || p.EscalationDeadline == nil || !p.EscalationDeadline.After(p.Deadline) {
			return refuse("the rule escalate names escalation groups and a later escalation deadline")
		}
	default:
		return refuse(fmt.Sprintf("unknown rule %q for unanswered items", p.Unanswered))
	}
	for _, at := range p.RemindAt {
		if !at.After(ev.Time) || !at.Before(p.Deadline) {
			return refuse("reminders fall between the opening and the deadline")
		}
	}
	seen := map[string]bool{}
	for _, it := range p.Items {
		switch {
		case !ValidRequestID(it.RequestID) || it.RequestID == ev.Subject:
			return refuse("each item names a request")
		case seen[it.RequestID]:
			return refuse(fmt.Sprintf("request %s is reviewed twice", it.RequestID))
		case it.Entitlement == "" || it.SubjectID == "" || it.RequesterID == "" || len(it.Owners) == 0:
			return refuse(fmt.Sprintf("item %s names its entitlement, holder, requester and owners", it.RequestID))
		case p.Filter.Entitlement != "" && it.Entitlement != p.Filter.Entitlement:
			return refuse(fmt.Sprintf("item %s is outside the filter", it.RequestID))
		}
		seen[it.RequestID] = true
	}
	return nil
}
