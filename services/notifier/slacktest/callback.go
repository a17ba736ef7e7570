package slacktest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json/v2"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Press is the body Slack sends to an app's interaction endpoint when user (a Slack user ID) presses
// the button actionID of request requestID in message m: a form with the block_actions payload, as
// Slack documents it. A digest carries the buttons of several requests, so the request is named. It
// returns an error if m has no such button.
func Press(user string, m Message, requestID, actionID string) (string, error) {
	var value, block string
	for _, b := range m.Blocks {
		elements, _ := b["elements"].([]any)
		for _, e := range elements {
			el, _ := e.(map[string]any)
			v, _ := el["value"].(string)
			var of struct {
				RequestID string `json:"request_id"`
			}
			if el["action_id"] == actionID && json.Unmarshal([]byte(v), &of) == nil && of.RequestID == requestID {
				value = v
				block, _ = b["block_id"].(string)
			}
		}
	}
	if block == "" {
		return "", fmt.Errorf("message %s has no button %q for request %s", m.TS, actionID, requestID)
	}
	payload := map[string]any{
		"type": "block_actions", "user": map[string]any{"id": user, "username": user, "team_id": "T0GRANT"},
		"api_app_id": "A0NOTIFY", "team": map[string]any{"id": "T0GRANT", "domain": "grantline"},
		"container":  map[string]any{"type": "message", "message_ts": m.TS, "channel_id": m.Channel, "is_ephemeral": false},
		"channel":    map[string]any{"id": m.Channel, "name": "directmessage"},
		"message":    map[string]any{"type": "message", "ts": m.TS, "text": m.Text, "blocks": m.Blocks},
		"trigger_id": "1.2.3", "response_url": "https://hooks.slack.test/actions/T0GRANT/1/x",
		"actions": []any{map[string]any{"type": "button", "action_id": actionID, "block_id": block, "value": value,
			"text": map[string]any{"type": "plain_text", "text": actionID}, "action_ts": "1.2"}},
	}
	b, err := json.Marshal(payload)
	if err != nil {
		return "", err
	}
	return "payload=" + url.QueryEscape(string(b)), nil
}

// Sign returns the headers Slack sends with body at time at, signed with the app's signing secret:
// X-Slack-Signature is v0= and the hex HMAC-SHA256 of "v0:<timestamp>:<body>".
func Sign(secret, body string, at time.Time) http.Header {
	ts := strconv.FormatInt(at.Unix(), 10)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("v0:" + ts + ":" + body))
	h := http.Header{}
	h.Set("X-Slack-Request-Timestamp", ts)
	h.Set("X-Slack-Signature", "v0="+hex.EncodeToString(m.Sum(nil)))
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	return h
}
