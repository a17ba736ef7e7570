package cluster

import (
	"context"
	"io"
	"net/http"
	"strings"
	"time"
)

// callTimeout bounds one HTTP call to a service, reading the answer included.
const callTimeout = 15 * time.Second

// Answer is a service's HTTP answer.
type Answer struct {
	Status      int
	ContentType string
	// Header is every header of the answer (Retry-After, ...).
	Header http.Header
	Body   []byte
}

// Call sends method to service container service's path with the bearer token and body (JSON, or
// nothing when empty), and returns the answer.
func (c *Cluster) Call(ctx context.Context, token, method, service, path, body string) (Answer, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.URL(service)+path, strings.NewReader(body))
	if err != nil {
		return Answer{}, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return Answer{}, err
	}
	return Answer{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Header: resp.Header, Body: b}, nil
}
