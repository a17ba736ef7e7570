package devmode

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/cmd/grantline/internal/gateway"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/poll"
)

// outsiderBodies are bodies each per-request route would accept, so that a refusal is about the
// request and not about the body. A route added without a row here is sent "{}" and fails the test
// if that body is refused first: add its row.
var outsiderBodies = map[string]string{
	"withdraw":    `{"reason":"mine now"}`,
	"revoke":      `{"reason":"mine now"}`,
	"reviews":     `{"decision":"approve","comment":"looks fine"}`,
	"post-review": `{"outcome":"ratified","reason":"looks fine"}`,
}

// TestAnOutsiderIsToldNoRequestExists calls every route of the public API that names a request
// (gateway.Routes, so a new route is covered the day it is added) as dave, who may see neither
// alice's granted request nor frank's pending one, and compares each answer with the answer to a
// request ID that does not exist: they must be the same 404, byte for byte but for the ID, whatever
// the route and whatever the request's state.
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
	statusOf := func(id, user string) string {
		var view struct {
			Status string `json:"status"`
		}
		httpJSON(t, "GET", base+"/v1/requests/"+id, token(user), "", &view)
		return view.Status
	}
	granted := submit("alice", `{"entitlement":"analytics-read","duration":"1h","justification":"weekly revenue report"}`)
	pending := submit("frank", `{"entitlement":"reporting-db-credential","duration":"30m","justification":"nightly export",`+
		`"subject":{"kind":"service_account","id":"svc-reporting"}}`)
	poll.Until(t, 20*time.Second, "alice's grant and frank's pending approval", func() bool {
		return statusOf(granted, "alice") == string(events.StatusGranted) && statusOf(pending, "frank") == string(events.StatusPendingApproval)
	})

	call := func(method, path, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token("dave"))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type") + "\n" + string(b)
	}
	routes := 0
	for _, r := range gateway.Routes {
		method, pattern, _ := strings.Cut(r.Pattern, " ")
		if !strings.HasPrefix(pattern, "/v1/requests/{id}") {
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
		for _, id := range []string{granted, pending} {
			t.Run(r.Pattern+" on a "+statusOf(id, "erin")+" request", func(t *testing.T) {
				unknown := events.NewID()
				status, answer := call(method, strings.Replace(pattern, "{id}", id, 1), body)
				absentStatus, absent := call(method, strings.Replace(pattern, "{id}", unknown, 1), body)
				if status != http.StatusNotFound || absentStatus != http.StatusNotFound || strings.ReplaceAll(answer, id, unknown) != absent {
					t.Fatalf("dave was answered %d %s\nfor a request that does not exist: %d %s", status, answer, absentStatus, absent)
				}
			})
		}
	}
	if routes < 7 {
		t.Fatalf("only %d routes name a request; the gateway's table changed shape", routes)
	}
	// Nothing dave sent changed anything: both requests are where they were.
	if statusOf(granted, "alice") != string(events.StatusGranted) || statusOf(pending, "frank") != string(events.StatusPendingApproval) {
		t.Fatal("an outsider's calls changed a request")
	}
}
