// Package webhook is the connector for systems that take access changes over HTTP: each grant, revoke
// and inspect is a JSON POST to the entitlement's target, signed with HMAC-SHA256 over the timestamp
// and the body, carrying an Idempotency-Key (grant ID and action) so the receiver applies a retried
// call once. Each call has a timeout and is retried with exponential backoff; each target has its own
// circuit breaker (sony/gobreaker), so a target that keeps failing is left alone for a while instead of
// holding every fulfilment and revocation for the full retry budget.
//
// Receiver contract. Every call names one grant (grant_id, the request ID; also the start of the
// Idempotency-Key), and the receiver must keep access per grant: a person holds an entitlement while
// the receiver holds any grant ID for that person and entitlement. A revoke removes the grant it names,
// never "the person's entitlement": an extension (issue 16) is a second grant of the same person and
// entitlement, granted while the first still stands, and the first one's revoke must leave the access
// the extension gives. "present" in an answer is about the named grant. A receiver that maps grants
// onto one membership on its system (a group, a role) removes the membership only when it holds no
// grant for it any more. TestExtensionKeepsAccessWithoutGap is such a receiver.
//
// The receiver answers 200 with what it now shows, {"present": bool, "detail": {...}}. A 4xx answer
// other than 408, 425 and 429 says the request itself is wrong: permanent. Anything else (5xx, 408,
// 425, 429, a timeout, a refused connection) is transient and counts against the breaker.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json/v2"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/sony/gobreaker/v2"

	"github.com/grantline/grantline/pkg/connector"
	"github.com/grantline/grantline/pkg/events"
)

// Name is the catalogue's name for this connector.
const Name = "webhook"

// Headers of a call.
const (
	HeaderSignature   = "Grantline-Signature"
	HeaderTimestamp   = "Grantline-Timestamp"
	HeaderIdempotency = "Idempotency-Key"
)

// Error classes of the connector.
const (
	ClassUnavailable = "target_unavailable"
	ClassRefused     = "target_refused"
	ClassOpen        = connector.ClassCircuitOpen
	ClassNoTarget    = "no_webhook_target"
)

// Target is one receiving endpoint.
type Target struct {
	// Name identifies the target in logs and names its circuit breaker.
	Name string
	URL  string
	// Secret is the HMAC key shared with the receiver.
	Secret []byte
}

// Config configures the connector. Zero values get the defaults in their comments.
type Config struct {
	// Targets maps an entitlement ID to the target that fulfils it.
	Targets map[string]Target
	// Client makes the calls; defaults to a client without its own timeout (each attempt has Timeout).
	Client *http.Client
	// Timeout bounds one attempt; defaults to 5s.
	Timeout time.Duration
	// MaxAttempts bounds the attempts of one call; defaults to 3.
	MaxAttempts uint
	// InitialBackoff is the first delay between attempts, growing exponentially; defaults to 200ms.
	InitialBackoff time.Duration
	// BreakerFailures is how many consecutive failures open a target's breaker; defaults to
	// connector.DefaultBreakerFailures.
	BreakerFailures uint32
	// BreakerOpen is how long an open breaker refuses calls before letting one probe the target;
	// defaults to connector.DefaultBreakerOpen.
	BreakerOpen time.Duration
	// Now is the clock for the signature timestamp; defaults to time.Now.
	Now func() time.Time
	// OnStateChange, if set, hears every breaker transition (for logs and metrics).
	OnStateChange func(target string, from, to gobreaker.State)
}

// Connector calls webhook targets.
type Connector struct {
	cfg      Config
	mu       sync.Mutex
	breakers map[string]*connector.Breaker
}

// New returns the connector for cfg. It returns an error for a target without a URL or secret.
func New(cfg Config) (*Connector, error) {
	for ent, t := range cfg.Targets {
		if t.URL == "" || len(t.Secret) == 0 || t.Name == "" {
			return nil, fmt.Errorf("webhook target of %s needs a name, a URL and a secret", ent)
		}
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.InitialBackoff <= 0 {
		cfg.InitialBackoff = 200 * time.Millisecond
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Connector{cfg: cfg, breakers: map[string]*connector.Breaker{}}, nil
}

// Action is what a call asks of the receiver.
type Action string

// Actions.
const (
	ActionGrant   Action = "grant"
	ActionRevoke  Action = "revoke"
	ActionInspect Action = "inspect"
)

// Call is the JSON body of a call.
type Call struct {
	Action      Action                `json:"action"`
	GrantID     string                `json:"grant_id"`
	Entitlement string                `json:"entitlement"`
	System      string                `json:"system"`
	Resource    string                `json:"resource"`
	Subject     events.RequestSubject `json:"subject"`
	ExpiresAt   time.Time             `json:"expires_at"`
}

// Grant asks the target to grant g.
func (c *Connector) Grant(ctx context.Context, g connector.Grant) (events.Observed, error) {
	return c.call(ctx, ActionGrant, g)
}

// Revoke asks the target to revoke g.
func (c *Connector) Revoke(ctx context.Context, g connector.Grant) (events.Observed, error) {
	return c.call(ctx, ActionRevoke, g)
}

// Inspect asks the target what it shows for g.
func (c *Connector) Inspect(ctx context.Context, g connector.Grant) (events.Observed, error) {
	return c.call(ctx, ActionInspect, g)
}

// TargetRef names the target and the grant.
func (c *Connector) TargetRef(g connector.Grant) string {
	return c.cfg.Targets[g.Entitlement.ID].Name + " " + g.ID
}

// BreakerState is the state of target's circuit breaker (closed for a target not called yet).
func (c *Connector) BreakerState(target string) gobreaker.State {
	c.mu.Lock()
	defer c.mu.Unlock()
	if b, ok := c.breakers[target]; ok {
		return b.State()
	}
	return gobreaker.StateClosed
}

func (c *Connector) breaker(target string) *connector.Breaker {
	c.mu.Lock()
	defer c.mu.Unlock()
	if b, ok := c.breakers[target]; ok {
		return b
	}
	b := connector.NewBreaker(target, c.cfg.BreakerFailures, c.cfg.BreakerOpen, c.cfg.OnStateChange)
	c.breakers[target] = b
	return b
}

func (c *Connector) call(ctx context.Context, action Action, g connector.Grant) (events.Observed, error) {
	t, ok := c.cfg.Targets[g.Entitlement.ID]
	if !ok {
		return events.Observed{}, connector.Permanent(ClassNoTarget, fmt.Errorf("entitlement %s has no webhook target", g.Entitlement.ID))
	}
	body, err := json.Marshal(Call{Action: action, GrantID: g.ID, Entitlement: g.Entitlement.ID, System: g.Entitlement.System,
		Resource: g.Entitlement.Resource, Subject: g.Subject, ExpiresAt: g.ExpiresAt.UTC()})
	if err != nil {
		return events.Observed{}, connector.Permanent("internal", err)
	}
	b := c.breaker(t.Name)
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = c.cfg.InitialBackoff
	obs, err := backoff.Retry(ctx, func() (events.Observed, error) {
		obs, err := b.Do(func() (events.Observed, error) { return c.attempt(ctx, t, action, g.ID, body) })
		switch {
		case connector.ClassOf(err) == ClassOpen:
			// Do not hammer a target the breaker shields: come back when it lets a probe through.
			return obs, backoff.Permanent(err)
		case connector.IsPermanent(err):
			return obs, backoff.Permanent(err)
		}
		return obs, err
	}, backoff.WithBackOff(bo), backoff.WithMaxTries(c.cfg.MaxAttempts), backoff.WithMaxElapsedTime(0))
	if err != nil {
		var ce *connector.Error
		if !errors.As(err, &ce) {
			err = connector.Transient(ClassUnavailable, err)
		}
		return events.Observed{}, err
	}
	return obs, nil
}

// attempt makes one signed POST and reads the answer.
func (c *Connector) attempt(ctx context.Context, t Target, action Action, grantID string, body []byte) (events.Observed, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL, bytes.NewReader(body))
	if err != nil {
		return events.Observed{}, connector.Permanent(ClassRefused, err)
	}
	ts := strconv.FormatInt(c.cfg.Now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, Sign(t.Secret, ts, body))
	req.Header.Set(HeaderIdempotency, grantID+":"+string(action))
	resp, err := c.cfg.Client.Do(req)
	if err != nil {
		return events.Observed{}, connector.Transient(ClassUnavailable, fmt.Errorf("target %s: %w", t.Name, err))
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return events.Observed{}, connector.Transient(ClassUnavailable, fmt.Errorf("target %s: %w", t.Name, err))
	}
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode == http.StatusTooEarly, resp.StatusCode == http.StatusTooManyRequests:
		e := &connector.Error{Class: ClassUnavailable, Err: fmt.Errorf("target %s answered %s", t.Name, resp.Status)}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			e.RetryAfter = time.Duration(s) * time.Second
		}
		return events.Observed{}, e
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		return events.Observed{}, connector.Permanent(ClassRefused, fmt.Errorf("target %s answered %s", t.Name, resp.Status))
	default:
		return events.Observed{}, connector.Transient(ClassUnavailable, fmt.Errorf("target %s answered %s", t.Name, resp.Status))
	}
	var obs events.Observed
	if err := events.UnmarshalStrict(answer, &obs); err != nil {
		// A target that answers 200 with something else is broken, not refusing: try again later.
		return events.Observed{}, connector.Transient(ClassUnavailable, fmt.Errorf("target %s: answer is not an observed state: %w", t.Name, err))
	}
	return obs, nil
}

// Sign returns the signature header value for body sent at timestamp ts (Unix seconds, as sent in
// Grantline-Timestamp): "v1=" and the hex HMAC-SHA256 of "<ts>.<body>" under secret.
func Sign(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return "v1=" + hex.EncodeToString(m.Sum(nil))
}

// ErrBadSignature is returned by Verify for a call that is not signed with the secret, or is too old.
var ErrBadSignature = errors.New("bad webhook signature")

// Verify is the receiver's check of a call: the signature over its timestamp and body must match
// secret, and the timestamp must lie within maxSkew of now (so a captured call cannot be replayed
// later; the Idempotency-Key covers replays within the window). It returns an error wrapping
// ErrBadSignature otherwise.
func Verify(secret []byte, h http.Header, body []byte, now time.Time, maxSkew time.Duration) error {
	ts := h.Get(HeaderTimestamp)
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: no timestamp", ErrBadSignature)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > maxSkew || d < -maxSkew {
		return fmt.Errorf("%w: timestamp %s is %s away", ErrBadSignature, ts, d)
	}
	got := h.Get(HeaderSignature)
	if !strings.HasPrefix(got, "v1=") || !hmac.Equal([]byte(got), []byte(Sign(secret, ts, body))) {
		return fmt.Errorf("%w: signature does not match", ErrBadSignature)
	}
	return nil
}
