package catalogue

import (
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/events"
)

func TestDemoCatalogueLoads(t *testing.T) {
	c, err := Load("../../examples/catalogue.yaml")
	if err != nil {
		t.Fatal(err)
	}
	admin, ok := c.Entitlement("payments-admin")
	if !ok || admin.MaxDuration.Std() != 2*time.Hour || admin.Emergency == nil || admin.Emergency.MaxDuration.Std() != 30*time.Minute {
		t.Fatalf("payments-admin = %+v", admin)
	}
	if admin.HeldAtMost() != 4*time.Hour {
		t.Fatalf("payments-admin is held at most %s through extensions, want 4h", admin.HeldAtMost())
	}
	cred, _ := c.Entitlement("reporting-db-credential")
	if cred.HeldAtMost() != cred.MaxDuration.Std() {
		t.Fatalf("without max_total, extensions reach max_duration only; got %s", cred.HeldAtMost())
	}
	if cred.AllowsSubject(events.SubjectHuman) || !cred.AllowsSubject(events.SubjectServiceAccount) {
		t.Fatal("the credential is for service accounts only")
	}
	if sa, ok := c.ServiceAccount("svc-reporting"); !ok || sa.Owner != "payments-owners" {
		t.Fatalf("svc-reporting = %+v", sa)
	}
}

// TestParseRefuses: each row is a catalogue mistake that must stop loading, with a message naming it.
func TestParseRefuses(t *testing.T) {
	valid := `entitlements:
  - id: db-read
    system: postgres/db
    resource: role r
    risk: low
    connector: postgres
    owner_groups: [owners]
    max_duration: 1h
    subject_kinds: [human]
`
	cases := []struct{ name, yaml, says string }{
		{"unknown key", strings.Replace(valid, "risk: low", "risk: low\n    approved: true", 1), "approved"},
		{"bad id", strings.Replace(valid, "id: db-read", "id: DB_Read", 1), "lower-case"},
		{"wildcard id", strings.Replace(valid, "id: db-read", `id: "*"`, 1), "lower-case"},
		{"unknown risk", strings.Replace(valid, "risk: low", "risk: spicy", 1), "risk"},
		{"unknown connector", strings.Replace(valid, "connector: postgres", "connector: ldap", 1), "connector"},
		{"manual without fulfillers", strings.Replace(valid, "connector: postgres", "connector: manual", 1), "fulfiller_groups"},
		{"no max duration", strings.Replace(valid, "max_duration: 1h", "max_duration: 0s", 1), "max_duration"},
		{"not a duration", strings.Replace(valid, "max_duration: 1h", "max_duration: forever", 1), "duration"},
		{"max total shorter than one grant", strings.Replace(valid, "max_duration: 1h", "max_duration: 1h\n    max_total: 30m", 1), "max_total"},
		{"unknown subject kind", strings.Replace(valid, "[human]", "[robot]", 1), "subject kind"},
		{"emergency longer than normal", valid + "    emergency: {max_duration: 2h, review_groups: [security], review_within: 24h}\n", "emergency"},
		{"duplicate id", valid + strings.TrimPrefix(valid, "entitlements:\n"), "twice"},
		{"service account without owner", valid + "service_accounts:\n  - {id: svc-x, kind: service_account}\n", "owner"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("Parse = %v, want an error mentioning %q", err, tc.says)
			}
		})
	}
	if _, err := Parse([]byte(valid)); err != nil {
		t.Fatalf("the valid base case fails: %v", err)
	}
}

func TestDurationJSONRoundTrip(t *testing.T) {
	d := Duration(90 * time.Minute)
	b, err := d.MarshalJSON()
	if err != nil || string(b) != "5400" {
		t.Fatalf("marshal: %s %v", b, err)
	}
	var back Duration
	if err := back.UnmarshalJSON(b); err != nil || back != d {
		t.Fatalf("unmarshal: %v %v", back, err)
	}
	for _, bad := range []string{"-1", "1.5", `"1h"`, "99999999999999999999"} {
		if err := back.UnmarshalJSON([]byte(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
