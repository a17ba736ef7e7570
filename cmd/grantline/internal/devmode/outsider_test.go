package devmode

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/cmd/grantline/internal/gateway"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/manualtask"
	"github.com/grantline/grantline/pkg/poll"
)

// outsiderBodies are bodies each route naming a request would accept, so that a refusal is about
// the request and not about the body. A route added without a row here is sent "{}" and fails the
// test if that body is refused first: add its row.
var outsiderBodies = map[string]string{
	"withdraw":    `{"reason":"mine now"}`,
	"revoke":      `{"reason":"mine now"}`,
	"reviews":     `{"decision":"approve","comment":"looks fine"}`,
	"post-review": `{"outcome":"ratified","reason":"looks fine"}`,
	"complete":    `{"evidence":"done, change 4711"}`,
}

// TestAnOutsiderIsToldNoRequestExists calls every route of the public API that names a request, by
// its ID or by a task's (gateway.Routes, so a new route is covered the day it is added), as someone
// who may not see the request: dave for alice's granted request and frank's pending one, bob for
// alice's manual request whose grant task is open for operations. Each answer is compared with the
// answer to an ID that does not exist: they must be the same 404, byte for byte but for the ID,
// whatever the route and whatever the request's state.
func TestAnOutsiderIsToldNoRequestExists(t *testing.T) {
	e := start(t, testConfig(t, t.TempDir()))
	base := "http://" + e.HTTPAddr()
	token := func(user string) string {
		tok, err := e.Token(user)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	submit := func(user, body string) string {
		var created struct {
			ID string `json:"id"`
		}
		if status := httpJSON(t, "POST", base+"/v1/requests", token(user), body, &created); status != http.StatusAccepted {
			t.Fatalf("%s submitting: %d", user, status)
		}
		return created.ID
	}
	statusOf := func(id string) string {
		var view struct {
			Status string `json:"status"`
		}
		httpJSON(t, "GET", base+"/v1/requests/"+id, token("erin"), "", &view)
		return view.Status
	}
	granted := submit("alice", `{"entitlement":"analytics-read","duration":"1h","justification":"weekly revenue report"}`)
	pending := submit("frank", `{"entitlement":"reporting-db-credential","duration":"30m","justification":"nightly export",`+
		`"subject":{"kind":"service_account","id":"svc-reporting"}}`)
	manual := submit("alice", `{"entitlement":"mainframe-operator","duration":"1h","justification":"rerun the settlement batch"}`)
	poll.Until(t, 20*time.Second, "the security review of alice's manual request", func() bool {
		return statusOf(manual) == string(events.StatusPendingApproval)
	})
	if status := httpJSON(t, "POST", base+"/v1/requests/"+manual+"/reviews", token("carol"), `{"decision":"approve"}`, &struct{}{}); status != http.StatusCreated {
		t.Fatalf("carol approving alice's manual request: %d", status)
	}
	poll.Until(t, 20*time.Second, "alice's grant, frank's pending approval and the open grant task", func() bool {
		var tasks struct {
			Tasks []struct {
				ID string `json:"id"`
			} `json:"tasks"`
		}
		httpJSON(t, "GET", base+"/v1/tasks", token("dave"), "", &tasks)
		return statusOf(granted) == string(events.StatusGranted) && statusOf(pending) == string(events.StatusPendingApproval) &&
			len(tasks.Tasks) == 1 && tasks.Tasks[0].ID == manualtask.ID(manual, events.TaskGrant)
	})
	before := map[string]string{granted: statusOf(granted), pending: statusOf(pending), manual: statusOf(manual)}

	outsiders := []struct{ request, who string }{{granted, "dave"}, {pending, "dave"}, {manual, "bob"}}
	// pathID is the ID a route's pattern takes for request id: the request's own, or its task's.
	pathID := func(pattern, id string) (string, bool) {
		switch {
		case strings.HasPrefix(pattern, "/v1/requests/{id}"):
			return id, true
		case strings.HasPrefix(pattern, "/v1/tasks/{id}"):
			return manualtask.ID(id, events.TaskGrant), true
		case strings.HasPrefix(pattern, "/v1/revoke-tasks/{id}"):
			return manualtask.ID(id, events.TaskRevoke), true
		}
		return "", false
	}
	routes := 0
	for _, r := range gateway.Routes {
		method, pattern, _ := strings.Cut(r.Pattern, " ")
		if _, ok := pathID(pattern, ""); !ok {
			continue
		}
		routes++
		body := ""
		if method != http.MethodGet {
			body = "{}"
			if b, ok := outsiderBodies[pattern[strings.LastIndex(pattern, "/")+1:]]; ok {
				body = b
			}
		}
		for _, o := range outsiders {
			t.Run(r.Pattern+" on a "+before[o.request]+" request, as "+o.who, func(t *testing.T) {
				call := func(id string) (int, string) {
					t.Helper()
					pid, _ := pathID(pattern, id)
					status, h, b := httpCall(t, method, base+strings.Replace(pattern, "{id}", pid, 1), token(o.who), body)
					return status, h.Get("Content-Type") + "\n" + string(b)
				}
				unknown := events.NewID()
				status, answer := call(o.request)
				absentStatus, absent := call(unknown)
				if status != http.StatusNotFound || absentStatus != http.StatusNotFound || strings.ReplaceAll(answer, o.request, unknown) != absent {
					t.Fatalf("%s was answered %d %s\nfor a request that does not exist: %d %s", o.who, status, answer, absentStatus, absent)
				}
			})
		}
	}
	if routes < 9 {
		t.Fatalf("only %d routes name a request or a task; the gateway's table changed shape", routes)
	}
	// Nothing the outsiders sent changed anything.
	for id, status := range before {
		if got := statusOf(id); got != status {
			t.Errorf("an outsider's calls moved %s from %s to %s", id, status, got)
		}
	}
}
