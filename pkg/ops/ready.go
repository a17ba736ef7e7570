package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Check reports whether one dependency is ready: nil when it is, otherwise an
// error whose message is served verbatim in the /readyz body, so it must not
// contain secrets. It should return promptly when ctx is done; one that does
// not is reported as timed out, and the request does not wait for it.
type Check func(ctx context.Context) error

// readyBody is the JSON answered by /readyz: each check's name mapped to "ok"
// or its error message.
type readyBody struct {
	Checks map[string]string `json:"checks"`
}

// SetCheck registers c under name for /readyz, replacing any check of that
// name; a nil c removes it. It is safe to call while serving, so a service
// can register a check that starts passing once its consumers are attached.
// It panics if name is empty, which is a programming error, as an invalid
// pattern is to http.ServeMux.
func (h *Handler) SetCheck(name string, c Check) {
	if name == "" {
		panic("ops: SetCheck with empty name")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if c == nil {
		delete(h.checks, name)
		return
	}
	h.checks[name] = c
}

func (h *Handler) serveReady(w http.ResponseWriter, r *http.Request) {
	h.mu.RLock()
	checks := make(map[string]Check, len(h.checks))
	for name, c := range h.checks {
		checks[name] = c
	}
	h.mu.RUnlock()

	results := runChecks(r.Context(), checks, h.checkTimeout)

	body := readyBody{Checks: make(map[string]string, len(results))}
	status := http.StatusOK
	for name, err := range results {
		if err != nil {
			status = http.StatusServiceUnavailable
			body.Checks[name] = err.Error()
			continue
		}
		body.Checks[name] = "ok"
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	// The status line is already sent; a failed write means the prober went
	// away, and there is no one left to tell.
	_ = json.NewEncoder(w).Encode(body)
}

// runChecks runs every check concurrently, each bounded by timeout, and
// returns once each has finished or timed out, so the request takes at most
// about timeout however many checks there are. A check that ignores its
// context keeps running in its goroutine until it returns; its result
// channel is buffered so that goroutine can always exit then.
func runChecks(ctx context.Context, checks map[string]Check, timeout time.Duration) map[string]error {
	type result struct {
		name string
		err  error
	}
	results := make(chan result, len(checks))
	for name, c := range checks {
		go func() {
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			results <- result{name: name, err: runCheck(cctx, c, timeout)}
		}()
	}
	out := make(map[string]error, len(checks))
	for range checks {
		r := <-results
		out[r.name] = r.err
	}
	return out
}

// runCheck runs c and returns its error, or a timeout error as soon as ctx is
// done even if c has not returned. A panicking check is reported as failed
// rather than crashing the process, since it runs outside the HTTP server's
// own panic recovery.
func runCheck(ctx context.Context, c Check, timeout time.Duration) error {
	done := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- fmt.Errorf("check panicked: %v", p)
			}
		}()
		done <- c(ctx)
	}()
	select {
	case err := <-done:
		if err != nil && ctx.Err() != nil {
			return fmt.Errorf("timed out after %s: %w", timeout, err)
		}
		return err
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("timed out after %s: %w", timeout, context.Cause(ctx))
		}
		// The prober hung up before the deadline; nobody will read this.
		return fmt.Errorf("abandoned: %w", context.Cause(ctx))
	}
}
