package cli

import (
	"context"
	"encoding/csv"
	"encoding/json/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/grantline/grantline/pkg/pgtest"
	"github.com/grantline/grantline/pkg/poll"
)

// TestCampaignAgainstDev: an access review end to end on `grantline dev` and its PostgreSQL target.
// Carol (security) reviews every analytics-read grant: alice's two and frank's; the notifier e-mails
// bob, analytics-read's owner, to answer. Frank may not certify
// his own grant; bob (analytics-owners) keeps alice's first and revokes frank's, which is revoked at the
// target with reason review_revoked; nobody answers for alice's second, which the rule revokes at the
// deadline. audit verify is clean and the export's campaigns.csv holds the three outcomes.
func TestCampaignAgainstDev(t *testing.T) {
	dbURL := pgtest.New(t)
	env, _, api := startDevOn(t, dbURL)
	target, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { target.Close(context.Background()) })
	ulid := regexp.MustCompile(`01[0-9A-HJKMNP-TV-Z]{24}`)
	cli := func(args ...string) (int, string) { return run(t, append(args, api...)...) }
	show := func(id string) string {
		_, out := cli("request", "show", id, "--as", "erin", "--json")
		return out
	}
	grant := func(who string) string {
		_, out := cli("request", "create", "--as", who, "--entitlement", "analytics-read", "--duration", "1h", "--justification", "weekly revenue report")
		id := ulid.FindString(out)
		if id == "" {
			t.Fatalf("%s's request: %s", who, out)
		}
		poll.Until(t, 30*time.Second, "the grant of "+id, func() bool { return strings.Contains(show(id), `"status": "granted"`) })
		return id
	}
	kept, unanswered, franks := grant("alice"), grant("alice"), grant("frank")

	if code, out := cli("review", "campaign", "create", "--name", "analytics Q4", "--entitlement", "analytics-read", "--deadline", "20s", "--as", "bob"); code == 0 || !strings.Contains(out, "HTTP 403") {
		t.Fatalf("bob, an owner but no campaign admin, opens a campaign: exit %d: %s", code, out)
	}
	code, out := cli("review", "campaign", "create", "--name", "analytics Q4", "--entitlement", "analytics-read", "--deadline", "20s", "--as", "carol")
	campaign := ulid.FindString(out)
	if code != 0 || campaign == "" || !strings.Contains(out, "over 3 grants") {
		t.Fatalf("carol opens the campaign: exit %d: %s", code, out)
	}
	if code, out := cli("review", "campaign", "decide", campaign, franks, "keep", "--as", "frank"); code == 0 || !strings.Contains(out, "Separation of duties forbids this reviewer (HTTP 403)") {
		t.Fatalf("frank certifies his own grant: exit %d: %s", code, out)
	}
	if code, out := cli("review", "campaign", "decide", campaign, kept, "keep", "--note", "still on the report", "--as", "bob"); code != 0 || !strings.Contains(out, "kept") {
		t.Fatalf("bob keeps alice's grant: exit %d: %s", code, out)
	}
	if code, out := cli("review", "campaign", "decide", campaign, franks, "revoke", "--note", "moved teams", "--as", "bob"); code != 0 || !strings.Contains(out, "revoked") {
		t.Fatalf("bob revokes frank's grant: exit %d: %s", code, out)
	}
	revokedByReview := func(id string) bool {
		s := show(id)
		return strings.Contains(s, `"status": "revoked"`) && strings.Contains(s, `"reason": "review_revoked"`)
	}
	poll.Until(t, 30*time.Second, "frank's grant revoked by the review", func() bool { return revokedByReview(franks) })
	if holdsAnalyticsThrough(t, target, "frank", franks) {
		t.Fatal("the target still shows frank's revoked grant")
	}
	if code, out := cli("review", "campaign", "list", "--as", "bob"); code != 0 || !strings.Contains(out, campaign) || !strings.Contains(out, "analytics Q4") {
		t.Fatalf("bob lists his campaigns: exit %d: %s", code, out)
	}

	poll.Until(t, 60*time.Second, "the campaign to close at its deadline and revoke the unanswered grant", func() bool {
		_, out := cli("review", "campaign", "show", campaign, "--as", "carol")
		return strings.Contains(out, "(closed,") && revokedByReview(unanswered)
	})
	if holdsAnalyticsThrough(t, target, "alice", unanswered) || !holdsAnalyticsThrough(t, target, "alice", kept) {
		t.Fatal("the target shows the unanswered grant, or lost the kept one")
	}
	if !strings.Contains(show(kept), `"status": "granted"`) {
		t.Fatalf("the kept grant: %s", show(kept))
	}

	// The owners were told when it opened: bob, analytics-read's only owner, by e-mail through dev's
	// mail sink (asked after the decisions, which must beat the deadline).
	poll.Until(t, 30*time.Second, "bob's e-mail asking him to review", func() bool {
		resp, err := http.Get(env.MailURL())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var got struct {
			Mail []struct {
				To      []string `json:"to"`
				Subject string   `json:"subject"`
				Text    string   `json:"text"`
			} `json:"mail"`
		}
		if err := json.UnmarshalRead(resp.Body, &got); err != nil {
			t.Fatal(err)
		}
		for _, m := range got.Mail {
			if slices.Contains(m.To, "bob@example.test") && strings.Contains(m.Subject, `Access review "analytics Q4"`) &&
				strings.Contains(m.Text, "grantline review campaign decide "+campaign) {
				return true
			}
		}
		return false
	})
	audit := []string{"--nats", env.NATSURL(), "--trust", env.Keys().TrustFile}
	if code, out := run(t, append([]string{"audit", "verify"}, audit...)...); code != 0 || !strings.Contains(out, "nothing found") {
		t.Fatalf("audit verify: exit %d: %s", code, out)
	}
	dir := filepath.Join(t.TempDir(), "evidence")
	if code, out := run(t, append([]string{"audit", "export", "--out", dir}, audit...)...); code != 0 {
		t.Fatalf("audit export: exit %d: %s", code, out)
	}
	f, err := os.Open(filepath.Join(dir, "campaigns.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	outcomes := map[string]string{}
	for _, row := range rows[1:] {
		if row[0] == campaign {
			outcomes[row[5]] = row[9] + " " + row[10]
		}
	}
	want := map[string]string{kept: "kept bob", franks: "revoked bob", unanswered: "revoked_unanswered "}
	for id, w := range want {
		if outcomes[id] != w {
			t.Errorf("campaigns.csv says %q for %s, want %q (all: %v)", outcomes[id], id, w, outcomes)
		}
	}
}
