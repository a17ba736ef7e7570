// Package delegation gets the notifier a token of a person it has identified, to act for them at
// another service (a review pressed in Slack, recorded by the approval service as that person's). It
// asks the identity provider for an RFC 8693 token exchange in the impersonation form (the notifier's
// client credentials, the person as requested_subject); the token's act claim names the notifier. The
// provider decides whom the notifier may act for: the dev issuer allows it only the clients it was
// told to (auth.DevIssuer.AllowDelegation).
package delegation

import (
	"context"
	"encoding/json/v2"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ErrRefused is wrapped when the identity provider refuses the exchange (an unknown person, a client
// not allowed to delegate); retrying will not help.
var ErrRefused = errors.New("token exchange refused")

// Exchanger exchanges the notifier's client credentials for people's tokens.
type Exchanger struct {
	// TokenURL is the provider's token endpoint.
	TokenURL string
	ClientID string
	Secret   string
	// Audience is the audience the services accept.
	Audience string
	// Client makes the call; defaults to one with a 10s timeout.
	Client *http.Client
}

// TokenFor returns an access token of person. It returns an error wrapping ErrRefused when the
// provider refuses (an RFC 6749 error answer), any other error when it cannot be asked.
func (e Exchanger) TokenFor(ctx context.Context, person string) (string, error) {
	form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "requested_subject": {person},
		"audience": {e.Audience}, "requested_token_type": {"urn:ietf:params:oauth:token-type:access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("token exchange: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(e.ClientID), url.QueryEscape(e.Secret))
	client := e.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("token exchange for %s: %w", person, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", fmt.Errorf("token exchange for %s: %w", person, err)
	}
	var answer struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.Unmarshal(body, &answer); err != nil {
		return "", fmt.Errorf("token exchange for %s: answer %d is not JSON", person, resp.StatusCode)
	}
	switch {
	case resp.StatusCode == http.StatusOK && answer.AccessToken != "":
		return answer.AccessToken, nil
	case answer.Error != "" && resp.StatusCode < 500:
		return "", fmt.Errorf("%w for %s: %s (%s)", ErrRefused, person, answer.Error, answer.Description)
	}
	return "", fmt.Errorf("token exchange for %s: answered %s", person, resp.Status)
}
