package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/grantline/grantline/pkg/auth"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/httpjson"
	"github.com/grantline/grantline/pkg/streamscan"
	"github.com/grantline/grantline/pkg/telemetry"
	"github.com/grantline/grantline/services/approval"
)

// CampaignBody asks for an access review (POST /v1/campaigns).
type CampaignBody struct {
	Name               string                `json:"name"`
	Filter             events.CampaignFilter `json:"filter"`
	Deadline           time.Time             `json:"deadline"`
	RemindAt           []time.Time           `json:"remind_at,omitempty"`
	Unanswered         events.CampaignRule   `json:"unanswered"`
	EscalateTo         []string              `json:"escalate_to,omitempty"`
	EscalationDeadline *time.Time            `json:"escalation_deadline,omitempty"`
}

// CampaignItemView is one grant under review and where it stands.
type CampaignItemView struct {
	events.CampaignItem
	State     events.ItemState        `json:"state"`
	Decision  events.CampaignDecision `json:"decision,omitempty"`
	DecidedBy string                  `json:"decided_by,omitempty"`
	Note      string                  `json:"note,omitempty"`
}

// CampaignView is a campaign as the caller may see it: every item to the campaign admins, the items
// they may answer (or could have) to owners and escalation groups.
type CampaignView struct {
	ID                 string                `json:"id"`
	Name               string                `json:"name"`
	Status             events.CampaignStatus `json:"status"`
	Filter             events.CampaignFilter `json:"filter"`
	CreatedBy          string                `json:"created_by"`
	OpenedAt           time.Time             `json:"opened_at"`
	Deadline           time.Time             `json:"deadline"`
	RemindAt           []time.Time           `json:"remind_at,omitempty"`
	Unanswered         events.CampaignRule   `json:"unanswered"`
	EscalateTo         []string              `json:"escalate_to,omitempty"`
	EscalationDeadline *time.Time            `json:"escalation_deadline,omitempty"`
	// Awaiting counts the items shown that still await an answer.
	Awaiting int                `json:"awaiting"`
	Items    []CampaignItemView `json:"items"`
}

// CampaignList is GET /v1/campaigns: the campaigns the caller may see, newest first.
type CampaignList struct {
	Campaigns []CampaignView `json:"campaigns"`
}

// DecisionBody is an owner's answer on one item (POST /v1/campaigns/{id}/decisions).
type DecisionBody struct {
	RequestID string                  `json:"request_id"`
	Decision  events.CampaignDecision `json:"decision"`
	Note      string                  `json:"note,omitempty"`
}

func (h *Handler) createCampaign(w http.ResponseWriter, r *http.Request) {
	out, err := h.handleCreateCampaign(r)
	if err != nil {
		problems.Refuse(w, r, h.Log, "open campaign", err)
		return
	}
	h.Log.Info("campaign opened", telemetry.KeyTraceID, telemetry.TraceID(r.Context()), "campaign", out.ID, "by", out.CreatedBy, "items", len(out.Items))
	httpjson.Write(w, http.StatusCreated, out)
}

func (h *Handler) handleCreateCampaign(r *http.Request) (CampaignView, error) {
	who, err := h.Auth.Authenticate(r)
	if err != nil {
		return CampaignView{}, err
	}
	var body CampaignBody
	if err := httpjson.Decode(r, &body, MaxBody); err != nil {
		return CampaignView{}, err
	}
	creator := events.Principal{ID: who.Subject, Groups: who.Groups}
	if !approval.IsCampaignAdmin(creator.Groups, h.CampaignAdminGroups) {
		// Before the scan of every live grant: an outsider costs nothing.
		return CampaignView{}, approval.ErrNotCampaignAdmin
	}
	now := h.now()
	items, err := h.liveItems(r.Context(), body.Filter, now)
	if err != nil {
		return CampaignView{}, err
	}
	spec := approval.CampaignSpec{Name: body.Name, Filter: body.Filter, Deadline: body.Deadline, RemindAt: body.RemindAt,
		Unanswered: body.Unanswered, EscalateTo: body.EscalateTo, EscalationDeadline: body.EscalationDeadline}
	id := events.NewID()
	c, err := h.Store.UpdateCampaign(r.Context(), id, func(*events.Campaign) ([]events.Draft, error) {
		return h.Rules.OpenCampaign(id, creator, h.CampaignAdminGroups, spec, items, h.now())
	})
	if err != nil {
		return CampaignView{}, err
	}
	return h.campaignView(who, c.Campaign), nil
}

// liveItems loads every live grant and keeps those the filter selects, with their entitlement's owners.
func (h *Handler) liveItems(ctx context.Context, f events.CampaignFilter, now time.Time) ([]events.CampaignItem, error) {
	ids, err := streamscan.LiveGrants(ctx, h.JS)
	if err != nil {
		return nil, fmt.Errorf("list the live grants: %w", err)
	}
	reqs := make([]*events.Request, 0, len(ids))
	for _, id := range ids {
		l, err := h.Store.Load(ctx, id)
		if err != nil {
			return nil, err
		}
		reqs = append(reqs, l.Request)
	}
	return approval.CampaignItems(reqs, f, h.owners, now), nil
}

func (h *Handler) owners(entitlement string) ([]string, bool) {
	if h.Catalogue == nil {
		return nil, false
	}
	ent, ok := h.Catalogue.Entitlement(entitlement)
	return ent.OwnerGroups, ok
}

func (h *Handler) listCampaigns(w http.ResponseWriter, r *http.Request) {
	out, err := h.handleListCampaigns(r)
	if err != nil {
		problems.Refuse(w, r, h.Log, "list campaigns", err)
		return
	}
	httpjson.Write(w, http.StatusOK, out)
}

// handleListCampaigns loads every campaign ever opened (campaigns are few; each is read verified) and
// answers those the caller may see, newest first.
func (h *Handler) handleListCampaigns(r *http.Request) (CampaignList, error) {
	who, err := h.Auth.Authenticate(r)
	if err != nil {
		return CampaignList{}, err
	}
	var ids []string
	if err := streamscan.Requests(r.Context(), h.JS, events.TypeCampaignOpened, func(id string, _ uint64) error {
		ids = append(ids, id)
		return nil
	}); err != nil {
		return CampaignList{}, fmt.Errorf("list campaigns: %w", err)
	}
	out := CampaignList{Campaigns: []CampaignView{}}
	for _, id := range slices.Backward(ids) {
		c, err := h.Store.LoadCampaign(r.Context(), id)
		if err != nil {
			return CampaignList{}, err
		}
		if v := h.campaignView(who, c.Campaign); len(v.Items) > 0 {
			out.Campaigns = append(out.Campaigns, v)
		}
	}
	return out, nil
}

func (h *Handler) showCampaign(w http.ResponseWriter, r *http.Request) {
	out, err := h.handleShowCampaign(r, r.PathValue("id"))
	if err != nil {
		problems.Refuse(w, r, h.Log, "show campaign", err)
		return
	}
	httpjson.Write(w, http.StatusOK, out)
}

func (h *Handler) handleShowCampaign(r *http.Request, id string) (CampaignView, error) {
	who, err := h.Auth.Authenticate(r)
	if err != nil {
		return CampaignView{}, err
	}
	if !events.ValidRequestID(id) {
		return CampaignView{}, approval.ErrNotFound
	}
	c, err := h.Store.LoadCampaign(r.Context(), id)
	if err != nil {
		return CampaignView{}, err
	}
	v := h.campaignView(who, c.Campaign)
	if c.Campaign.Status() == events.CampaignStatusNone || len(v.Items) == 0 {
		return CampaignView{}, approval.ErrNotFound
	}
	return v, nil
}

func (h *Handler) decideCampaign(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	out, err := h.handleDecide(r, id)
	if err != nil {
		problems.Refuse(w, r, h.Log.With("campaign", id), "certify", err)
		return
	}
	h.Log.Info("certified", telemetry.KeyTraceID, telemetry.TraceID(r.Context()), "campaign", id, telemetry.KeyRequestID, out.RequestID,
		"reviewer", out.DecidedBy, "decision", out.Decision)
	httpjson.Write(w, http.StatusCreated, out)
}

func (h *Handler) handleDecide(r *http.Request, id string) (CampaignItemView, error) {
	who, err := h.Auth.Authenticate(r)
	if err != nil {
		return CampaignItemView{}, err
	}
	var body DecisionBody
	if err := httpjson.Decode(r, &body, MaxBody); err != nil {
		return CampaignItemView{}, err
	}
	if !events.ValidRequestID(id) {
		return CampaignItemView{}, approval.ErrNotFound
	}
	cert := approval.Certification{Reviewer: events.Principal{ID: who.Subject, Groups: who.Groups}, RequestID: body.RequestID,
		Decision: body.Decision, Note: body.Note}
	c, err := h.Store.UpdateCampaign(r.Context(), id, func(c *events.Campaign) ([]events.Draft, error) {
		return h.Rules.Certify(c, cert, h.now())
	})
	if err != nil {
		return CampaignItemView{}, err
	}
	it, _ := c.Campaign.Item(body.RequestID)
	return itemView(c.Campaign, it), nil
}

// campaignView shows c to who: every item to a campaign admin; to anyone else the items whose owners
// (or, once escalated, whose escalation groups) they are in. No item means they may not see c at all.
func (h *Handler) campaignView(who auth.Identity, c *events.Campaign) CampaignView {
	o := c.Opened()
	v := CampaignView{ID: c.ID(), Name: o.Name, Status: c.Status(), Filter: o.Filter, CreatedBy: o.CreatedBy.ID, OpenedAt: c.OpenedAt(),
		Deadline: o.Deadline, RemindAt: o.RemindAt, Unanswered: o.Unanswered, EscalateTo: o.EscalateTo,
		EscalationDeadline: o.EscalationDeadline, Items: []CampaignItemView{}}
	for _, it := range o.Items {
		if !approval.SeesItem(who.Groups, h.CampaignAdminGroups, c, it) {
			continue
		}
		v.Items = append(v.Items, itemView(c, it))
		if state, _ := c.State(it.RequestID); !state.Answered() {
			v.Awaiting++
		}
	}
	return v
}

func itemView(c *events.Campaign, it events.CampaignItem) CampaignItemView {
	state, _ := c.State(it.RequestID)
	v := CampaignItemView{CampaignItem: it, State: state}
	if d, ok := c.Decision(it.RequestID); ok {
		v.Decision, v.DecidedBy, v.Note = d.Decision, d.Reviewer.ID, d.Note
	}
	return v
}

func (h *Handler) now() time.Time {
	if h.Now == nil {
		return time.Now()
	}
	return h.Now()
}
