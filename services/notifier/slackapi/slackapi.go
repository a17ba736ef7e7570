// Package slackapi is the notifier's HTTP edge for Slack: POST /v1/slack/interactions, where Slack
// calls back when someone presses Approve or Reject in a review request.
//
// A callback is acted on only if Slack signed it: the v0 signature (HMAC-SHA256 under the signing
// secret over "v0:<timestamp>:<body>", compared in constant time) must match and the timestamp must lie
// within five minutes (slack-go's SecretsVerifier), and the same signed callback is acted on once
// (natskv.Replay, shared by the replicas). The Slack user is mapped to a directory identity by the
// routing file. The review then goes through the approval service's own API, as the person: the
// notifier exchanges its client credentials for a short-lived token of theirs (package delegation),
// so separation of duties, one review per person and the request digest the message showed are all
// decided by approval, exactly as for the CLI. The notifier records no approval itself. Finally the
// Slack message is replaced by the outcome: approved by …, refused: separation of duties, already
// decided.
package slackapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"

	"github.com/slack-go/slack"

	"github.com/grantline/grantline/pkg/httpjson"
	"github.com/grantline/grantline/pkg/telemetry"
	"github.com/grantline/grantline/services/notifier/render"
)

// MaxBody bounds a callback's body; Slack's interaction payloads carry one message's blocks.
const MaxBody = 128 << 10

// Tokens gets a token of a person, for acting as them (delegation.Exchanger).
type Tokens interface {
	TokenFor(ctx context.Context, person string) (string, error)
}

// Replay tells whether a signed callback is seen for the first time (natskv.Replay).
type Replay interface {
	First(ctx context.Context, signature string) (bool, error)
}

// Messages replaces a Slack message (slackchat.Sender).
type Messages interface {
	Update(ctx context.Context, ref, text string, blocks []slack.Block) error
}

// Handler serves Slack's interaction callbacks.
type Handler struct {
	// SigningSecret is the Slack app's signing secret.
	SigningSecret string
	Replay        Replay
	// Person maps a Slack user ID to a directory subject (notifier.Routing.PersonBySlack).
	Person   func(slackUser string) (string, bool)
	Tokens   Tokens
	Approval *Approval
	Messages Messages
	Log      *slog.Logger
}

// Routes registers POST /v1/slack/interactions on mux.
func (h *Handler) Routes(mux httpjson.Mux) {
	mux.HandleFunc("POST /v1/slack/interactions", h.interaction)
}

// Outcome is the answer to an authentic callback: what became of the review, as the Slack message now
// says.
type Outcome struct {
	// Outcome is "approved", "rejected" or "refused".
	Outcome string `json:"outcome"`
	// Problem names a refusal: the approval service's problem type ("separation-of-duties",
	// "not-pending", …), or "unknown-slack-user".
	Problem string `json:"problem,omitempty"`
	// Text is what the message says now.
	Text      string `json:"text"`
	RequestID string `json:"request_id,omitempty"`
	// Reviewer is the person the Slack user was mapped to.
	Reviewer string `json:"reviewer,omitempty"`
}

// Errors a callback is refused with before anything is done.
var (
	errSignature = errors.New("the callback is not signed by Slack")
	errReplayed  = errors.New("this callback was already received")
	errMalformed = errors.New("the callback is not a review button press")
)

func (h *Handler) interaction(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		h.refuse(w, r, fmt.Errorf("%w: %v", errMalformed, err))
		return
	}
	if err := h.verify(r.Header, body); err != nil {
		h.refuse(w, r, err)
		return
	}
	first, err := h.Replay.First(r.Context(), r.Header.Get("X-Slack-Signature"))
	if err != nil {
		h.refuse(w, r, err)
		return
	}
	if !first {
		h.refuse(w, r, errReplayed)
		return
	}
	cb, press, err := parse(body)
	if err != nil {
		h.refuse(w, r, err)
		return
	}
	log := h.Log.With(telemetry.KeyTraceID, telemetry.TraceID(r.Context()), telemetry.KeyRequestID, press.RequestID, "slack_user", cb.User.ID)
	out := h.review(r.Context(), log, cb.User.ID, press)
	ref := channelOf(cb) + "/" + messageTS(cb)
	if err := h.Messages.Update(r.Context(), ref, out.Text, outcomeBlocks(cb, press.Block, out.Text)); err != nil {
		log.Warn("update the Slack message", telemetry.KeyError, err.Error())
	}
	httpjson.Write(w, http.StatusOK, out)
}

// verify checks the signature and the timestamp window, comparing in constant time.
func (h *Handler) verify(header http.Header, body []byte) error {
	v, err := slack.NewSecretsVerifier(header, h.SigningSecret)
	if err != nil {
		return fmt.Errorf("%w: %v", errSignature, err)
	}
	if _, err := v.Write(body); err != nil {
		return fmt.Errorf("%w: %v", errSignature, err)
	}
	if err := v.Ensure(); err != nil {
		return fmt.Errorf("%w: %v", errSignature, err)
	}
	return nil
}

// press is the review a button carried.
type press struct {
	render.ReviewAction
	Decision string
	// Block is the block holding the pressed button: in a digest, one request's buttons among others.
	Block string
	// Key names the action: this button of this request in this message. Pressed again (Slack retrying, or the person
	// after "try again"), it is the same review, answered with what was recorded.
	Key string
}

// parse reads a block_actions callback with one of the review buttons.
func parse(body []byte) (slack.InteractionCallback, press, error) {
	form, err := url.ParseQuery(string(body))
	if err != nil || form.Get("payload") == "" {
		return slack.InteractionCallback{}, press{}, fmt.Errorf("%w: no payload", errMalformed)
	}
	// Slack's payload is Slack's format, with members of its own that it adds as it likes, and blocks
	// that slack-go decodes with its own methods: decoded leniently, then checked for what is acted on.
	var cb slack.InteractionCallback
	if err := json.Unmarshal([]byte(form.Get("payload")), &cb); err != nil {
		return cb, press{}, fmt.Errorf("%w: %v", errMalformed, err)
	}
	if cb.Type != slack.InteractionTypeBlockActions || cb.User.ID == "" || channelOf(cb) == "" || messageTS(cb) == "" {
		return cb, press{}, fmt.Errorf("%w: a %q callback", errMalformed, cb.Type)
	}
	for _, a := range cb.ActionCallback.BlockActions {
		decision := map[string]string{render.ActionApprove: "approve", render.ActionReject: "reject"}[a.ActionID]
		if decision == "" {
			continue
		}
		ra, err := render.ParseReviewAction(a.Value)
		if err != nil {
			return cb, press{}, fmt.Errorf("%w: %v", errMalformed, err)
		}
		return cb, press{ReviewAction: ra, Decision: decision, Block: a.BlockID,
			Key: "slack:" + channelOf(cb) + ":" + messageTS(cb) + ":" + a.BlockID + ":" + a.ActionID}, nil
	}
	return cb, press{}, fmt.Errorf("%w: no review button", errMalformed)
}

func channelOf(cb slack.InteractionCallback) string {
	if cb.Container.ChannelID != "" {
		return cb.Container.ChannelID
	}
	return cb.Channel.ID
}

func messageTS(cb slack.InteractionCallback) string {
	if cb.Container.MessageTs != "" {
		return cb.Container.MessageTs
	}
	return cb.Message.Timestamp
}

// review records the press as the person it maps to, through the approval service, and says what
// became of it.
func (h *Handler) review(ctx context.Context, log *slog.Logger, slackUser string, p press) Outcome {
	person, ok := h.Person(slackUser)
	if !ok {
		log.Warn("a review from a Slack user linked to nobody")
		return Outcome{Outcome: "refused", Problem: "unknown-slack-user", RequestID: p.RequestID,
			Text: "Refused: your Slack account is not linked to a Grantline identity, so your review was not recorded."}
	}
	token, err := h.Tokens.TokenFor(ctx, person)
	if err != nil {
		log.Error("act for the reviewer", "reviewer", person, telemetry.KeyError, err.Error())
		return Outcome{Outcome: "refused", Problem: "no-delegation", RequestID: p.RequestID, Reviewer: person,
			Text: "Your review could not be recorded now (the notifier could not act for you); use `grantline review` instead."}
	}
	res, err := h.Approval.Review(ctx, token, p.RequestID, p.Decision, p.RequestDigest, p.Key)
	if err != nil {
		log.Error("ask the approval service", "reviewer", person, telemetry.KeyError, err.Error())
		return Outcome{Outcome: "refused", Problem: "unavailable", RequestID: p.RequestID, Reviewer: person,
			Text: "Your review could not be recorded now (the approval service did not answer); try again."}
	}
	out := Outcome{RequestID: p.RequestID, Reviewer: person}
	switch {
	case res.Recorded && p.Decision == "approve":
		out.Outcome, out.Text = "approved", fmt.Sprintf("Approved by %s (stage %s); the request is now %s.", person, res.Stage, res.Status)
	case res.Recorded:
		out.Outcome, out.Text = "rejected", fmt.Sprintf("Rejected by %s; the request is now %s.", person, res.Status)
	default:
		out.Outcome, out.Problem, out.Text = "refused", res.Problem, refusal(res)
	}
	log.Info("review from Slack", "reviewer", person, "decision", p.Decision, "outcome", out.Outcome, "problem", out.Problem)
	return out
}

// refusal says in a sentence why approval refused.
func refusal(res Result) string {
	switch res.Problem {
	case "separation-of-duties":
		return "Refused: separation of duties. " + res.Detail
	case "not-pending":
		return "Already decided: " + res.Detail
	case "stale-digest":
		return "Refused: the request changed since this message was sent; review it again with `grantline review`."
	case "not-a-reviewer":
		return "Refused: you are not a reviewer of this request now. " + res.Detail
	}
	return fmt.Sprintf("Refused (%s): %s", res.Problem, res.Detail)
}

// outcomeBlocks is the message with the outcome in place of the pressed request's buttons. A digest
// carries several requests' buttons: the others stay, so one press never takes away another review.
func outcomeBlocks(cb slack.InteractionCallback, pressed, outcome string) []slack.Block {
	said := slack.NewContextBlock("", slack.NewTextBlockObject(slack.MarkdownType, outcome, false, false))
	blocks := slices.Clone(cb.Message.Blocks.BlockSet)
	for i, b := range blocks {
		if a, ok := b.(*slack.ActionBlock); ok && a.BlockID == pressed {
			blocks[i] = said
			return blocks
		}
	}
	return append(blocks, said)
}

// problems is the endpoint's table from errors to problems: a callback not acted on at all (not signed
// by Slack, replayed, not a review press), before the shared rows.
var problems = httpjson.NewTable(
	httpjson.Row{Status: http.StatusUnauthorized, Slug: "bad-slack-signature", Title: "Not a callback signed by Slack",
		Errs: []error{errSignature}}.Warn("a callback not signed by Slack"),
	httpjson.Row{Status: http.StatusConflict, Slug: "replayed-callback", Title: "Callback already received",
		Errs: []error{errReplayed}}.Warn("a Slack callback received again"),
	httpjson.Row{Status: http.StatusBadRequest, Slug: "malformed-callback", Title: "Not a review button press", Errs: []error{errMalformed}},
)

// refuse answers a callback that is not acted on at all, and logs why.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, err error) {
	problems.Refuse(w, r, h.Log, "slack interaction", err)
}
