package faults

import (
	"context"
	"encoding/json/v2"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grantline/grantline/pkg/events"
)

// submission is one request the load asked intake for, as the client saw it.
type submission struct {
	n   int
	key string // its Idempotency-Key: every retry of it sends the same one
	// started is when it was first sent, acked when intake answered 202 (zero if it never did).
	started, acked time.Time
	id             string
	attempts       int
	// refusal is why the client gave up, if it did.
	refusal string
}

// load submits requests to intake at a fixed rate, each retried with its idempotency key until intake
// acknowledges it or its deadline passes, as a client that must not lose or double a request would.
type load struct {
	url, token string
	body       string // the request, the same for every submission
	keyPrefix  string
	every      time.Duration
	count      int
	// retryFor bounds the retries of one submission.
	retryFor time.Duration
	client   *http.Client

	mu    sync.Mutex
	subs  []*submission
	acked atomic.Int64
	// extra counts the submissions of bursts, made or to be made.
	extra atomic.Int64
}

// add records a new submission, numbered in the order they are made.
func (l *load) add() *submission {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := &submission{n: len(l.subs), started: time.Now()}
	s.key = fmt.Sprintf("%s-%04d", l.keyPrefix, s.n)
	l.subs = append(l.subs, s)
	return s
}

// run submits l.count requests, one every l.every, and returns once each is acknowledged or given up.
// A submission that hangs does not hold up the next: each runs on its own.
func (l *load) run(ctx context.Context) {
	var wg sync.WaitGroup
	tick := time.NewTicker(l.every)
	defer tick.Stop()
	for range l.count {
		s := l.add()
		wg.Go(func() { l.submit(ctx, s) })
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
		if ctx.Err() != nil {
			break
		}
	}
	wg.Wait()
}

// burst submits n requests at once, beside the steady ones, and returns once each is acknowledged or
// given up.
func (l *load) burst(ctx context.Context, n int) {
	l.extra.Add(int64(n))
	var wg sync.WaitGroup
	for range n {
		s := l.add()
		wg.Go(func() { l.submit(ctx, s) })
	}
	wg.Wait()
}

// submit sends s until intake answers 202, retrying transport errors and 5xx answers (a node or a
// leader gone) with a capped backoff; any other answer ends it.
func (l *load) submit(ctx context.Context, s *submission) {
	ctx, cancel := context.WithTimeout(ctx, l.retryFor)
	defer cancel()
	wait := 200 * time.Millisecond
	for {
		s.attempts++
		id, retry, err := l.post(ctx, s.key)
		if err == nil {
			s.id, s.acked = id, time.Now()
			l.acked.Add(1)
			return
		}
		if !retry {
			s.refusal = err.Error()
			return
		}
		select {
		case <-ctx.Done():
			s.refusal = fmt.Sprintf("no acknowledgement within %s after %d attempts; last: %v", l.retryFor, s.attempts, err)
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// post sends one attempt and returns the request ID intake acknowledged, or whether the error is
// worth a retry.
func (l *load) post(ctx context.Context, key string) (id string, retry bool, err error) {
	a, err := l.send(ctx, key)
	if err != nil {
		return "", true, err
	}
	switch {
	case a.status == http.StatusAccepted:
		if a.id == "" {
			return "", false, fmt.Errorf("202 without a request ID: %s", a.body)
		}
		return a.id, false, nil
	case a.status >= 500 || a.status == http.StatusTooManyRequests:
		return "", true, fmt.Errorf("%d: %s", a.status, a.body)
	default:
		return "", false, fmt.Errorf("%d: %s", a.status, a.body)
	}
}

// attempt is intake's answer to one submit: its status, Retry-After, body, and on a 202 the request ID.
type attempt struct {
	status                  int
	retryAfter, contentType string
	body                    []byte
	id                      string
}

// send sends one attempt with idempotency key key; the error is a transport error (no answer).
func (l *load) send(ctx context.Context, key string) (attempt, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.url+"/v1/requests", strings.NewReader(l.body))
	if err != nil {
		return attempt{}, err
	}
	req.Header.Set("Authorization", "Bearer "+l.token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := l.client.Do(req)
	if err != nil {
		return attempt{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return attempt{}, err
	}
	a := attempt{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), contentType: resp.Header.Get("Content-Type"), body: body}
	if a.status == http.StatusAccepted {
		var created struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(body, &created) == nil && events.ValidRequestID(created.ID) {
			a.id = created.ID
		}
	}
	return a, nil
}

// acknowledged is how many submissions intake has acknowledged so far.
func (l *load) acknowledged() int { return int(l.acked.Load()) }

// submissions are what the client saw of each submission; call it once run and every burst have
// returned.
func (l *load) submissions() []*submission {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.subs)
}

// expected is how many submissions the load makes in all, bursts included.
func (l *load) expected() int { return l.count + int(l.extra.Load()) }
