package web

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/services/console"
	"github.com/grantline/grantline/services/console/apiclient"
	"github.com/grantline/grantline/services/console/session"
	"github.com/grantline/grantline/services/console/signin"
)

// renderer is a console that renders pages; it reaches no service.
func renderer(t *testing.T) *Console {
	t.Helper()
	api, err := apiclient.New(apiclient.Config{BaseURL: "http://services.invalid"})
	if err != nil {
		t.Fatal(err)
	}
	flow, err := signin.New(context.Background(), signin.Config{Issuer: "http://idp.invalid", ClientID: "grantline",
		PublicURL: "http://localhost:8080", MaxAge: time.Hour}, nil, session.Cookies{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	trust, _ := events.NewVerifier(events.TrustFile{})
	c, err := New(Config{API: api, SignIn: flow, Catalogue: &catalogue.Catalogue{}, Trust: trust})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestTheAuditPageListsFindings: the findings question lists each finding with the target's name for
// the access and its evidence, or says there is none.
func TestTheAuditPageListsFindings(t *testing.T) {
	c := renderer(t)
	id := events.FindingID("postgres", "role grantline_hotfix")
	page := auditPage{frame: frame{Title: "Audit"}, Q: "findings", Findings: []apiclient.Finding{{ID: id, Connector: "postgres",
		TargetRef: "role grantline_hotfix", FoundAt: time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC),
		Observed: events.Observed{Present: true, Detail: map[string]string{"member": "mallory", "role": "payments_admin"}}}}}
	rec := httptest.NewRecorder()
	c.render(rec, http.StatusOK, "audit", page)
	for _, w := range []string{"<code>" + id + "</code>", "postgres: role grantline_hotfix", "gives access; member mallory; role payments_admin"} {
		if !strings.Contains(rec.Body.String(), w) {
			t.Errorf("the page lacks %q:\n%s", w, rec.Body.String())
		}
	}
	page.Findings = nil
	rec = httptest.NewRecorder()
	c.render(rec, http.StatusOK, "audit", page)
	if !strings.Contains(rec.Body.String(), "No finding.") {
		t.Errorf("an empty list does not say so:\n%s", rec.Body.String())
	}
}

// TestTheEvidencePageShowsBothVerdicts: the evidence page states the read side's verdict and the
// console's own check of the same bytes, and says so, with the likely reasons, when they disagree.
// The rendering alone is tested here; the browser tests open the page on a running system.
func TestTheEvidencePageShowsBothVerdicts(t *testing.T) {
	c := renderer(t)
	verified := console.Verdict{Verified: true}
	cases := []struct {
		name     string
		readSide apiclient.Verification
		own      console.Verdict
		want     []string
		notWant  []string
	}{
		{"both verified", apiclient.Verification{Verified: true}, verified,
			[]string{`id="read-side-verdict" role="status">Verified by the read side`, `id="console-verdict" role="status">Checked again by this console`},
			[]string{"The two disagree"}},
		{"both found the same forgery", apiclient.Verification{Kind: "type_not_allowed", Position: 3, Seq: 41, Detail: "key x may not emit approved"},
			console.Verdict{Kind: "type_not_allowed", Position: 3, Detail: "key x may not emit approved"},
			[]string{"The read side's verification fails at event 3 (stream sequence 41): type_not_allowed: key x may not emit approved",
				"This console's check against its trust file fails at event 3: type_not_allowed"},
			[]string{"The two disagree"}},
		{"the read side vouches for a key the console's trust file does not know", apiclient.Verification{Verified: true},
			console.Verdict{Kind: "unknown_key", Position: 1, Detail: `key "intake-x" is not in the trust file`},
			[]string{"Verified by the read side", "fails at event 1: unknown_key: key &#34;intake-x&#34; is not in the trust file",
				`role="alert">The two disagree.`}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			page := auditRequestPage{frame: frame{Title: "Evidence"}, RequestID: "01JTESTREQUEST0000000000000", Verification: tc.readSide,
				Own: tc.own, Agree: tc.own.Agrees(console.Verdict{Verified: tc.readSide.Verified, Kind: tc.readSide.Kind, Position: tc.readSide.Position})}
			c.render(rec, http.StatusOK, "audit_request", page)
			body := rec.Body.String()
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("the page lacks %q:\n%s", w, body)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(body, w) {
					t.Errorf("the page says %q", w)
				}
			}
		})
	}
}
