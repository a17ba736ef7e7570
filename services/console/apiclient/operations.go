package apiclient

import (
	"context"
	"encoding/json/jsontext"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/httpjson"
	"github.com/grantline/grantline/pkg/requestview"
)

// Submission is what a requester asks for (the contract's Submission).
type Submission struct {
	Entitlement   string      `json:"entitlement"`
	Justification string      `json:"justification"`
	Duration      string      `json:"duration"`
	Subject       *SubjectRef `json:"subject,omitempty"`
	Ticket        string      `json:"ticket,omitempty"`
	Start         string      `json:"start,omitempty"`
	Emergency     bool        `json:"emergency,omitempty"`
}

// SubjectRef names who will hold the access when it is not the requester.
type SubjectRef struct {
	Kind events.SubjectKind `json:"kind"`
	ID   string             `json:"id"`
}

// Accepted is a request's ID and status after a submission or a withdrawal.
type Accepted struct {
	ID     string        `json:"id"`
	Status events.Status `json:"status"`
}

// Submit asks for access as the token's person. The idempotency key makes a repeated submission of
// the same form one request.
func (c *Client) Submit(ctx context.Context, token string, s Submission, idempotencyKey string) (Accepted, error) {
	var out Accepted
	_, err := c.do(ctx, token, call{op: opSubmit, body: s, header: keyHeader(idempotencyKey)}, &out)
	return out, err
}

// keyHeader carries an Idempotency-Key, when there is one.
func keyHeader(key string) http.Header {
	h := http.Header{}
	if key != "" {
		h.Set("Idempotency-Key", key)
	}
	return h
}

// BatchSubmission asks for several entitlements at once, for one purpose: one request each.
type BatchSubmission struct {
	Entitlements  []string `json:"entitlements"`
	Justification string   `json:"justification"`
	Duration      string   `json:"duration"`
	Ticket        string   `json:"ticket,omitempty"`
}

// Batch is what a batch submission made: the correlation ID linking its requests, and each request.
type Batch struct {
	CorrelationID string `json:"correlation_id"`
	Requests      []struct {
		ID          string        `json:"id"`
		Entitlement string        `json:"entitlement"`
		Status      events.Status `json:"status"`
	} `json:"requests"`
}

// SubmitBatch asks for several entitlements as the token's person, one request each. The idempotency
// key makes a repeated submission of the same form the same requests.
func (c *Client) SubmitBatch(ctx context.Context, token string, s BatchSubmission, idempotencyKey string) (Batch, error) {
	var out Batch
	_, err := c.do(ctx, token, call{op: opSubmitBatch, body: s, header: keyHeader(idempotencyKey)}, &out)
	return out, err
}

// Request is one request as its own stream tells it (read-your-writes), if the person may see it.
func (c *Client) Request(ctx context.Context, token, id string) (requestview.View, error) {
	var out requestview.View
	_, err := c.do(ctx, token, call{op: opShow, args: []string{id}}, &out)
	return out, err
}

// Withdraw withdraws the person's request before it is granted.
func (c *Client) Withdraw(ctx context.Context, token, id, reason string) (Accepted, error) {
	var out Accepted
	_, err := c.do(ctx, token, call{op: opWithdraw, args: []string{id}, body: map[string]string{"reason": reason}}, &out)
	return out, err
}

// Filter narrows a list of requests; empty fields do not filter.
type Filter struct {
	Status         events.Status
	Requester      string
	Entitlement    string
	AwaitingReview bool
	Limit          int
	Cursor         string
}

// RequestPage is a page of requests, with the cursor of the next one ("" on the last).
type RequestPage struct {
	Items      []requestview.View `json:"items"`
	NextCursor string             `json:"next_cursor,omitempty"`
}

// Requests lists the requests the person may read, newest first.
func (c *Client) Requests(ctx context.Context, token string, f Filter) (RequestPage, error) {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("status", string(f.Status))
	set("requester", f.Requester)
	set("entitlement", f.Entitlement)
	set("cursor", f.Cursor)
	if f.AwaitingReview {
		q.Set("awaiting_review", "me")
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var out RequestPage
	_, err := c.do(ctx, token, call{op: opList, query: q}, &out)
	return out, err
}

// StoredEvent is one stored CloudEvent as the read side gives it: its stream position, the
// Grantline-Signature header, when the broker stored it and the body verbatim.
type StoredEvent struct {
	Seq        uint64         `json:"seq"`
	Subject    string         `json:"subject"`
	StoredAt   time.Time      `json:"stored_at"`
	Signature  string         `json:"signature"`
	Body       jsontext.Value `json:"body,omitempty"`
	BodyBase64 string         `json:"body_base64,omitempty"`
}

// Verification is the read side's verdict on a request's events: verified, or the first violation
// (its kind, position in the request, stream sequence, event and detail).
type Verification struct {
	Verified bool   `json:"verified"`
	Kind     string `json:"kind,omitempty"`
	Position int    `json:"position,omitempty"`
	Seq      uint64 `json:"seq,omitempty"`
	EventID  string `json:"event_id,omitempty"`
	Detail   string `json:"detail,omitempty"`
}

// StoredEvents is a request's stored events and their verdict. Raw is the answer exactly as the read
// side sent it, which is what an evidence download hands over.
type StoredEvents struct {
	RequestID    string        `json:"request_id"`
	Events       []StoredEvent `json:"events"`
	Verification Verification  `json:"verification"`
	Raw          []byte        `json:"-"`
}

// Events is a request's stored events, verified by the read side.
func (c *Client) Events(ctx context.Context, token, id string) (StoredEvents, error) {
	var out StoredEvents
	raw, err := c.do(ctx, token, call{op: opEvents, args: []string{id}}, &out)
	out.Raw = raw
	return out, err
}

// Grant is a grant as the read side records it (the contract's Grant and Holding).
type Grant struct {
	RequestID        string                  `json:"request_id"`
	Requester        string                  `json:"requester"`
	Subject          events.RequestSubject   `json:"subject"`
	Entitlement      string                  `json:"entitlement"`
	Emergency        bool                    `json:"emergency"`
	Connector        string                  `json:"connector"`
	TargetRef        string                  `json:"target_ref"`
	Fulfiller        string                  `json:"fulfiller"`
	TaskID           string                  `json:"task_id,omitempty"`
	Observed         events.Observed         `json:"observed"`
	GrantedAt        time.Time               `json:"granted_at"`
	ExpiresAt        time.Time               `json:"expires_at"`
	RevocationDue    events.RevocationReason `json:"revocation_due,omitempty"`
	RevokedAt        *time.Time              `json:"revoked_at,omitempty"`
	RevocationReason events.RevocationReason `json:"revocation_reason,omitempty"`
	ObservedAfter    *events.Observed        `json:"observed_after,omitempty"`
	Outcome          events.Outcome          `json:"outcome"`
	PolicyRevision   string                  `json:"policy_revision"`
	Approvers        []string                `json:"approvers"`
	Active           bool                    `json:"active"`
	BeyondExpiry     bool                    `json:"beyond_expiry,omitempty"`
}

// GrantPage is a page of grants.
type GrantPage struct {
	Items      []Grant `json:"items"`
	NextCursor string  `json:"next_cursor,omitempty"`
}

// Grants lists the grants the person may read: only active ones when activeOnly.
func (c *Client) Grants(ctx context.Context, token string, activeOnly bool, cursor string) (GrantPage, error) {
	q := url.Values{}
	if activeOnly {
		q.Set("active", "true")
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	var out GrantPage
	_, err := c.do(ctx, token, call{op: opGrants, query: q}, &out)
	return out, err
}

// Finding is access a target showed that no request explains, as the revoker's reconciler recorded it.
type Finding struct {
	ID        string          `json:"id"`
	Connector string          `json:"connector"`
	TargetRef string          `json:"target_ref"`
	Observed  events.Observed `json:"observed"`
	FoundAt   time.Time       `json:"found_at"`
	LastSeq   uint64          `json:"last_seq"`
}

// FindingPage is a page of findings.
type FindingPage struct {
	Items      []Finding `json:"items"`
	NextCursor string    `json:"next_cursor,omitempty"`
}

// Findings lists the findings of access no request explains (auditors see them; anyone else an empty
// list).
func (c *Client) Findings(ctx context.Context, token, cursor string) (FindingPage, error) {
	q := url.Values{}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	var out FindingPage
	_, err := c.do(ctx, token, call{op: opFindings, query: q}, &out)
	return out, err
}

// Holders answers who held an entitlement at an instant.
type Holders struct {
	Entitlement string    `json:"entitlement"`
	At          time.Time `json:"at"`
	Holders     []Grant   `json:"holders"`
}

// WhoHad asks the read side who held entitlement at at, and why.
func (c *Client) WhoHad(ctx context.Context, token, entitlement string, at time.Time) (Holders, error) {
	q := url.Values{"entitlement": {entitlement}, "at": {at.UTC().Format(time.RFC3339)}}
	var out Holders
	_, err := c.do(ctx, token, call{op: opWhoHad, query: q}, &out)
	return out, err
}

// ReviewItem is one thing a request awaits from the person: a stage's review or a post-review.
type ReviewItem struct {
	RequestID       string                `json:"request_id"`
	Kind            string                `json:"kind"`
	Stage           int                   `json:"stage"`
	StageName       string                `json:"stage_name"`
	Groups          []string              `json:"groups"`
	MinApprovals    int                   `json:"min_approvals"`
	Approvals       int                   `json:"approvals"`
	Deadline        *time.Time            `json:"deadline,omitempty"`
	Overdue         bool                  `json:"overdue,omitempty"`
	Requester       string                `json:"requester"`
	Subject         events.RequestSubject `json:"subject"`
	Entitlement     string                `json:"entitlement"`
	Justification   string                `json:"justification"`
	Ticket          string                `json:"ticket,omitempty"`
	DurationSeconds int64                 `json:"duration_seconds"`
	Emergency       bool                  `json:"emergency"`
	RequestDigest   string                `json:"request_digest"`
	// CorrelationID links requests submitted together for several entitlements.
	CorrelationID string `json:"correlation_id,omitempty"`
}

// The kinds of ReviewItem.
const (
	KindReview     = "review"
	KindPostReview = "post_review"
)

// Reviews is the person's review inbox.
func (c *Client) Reviews(ctx context.Context, token string) ([]ReviewItem, error) {
	var out struct {
		Items []ReviewItem `json:"items"`
	}
	_, err := c.do(ctx, token, call{op: opReviews}, &out)
	return out.Items, err
}

// Reviewed is a recorded review and where the request stands after it.
type Reviewed struct {
	RequestID string        `json:"request_id"`
	Reviewer  string        `json:"reviewer"`
	Stage     int           `json:"stage"`
	StageName string        `json:"stage_name"`
	Decision  string        `json:"decision"`
	Comment   string        `json:"comment,omitempty"`
	Status    events.Status `json:"status"`
	Approvers []string      `json:"approvers,omitempty"`
}

// Review approves or rejects the request as the person, for the version (request digest) they saw. The
// idempotency key names the person's action (one per rendered form): the same form sent again is
// answered with the review it recorded.
func (c *Client) Review(ctx context.Context, token, id string, decision events.ReviewDecision, comment, digest, idempotencyKey string) (Reviewed, error) {
	body := map[string]string{"decision": string(decision)}
	if comment != "" {
		body["comment"] = comment
	}
	if digest != "" {
		body["request_digest"] = digest
	}
	h := http.Header{}
	if idempotencyKey != "" {
		h.Set("Idempotency-Key", idempotencyKey)
	}
	var out Reviewed
	_, err := c.do(ctx, token, call{op: opReview, args: []string{id}, body: body, header: h}, &out)
	return out, err
}

// PostReviewed is a recorded post-review of an emergency grant.
type PostReviewed struct {
	RequestID     string        `json:"request_id"`
	Reviewer      string        `json:"reviewer"`
	Outcome       string        `json:"outcome"`
	Status        events.Status `json:"status"`
	RevocationDue string        `json:"revocation_due,omitempty"`
}

// PostReview ratifies or flags an emergency grant as the person; a flag needs a reason.
func (c *Client) PostReview(ctx context.Context, token, id string, outcome events.PostReviewOutcome, reason string) (PostReviewed, error) {
	body := map[string]string{"outcome": string(outcome)}
	if reason != "" {
		body["reason"] = reason
	}
	var out PostReviewed
	_, err := c.do(ctx, token, call{op: opPostReview, args: []string{id}, body: body}, &out)
	return out, err
}

// Task is an open manual task, and whether the person may complete it (and why not).
type Task struct {
	ID              string    `json:"id"`
	RequestID       string    `json:"request_id"`
	Purpose         string    `json:"purpose"`
	FulfillerGroups []string  `json:"fulfiller_groups"`
	Instructions    string    `json:"instructions,omitempty"`
	DueAt           time.Time `json:"due_at"`
	Entitlement     string    `json:"entitlement"`
	Requester       string    `json:"requester"`
	Subject         string    `json:"subject"`
	// ContinuedBy, on a revoke task, is the extension that continues the access: keep it.
	ContinuedBy string `json:"continued_by,omitempty"`
	MayComplete bool   `json:"may_complete"`
	Why         string `json:"why,omitempty"`
	// CompleteURL is the path of the route that completes it: fulfilment's for a grant task, the
	// revoker's for a revoke task.
	CompleteURL string `json:"complete_url"`
}

// Tasks lists the open manual tasks of the person's groups.
func (c *Client) Tasks(ctx context.Context, token string) ([]Task, error) {
	var out struct {
		Tasks []Task `json:"tasks"`
	}
	_, err := c.do(ctx, token, call{op: opTasks}, &out)
	return out.Tasks, err
}

// Completed is a completed task and where its request stands.
type Completed struct {
	TaskID    string        `json:"task_id"`
	RequestID string        `json:"request_id"`
	Status    events.Status `json:"status"`
}

// CompleteTask completes manual task id with evidence, at the route the person's task list names for
// it: fulfilment completes grant tasks, the revoker revoke tasks. A task that is not in the list, or
// whose complete_url is neither route, is refused with a 404 no-open-task *Problem and nothing is
// sent: the person's token goes to the two routes only.
func (c *Client) CompleteTask(ctx context.Context, token, id, evidence string) (Completed, error) {
	tasks, err := c.Tasks(ctx, token)
	if err != nil {
		return Completed{}, err
	}
	i := slices.IndexFunc(tasks, func(t Task) bool { return t.ID == id })
	var op Operation
	switch {
	case i < 0:
	case tasks[i].CompleteURL == opCompleteGrant.PathFor(id):
		op = opCompleteGrant
	case tasks[i].CompleteURL == opCompleteRevoke.PathFor(id):
		op = opCompleteRevoke
	}
	if op.ID == "" {
		return Completed{}, &Problem{Status: http.StatusNotFound, Problem: httpjson.Problem{Type: httpjson.ProblemTypeBase + "no-open-task",
			Title: "No open task", Status: http.StatusNotFound, Detail: fmt.Sprintf("Task %s is not open for your groups.", id)}}
	}
	var out Completed
	_, err = c.do(ctx, token, call{op: op, args: []string{id}, body: map[string]string{"evidence": evidence}}, &out)
	return out, err
}

// Credential is a one-time credential: shown once, never stored by the console.
type Credential struct {
	RequestID string    `json:"request_id"`
	Username  string    `json:"username,omitempty"`
	Password  string    `json:"password"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Credential retrieves the request's issued credential; the service deletes it as it answers.
func (c *Client) Credential(ctx context.Context, token, id string) (Credential, error) {
	var out Credential
	_, err := c.do(ctx, token, call{op: opCredential, args: []string{id}}, &out)
	return out, err
}

// Revocation is the revoker's answer to an early revocation.
type Revocation struct {
	ID         string        `json:"id"`
	Status     events.Status `json:"status"`
	Revocation string        `json:"revocation,omitempty"`
}

// Revoke ends the request's access early, for reason.
func (c *Client) Revoke(ctx context.Context, token, id, reason string) (Revocation, error) {
	var out Revocation
	_, err := c.do(ctx, token, call{op: opRevoke, args: []string{id}, body: map[string]string{"reason": reason}}, &out)
	return out, err
}
