// Package webhook delivers notifications to generic outbound webhooks: each notification is one
// CloudEvent 1.0 in structured JSON mode (type io.grantline.notification.<kind>, the request as
// subject, the notification's key as id), POSTed with a signature in the Standard Webhooks form
// (webhook-id, webhook-timestamp, and webhook-signature "v1,<base64 HMAC-SHA256 over
// id.timestamp.body>"), so receivers can use any Standard Webhooks library and deduplicate by id.
//
// Send makes one attempt. Retries with backoff and the circuit breaker per target belong to the
// delivery pipeline, which knows how long a target has been failing.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"

	"github.com/grantline/grantline/services/notifier"
	"github.com/grantline/grantline/services/notifier/channel"
)

// Headers of a delivery (Standard Webhooks).
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// TypePrefix starts the CloudEvents type of every notification.
const TypePrefix = "io.grantline.notification."

// Source is the CloudEvents source of notifications.
const Source = "/grantline/notifier"

// Target is one receiving endpoint.
type Target struct {
	URL    string
	Secret []byte
}

// Config configures the sender.
type Config struct {
	// Targets by webhook name (the routing file's).
	Targets map[string]Target
	// Client makes the calls; defaults to a client with Timeout.
	Client *http.Client
	// Timeout bounds one call; defaults to 10s.
	Timeout time.Duration
	// Now stamps the event and the signature; defaults to time.Now.
	Now func() time.Time
}

// Sender delivers to webhooks.
type Sender struct {
	cfg Config
}

// New returns a sender; it fails for a target without a URL or a secret.
func New(cfg Config) (*Sender, error) {
	for name, t := range cfg.Targets {
		if t.URL == "" || len(t.Secret) == 0 {
			return nil, fmt.Errorf("webhook %s needs a URL and a secret", name)
		}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: cfg.Timeout}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Sender{cfg: cfg}, nil
}

// Data is the CloudEvent's data: the notification.
type Data struct {
	Kind      notifier.Kind  `json:"kind"`
	RequestID string         `json:"request_id"`
	Cause     string         `json:"cause"`
	Escalated bool           `json:"escalated,omitempty"`
	Facts     notifier.Facts `json:"facts"`
}

// Event builds the CloudEvent of notification n delivered as id at time at.
func Event(id string, n notifier.Notification, at time.Time) (cloudevents.Event, error) {
	e := cloudevents.NewEvent()
	e.SetID(id)
	e.SetSource(Source)
	e.SetType(TypePrefix + string(n.Kind))
	e.SetSubject(n.RequestID)
	e.SetTime(at.UTC())
	err := e.SetData(cloudevents.ApplicationJSON, Data{Kind: n.Kind, RequestID: n.RequestID, Cause: n.Cause, Escalated: n.Escalated, Facts: n.Facts})
	if err != nil {
		return e, err
	}
	return e, e.Validate()
}

// Send POSTs the delivery's notification to the webhook named d.Address. A target that answers 2xx
// took it. 400–499 other than 408, 425 and 429 is a permanent refusal; 429 and 503 are transient with
// the target's Retry-After; anything else (5xx, a timeout, a refused connection) is transient.
func (s *Sender) Send(ctx context.Context, d channel.Delivery) (channel.Receipt, error) {
	t, ok := s.cfg.Targets[d.Address]
	if !ok {
		return channel.Receipt{}, channel.Permanent(fmt.Errorf("webhook %q is not configured", d.Address))
	}
	if len(d.Notifications) != 1 {
		return channel.Receipt{}, channel.Permanent(fmt.Errorf("webhook %s: a delivery carries one notification, got %d", d.Address, len(d.Notifications)))
	}
	now := s.cfg.Now()
	e, err := Event(d.ID, d.Notifications[0], now)
	if err != nil {
		return channel.Receipt{}, channel.Permanent(fmt.Errorf("webhook %s: %w", d.Address, err))
	}
	body, err := e.MarshalJSON()
	if err != nil {
		return channel.Receipt{}, channel.Permanent(fmt.Errorf("webhook %s: %w", d.Address, err))
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL, bytes.NewReader(body))
	if err != nil {
		return channel.Receipt{}, channel.Permanent(fmt.Errorf("webhook %s: %w", d.Address, err))
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	req.Header.Set("Content-Type", "application/cloudevents+json; charset=utf-8")
	req.Header.Set(HeaderID, d.ID)
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, Sign(t.Secret, d.ID, ts, body))
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		return channel.Receipt{}, fmt.Errorf("webhook %s: %w", d.Address, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	code := resp.StatusCode
	err = fmt.Errorf("webhook %s answered %s", d.Address, resp.Status)
	switch {
	case code >= 200 && code < 300:
		return channel.Receipt{}, nil
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
		after, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		return channel.Receipt{}, channel.RetryAfter(err, time.Duration(after)*time.Second)
	case code == http.StatusRequestTimeout || code == http.StatusTooEarly:
		return channel.Receipt{}, err
	case code >= 400 && code < 500:
		return channel.Receipt{}, channel.Permanent(err)
	}
	return channel.Receipt{}, err
}

// Sign is the webhook-signature value for body sent as id at timestamp ts (Unix seconds): "v1," and
// the base64 HMAC-SHA256 of "<id>.<ts>.<body>" under secret.
func Sign(secret []byte, id, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(id + "." + ts + "."))
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// ErrBadSignature is returned by Verify for a delivery that is not signed with the secret, or is
// outside the tolerated window.
var ErrBadSignature = errors.New("bad webhook signature")

// Verify is the receiver's check: one of the signatures in the webhook-signature header (space
// separated, as Standard Webhooks allows during key rotation) must match secret, compared in constant
// time, and the timestamp must lie within tolerance of now. It returns an error wrapping
// ErrBadSignature otherwise.
func Verify(secret []byte, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	id, ts := h.Get(HeaderID), h.Get(HeaderTimestamp)
	sec, err := strconv.ParseInt(ts, 10, 64)
	if id == "" || err != nil {
		return fmt.Errorf("%w: no id or timestamp", ErrBadSignature)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: timestamp %s is %s away", ErrBadSignature, ts, d)
	}
	want := []byte(Sign(secret, id, ts, body))
	for sig := range strings.FieldsSeq(h.Get(HeaderSignature)) {
		if hmac.Equal([]byte(sig), want) {
			return nil
		}
	}
	return fmt.Errorf("%w: no signature matches", ErrBadSignature)
}
