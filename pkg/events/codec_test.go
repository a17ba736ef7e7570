package events

import (
	"bytes"
	"encoding/json/v2"
	"errors"
	"strings"
	"testing"
	"time"
)

// validBody returns a sealed, well-formed submitted event.
func validBody(t testing.TB) []byte {
	t.Helper()
	_, body, err := Draft{Payload: submittedPayload(false), Actor: "alice"}.Seal(testRequestID, Intake, t0, GenesisHash(testRequestID))
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func TestDecodeRoundTrip(t *testing.T) {
	ev, err := Decode(validBody(t))
	if err != nil {
		t.Fatal(err)
	}
	sub, ok := ev.Payload.(Submitted)
	if !ok || sub.Entitlement != "pg-prod-admin" || ev.Actor != "alice" || ev.Source != "/grantline/intake" {
		t.Fatalf("decoded %#v", ev)
	}
}

// TestDecodeRefuses is bad-input.md §1 I2–I6 and §2 E1–E2 applied to stored and incoming events: each
// row is an input that must be refused as malformed, never silently fixed up.
func TestDecodeRefuses(t *testing.T) {
	body := string(validBody(t))
	replace := func(old, new string) string {
		if !strings.Contains(body, old) {
			t.Fatalf("fixture lacks %q", old)
		}
		return strings.Replace(body, old, new, 1)
	}
	cases := []struct{ name, input string }{
		{"unknown envelope member", replace(`"specversion"`, `"approved":true,"specversion"`)},
		{"unknown data member (a forged state)", replace(`"entitlement"`, `"state":"APPROVED","entitlement"`)},
		{"unknown data member (a forged requester)", replace(`"justification"`, `"approved_by":"bob","justification"`)},
		{"duplicate envelope member", replace(`"specversion":"1.0"`, `"specversion":"1.0","specversion":"1.0"`)},
		{"duplicate data member", replace(`"entitlement":"pg-prod-admin"`, `"entitlement":"pg-prod-read","entitlement":"pg-prod-admin"`)},
		{"case-variant member", replace(`"entitlement"`, `"Entitlement"`)},
		{"trailing data", body + `{}`},
		{"trailing garbage", body + "\x00"},
		{"two values", body + body},
		{"invalid UTF-8", replace(`INC-42: repair`, "INC-42: \xff repair")},
		{"oversize", replace(`"justification":"`, `"justification":"`+strings.Repeat("x", MaxEventSize))},
		{"unknown type", replace(`"type":"io.grantline.request.submitted"`, `"type":"io.grantline.request.approved_v999"`)},
		{"wrong dataschema", replace(`submitted.json`, `granted.json`)},
		{"missing prevhash", replace(`"prevhash"`, `"prevhashx"`)},
		{"subject is not a request ID", replace(`"subject":"`+testRequestID, `"subject":"a.b.>`)},
		{"wrong spec version", replace(`"specversion":"1.0"`, `"specversion":"0.3"`)},
		{"data of the wrong type", replace(`"duration_seconds":7200`, `"duration_seconds":"7200"`)},
		{"not JSON", "not json"},
		{"empty", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode([]byte(tc.input))
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestDigestBindsSubstance(t *testing.T) {
	base := submittedPayload(false)
	start := t0.Add(time.Hour)
	for name, change := range map[string]func(*Submitted){
		"entitlement":   func(s *Submitted) { s.Entitlement = "pg-prod-read" },
		"duration":      func(s *Submitted) { s.DurationSeconds++ },
		"justification": func(s *Submitted) { s.Justification += "." },
		"subject":       func(s *Submitted) { s.Subject.ID = "bob" },
		"start":         func(s *Submitted) { s.StartAt = &start },
		"emergency":     func(s *Submitted) { s.Emergency = true },
		"requester":     func(s *Submitted) { s.Requester.ID = "bob" },
	} {
		changed := base
		change(&changed)
		if changed.Digest() == base.Digest() {
			t.Errorf("changing the %s does not change the digest", name)
		}
	}
	regrouped := base
	regrouped.Requester.Groups = []string{"other"}
	if regrouped.Digest() != base.Digest() {
		t.Error("the requester's groups are context and must not change the digest")
	}
	local := base
	inZone := start.In(time.FixedZone("CET", 3600))
	local.StartAt, base.StartAt = &inZone, &start
	if local.Digest() != base.Digest() {
		t.Error("the same instant in another zone changed the digest")
	}
}

// FuzzDecode feeds arbitrary bytes to the decoder: it must never panic, and whatever it accepts must
// survive a re-encode and decode unchanged. The seed corpus lives in testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	f.Add(validBody(f))
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := Decode(body)
		if err != nil {
			return
		}
		_, again, err := Draft{Payload: ev.Payload, Actor: ev.Actor, CausationID: ev.CausationID}.Seal(ev.Subject, Intake, ev.Time, ev.PrevHash)
		if err != nil {
			if len(body) > MaxEventSize/2 {
				return // re-encoding may legitimately grow past the limit
			}
			t.Fatalf("accepted event does not re-encode: %v", err)
		}
		ev2, err := Decode(again)
		if err != nil {
			t.Fatalf("re-encoded event does not decode: %v\n%s", err, again)
		}
		first, _ := json.Marshal(ev.Payload)
		second, _ := json.Marshal(ev2.Payload)
		if ev2.Type != ev.Type || !bytes.Equal(first, second) {
			t.Fatalf("round trip changed the event:\n%s\n%s", first, second)
		}
	})
}
