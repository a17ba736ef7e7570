// Package httpapi is the approval service's HTTP edge: POST /v1/requests/{id}/reviews (approve or
// reject), POST /v1/requests/{id}/post-review (ratify or flag an emergency grant), GET /v1/reviews
// (what awaits the caller, from the review inbox), and the access reviews: POST and GET /v1/campaigns,
// GET /v1/campaigns/{id} and POST /v1/campaigns/{id}/decisions (keep or revoke one grant).
package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/auth"
	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/httpjson"
	"github.com/grantline/grantline/pkg/telemetry"
	"github.com/grantline/grantline/pkg/visibility"
	"github.com/grantline/grantline/services/approval"
)

// MaxBody bounds a request body; a review is a decision and a comment.
const MaxBody = 16 << 10

// IdempotencyKeyHeader names one action of a reviewer's (the CLI and the console send a fresh one per
// action): a review sent again with the same key is answered with what was recorded.
const IdempotencyKeyHeader = "Idempotency-Key"

// MaxIdempotencyKey bounds an idempotency key, in bytes.
const MaxIdempotencyKey = 255

// Authenticator turns a request's bearer token into the caller's verified identity.
type Authenticator interface {
	Authenticate(r *http.Request) (auth.Identity, error)
}

// Inbox lists what awaits a person; *postgres.Inbox implements it.
type Inbox interface {
	Awaiting(ctx context.Context, person string, groups []string) ([]approval.Item, error)
}

// Handler serves the approval service's HTTP API.
type Handler struct {
	Store *eventstore.Store
	// Catalogue names the entitlements' owners, who see their requests; nil: nobody sees one as an owner.
	Catalogue *catalogue.Catalogue
	Auth      Authenticator
	Inbox     Inbox
	Rules     approval.Rules
	Log       *slog.Logger
	// JS lists the live grants a campaign reviews and the campaigns opened (streamscan).
	JS jetstream.JetStream
	// CampaignAdminGroups open access reviews and see every campaign.
	CampaignAdminGroups []string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Routes registers the API on mux: the routes api/openapi.yaml documents for this service (the
// contract test holds the two equal).
func (h *Handler) Routes(mux httpjson.Mux) {
	mux.HandleFunc("POST /v1/requests/{id}/reviews", h.review)
	mux.HandleFunc("POST /v1/requests/{id}/post-review", h.postReview)
	mux.HandleFunc("GET /v1/reviews", h.list)
	mux.HandleFunc("POST /v1/campaigns", h.createCampaign)
	mux.HandleFunc("GET /v1/campaigns", h.listCampaigns)
	mux.HandleFunc("GET /v1/campaigns/{id}", h.showCampaign)
	mux.HandleFunc("POST /v1/campaigns/{id}/decisions", h.decideCampaign)
}

// ReviewBody is a reviewer's verdict.
type ReviewBody struct {
	Decision events.ReviewDecision `json:"decision"`
	Comment  string                `json:"comment,omitempty"`
	// RequestDigest optionally names the version of the request the reviewer judged (as GET /v1/reviews
	// shows it); a review of another version is refused.
	RequestDigest string `json:"request_digest,omitempty"`
}

// Review is the answer to a review: what was recorded and where the request stands after it.
type Review struct {
	RequestID     string                `json:"request_id"`
	Reviewer      string                `json:"reviewer"`
	Stage         int                   `json:"stage"`
	StageName     string                `json:"stage_name"`
	Decision      events.ReviewDecision `json:"decision"`
	Comment       string                `json:"comment,omitempty"`
	RequestDigest string                `json:"request_digest"`
	// Via is who acted for the reviewer with a delegated token (the token's act claim), as recorded.
	Via       string        `json:"via,omitempty"`
	Status    events.Status `json:"status"`
	Approvers []string      `json:"approvers,omitempty"`
}

func (h *Handler) review(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	log := h.Log.With(telemetry.KeyRequestID, id)
	out, err := h.handleReview(r, id)
	if err != nil {
		problems.Refuse(w, r, log, "review", err)
		return
	}
	log.Info("reviewed", telemetry.KeyTraceID, telemetry.TraceID(r.Context()), "reviewer", out.Reviewer, "via", out.Via, "decision", out.Decision, "stage", out.StageName, "status", out.Status)
	httpjson.Write(w, http.StatusCreated, out)
}

func (h *Handler) handleReview(r *http.Request, id string) (Review, error) {
	who, err := h.Auth.Authenticate(r)
	if err != nil {
		return Review{}, err
	}
	var body ReviewBody
	if err := httpjson.Decode(r, &body, MaxBody); err != nil {
		return Review{}, err
	}
	if !events.ValidRequestID(id) {
		return Review{}, approval.ErrNotFound
	}
	key := r.Header.Get(IdempotencyKeyHeader)
	if len(key) > MaxIdempotencyKey {
		return Review{}, fmt.Errorf("%w: %s is longer than %d bytes", approval.ErrInvalid, IdempotencyKeyHeader, MaxIdempotencyKey)
	}
	rv := approval.Review{Reviewer: events.Principal{ID: who.Subject, Groups: who.Groups},
		Decision: body.Decision, Comment: body.Comment, RequestDigest: body.RequestDigest, Via: who.Actor, IdempotencyKey: key}
	var recorded events.Reviewed
	l, err := h.Store.Update(r.Context(), id, func(req *events.Request) ([]events.Draft, error) {
		if err := h.visible(who, req); err != nil {
			return nil, err
		}
		if prior, ok := h.Rules.Recorded(req, rv); ok {
			// The same action again (its answer was lost): what was recorded, nothing new.
			recorded = prior
			return nil, nil
		}
		drafts, err := h.Rules.Review(req, rv)
		if err == nil {
			recorded = drafts[0].Payload.(events.Reviewed)
		}
		return drafts, err
	})
	if err != nil {
		return Review{}, err
	}
	req := l.Request
	return Review{RequestID: id, Reviewer: recorded.Reviewer.ID, Stage: recorded.Stage,
		StageName: req.Decision().Stages[recorded.Stage].Name, Decision: recorded.Decision, Comment: recorded.Comment,
		RequestDigest: recorded.RequestDigest, Via: recorded.Via, Status: req.Status(), Approvers: req.Approvers()}, nil
}

// PostReviewBody is the verdict on an emergency grant.
type PostReviewBody struct {
	Outcome events.PostReviewOutcome `json:"outcome"`
	Reason  string                   `json:"reason,omitempty"`
}

// PostReview is the answer to a post-review.
type PostReview struct {
	RequestID     string                   `json:"request_id"`
	Reviewer      string                   `json:"reviewer"`
	Outcome       events.PostReviewOutcome `json:"outcome"`
	Reason        string                   `json:"reason,omitempty"`
	Status        events.Status            `json:"status"`
	RevocationDue events.RevocationReason  `json:"revocation_due,omitempty"`
}

func (h *Handler) postReview(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	log := h.Log.With(telemetry.KeyRequestID, id)
	out, err := h.handlePostReview(r, id)
	if err != nil {
		problems.Refuse(w, r, log, "post-review", err)
		return
	}
	log.Info("post-reviewed", telemetry.KeyTraceID, telemetry.TraceID(r.Context()), "reviewer", out.Reviewer, "outcome", out.Outcome, "revocation_due", out.RevocationDue)
	httpjson.Write(w, http.StatusCreated, out)
}

func (h *Handler) handlePostReview(r *http.Request, id string) (PostReview, error) {
	who, err := h.Auth.Authenticate(r)
	if err != nil {
		return PostReview{}, err
	}
	var body PostReviewBody
	if err := httpjson.Decode(r, &body, MaxBody); err != nil {
		return PostReview{}, err
	}
	if !events.ValidRequestID(id) {
		return PostReview{}, approval.ErrNotFound
	}
	l, err := h.Store.Update(r.Context(), id, func(req *events.Request) ([]events.Draft, error) {
		if err := h.visible(who, req); err != nil {
			return nil, err
		}
		return h.Rules.PostReview(req, approval.PostReview{Reviewer: events.Principal{ID: who.Subject, Groups: who.Groups},
			Outcome: body.Outcome, Reason: body.Reason})
	})
	if err != nil {
		return PostReview{}, err
	}
	pr := l.Request.PostReview()
	return PostReview{RequestID: id, Reviewer: pr.Reviewer.ID, Outcome: pr.Outcome, Reason: pr.Reason,
		Status: l.Request.Status(), RevocationDue: l.Request.RevocationDue()}, nil
}

// visible is visibility.Check before any rule that depends on the request's state, so that a caller
// who may not see the request is told it does not exist rather than why they may not review it. No
// group sees every request here: reviewing is for the people and groups a request names.
func (h *Handler) visible(who auth.Identity, req *events.Request) error {
	var owners []string
	if h.Catalogue != nil {
		ent, _ := h.Catalogue.Entitlement(req.Submitted().Entitlement)
		owners = ent.OwnerGroups
	}
	return visibility.Check(req, visibility.NewViewer(who.Subject, who.Groups, nil), owners)
}

// Reviews is what awaits the caller.
type Reviews struct {
	Items []approval.Item `json:"items"`
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	who, err := h.Auth.Authenticate(r)
	if err == nil {
		var items []approval.Item
		if items, err = h.Inbox.Awaiting(r.Context(), who.Subject, who.Groups); err == nil {
			httpjson.Write(w, http.StatusOK, Reviews{Items: append([]approval.Item{}, items...)})
			return
		}
	}
	problems.Refuse(w, r, h.Log, "list reviews", err)
}
