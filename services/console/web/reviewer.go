package web

import (
	"net/http"
	"sync"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/requestview"
	"github.com/grantline/grantline/services/console/apiclient"
	"github.com/grantline/grantline/services/console/session"
)

// historyLength is how many of the requester's earlier requests for the entitlement a reviewer sees.
const historyLength = 5

// inboxItem is one thing awaiting the person's review, with what they need to judge it: the request
// as intake tells it (policy's decision and reasons, earlier reviews) and the requester's recent
// history for the same entitlement, each as far as the services let this reviewer see.
type inboxItem struct {
	apiclient.ReviewItem
	View       *requestview.View
	History    []requestview.View
	HistoryGap string
	// Together are the other inbox items submitted with this one, for several entitlements at once.
	Together []apiclient.ReviewItem
	// Refusal is the service's answer to this reviewer's last attempt on this item.
	Refusal *apiclient.Problem
}

type reviewsPage struct {
	frame
	Items []inboxItem
}

func (c *Console) reviews(w http.ResponseWriter, r *http.Request, s session.Session) {
	c.showInbox(w, r, s, http.StatusOK, "", nil)
}

// showInbox renders the inbox; refusal, if any, is shown on the item of request refusedID.
func (c *Console) showInbox(w http.ResponseWriter, r *http.Request, s session.Session, status int, refusedID string, refusal *apiclient.Problem) {
	ctx, cancel := callWithin(r.Context())
	defer cancel()
	items, err := c.cfg.API.Reviews(ctx, s.Token)
	if err != nil {
		c.failed(w, r, "list reviews", err)
		return
	}
	page := reviewsPage{frame: c.frame(r, "Reviews", &s), Items: make([]inboxItem, len(items))}
	// Each item needs two more answers; a few at a time keeps a long inbox from flooding the services.
	limit := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i, it := range items {
		page.Items[i].ReviewItem = it
		for _, other := range items {
			if it.CorrelationID != "" && other.CorrelationID == it.CorrelationID && other.RequestID != it.RequestID {
				page.Items[i].Together = append(page.Items[i].Together, other)
			}
		}
		if it.RequestID == refusedID {
			page.Items[i].Refusal = refusal
		}
		wg.Go(func() {
			limit <- struct{}{}
			defer func() { <-limit }()
			item := &page.Items[i]
			if v, err := c.cfg.API.Request(ctx, s.Token, it.RequestID); err == nil {
				item.View = &v
			}
			hist, err := c.cfg.API.Requests(ctx, s.Token, apiclient.Filter{Requester: it.Requester, Entitlement: it.Entitlement, Limit: historyLength + 1})
			if err != nil {
				item.HistoryGap = c.refusal("requester history", err).Title
				return
			}
			for _, h := range hist.Items {
				if h.ID != it.RequestID && len(item.History) < historyLength {
					item.History = append(item.History, h)
				}
			}
		})
	}
	wg.Wait()
	if refusal != nil && refusedID != "" && !containsItem(items, refusedID) {
		page.Refusal = refusal
	}
	c.render(w, status, "reviews", page)
}

func containsItem(items []apiclient.ReviewItem, id string) bool {
	for _, it := range items {
		if it.RequestID == id {
			return true
		}
	}
	return false
}

// review sends an approval or a rejection, for the version of the request the reviewer saw. A refusal
// (separation of duties, not a reviewer, already decided) is shown where the form was, as the
// approval service worded it.
func (c *Console) review(w http.ResponseWriter, r *http.Request, s session.Session) {
	id := r.PathValue("id")
	ctx, cancel := callWithin(r.Context())
	defer cancel()
	_, err := c.cfg.API.Review(ctx, s.Token, id, events.ReviewDecision(r.PostFormValue("decision")), r.PostFormValue("comment"), r.PostFormValue("request_digest"),
		r.PostFormValue("idempotency_key"))
	c.afterReview(w, r, s, "review a request", "reviewed", err)
}

// postReview ratifies or flags an emergency grant.
func (c *Console) postReview(w http.ResponseWriter, r *http.Request, s session.Session) {
	ctx, cancel := callWithin(r.Context())
	defer cancel()
	_, err := c.cfg.API.PostReview(ctx, s.Token, r.PathValue("id"), events.PostReviewOutcome(r.PostFormValue("outcome")), r.PostFormValue("reason"))
	c.afterReview(w, r, s, "post-review a request", "post-reviewed", err)
}

// afterReview goes back to the page the form was on: with a notice, or with the refusal.
func (c *Console) afterReview(w http.ResponseWriter, r *http.Request, s session.Session, what, notice string, err error) {
	id := r.PathValue("id")
	fromInbox := r.PostFormValue("from") == "reviews"
	if err == nil {
		if fromInbox {
			http.Redirect(w, r, "/reviews?notice="+notice, http.StatusSeeOther)
		} else {
			http.Redirect(w, r, "/requests/"+id+"?notice="+notice, http.StatusSeeOther)
		}
		return
	}
	p := c.refusal(what, err)
	switch {
	case p.Status == http.StatusUnauthorized:
		c.failed(w, r, what, err)
	case fromInbox:
		c.showInbox(w, r, s, p.Status, id, p)
	default:
		c.showRequest(w, r, s, p.Status, p)
	}
}

type taskItem struct {
	apiclient.Task
	Refusal *apiclient.Problem
}

type tasksPage struct {
	frame
	Tasks []taskItem
}

func (c *Console) tasks(w http.ResponseWriter, r *http.Request, s session.Session) {
	c.showTasks(w, r, s, http.StatusOK, "", nil)
}

func (c *Console) showTasks(w http.ResponseWriter, r *http.Request, s session.Session, status int, refusedID string, refusal *apiclient.Problem) {
	ctx, cancel := callWithin(r.Context())
	defer cancel()
	tasks, err := c.cfg.API.Tasks(ctx, s.Token)
	if err != nil {
		c.failed(w, r, "list tasks", err)
		return
	}
	page := tasksPage{frame: c.frame(r, "Manual tasks", &s)}
	shown := false
	for _, t := range tasks {
		item := taskItem{Task: t}
		if t.ID == refusedID {
			item.Refusal, shown = refusal, true
		}
		page.Tasks = append(page.Tasks, item)
	}
	if refusal != nil && !shown {
		page.Refusal = refusal
	}
	c.render(w, status, "tasks", page)
}

// completeTask completes a manual task with the evidence typed in.
func (c *Console) completeTask(w http.ResponseWriter, r *http.Request, s session.Session) {
	id := r.PathValue("id")
	ctx, cancel := callWithin(r.Context())
	defer cancel()
	if _, err := c.cfg.API.CompleteTask(ctx, s.Token, id, r.PostFormValue("evidence")); err != nil {
		p := c.refusal("complete a task", err)
		if p.Status == http.StatusUnauthorized {
			c.failed(w, r, "complete a task", err)
			return
		}
		c.showTasks(w, r, s, p.Status, id, p)
		return
	}
	http.Redirect(w, r, "/tasks?notice=completed", http.StatusSeeOther)
}
