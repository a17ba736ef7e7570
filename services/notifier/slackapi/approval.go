package slackapi

import (
	"bytes"
	"context"
	"encoding/json/v2"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/grantline/grantline/pkg/httpjson"
	"github.com/grantline/grantline/pkg/telemetry"
)

// Approval calls the approval service's review API (POST /v1/requests/{id}/reviews) with a person's
// token.
type Approval struct {
	// BaseURL is where the approval service (or the gateway in front of it) answers.
	BaseURL string
	// Client makes the calls; defaults to one with a 10s timeout.
	Client *http.Client
}

// Result is what the approval service made of a review.
type Result struct {
	// Recorded: the review was recorded (201).
	Recorded bool
	// Stage and Status are the stage reviewed and the request's status after it.
	Stage, Status string
	// Problem and Detail are the refusal's problem type (its slug) and detail.
	Problem, Detail string
}

// Review asks the approval service to record decision ("approve" or "reject") on requestID as the
// holder of token, bound to digest, as the action key names (the same key again is answered with the
// review it recorded). A refusal is a Result; an error means the service could not be asked or
// answered with a server error.
func (a *Approval) Review(ctx context.Context, token, requestID, decision, digest, key string) (Result, error) {
	body, _ := json.Marshal(map[string]string{"decision": decision, "request_digest": digest, "comment": "reviewed in Slack"})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		strings.TrimSuffix(a.BaseURL, "/")+"/v1/requests/"+url.PathEscape(requestID)+"/reviews", bytes.NewReader(body))
	if err != nil {
		return Result{}, fmt.Errorf("review %s: %w", requestID, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	// The approval service continues the trace of the Slack interaction.
	telemetry.InjectHTTP(ctx, req.Header)
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	client := a.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return Result{}, fmt.Errorf("review %s: %w", requestID, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return Result{}, fmt.Errorf("review %s: %w", requestID, err)
	}
	if resp.StatusCode >= 500 {
		return Result{}, fmt.Errorf("review %s: approval answered %s", requestID, resp.Status)
	}
	if resp.StatusCode == http.StatusCreated {
		var rv struct {
			StageName string `json:"stage_name"`
			Status    string `json:"status"`
		}
		if err := json.Unmarshal(answer, &rv); err != nil {
			return Result{}, fmt.Errorf("review %s: answer: %w", requestID, err)
		}
		return Result{Recorded: true, Stage: rv.StageName, Status: rv.Status}, nil
	}
	var p httpjson.Problem
	if err := json.Unmarshal(answer, &p); err != nil {
		return Result{}, fmt.Errorf("review %s: approval answered %s without a problem document", requestID, resp.Status)
	}
	return Result{Problem: strings.TrimPrefix(p.Type, httpjson.ProblemTypeBase), Detail: p.Detail}, nil
}
