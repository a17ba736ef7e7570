package cli

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/pglocal"
	"github.com/grantline/grantline/pkg/poll"
)

// TestStoppedDatabaseIsNamed: with the read side's PostgreSQL stopped, the calls that need it (request
// and grant lists) answer 503 naming the database, which the CLI says; what does not need it (a
// request read from its events, a new submission) keeps working.
func TestStoppedDatabaseIsNamed(t *testing.T) {
	ctx := context.Background()
	db, err := pglocal.Start(ctx, pglocal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Stop(context.Background()) })
	url, err := db.CreateDatabase(ctx, "grantline")
	if err != nil {
		t.Fatal(err)
	}
	_, _, api := startDevOn(t, url)
	create := func(why string) string {
		t.Helper()
		code, out := run(t, append([]string{"request", "create", "--as", "alice", "--entitlement", "analytics-read", "--duration", "1h",
			"--justification", why}, api...)...)
		id := regexp.MustCompile(`01[0-9A-HJKMNP-TV-Z]{24}`).FindString(out)
		if code != 0 || id == "" {
			t.Fatalf("create: exit %d: %s", code, out)
		}
		return id
	}
	id := create("before the database stops")
	poll.Until(t, 20*time.Second, "request list to show the request", func() bool {
		_, out := run(t, append([]string{"request", "list", "--as", "alice"}, api...)...)
		return strings.Contains(out, id)
	})

	if err := db.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"request", "list", "--as", "alice"}, {"grant", "list", "--as", "erin"}} {
		code, out := run(t, append(args, api...)...)
		if code == 0 || !strings.Contains(out, "The database is unavailable; try again in 5 s (HTTP 503)") {
			t.Errorf("%s with the database stopped: exit %d: %s", strings.Join(args, " "), code, out)
		}
	}
	if code, out := run(t, append([]string{"request", "show", id, "--as", "alice"}, api...)...); code != 0 || !strings.Contains(out, "analytics-read") {
		t.Errorf("request show with the database stopped: exit %d: %s", code, out)
	}
	later := create("while the database is stopped")
	if code, out := run(t, append([]string{"request", "show", later, "--as", "alice"}, api...)...); code != 0 || !strings.Contains(out, "analytics-read") {
		t.Errorf("a request submitted while the database is stopped: exit %d: %s", code, out)
	}
}
