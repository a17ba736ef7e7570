package intake

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/events"
)

var now = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func demoCatalogue(t *testing.T) *catalogue.Catalogue {
	t.Helper()
	c, err := catalogue.Load("../../examples/catalogue.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var alice = Requester{ID: "alice", Groups: []string{"engineers"}}

func good() Body {
	return Body{Entitlement: "analytics-read", Justification: "weekly revenue report", Duration: "2h", Ticket: "OPS-1"}
}

func TestValidateAccepts(t *testing.T) {
	cat := demoCatalogue(t)
	cases := []struct {
		name  string
		body  func(*Body)
		check func(*testing.T, events.Submitted)
	}{
		{"a request for oneself", func(*Body) {}, func(t *testing.T, s events.Submitted) {
			if s.Subject != (events.RequestSubject{Kind: events.SubjectHuman, ID: "alice"}) || s.DurationSeconds != 7200 || s.Requester.ID != "alice" {
				t.Fatalf("%+v", s)
			}
		}},
		{"an ISO 8601 duration", func(b *Body) { b.Duration = "PT1H30M" }, func(t *testing.T, s events.Submitted) {
			if s.DurationSeconds != 5400 {
				t.Fatalf("duration %d", s.DurationSeconds)
			}
		}},
		{"a credential for a service account", func(b *Body) {
			b.Entitlement, b.Duration = "reporting-db-credential", "30m"
			b.Subject = &SubjectBody{Kind: events.SubjectServiceAccount, ID: "svc-reporting"}
		}, func(t *testing.T, s events.Submitted) {
			if s.Subject.Owner != "payments-owners" || s.Subject.Kind != events.SubjectServiceAccount {
				t.Fatalf("subject %+v", s.Subject)
			}
		}},
		{"a start tomorrow, in another zone", func(b *Body) { b.Start = "2026-11-29T09:00:00+01:00" }, func(t *testing.T, s events.Submitted) {
			if s.StartAt == nil || !s.StartAt.Equal(time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)) || s.StartAt.Location() != time.UTC {
				t.Fatalf("start %v", s.StartAt)
			}
		}},
		{"the shortest demo grant", func(b *Body) { b.Duration = "5s" }, func(t *testing.T, s events.Submitted) {}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := good()
			tc.body(&b)
			s, err := Validate(b, alice, "http", cat, now)
			if err != nil {
				t.Fatal(err)
			}
			if s.RequestDigest != s.Digest() || s.Channel != "http" {
				t.Fatalf("digest or channel wrong: %+v", s)
			}
			tc.check(t, s)
		})
	}
}

// TestValidateRefuses is bad-input.md §1 (I2, I10–I14) for the fields intake owns: each row is a
// submission that must be refused, naming the field.
func TestValidateRefuses(t *testing.T) {
	cat := demoCatalogue(t)
	cases := []struct {
		name  string
		body  func(*Body)
		field string
	}{
		{"no entitlement", func(b *Body) { b.Entitlement = "" }, "entitlement"},
		{"an entitlement not in the catalogue", func(b *Body) { b.Entitlement = "root-everywhere" }, "entitlement"},
		{"a wildcard entitlement (I13)", func(b *Body) { b.Entitlement = "*" }, "entitlement"},
		{"a path in the entitlement (I13)", func(b *Body) { b.Entitlement = "../payments-admin" }, "entitlement"},
		{"a Cyrillic а in the entitlement (I12)", func(b *Body) { b.Entitlement = "аnalytics-read" }, "entitlement"},
		{"a full-width entitlement (I12)", func(b *Body) { b.Entitlement = "ａnalytics-read" }, "entitlement"},
		{"no justification", func(b *Body) { b.Justification = "   " }, "justification"},
		{"a one-character justification", func(b *Body) { b.Justification = "." }, "justification"},
		{"a huge justification (I2)", func(b *Body) { b.Justification = strings.Repeat("why ", 600) }, "justification"},
		{"a bidi override in the justification (I12)", func(b *Body) { b.Justification = "report \u202eevil\u202c text" }, "justification"},
		{"a zero-width space in the justification (I12)", func(b *Body) { b.Justification = "weekly\u200breport here" }, "justification"},
		{"a huge ticket (I2)", func(b *Body) { b.Ticket = strings.Repeat("T", 200) }, "ticket"},
		{"no duration (I10)", func(b *Body) { b.Duration = "" }, "duration"},
		{"a zero duration (I11)", func(b *Body) { b.Duration = "0s" }, "duration"},
		{"a negative duration (I11)", func(b *Body) { b.Duration = "-1h" }, "duration"},
		{"over the catalogue maximum by a second (I11)", func(b *Body) { b.Duration = "8h0m1s" }, "duration"},
		{"an overflowing duration (I11)", func(b *Body) { b.Duration = "2562048h" }, "duration"},
		{"a fractional second", func(b *Body) { b.Duration = "1.5s" }, "duration"},
		{"below the minimum", func(b *Body) { b.Duration = "1s" }, "duration"},
		{"not a duration", func(b *Body) { b.Duration = "forever" }, "duration"},
		{"a bare ISO P", func(b *Body) { b.Duration = "P" }, "duration"},
		{"a start in the past (I10)", func(b *Body) { b.Start = "2026-11-28T11:59:59Z" }, "start"},
		{"a start equal to now (I10)", func(b *Body) { b.Start = "2026-11-28T12:00:00Z" }, "start"},
		{"a start too far ahead (I10)", func(b *Body) { b.Start = "2027-06-01T00:00:00Z" }, "start"},
		{"a start without a zone (I11)", func(b *Body) { b.Start = "2026-11-29T09:00:00" }, "start"},
		{"a start in another format (I11)", func(b *Body) { b.Start = "29/11/2026 09:00" }, "start"},
		{"a leap second (I11)", func(b *Body) { b.Start = "2026-12-31T23:59:60Z" }, "start"},
		{"a request for another person (I7)", func(b *Body) { b.Subject = &SubjectBody{Kind: events.SubjectHuman, ID: "bob"} }, "subject"},
		{"an unknown service account", func(b *Body) {
			b.Entitlement = "reporting-db-credential"
			b.Subject = &SubjectBody{Kind: events.SubjectServiceAccount, ID: "svc-unknown"}
		}, "subject.id"},
		{"a confusable service account (I12)", func(b *Body) {
			b.Entitlement = "reporting-db-credential"
			b.Subject = &SubjectBody{Kind: events.SubjectServiceAccount, ID: "svc-rеporting"}
		}, "subject.id"},
		{"a human for a service-account entitlement", func(b *Body) { b.Entitlement, b.Duration = "reporting-db-credential", "30m" }, "subject"},
		{"a service account for a human entitlement", func(b *Body) { b.Subject = &SubjectBody{Kind: events.SubjectServiceAccount, ID: "svc-reporting"} }, "subject"},
		{"an unknown subject kind", func(b *Body) { b.Subject = &SubjectBody{Kind: "robot", ID: "r2"} }, "subject.kind"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := good()
			tc.body(&b)
			_, err := Validate(b, alice, "http", cat, now)
			var inv *InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("Validate = %v, want an *InvalidError", err)
			}
			for _, f := range inv.Fields {
				if f.Field == tc.field {
					return
				}
			}
			t.Fatalf("no error for %q in %v", tc.field, err)
		})
	}
}

// TestValidateBatch: a submission for several entitlements is one request each, or nothing at all;
// each row is a list and what becomes of it.
func TestValidateBatch(t *testing.T) {
	cat := demoCatalogue(t)
	batch := func(ents ...string) BatchBody {
		return BatchBody{Entitlements: ents, Justification: "onboarding to the payments team", Duration: "1h", Ticket: "OPS-9"}
	}
	cases := []struct {
		name string
		body BatchBody
		// refused names the fields of the refusal; nil when the batch is accepted.
		refused []string
	}{
		{"two entitlements", batch("analytics-read", "payments-admin"), nil},
		{"three, one of them done by hand", batch("analytics-read", "payments-admin", "mainframe-operator"), nil},
		{"a duplicate", batch("analytics-read", "payments-admin", "analytics-read"), []string{"entitlements[2]"}},
		{"an unknown entitlement", batch("analytics-read", "root-everywhere"), []string{"entitlements[1]"}},
		{"one entitlement is no batch", batch("analytics-read"), []string{"entitlements"}},
		{"more than the maximum", batch("a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"), []string{"entitlements", "entitlements[0]"}},
		{"a duration too long for one of them", func() BatchBody { b := batch("analytics-read", "payments-admin"); b.Duration = "3h"; return b }(), []string{"duration"}},
		{"a subject one of them cannot have", func() BatchBody {
			b := batch("reporting-db-credential", "analytics-read")
			b.Subject = &SubjectBody{Kind: events.SubjectServiceAccount, ID: "svc-reporting"}
			return b
		}(), []string{"subject"}},
		{"a short justification, said once", func() BatchBody { b := batch("analytics-read", "payments-admin"); b.Justification = "x"; return b }(), []string{"justification"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			subs, err := ValidateBatch(tc.body, alice, "http", cat, now)
			if tc.refused == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if len(subs) != len(tc.body.Entitlements) {
					t.Fatalf("%d requests for %d entitlements", len(subs), len(tc.body.Entitlements))
				}
				for i, s := range subs {
					if s.Entitlement != tc.body.Entitlements[i] || s.RequestDigest != s.Digest() {
						t.Fatalf("request %d: %+v", i, s)
					}
				}
				return
			}
			var inv *InvalidError
			if !errors.As(err, &inv) || subs != nil {
				t.Fatalf("got %d requests and %v, want the whole batch refused", len(subs), err)
			}
			var fields []string
			for _, f := range inv.Fields {
				if !slices.Contains(fields, f.Field) {
					fields = append(fields, f.Field)
				}
			}
			for _, want := range tc.refused {
				if !slices.Contains(fields, want) {
					t.Fatalf("refusal on %v, want one on %s: %v", fields, want, err)
				}
			}
			if tc.name == "a short justification, said once" && len(inv.Fields) != 1 {
				t.Fatalf("the same problem is reported %d times: %v", len(inv.Fields), err)
			}
		})
	}
	a, _ := ValidateBatch(batch("analytics-read", "payments-admin"), alice, "http", cat, now)
	b, _ := ValidateBatch(batch("payments-admin", "analytics-read"), alice, "http", cat, now)
	if BatchDigest(a) == BatchDigest(b) || BatchDigest(a) != BatchDigest(slices.Clone(a)) {
		t.Fatal("the batch digest does not name the requests in order")
	}
}
