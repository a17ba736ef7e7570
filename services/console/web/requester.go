package web

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/requestview"
	"github.com/grantline/grantline/services/console"
	"github.com/grantline/grantline/services/console/apiclient"
	"github.com/grantline/grantline/services/console/session"
)

type homePage struct {
	frame
	Requests []requestview.View
	More     bool
}

// home is the person's own requests, or an invitation to sign in.
func (c *Console) home(w http.ResponseWriter, r *http.Request) {
	s, _, ok := c.cfg.SignIn.Current(r)
	if !ok {
		c.render(w, http.StatusOK, "home", homePage{frame: c.frame(r, "Welcome", nil)})
		return
	}
	ctx, cancel := callWithin(r.Context())
	defer cancel()
	page, err := c.cfg.API.Requests(ctx, s.Token, apiclient.Filter{Requester: s.Subject, Limit: 25})
	if err != nil {
		c.failed(w, r, "list my requests", err)
		return
	}
	c.render(w, http.StatusOK, "home", homePage{frame: c.frame(r, "My requests", &s), Requests: page.Items, More: page.NextCursor != ""})
}

type cataloguePage struct {
	frame
	Entitlements []catalogue.Entitlement
}

func (c *Console) catalogue(w http.ResponseWriter, r *http.Request, s session.Session) {
	c.render(w, http.StatusOK, "catalogue", cataloguePage{frame: c.frame(r, "Catalogue", &s), Entitlements: c.cfg.Catalogue.Entitlements})
}

// requestForm is the form to ask for an entitlement, with what was typed and the service's answer
// field by field when it refused it.
type requestForm struct {
	frame
	Entitlements []catalogue.Entitlement
	// Chosen is the entitlement asked for, when one is.
	Chosen *catalogue.Entitlement
	// Accounts are the service accounts that may hold Chosen.
	Accounts []catalogue.ServiceAccount
	Values   formValues
	// Errors are the field errors by form field; the frame's Refusal is the refusal as a whole.
	Errors map[string]string
}

type formValues struct {
	Entitlement, Justification, Duration, Ticket, Start, Subject, IdempotencyKey string
	Emergency                                                                    bool
}

func (c *Console) requestForm(w http.ResponseWriter, r *http.Request, s session.Session) {
	v := formValues{Entitlement: r.URL.Query().Get("entitlement"), IdempotencyKey: session.NewID()}
	if again := r.URL.Query().Get("again"); again != "" {
		// Asking again for what a request asked (one that failed, say): its values, ready to send.
		ctx, cancel := callWithin(r.Context())
		defer cancel()
		prior, err := c.cfg.API.Request(ctx, s.Token, again)
		if err != nil {
			c.failed(w, r, "read the request to ask again", err)
			return
		}
		v.Entitlement, v.Justification, v.Ticket = prior.Entitlement, prior.Justification, prior.Ticket
		v.Duration = (time.Duration(prior.DurationSeconds) * time.Second).String()
		if prior.Subject.ID != prior.Requester.ID {
			v.Subject = string(prior.Subject.Kind) + ":" + prior.Subject.ID
		}
	}
	c.render(w, http.StatusOK, "request_new", c.newForm(r, &s, v, nil, nil))
}

func (c *Console) newForm(r *http.Request, s *session.Session, v formValues, errs map[string]string, refusal *apiclient.Problem) requestForm {
	f := requestForm{frame: c.frame(r, "Ask for access", s), Entitlements: c.cfg.Catalogue.Entitlements, Values: v, Errors: errs}
	f.Refusal = refusal
	if ent, ok := c.cfg.Catalogue.Entitlement(v.Entitlement); ok {
		f.Chosen = &ent
		for _, sa := range c.cfg.Catalogue.ServiceAccounts {
			if ent.AllowsSubject(sa.Kind) {
				f.Accounts = append(f.Accounts, sa)
			}
		}
	}
	return f
}

// parseLocal reads what a datetime-local input sends, with or without seconds; the forms say it is
// UTC.
func parseLocal(s string) (time.Time, error) {
	t, err := time.Parse("2006-01-02T15:04:05", s)
	if err != nil {
		return time.Parse("2006-01-02T15:04", s)
	}
	return t, nil
}

// submit sends the form to intake. A refusal shows the form again, each field's error beside it.
func (c *Console) submit(w http.ResponseWriter, r *http.Request, s session.Session) {
	if err := r.ParseForm(); err != nil {
		c.renderError(w, r, http.StatusBadRequest, "Unreadable form", err.Error())
		return
	}
	f := r.PostForm
	v := formValues{Entitlement: f.Get("entitlement"), Justification: f.Get("justification"), Duration: f.Get("duration"),
		Ticket: f.Get("ticket"), Start: f.Get("start"), Subject: f.Get("subject"), Emergency: f.Get("emergency") == "on",
		IdempotencyKey: f.Get("idempotency_key")}
	sub := apiclient.Submission{Entitlement: v.Entitlement, Justification: v.Justification, Duration: v.Duration,
		Ticket: strings.TrimSpace(v.Ticket), Emergency: v.Emergency}
	errs := map[string]string{}
	if v.Start != "" {
		t, err := parseLocal(v.Start)
		if err != nil {
			errs["start"] = "must be a date and time, such as 2030-01-31T09:00"
		}
		sub.Start = t.Format(time.RFC3339)
	}
	if kind, id, ok := strings.Cut(v.Subject, ":"); ok {
		sub.Subject = &apiclient.SubjectRef{Kind: events.SubjectKind(kind), ID: id}
	}
	if len(errs) > 0 {
		c.render(w, http.StatusUnprocessableEntity, "request_new", c.newForm(r, &s, v, errs, nil))
		return
	}
	ctx, cancel := callWithin(r.Context())
	defer cancel()
	accepted, err := c.cfg.API.Submit(ctx, s.Token, sub, v.IdempotencyKey)
	if err != nil {
		p := c.refusal("submit a request", err)
		for _, fe := range p.Errors {
			field, _, _ := strings.Cut(fe.Field, ".") // subject.kind and subject.id are the subject field
			errs[field] = strings.TrimSpace(errs[field] + " " + fe.Message)
		}
		refusal := p
		if len(errs) > 0 { // the fields say it all, each beside its field and in the summary
			refusal = nil
		}
		c.render(w, p.Status, "request_new", c.newForm(r, &s, v, errs, refusal))
		return
	}
	http.Redirect(w, r, "/requests/"+accepted.ID+"?notice=submitted", http.StatusSeeOther)
}

// severalForm is the form to ask for several entitlements at once, one request each; after a
// submission it lists the requests made instead.
type severalForm struct {
	frame
	Entitlements []catalogue.Entitlement
	Chosen       []string
	Values       formValues
	Errors       map[string]string
	Made         *apiclient.Batch
}

func (c *Console) severalForm(w http.ResponseWriter, r *http.Request, s session.Session) {
	c.render(w, http.StatusOK, "request_several", severalForm{frame: c.frame(r, "Ask for several", &s),
		Entitlements: c.humanEntitlements(), Values: formValues{IdempotencyKey: session.NewID()}})
}

// humanEntitlements are those a person may hold, the only ones a batch asks for (it has no subject).
func (c *Console) humanEntitlements() []catalogue.Entitlement {
	var out []catalogue.Entitlement
	for _, e := range c.cfg.Catalogue.Entitlements {
		if e.AllowsSubject(events.SubjectHuman) {
			out = append(out, e)
		}
	}
	return out
}

// submitSeveral sends the form to intake as one batch: every request, or none and the form again with
// each problem beside its field.
func (c *Console) submitSeveral(w http.ResponseWriter, r *http.Request, s session.Session) {
	if err := r.ParseForm(); err != nil {
		c.renderError(w, r, http.StatusBadRequest, "Unreadable form", err.Error())
		return
	}
	f := r.PostForm
	page := severalForm{frame: c.frame(r, "Ask for several", &s), Entitlements: c.humanEntitlements(), Chosen: f["entitlement"],
		Values: formValues{Justification: f.Get("justification"), Duration: f.Get("duration"), Ticket: f.Get("ticket"),
			IdempotencyKey: f.Get("idempotency_key")}, Errors: map[string]string{}}
	ctx, cancel := callWithin(r.Context())
	defer cancel()
	made, err := c.cfg.API.SubmitBatch(ctx, s.Token, apiclient.BatchSubmission{Entitlements: page.Chosen,
		Justification: page.Values.Justification, Duration: page.Values.Duration, Ticket: strings.TrimSpace(page.Values.Ticket)},
		page.Values.IdempotencyKey)
	if err != nil {
		p := c.refusal("submit several requests", err)
		for _, fe := range p.Errors {
			field, _, _ := strings.Cut(fe.Field, "[") // entitlements[2] is the entitlements field
			page.Errors[field] = strings.TrimSpace(page.Errors[field] + " " + fe.Message)
		}
		if len(page.Errors) == 0 {
			page.Refusal = p
		}
		c.render(w, p.Status, "request_several", page)
		return
	}
	page.Made = &made
	c.render(w, http.StatusOK, "request_several", page)
}

// requestPage is one request: the live region (status, timeline, actions) and what the person can do.
type requestPage struct {
	frame
	Live liveRegion
}

// liveRegion is the part of a request page that Server-Sent Events re-render as the request moves.
type liveRegion struct {
	View     requestview.View
	Steps    []console.Step
	Viewer   string
	Terminal bool
	// LiveURL is where the page's script listens for changes; empty once nothing can change.
	LiveURL string
	// Refusal is a service's answer to an action taken on this page.
	Refusal *apiclient.Problem
	// Entitlement is the catalogue entry, for the emergency and credential wording.
	Entitlement *catalogue.Entitlement
}

// Withdrawable, Revocable, Reviewable, PostReviewable, AskAgain and HasCredential say which forms the page
// offers. They follow the request's state and who is looking; whether the action is allowed is the
// services' to say when the form is sent.
func (l liveRegion) Withdrawable() bool {
	return l.Viewer == l.View.Requester.ID && slices.Contains([]events.Status{events.StatusSubmitted, events.StatusPendingApproval, events.StatusApproved}, l.View.Status)
}

// Revocable: a granted request whose revocation is not already due.
func (l liveRegion) Revocable() bool {
	return l.View.Status == events.StatusGranted && l.View.RevocationDue == ""
}

// Reviewable: the request awaits approval.
func (l liveRegion) Reviewable() bool { return l.View.Status == events.StatusPendingApproval }

// PostReviewable: an emergency grant whose post-review is still owed.
func (l liveRegion) PostReviewable() bool {
	d := l.View.Decision
	return d != nil && d.PostReview != nil && l.View.PostReview == nil && l.View.Grant != nil
}

// AskAgain: the requester's request failed; the same can be asked for again.
func (l liveRegion) AskAgain() bool {
	return l.Viewer == l.View.Requester.ID && l.View.Status == events.StatusFailed
}

// HasCredential: the grant issued a credential that may still be retrieved.
func (l liveRegion) HasCredential() bool {
	return l.View.Status == events.StatusGranted && l.View.Grant != nil && l.View.Grant.CredentialFingerprint != ""
}

func (c *Console) liveOf(v requestview.View, viewer string, refusal *apiclient.Problem) liveRegion {
	l := liveRegion{View: v, Steps: console.Timeline(v), Viewer: viewer, Terminal: v.Status.Terminal() && (v.Decision == nil || v.Decision.PostReview == nil || v.PostReview != nil), Refusal: refusal}
	if !l.Terminal {
		l.LiveURL = "/requests/" + v.ID + "/live?version=" + strconv.Itoa(v.Version)
	}
	if ent, ok := c.cfg.Catalogue.Entitlement(v.Entitlement); ok {
		l.Entitlement = &ent
	}
	return l
}

func (c *Console) request(w http.ResponseWriter, r *http.Request, s session.Session) {
	c.showRequest(w, r, s, http.StatusOK, nil)
}

// showRequest renders the request page, with a refusal of the action just tried if there was one.
func (c *Console) showRequest(w http.ResponseWriter, r *http.Request, s session.Session, status int, refusal *apiclient.Problem) {
	ctx, cancel := callWithin(r.Context())
	defer cancel()
	v, err := c.cfg.API.Request(ctx, s.Token, r.PathValue("id"))
	if err != nil {
		c.failed(w, r, "show a request", err)
		return
	}
	c.render(w, status, "request", requestPage{frame: c.frame(r, "Request for "+v.Entitlement, &s), Live: c.liveOf(v, s.Subject, refusal)})
}

// act runs a form's action on the request, then shows the request: with a notice on success, with the
// service's refusal beside the form otherwise.
func (c *Console) act(w http.ResponseWriter, r *http.Request, s session.Session, what, notice string, do func(token string) error) {
	if err := do(s.Token); err != nil {
		p := c.refusal(what, err)
		if p.Status == http.StatusUnauthorized {
			c.failed(w, r, what, err)
			return
		}
		c.showRequest(w, r, s, p.Status, p)
		return
	}
	http.Redirect(w, r, "/requests/"+r.PathValue("id")+"?notice="+notice, http.StatusSeeOther)
}

func (c *Console) withdraw(w http.ResponseWriter, r *http.Request, s session.Session) {
	ctx, cancel := callWithin(r.Context())
	defer cancel()
	c.act(w, r, s, "withdraw a request", "withdrawn", func(token string) error {
		_, err := c.cfg.API.Withdraw(ctx, token, r.PathValue("id"), r.PostFormValue("reason"))
		return err
	})
}

func (c *Console) revoke(w http.ResponseWriter, r *http.Request, s session.Session) {
	ctx, cancel := callWithin(r.Context())
	defer cancel()
	c.act(w, r, s, "end access early", "revoked", func(token string) error {
		_, err := c.cfg.API.Revoke(ctx, token, r.PathValue("id"), r.PostFormValue("reason"))
		return err
	})
}

type credentialPage struct {
	frame
	RequestID  string
	Credential *apiclient.Credential
}

// credentialForm offers to retrieve the credential; retrieving it is a POST, because it can be done
// only once and a prefetching browser must not spend it.
func (c *Console) credentialForm(w http.ResponseWriter, r *http.Request, s session.Session) {
	c.render(w, http.StatusOK, "credential", credentialPage{frame: c.frame(r, "Retrieve the credential", &s), RequestID: r.PathValue("id")})
}

// credential shows the credential once. The page is never stored (Cache-Control: no-store on every
// page), and the console keeps no copy: the service deleted it as it answered.
func (c *Console) credential(w http.ResponseWriter, r *http.Request, s session.Session) {
	ctx, cancel := callWithin(r.Context())
	defer cancel()
	cred, err := c.cfg.API.Credential(ctx, s.Token, r.PathValue("id"))
	p := credentialPage{frame: c.frame(r, "Retrieve the credential", &s), RequestID: r.PathValue("id")}
	if err != nil {
		p.Refusal = c.refusal("retrieve a credential", err)
		c.render(w, p.Refusal.Status, "credential", p)
		return
	}
	p.Credential = &cred
	c.render(w, http.StatusOK, "credential", p)
}
