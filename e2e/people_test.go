package e2e

import (
	"context"
	"encoding/json/v2"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/e2e/internal/cluster"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/httpjson"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/pkg/requestview"
)

// person is one of the demo directory's people (alice, bob, carol, dave, erin, frank) using the
// services' HTTP APIs with a bearer token from the identity provider.
type person struct {
	t     *testing.T
	name  string
	token string
}

func as(t *testing.T, name string) person {
	t.Helper()
	token, err := deployment.Token(name)
	if err != nil {
		t.Fatal(err)
	}
	return person{t: t, name: name, token: token}
}

// call sends method service+path with body (JSON, or nothing when empty) and returns the status, the
// content type and the body of the answer.
func (p person) call(method, service, path, body string) (int, string, []byte) {
	p.t.Helper()
	a, err := deployment.Call(p.t.Context(), p.token, method, service, path, body)
	if err != nil {
		p.t.Fatalf("%s %s %s as %s: %v", method, service, path, p.name, err)
	}
	return a.Status, a.ContentType, a.Body
}

// expect calls like call, fails the test unless the answer has status want, and decodes it into out
// (when out is not nil).
func (p person) expect(want int, method, service, path, body string, out any) {
	p.t.Helper()
	status, _, b := p.call(method, service, path, body)
	if status != want {
		p.t.Fatalf("%s %s %s as %s answered %d, want %d: %s", method, service, path, p.name, status, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			p.t.Fatalf("%s %s %s: %v: %s", method, service, path, err, b)
		}
	}
}

// submit asks intake for access and returns the request's ID.
func (p person) submit(body string) string {
	p.t.Helper()
	var created struct {
		ID string `json:"id"`
	}
	p.expect(http.StatusAccepted, http.MethodPost, "intake", "/v1/requests", body, &created)
	if !events.ValidRequestID(created.ID) {
		p.t.Fatalf("submit answered the request ID %q", created.ID)
	}
	p.t.Logf("%s submitted %s: %s", p.name, created.ID, body)
	return created.ID
}

// view is request id as intake shows it to p.
func (p person) view(id string) requestview.View {
	p.t.Helper()
	var v requestview.View
	p.expect(http.StatusOK, http.MethodGet, "intake", "/v1/requests/"+id, "", &v)
	return v
}

// await waits until request id has status want and returns its view. It fails at once if the request
// ends in another status, with the view, so a denial or a failed grant reads as what it is.
//
// A 404 counts as "not yet": right after the 202, intake's read of the request can be answered by a
// stream replica that has not applied the submission yet (see the report of this suite).
func (p person) await(id string, want events.Status, timeout time.Duration) requestview.View {
	p.t.Helper()
	var v requestview.View
	last := "no answer"
	deadline := time.Now().Add(timeout)
	for {
		status, _, body := p.call(http.MethodGet, "intake", "/v1/requests/"+id, "")
		switch status {
		case http.StatusOK:
			v = requestview.View{}
			if err := json.Unmarshal(body, &v); err != nil {
				p.t.Fatalf("view of %s: %v: %s", id, err, body)
			}
			if v.Status == want {
				return v
			}
			if v.Status.Terminal() {
				p.t.Fatalf("request %s ended %s while waiting for %s: %s", id, v.Status, want, body)
			}
			last = "status " + string(v.Status)
		case http.StatusNotFound:
			last = "404"
		default:
			p.t.Fatalf("GET intake /v1/requests/%s as %s answered %d: %s", id, p.name, status, body)
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("request %s not %s within %s; last answer: %s", id, want, timeout, last)
		}
		<-time.After(poll.Interval)
	}
}

// review approves or rejects request id at the approval service.
func (p person) review(id, decision, comment string) {
	p.t.Helper()
	body, _ := json.Marshal(map[string]string{"decision": decision, "comment": comment})
	p.expect(http.StatusCreated, http.MethodPost, "approval", "/v1/requests/"+id+"/reviews", string(body), nil)
}

// problem decodes an RFC 9457 problem answer, failing the test if it is not one.
func problem(t *testing.T, contentType string, body []byte) httpjson.Problem {
	t.Helper()
	var p httpjson.Problem
	if !strings.HasPrefix(contentType, "application/problem+json") {
		t.Fatalf("answer of type %q, want application/problem+json: %s", contentType, body)
	}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("problem: %v: %s", err, body)
	}
	return p
}

// eventsOf reads request id's events from the stream, verified against the trust file.
func eventsOf(t *testing.T, id string) []events.Event {
	t.Helper()
	evs, err := deployment.Events(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// typesOf names the events' types in stream order: submitted, policy_decided, ...
func typesOf(evs []events.Event) []string {
	var names []string
	for _, ev := range evs {
		names = append(names, ev.Type.Name())
	}
	return names
}

// expectTypes fails the test unless request id's events are exactly want, in order, and returns them.
// A status seen over HTTP can precede the last event of a step only by the time the reader needs, so
// the events are read until they match or a few seconds have passed.
func expectTypes(t *testing.T, id string, want ...string) []events.Event {
	t.Helper()
	var evs []events.Event
	deadline := time.Now().Add(5 * time.Second)
	for {
		evs = eventsOf(t, id)
		if slices.Equal(typesOf(evs), want) {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("events of %s are %v, want %v", id, typesOf(evs), want)
		}
		<-time.After(poll.Interval)
	}
}

// payload returns the payload of the last event of type T in evs, failing the test if there is none.
func payload[T events.Payload](t *testing.T, evs []events.Event) T {
	t.Helper()
	for _, ev := range slices.Backward(evs) {
		if p, ok := ev.Payload.(T); ok {
			return p
		}
	}
	var zero T
	t.Fatalf("no %T among %v", zero, typesOf(evs))
	return zero
}

// targetRole reads role from the target database.
func targetRole(t *testing.T, role string) cluster.Role {
	t.Helper()
	r, err := deployment.TargetRole(t.Context(), role)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// logsOnFailure prints the end of every container's log if t fails: what the services said while
// the scenario ran.
func logsOnFailure(t *testing.T) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, name := range deployment.Names() {
			out, err := deployment.Logs(context.Background(), name)
			if err != nil {
				t.Logf("log of %s: %v", name, err)
				continue
			}
			lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
			t.Logf("last lines of %s:\n  %s", name, strings.Join(lines[max(0, len(lines)-30):], "\n  "))
		}
	})
}
