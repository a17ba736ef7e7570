package web

import (
	"net/http"
	"net/url"

	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/requestview"
	"github.com/grantline/grantline/services/console"
	"github.com/grantline/grantline/services/console/apiclient"
	"github.com/grantline/grantline/services/console/session"
)

// auditPage answers one of four questions, each a form of its own: which requests match a search,
// which grants exist, who held an entitlement at an instant, and what access the targets showed that
// no request explains (the drift findings).
type auditPage struct {
	frame
	Entitlements []catalogue.Entitlement
	Statuses     []events.Status
	// Q names the question answered: "requests", "grants", "who-had" or "findings".
	Q string
	// Search is what was asked, for the forms to show it again.
	Search struct {
		Status, Requester, Entitlement, At string
		Active                             bool
	}
	Requests   []requestview.View
	Grants     []apiclient.Grant
	Findings   []apiclient.Finding
	Holders    *apiclient.Holders
	NextCursor string
	// AtError is what is wrong with the instant asked about.
	AtError string
}

var statuses = []events.Status{events.StatusSubmitted, events.StatusDenied, events.StatusPendingApproval, events.StatusApproved,
	events.StatusGranted, events.StatusRevoked, events.StatusRejected, events.StatusWithdrawn, events.StatusFailed}

func (c *Console) audit(w http.ResponseWriter, r *http.Request, s session.Session) {
	q := r.URL.Query()
	p := auditPage{frame: c.frame(r, "Audit", &s), Entitlements: c.cfg.Catalogue.Entitlements, Statuses: statuses, Q: q.Get("q")}
	p.Search.Status, p.Search.Requester, p.Search.Entitlement, p.Search.At = q.Get("status"), q.Get("requester"), q.Get("entitlement"), q.Get("at")
	p.Search.Active = q.Get("active") == "on"
	ctx, cancel := callWithin(r.Context())
	defer cancel()
	var err error
	switch p.Q {
	case "requests":
		var page apiclient.RequestPage
		page, err = c.cfg.API.Requests(ctx, s.Token, apiclient.Filter{Status: events.Status(p.Search.Status), Requester: p.Search.Requester,
			Entitlement: p.Search.Entitlement, Limit: 50, Cursor: q.Get("cursor")})
		p.Requests, p.NextCursor = page.Items, page.NextCursor
	case "grants":
		var page apiclient.GrantPage
		page, err = c.cfg.API.Grants(ctx, s.Token, p.Search.Active, q.Get("cursor"))
		p.Grants, p.NextCursor = page.Items, page.NextCursor
	case "findings":
		var page apiclient.FindingPage
		page, err = c.cfg.API.Findings(ctx, s.Token, q.Get("cursor"))
		p.Findings, p.NextCursor = page.Items, page.NextCursor
	case "who-had":
		at, perr := parseLocal(p.Search.At)
		if perr != nil {
			p.AtError = "must be a date and time, such as 2030-01-31T09:00"
			c.render(w, http.StatusUnprocessableEntity, "audit", p)
			return
		}
		var h apiclient.Holders
		h, err = c.cfg.API.WhoHad(ctx, s.Token, p.Search.Entitlement, at)
		p.Holders = &h
	}
	if err != nil {
		p.Refusal = c.refusal("audit", err)
		p.Holders = nil
		c.render(w, p.Refusal.Status, "audit", p)
		return
	}
	c.render(w, http.StatusOK, "audit", p)
}

// NextPage is the address of the next page of the same search.
func (p auditPage) NextPage() string {
	v := url.Values{}
	for k, val := range map[string]string{"q": p.Q, "status": p.Search.Status, "requester": p.Search.Requester,
		"entitlement": p.Search.Entitlement, "cursor": p.NextCursor} {
		if val != "" {
			v.Set(k, val)
		}
	}
	if p.Search.Active {
		v.Set("active", "on")
	}
	return "/audit?" + v.Encode()
}

// auditRequestPage is a request's verified event timeline: the read side's verdict, the console's
// own check of the same bytes, and each event.
type auditRequestPage struct {
	frame
	RequestID    string
	Verification apiclient.Verification
	Own          console.Verdict
	// Agree says the two verdicts found the same.
	Agree   bool
	Entries []console.EvidenceEntry
}

func (c *Console) auditRequest(w http.ResponseWriter, r *http.Request, s session.Session) {
	ctx, cancel := callWithin(r.Context())
	defer cancel()
	id := r.PathValue("id")
	got, err := c.cfg.API.Events(ctx, s.Token, id)
	if err != nil {
		c.failed(w, r, "request events", err)
		return
	}
	stored := make([]console.StoredEvent, len(got.Events))
	for i, e := range got.Events {
		stored[i] = console.StoredEvent{Seq: e.Seq, Subject: e.Subject, StoredAt: e.StoredAt, Signature: e.Signature, Body: e.Body, BodyBase64: e.BodyBase64}
	}
	v := got.Verification
	readSide := console.Verdict{Verified: v.Verified, Kind: v.Kind, Position: v.Position, Detail: v.Detail}
	entries, own := console.Evidence(id, stored, readSide, c.cfg.Trust)
	c.render(w, http.StatusOK, "audit_request", auditRequestPage{frame: c.frame(r, "Evidence of request "+id, &s), RequestID: id,
		Verification: v, Own: own, Agree: own.Agrees(readSide), Entries: entries})
}

// evidence hands over a request's stored events and the read side's verdict exactly as the read side
// answered them: the event bodies are the bytes their signatures cover, so the file can be checked
// offline against the trust file.
func (c *Console) evidence(w http.ResponseWriter, r *http.Request, s session.Session) {
	ctx, cancel := callWithin(r.Context())
	defer cancel()
	id := r.PathValue("id")
	if !events.ValidRequestID(id) { // it names the file: nothing but a request ID goes there
		c.renderError(w, r, http.StatusNotFound, "No such request", "There is no such request, or none you may see.")
		return
	}
	got, err := c.cfg.API.Events(ctx, s.Token, id)
	if err != nil {
		c.failed(w, r, "export evidence", err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Disposition", `attachment; filename="grantline-evidence-`+id+`.json"`)
	_, _ = w.Write(got.Raw)
}
