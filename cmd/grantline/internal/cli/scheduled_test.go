package cli

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/grantline/grantline/pkg/pgtest"
	"github.com/grantline/grantline/pkg/poll"
)

// TestScheduledAccessIsCheckedAtItsStart: alice and frank, both engineers when they ask, each ask for
// analytics-read from a few seconds later, which policy approves without review for engineers. Before
// the start alice leaves engineers in the directory (her token still says engineers: it was issued
// before). At the start policy checks both again: frank is granted on the PostgreSQL target; alice
// is denied, the request says why, and the target never shows her the role.
func TestScheduledAccessIsCheckedAtItsStart(t *testing.T) {
	demo := t.TempDir()
	if err := os.CopyFS(demo, os.DirFS(examples)); err != nil {
		t.Fatal(err)
	}
	dbURL := pgtest.New(t)
	_, _, api := startDevWith(t, dbURL, demo)
	target, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { target.Close(context.Background()) })

	directory := filepath.Join(demo, "directory.yaml")
	b, err := os.ReadFile(directory)
	if err != nil {
		t.Fatal(err)
	}
	left := strings.Replace(string(b), "groups: [engineers]\n    email: alice@example.test", "groups: []\n    email: alice@example.test", 1)
	if left == string(b) {
		t.Fatal("the demo directory no longer lists alice in engineers as this test expects")
	}
	if err := os.WriteFile(directory, []byte(left), 0o644); err != nil {
		t.Fatal(err)
	}

	start := time.Now().Add(4 * time.Second).UTC().Truncate(time.Second)
	submit := func(who string) string {
		_, out := run(t, append([]string{"request", "create", "--as", who, "--entitlement", "analytics-read", "--duration", "1h",
			"--justification", "weekly revenue report", "--start", start.Format(time.RFC3339)}, api...)...)
		id := regexp.MustCompile(`01[0-9A-HJKMNP-TV-Z]{24}`).FindString(out)
		if id == "" {
			t.Fatalf("%s's request: %s", who, out)
		}
		return id
	}
	alices, franks := submit("alice"), submit("frank")
	show := func(id string, json bool) string {
		args := []string{"request", "show", id, "--as", "erin"}
		if json {
			args = append(args, "--json")
		}
		_, out := run(t, append(args, api...)...)
		return out
	}
	poll.Until(t, 60*time.Second, "frank's grant after the start", func() bool { return strings.Contains(show(franks, true), `"status": "granted"`) })
	poll.Until(t, 60*time.Second, "alice's request denied at the start", func() bool { return strings.Contains(show(alices, true), `"status": "denied"`) })

	if !holdsAnalyticsThrough(t, target, "frank", franks) {
		t.Fatal("the target does not show frank's grant")
	}
	if holdsAnalyticsThrough(t, target, "alice", alices) {
		t.Fatal("the target shows alice the role her request was denied at its start")
	}
	out := show(alices, false)
	for _, want := range []string{"Start check", "no longer allowed, so not granted", "outside engineers", "from the directory"} {
		if !strings.Contains(out, want) {
			t.Fatalf("request show does not say %q:\n%s", want, out)
		}
	}
	if out := show(franks, false); !strings.Contains(out, "still allowed") {
		t.Fatalf("request show of frank's request:\n%s", out)
	}
}
