package routing_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/grantline/grantline/pkg/auth"
	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/services/notifier"
	"github.com/grantline/grantline/services/notifier/lookup"
	"github.com/grantline/grantline/services/notifier/routing"
)

// TestExampleRouting loads the shipped routing file with the demo directory and catalogue, and checks
// the routes people are told through.
func TestExampleRouting(t *testing.T) {
	f, err := routing.Load(filepath.Join("..", "..", "..", "examples", "notifications.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir, err := auth.LoadDirectory(filepath.Join("..", "..", "..", "examples", "directory.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalogue.Load(filepath.Join("..", "..", "..", "examples", "catalogue.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	people := lookup.NewDirectory(dir)
	if got := f.Routing.Timing; got != (notifier.Timing{ExpiryWarning: 15 * time.Minute, ReviewReminder: 4 * time.Hour, OverdueRepeat: time.Hour}) {
		t.Errorf("timing %+v", got)
	}
	if got := f.Routing.Escalation.Drift; len(got) != 1 || got[0] != "security" {
		t.Errorf("drift is escalated to %v, want security", got)
	}
	if id, ok := f.Routing.PersonBySlack("U0BOB"); !ok || id != "bob" {
		t.Errorf("U0BOB is %q, %v; want bob", id, ok)
	}
	for id := range f.Routing.People {
		if _, ok := people.Person(id); !ok {
			t.Errorf("the routing file routes %q, whom the directory does not know", id)
		}
	}
	var owners []string
	for _, p := range people.Members("payments-owners") {
		owners = append(owners, p.ID+" "+p.Email)
	}
	if diff := cmp.Diff([]string{"bob bob@example.test", "frank frank@example.test"}, owners); diff != "" {
		t.Errorf("payments-owners (-want +got):\n%s", diff)
	}
	if e, ok := lookup.NewCatalogue(cat).Entitlement("payments-admin"); !ok || e.OwnerGroups[0] != "payments-owners" {
		t.Errorf("payments-admin: %+v, %v", e, ok)
	}
}

// TestParseRefuses lists the routing files the notifier refuses to start with, and what it says.
func TestParseRefuses(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"a typo in a key", "default_channel: [email]\n", "field default_channel not found"},
		{"an unknown channel", "default_channels: [pigeon]\n", `channel "pigeon" is neither email nor slack`},
		{"a webhook as a person's channel", "people:\n  bob: {channels: [webhook]}\n", `channel "webhook"`},
		{"a Slack ID that is not one", "people:\n  bob: {slack: bob}\n", "is not a Slack user ID"},
		{"two people sharing a Slack ID", "people:\n  bob: {slack: U0BOB}\n  frank: {slack: U0BOB}\n", "already bob's"},
		{"a webhook without a URL", "webhooks:\n  - {name: siem}\n", "is not an absolute http(s) URL"},
		{"a webhook secret in the file", "webhooks:\n  - {name: siem, url: 'https://x.test', secret: 'hunter2!'}\n", "field secret not found"},
		{"two webhooks of one name", "webhooks:\n  - {name: siem, url: 'https://x.test'}\n  - {name: siem, url: 'https://y.test'}\n", "a second webhook"},
		{"a webhook hearing an unknown kind", "webhooks:\n  - {name: siem, url: 'https://x.test', kinds: [granted, grant]}\n", `unknown kind "grant"`},
		{"a reminder that is no duration", "reminders:\n  expiry_warning: soon\n", "is not a duration"},
		{"an empty file", "", "file is empty"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := routing.Parse([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse: %v, want an error saying %q", err, tc.want)
			}
		})
	}
}
