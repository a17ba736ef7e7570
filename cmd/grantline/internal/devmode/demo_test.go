package devmode

import (
	"encoding/json/v2"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/poll"
)

// TestDemoCasesAreDecidedByPolicy drives grantline dev over HTTP as the demo's people, and checks that
// each demo case ends in the policy outcome the README promises. Rows run in order: the second
// emergency is denied because the first one's post-review is still open.
func TestDemoCasesAreDecidedByPolicy(t *testing.T) {
	e := start(t, testConfig(t, t.TempDir()))
	cases := []struct {
		who, body, outcome string
		stages             int
	}{
		{"alice", `{"entitlement":"analytics-read","duration":"2h","justification":"weekly revenue report"}`, "auto_approved", 0},
		{"bob", `{"entitlement":"analytics-read","duration":"2h","justification":"check the owners' dashboard"}`, "approval_required", 1},
		{"alice", `{"entitlement":"payments-admin","duration":"1h","justification":"INC-42 stuck migration","ticket":"INC-42"}`, "approval_required", 2},
		{"alice", `{"entitlement":"payments-admin","duration":"20m","justification":"INC-43 payments are down","emergency":true}`, "emergency", 0},
		{"alice", `{"entitlement":"payments-admin","duration":"20m","justification":"INC-44 payments down again","emergency":true}`, "deny", 0},
		{"frank", `{"entitlement":"reporting-db-credential","duration":"30m","justification":"nightly export to finance","subject":{"kind":"service_account","id":"svc-reporting"}}`, "approval_required", 1},
		{"alice", `{"entitlement":"mainframe-operator","duration":"1h","justification":"rerun the settlement batch"}`, "approval_required", 1},
		{"alice", `{"entitlement":"analytics-read","duration":"1h","justification":"no emergency path exists","emergency":true}`, "deny", 0},
	}
	for _, tc := range cases {
		t.Run(tc.who+" "+tc.outcome, func(t *testing.T) {
			token, err := e.Token(tc.who)
			if err != nil {
				t.Fatal(err)
			}
			var created struct {
				ID string `json:"id"`
			}
			if status := httpJSON(t, "POST", "http://"+e.HTTPAddr()+"/v1/requests", token, tc.body, &created); status != http.StatusAccepted {
				t.Fatalf("submit answered %d", status)
			}
			var view struct {
				Status   string `json:"status"`
				Decision *struct {
					Outcome        string   `json:"outcome"`
					Reasons        []string `json:"reasons"`
					Stages         []any    `json:"stages"`
					PolicyRevision string   `json:"policy_revision"`
				} `json:"decision"`
			}
			poll.Until(t, 20*time.Second, "a policy decision on "+created.ID, func() bool {
				httpJSON(t, "GET", "http://"+e.HTTPAddr()+"/v1/requests/"+created.ID, token, "", &view)
				return view.Decision != nil
			})
			d := view.Decision
			if d.Outcome != tc.outcome || len(d.Stages) != tc.stages || !strings.HasPrefix(d.PolicyRevision, "sha256:") {
				t.Fatalf("decided %s with %d stages (revision %q, reasons %v); want %s with %d", d.Outcome, len(d.Stages), d.PolicyRevision, d.Reasons, tc.outcome, tc.stages)
			}
		})
	}
}

func httpJSON(t *testing.T, method, url, token, body string, out any) int {
	t.Helper()
	status, _, b := httpCall(t, method, url, token, body)
	if status < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, url, err, b)
		}
	}
	return status
}

// httpCall sends body as JSON with token and returns the status, the headers and the body answered.
func httpCall(t *testing.T, method, url, token, body string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// TestDemoGrantIsRevokedAtExpiry: in grantline dev, alice's auto-approved analytics-read is granted on
// the demo PostgreSQL target for five seconds, observed there, and revoked at expiry.
func TestDemoGrantIsRevokedAtExpiry(t *testing.T) {
	e := start(t, testConfig(t, t.TempDir()))
	token, _ := e.Token("alice")
	var created struct {
		ID string `json:"id"`
	}
	body := `{"entitlement":"analytics-read","duration":"5s","justification":"watch expiry happen"}`
	if status := httpJSON(t, "POST", "http://"+e.HTTPAddr()+"/v1/requests", token, body, &created); status != http.StatusAccepted {
		t.Fatalf("submit answered %d", status)
	}
	var view struct {
		Status string `json:"status"`
		Grant  *struct {
			Observed struct {
				Present bool `json:"present"`
			} `json:"observed"`
		} `json:"grant"`
		Revocation *struct {
			Reason   string `json:"reason"`
			Observed struct {
				Present bool `json:"present"`
			} `json:"observed"`
		} `json:"revocation"`
	}
	show := func() { httpJSON(t, "GET", "http://"+e.HTTPAddr()+"/v1/requests/"+created.ID, token, "", &view) }
	poll.Until(t, 20*time.Second, "the grant", func() bool { show(); return view.Grant != nil })
	if !view.Grant.Observed.Present {
		t.Fatal("the grant was not observed on the target")
	}
	poll.Until(t, 30*time.Second, "the revocation at expiry", func() bool { show(); return view.Status == "revoked" })
	if view.Revocation == nil || view.Revocation.Reason != "expired" || view.Revocation.Observed.Present {
		t.Fatalf("revocation %+v", view.Revocation)
	}
}

// TestDevMailsThePeopleOfARequest: in grantline dev, alice's payments-admin request asks its owners
// (bob and frank) and tells alice it awaits them, by e-mail through the local mail sink; GET /dev/mail
// on the dev origin lists that mail, newest first, as a newcomer reads it.
func TestDevMailsThePeopleOfARequest(t *testing.T) {
	e := start(t, testConfig(t, t.TempDir()))
	token, _ := e.Token("alice")
	var created struct {
		ID string `json:"id"`
	}
	body := `{"entitlement":"payments-admin","duration":"1h","justification":"INC-42 stuck migration","ticket":"INC-42"}`
	if status := httpJSON(t, "POST", "http://"+e.HTTPAddr()+"/v1/requests", token, body, &created); status != http.StatusAccepted {
		t.Fatalf("submit answered %d", status)
	}
	type mail struct {
		To       []string  `json:"to"`
		Subject  string    `json:"subject"`
		Text     string    `json:"text"`
		Received time.Time `json:"received"`
	}
	var listed struct {
		Mail []mail `json:"mail"`
	}
	// about lists the mailboxes told of the request, with what they read.
	about := func() map[string]string {
		code, b := get(t, "http://"+e.HTTPAddr()+MailPath)
		if code != http.StatusOK {
			t.Fatalf("GET %s answered %d: %s", MailPath, code, b)
		}
		if err := json.Unmarshal([]byte(b), &listed); err != nil {
			t.Fatalf("GET %s: %v: %s", MailPath, err, b)
		}
		out := map[string]string{}
		for _, m := range listed.Mail {
			if strings.Contains(m.Text, "Request: "+created.ID) {
				for _, to := range m.To {
					out[to] = m.Subject + "\n" + m.Text
				}
			}
		}
		return out
	}
	var told map[string]string
	poll.Until(t, 30*time.Second, "mail to bob, frank and alice at "+MailPath, func() bool {
		told = about()
		return len(told) == 3
	})
	for _, owner := range []string{"bob@example.test", "frank@example.test"} {
		if !strings.Contains(told[owner], "payments-admin") {
			t.Errorf("%s was told %q, want a review request for payments-admin", owner, told[owner])
		}
	}
	if _, ok := told["alice@example.test"]; !ok {
		t.Errorf("alice was not told her request awaits approval: %v", told)
	}
	for i := 1; i < len(listed.Mail); i++ {
		if listed.Mail[i].Received.After(listed.Mail[i-1].Received) {
			t.Errorf("%s lists mail %d received after mail %d: not newest first", MailPath, i, i-1)
		}
	}
}
