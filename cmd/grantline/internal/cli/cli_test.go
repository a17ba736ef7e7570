package cli

import (
	"context"
	"encoding/json/v2"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/grantline/grantline/cmd/grantline/internal/devmode"
	pgconnector "github.com/grantline/grantline/pkg/connector/postgres"
	"github.com/grantline/grantline/pkg/pgtest"
	"github.com/grantline/grantline/pkg/poll"
)

const examples = "../../../../examples"

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// startDev runs grantline dev for the test on free ports with a fresh database, and returns it, its
// data directory, and the flags that point CLI commands at it.
func startDev(t testing.TB) (*devmode.Env, string, []string) {
	t.Helper()
	return startDevOn(t, pgtest.New(t))
}

// startDevOn is startDev on the database at dbURL, which is also dev's demo PostgreSQL target.
func startDevOn(t testing.TB, dbURL string) (*devmode.Env, string, []string) {
	t.Helper()
	return startDevWith(t, dbURL, examples)
}

// startDevWith is startDevOn with the demo catalogue, directory and policies dev's services read from
// demo; the CLI's --as still mints tokens from the examples' directory.
func startDevWith(t testing.TB, dbURL, demo string) (*devmode.Env, string, []string) {
	t.Helper()
	dataDir := t.TempDir()
	t.Setenv("GRANTLINE_EXAMPLES", examples)
	env, err := devmode.Start(context.Background(), devmode.Config{DataDir: dataDir, HTTPAddr: "127.0.0.1:0", NATSPort: -1,
		Examples: demo, DatabaseURL: dbURL}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Close(context.Background()) })
	return env, dataDir, []string{"--server", "http://" + env.HTTPAddr(), "--data-dir", dataDir}
}

// holdsAnalyticsThrough is what the demo target shows, not what the evidence says: does member hold
// analytics_read through grant id's role? (Roles belong to the server, which other tests share: ask
// about this grant's.)
func holdsAnalyticsThrough(t *testing.T, target *pgx.Conn, member, id string) bool {
	t.Helper()
	var ok bool
	if err := target.QueryRow(context.Background(), `SELECT COALESCE((SELECT pg_has_role(m.oid, g.oid, 'MEMBER') AND pg_has_role(g.oid, r.oid, 'MEMBER')
		FROM pg_roles m, pg_roles g, pg_roles r WHERE m.rolname = $1 AND g.rolname = $2 AND r.rolname = 'analytics_read'), false)`,
		member, pgconnector.GrantRole(id)).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

// run executes the grantline command line in process and returns its exit code and output.
func run(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out, errOut strings.Builder
	code := Execute(context.Background(), args, &out, &errOut)
	return code, out.String() + errOut.String()
}

// TestRequestCommandsAgainstDev creates, shows and withdraws requests through the CLI against a
// running grantline dev, as the README tells a newcomer to.
func TestRequestCommandsAgainstDev(t *testing.T) {
	_, dataDir, api := startDev(t)

	code, out := run(t, append([]string{"request", "create", "--as", "alice", "--entitlement", "analytics-read",
		"--duration", "2h", "--justification", "weekly revenue report"}, api...)...)
	id := regexp.MustCompile(`01[0-9A-HJKMNP-TV-Z]{24}`).FindString(out)
	if code != 0 || id == "" {
		t.Fatalf("create: exit %d: %s", code, out)
	}
	poll.Until(t, 20*time.Second, "show to display the policy decision", func() bool {
		_, out = run(t, append([]string{"request", "show", id, "--as", "alice"}, api...)...)
		return strings.Contains(out, "auto_approved")
	})
	for _, want := range []string{"analytics-read", "alice", "weekly revenue report", "policy revision", "sha256:"} {
		if !strings.Contains(out, want) {
			t.Errorf("show does not display %q:\n%s", want, out)
		}
	}

	code, out = run(t, append([]string{"request", "show", id, "--as", "alice", "--json"}, api...)...)
	if code != 0 || !strings.Contains(out, `"outcome": "auto_approved"`) {
		t.Fatalf("show --json: exit %d: %s", code, out)
	}

	code, out = run(t, append([]string{"request", "create", "--as", "alice", "--again", id, "--duration", "1h"}, api...)...)
	again := regexp.MustCompile(`01[0-9A-HJKMNP-TV-Z]{24}`).FindString(out)
	if code != 0 || again == "" || again == id {
		t.Fatalf("create --again: exit %d: %s", code, out)
	}
	code, out = run(t, append([]string{"request", "show", again, "--as", "alice", "--json"}, api...)...)
	for _, want := range []string{`"entitlement": "analytics-read"`, `"justification": "weekly revenue report"`, `"duration_seconds": 3600`} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("the request asked again lacks %s (exit %d):\n%s", want, code, out)
		}
	}
	poll.Until(t, 20*time.Second, "the grant", func() bool {
		_, out = run(t, append([]string{"request", "show", id, "--as", "alice"}, api...)...)
		return strings.Contains(out, "Granted until")
	})
	code, out = run(t, append([]string{"request", "create", "--as", "alice", "--entitlement", "analytics-read",
		"--duration", "1h", "--justification", "the report run is not finished", "--extends", id}, api...)...)
	extension := regexp.MustCompile(`01[0-9A-HJKMNP-TV-Z]{24}`).FindString(out)
	if code != 0 || extension == "" || extension == id {
		t.Fatalf("extend: exit %d: %s", code, out)
	}
	if _, out = run(t, append([]string{"request", "show", extension, "--as", "alice"}, api...)...); !strings.Contains(out, "Extends") || !strings.Contains(out, id) {
		t.Errorf("show does not display what the extension extends:\n%s", out)
	}
	poll.Until(t, 20*time.Second, "request list --chain to show both", func() bool {
		_, out = run(t, append([]string{"request", "list", "--as", "alice", "--chain", extension}, api...)...)
		return strings.Contains(out, id) && strings.Contains(out, extension)
	})

	code, out = run(t, append([]string{"request", "create", "--as", "alice", "--entitlement", "analytics-read",
		"--duration", "9h", "--justification", "too long a request"}, api...)...)
	if code == 0 || !strings.Contains(out, "duration: 9h0m0s is longer than the 8h0m0s allowed") {
		t.Fatalf("an invalid request should fail with the field's problem: exit %d: %s", code, out)
	}

	poll.Until(t, 20*time.Second, "request list to show the request", func() bool {
		_, out = run(t, append([]string{"request", "list", "--as", "alice"}, api...)...)
		return strings.Contains(out, id) && strings.Contains(out, "analytics-read")
	})
	if _, out = run(t, append([]string{"request", "list", "--as", "dave"}, api...)...); strings.Contains(out, id) {
		t.Fatalf("dave sees alice's request in his list:\n%s", out)
	}
	if code, out := run(t, append([]string{"grant", "list", "--as", "erin"}, api...)...); code != 0 {
		t.Fatalf("grant list: exit %d: %s", code, out)
	}
	if code, out := run(t, append([]string{"audit", "who-had", "--entitlement", "payments-admin", "--as", "erin"}, api...)...); code != 0 || !strings.Contains(out, "Nobody held payments-admin") {
		t.Fatalf("who-had: exit %d: %s", code, out)
	}

	code, out = run(t, append([]string{"request", "withdraw", id, "--as", "bob"}, api...)...)
	if code == 0 || !strings.Contains(out, "Forbidden (HTTP 403)") {
		t.Fatalf("bob withdrawing alice's request: exit %d: %s", code, out)
	}

	code, out = run(t, "dev", "token", "carol", "--data-dir", dataDir, "--examples", examples)
	if code != 0 || strings.Count(strings.TrimSpace(out), ".") != 2 {
		t.Fatalf("dev token: exit %d: %s", code, out)
	}
	if code, out = run(t, "dev", "token", "mallory", "--data-dir", dataDir, "--examples", examples); code == 0 {
		t.Fatalf("a token for a user outside the directory: %s", out)
	}
}

// TestPolicyCommands runs the bundle's Rego tests and evaluates an input, as `grantline policy` does.
func TestPolicyCommands(t *testing.T) {
	code, out := run(t, "policy", "test", "--dir", examples+"/policies")
	if code != 0 || !strings.Contains(out, "0 failed") {
		t.Fatalf("policy test: exit %d: %s", code, out)
	}
	input := t.TempDir() + "/input.json"
	writeFile(t, input, `{"request":{"requester":{"id":"alice","groups":["engineers"]},"subject":{"kind":"human","id":"alice"},
		"entitlement":"analytics-read","justification":"weekly report","ticket":"","duration_seconds":3600,"start_at":null,
		"emergency":false,"channel":"http"},
		"entitlement":{"id":"analytics-read","description":"","system":"postgres/analytics","resource":"role analytics_read","risk":"low",
		"connector":"postgres","owner_groups":["analytics-owners"],"max_duration_seconds":28800,"min_duration_seconds":5,
		"subject_kinds":["human"]},"now":"2026-11-28T12:00:00Z","open_emergency_reviews":[]}`)
	code, out = run(t, "policy", "eval", input, "--dir", examples+"/policies")
	if code != 0 || !strings.Contains(out, `"auto_approved"`) {
		t.Fatalf("policy eval: exit %d: %s", code, out)
	}
}

// TestAuditCommandsAgainstDev verifies the live stream, exports it, verifies the export offline, and
// catches a byte changed in the export.
func TestAuditCommandsAgainstDev(t *testing.T) {
	env, _, api := startDev(t)
	_, out := run(t, append([]string{"request", "create", "--as", "alice", "--entitlement", "analytics-read",
		"--duration", "1h", "--justification", "evidence for the audit"}, api...)...)
	id := regexp.MustCompile(`01[0-9A-HJKMNP-TV-Z]{24}`).FindString(out)
	// Wait for the grant: after it nothing happens to the request for the hour it lasts, so the
	// history (submitted, policy_decided, granted) is stable while the test reads it.
	poll.Until(t, 20*time.Second, "the grant", func() bool {
		_, out = run(t, append([]string{"request", "show", id, "--as", "alice", "--json"}, api...)...)
		return strings.Contains(out, `"status": "granted"`)
	})
	audit := []string{"--nats", env.NATSURL(), "--trust", env.Keys().TrustFile}

	code, out := run(t, append([]string{"audit", "verify"}, audit...)...)
	if code != 0 || !strings.Contains(out, "3 events of 1 requests") || !strings.Contains(out, "nothing found") {
		t.Fatalf("verify: exit %d: %s", code, out)
	}
	code, out = run(t, append([]string{"policy", "whatif", "--bundle", examples + "/policies"}, audit...)...)
	if code != 0 || !strings.Contains(out, "reproduced all 1 exactly") || !strings.Contains(out, "No decision would change") {
		t.Fatalf("policy whatif with the bundle that decided: exit %d: %s", code, out)
	}
	code, out = run(t, append([]string{"audit", "replay", id}, audit...)...)
	if code != 0 || !strings.Contains(out, "submitted") || !strings.Contains(out, "policy_decided") || !strings.Contains(out, "/grantline/policy") {
		t.Fatalf("replay: exit %d: %s", code, out)
	}
	exportDir := filepath.Join(t.TempDir(), "evidence")
	code, out = run(t, append([]string{"audit", "export", "--out", exportDir}, audit...)...)
	if code != 0 || !strings.Contains(out, "Exported 3 events") {
		t.Fatalf("export: exit %d: %s", code, out)
	}
	code, out = run(t, append([]string{"audit", "verify", exportDir, "--json"}, audit...)...)
	if code != 0 || !strings.Contains(out, `"findings": []`) {
		t.Fatalf("verify export: exit %d: %s", code, out)
	}
	evs := filepath.Join(exportDir, "events.jsonl")
	b, _ := os.ReadFile(evs)
	writeFile(t, evs, strings.Replace(string(b), "evidence for the audit", "evidence for the audiT", 1))
	if code, out = run(t, append([]string{"audit", "verify", exportDir}, audit...)...); code == 0 || !strings.Contains(out, "does not match the manifest") {
		t.Fatalf("a tampered export: exit %d: %s", code, out)
	}
}

// TestBatchAgainstDev: erin asks for two entitlements in one submission; bob owns both, and his inbox
// lists the two requests together with their correlation; each is decided on its own.
func TestBatchAgainstDev(t *testing.T) {
	_, _, api := startDev(t)
	code, out := run(t, append([]string{"request", "create", "--as", "erin", "--entitlement", "analytics-read", "--entitlement", "payments-admin",
		"--duration", "1h", "--justification", "quarterly access review sample", "--idempotency-key", "q4-sample"}, api...)...)
	found := regexp.MustCompile(`01[0-9A-HJKMNP-TV-Z]{24}`).FindAllString(out, -1)
	if code != 0 || len(found) != 3 || !strings.Contains(out, "2 requests submitted together") {
		t.Fatalf("batch create: exit %d: %s", code, out)
	}
	correlation, analytics, payments := found[0], found[1], found[2]
	if _, again := run(t, append([]string{"request", "create", "--as", "erin", "--entitlement", "analytics-read", "--entitlement", "payments-admin",
		"--duration", "1h", "--justification", "quarterly access review sample", "--idempotency-key", "q4-sample"}, api...)...); again != out {
		t.Fatalf("a retried batch answers differently:\n%s\nfirst:\n%s", again, out)
	}
	poll.Until(t, 20*time.Second, "bob's inbox to list both requests", func() bool {
		_, out = run(t, append([]string{"review", "list", "--as", "bob"}, api...)...)
		return strings.Contains(out, analytics) && strings.Contains(out, payments)
	})
	if strings.Count(out, correlation) != 2 {
		t.Fatalf("the inbox does not show the two requests' correlation:\n%s", out)
	}
	if code, out := run(t, append([]string{"review", "approve", analytics, "--as", "bob"}, api...)...); code != 0 || !strings.Contains(out, "approved") {
		t.Fatalf("bob approving analytics-read: exit %d: %s", code, out)
	}
	_, out = run(t, append([]string{"request", "show", payments, "--as", "erin"}, api...)...)
	if !strings.Contains(out, "pending_approval") || !strings.Contains(out, correlation) {
		t.Fatalf("payments-admin is not decided on its own, or does not show its correlation:\n%s", out)
	}
}

// TestReviewCommandsAgainstDev: alice's payments-admin request needs an owner (bob) then security
// (carol); alice may not approve her own request through the CLI, and carol's inbox lists it.
func TestReviewCommandsAgainstDev(t *testing.T) {
	_, _, api := startDev(t)
	_, out := run(t, append([]string{"request", "create", "--as", "alice", "--entitlement", "payments-admin",
		"--duration", "1h", "--justification", "INC-42 stuck migration", "--ticket", "INC-42"}, api...)...)
	id := regexp.MustCompile(`01[0-9A-HJKMNP-TV-Z]{24}`).FindString(out)
	poll.Until(t, 20*time.Second, "bob's inbox to list the request", func() bool {
		_, out = run(t, append([]string{"review", "list", "--as", "bob"}, api...)...)
		return strings.Contains(out, id)
	})
	if code, out := run(t, append([]string{"review", "approve", id, "--as", "alice"}, api...)...); code == 0 || !strings.Contains(out, "HTTP 403") {
		t.Fatalf("alice approving her own request: exit %d: %s", code, out)
	}
	if code, out := run(t, append([]string{"review", "approve", id, "--as", "bob", "--comment", "owner ok"}, api...)...); code != 0 {
		t.Fatalf("bob approves: exit %d: %s", code, out)
	}
	if code, out := run(t, append([]string{"review", "approve", id, "--as", "carol", "--comment", "security ok"}, api...)...); code != 0 || !strings.Contains(out, "approved") {
		t.Fatalf("carol approves: exit %d: %s", code, out)
	}
	if code, out := run(t, append([]string{"review", "approve", id, "--as", "frank"}, api...)...); code == 0 || !strings.Contains(out, "HTTP 409") {
		t.Fatalf("a review after approval: exit %d: %s", code, out)
	}
	_, out = run(t, append([]string{"request", "show", id, "--as", "alice", "--json"}, api...)...)
	// Fulfilment may already have granted it: approved or granted, with both approvers recorded.
	approvedOrGranted := strings.Contains(out, `"status": "approved"`) || strings.Contains(out, `"status": "granted"`)
	if !approvedOrGranted || !strings.Contains(out, `"bob"`) || !strings.Contains(out, `"carol"`) {
		t.Fatalf("after two approvals: %s", out)
	}
}

// TestTaskAndRevokeCommandsAgainstDev: mainframe-operator is granted by hand: security approves, dave
// (operations) completes the task, alice ends it early with grantline revoke, and dave completes the
// revoke task with the same command (fulfilment lists it; the revoker completes it).
func TestTaskAndRevokeCommandsAgainstDev(t *testing.T) {
	_, _, api := startDev(t)
	_, out := run(t, append([]string{"request", "create", "--as", "alice", "--entitlement", "mainframe-operator",
		"--duration", "1h", "--justification", "rerun the settlement batch"}, api...)...)
	id := regexp.MustCompile(`01[0-9A-HJKMNP-TV-Z]{24}`).FindString(out)
	poll.Until(t, 20*time.Second, "carol's inbox", func() bool {
		_, out = run(t, append([]string{"review", "list", "--as", "carol"}, api...)...)
		return strings.Contains(out, id)
	})
	if code, out := run(t, append([]string{"review", "approve", id, "--as", "carol"}, api...)...); code != 0 {
		t.Fatalf("carol approves: %d %s", code, out)
	}
	var taskID string
	deadline := time.Now().Add(60 * time.Second)
	for taskID == "" {
		_, out = run(t, append([]string{"task", "list", "--as", "dave"}, api...)...)
		taskID = regexp.MustCompile(`\S*` + id + `\S*`).FindString(out)
		if taskID == "" && time.Now().After(deadline) {
			_, state := run(t, append([]string{"request", "show", id, "--as", "alice", "--json"}, api...)...)
			t.Fatalf("no task for operations within 60s; last task list:\n%s\nrequest:\n%s", out, state)
		}
		if taskID == "" {
			<-time.After(poll.Interval)
		}
	}
	if code, out := run(t, append([]string{"task", "complete", taskID, "--as", "alice", "--evidence", "did it myself"}, api...)...); code == 0 {
		t.Fatalf("the requester completed her own task: %s", out)
	}
	if code, out := run(t, append([]string{"task", "complete", taskID, "--as", "dave", "--evidence", "profile OPER01 added, change 4711"}, api...)...); code != 0 {
		t.Fatalf("dave completes: %d %s", code, out)
	}
	poll.Until(t, 20*time.Second, "the grant", func() bool {
		_, out = run(t, append([]string{"request", "show", id, "--as", "alice", "--json"}, api...)...)
		return strings.Contains(out, `"status": "granted"`) && strings.Contains(out, `"dave"`)
	})
	if code, out := run(t, append([]string{"revoke", id, "--as", "bob", "--reason", "not mine"}, api...)...); code == 0 {
		t.Fatalf("a stranger revoked alice's access: %s", out)
	}
	if code, out := run(t, append([]string{"revoke", id, "--as", "alice", "--reason", "batch finished"}, api...)...); code != 0 {
		t.Fatalf("alice revokes: %d %s", code, out)
	}
	// The revoke task is in the same list and completed with the same command, at the revoker.
	revokeTask := id + "-revoke"
	poll.Until(t, 20*time.Second, "the revoke task in dave's list", func() bool {
		_, out = run(t, append([]string{"task", "list", "--as", "dave"}, api...)...)
		return strings.Contains(out, revokeTask)
	})
	if code, out := run(t, append([]string{"task", "complete", revokeTask, "--as", "alice", "--evidence", "removed it myself"}, api...)...); code == 0 {
		t.Fatalf("the requester completed her own revoke task: %s", out)
	}
	code, out := run(t, append([]string{"task", "complete", revokeTask, "--as", "dave", "--evidence", "profile OPER01 removed, change 4712"}, api...)...)
	if code != 0 || !strings.Contains(out, "is revoked") {
		t.Fatalf("dave completes the revoke task: %d %s", code, out)
	}
	_, out = run(t, append([]string{"request", "show", id, "--as", "alice", "--json"}, api...)...)
	if !strings.Contains(out, `"status": "revoked"`) || !strings.Contains(out, "change 4712") {
		t.Fatalf("after the revoke task: %s", out)
	}
}

// TestCheckpointCommandsAgainstDev: dev's checkpointer signs the stream; audit verify checks it against
// the checkpoint stream and dev's directory witness, audit prove writes a request's proof and
// verify-proof checks it with the trust file alone, also after the broker is gone.
func TestCheckpointCommandsAgainstDev(t *testing.T) {
	env, dataDir, api := startDev(t)
	_, out := run(t, append([]string{"request", "create", "--as", "alice", "--entitlement", "analytics-read",
		"--duration", "1h", "--justification", "evidence with checkpoints"}, api...)...)
	id := regexp.MustCompile(`01[0-9A-HJKMNP-TV-Z]{24}`).FindString(out)
	poll.Until(t, 20*time.Second, "the grant", func() bool {
		_, out = run(t, append([]string{"request", "show", id, "--as", "alice", "--json"}, api...)...)
		return strings.Contains(out, `"status": "granted"`)
	})
	audit := []string{"--nats", env.NATSURL(), "--trust", env.Keys().TrustFile}
	verify := append([]string{"audit", "verify", "--checkpoints", "stream", "--checkpoints", devmode.WitnessDir(dataDir)}, audit...)
	var code int
	poll.Until(t, 30*time.Second, "a checkpoint of the 3 events", func() bool {
		code, out = run(t, verify...)
		return code == 0 && strings.Contains(out, "the latest covers 3 events")
	})
	if !strings.Contains(out, "nothing found") {
		t.Fatalf("verify against checkpoints: %s", out)
	}
	bundle := filepath.Join(t.TempDir(), "proof.json")
	if code, out = run(t, append([]string{"audit", "prove", id, "--out", bundle}, audit...)...); code != 0 {
		t.Fatalf("prove: exit %d: %s", code, out)
	}
	pack := filepath.Join(t.TempDir(), "pack")
	code, out = run(t, append([]string{"audit", "export", "--out", pack, "--controls", "--from", "2026-01-01", "--sign-key", env.Keys().ExporterKey,
		"--checkpoints", "stream"}, audit...)...)
	if code != 0 || !strings.Contains(out, "report.html") || !strings.Contains(out, "Signed as a whole by grantline-dev-exporter") {
		t.Fatalf("export --controls: exit %d: %s", code, out)
	}
	if html, _ := os.ReadFile(filepath.Join(pack, "report.html")); !strings.Contains(string(html), "1 requests submitted; 1 decided by policy-as-code") {
		t.Fatalf("the report does not count the request:\n%s", html)
	}
	env.Close(context.Background())
	code, out = run(t, "audit", "verify", pack, "--trust", env.Keys().TrustFile, "--checkpoints", devmode.WitnessDir(dataDir))
	if code != 0 || !strings.Contains(out, "signed by grantline-dev-exporter") || !strings.Contains(out, "nothing found") {
		t.Fatalf("verify the signed pack offline: exit %d: %s", code, out)
	}
	code, out = run(t, "audit", "verify-proof", bundle, "--trust", env.Keys().TrustFile)
	if code != 0 || !strings.Contains(out, "Proof holds: request "+id+" (granted, analytics-read of alice), 3 events") {
		t.Fatalf("verify-proof: exit %d: %s", code, out)
	}
	b, _ := os.ReadFile(bundle)
	writeFile(t, bundle, strings.Replace(string(b), `"leaf_index": 1`, `"leaf_index": 0`, 1))
	if code, out = run(t, "audit", "verify-proof", bundle, "--trust", env.Keys().TrustFile); code == 0 || !strings.Contains(out, "the proof does not hold") {
		t.Fatalf("an altered proof: exit %d: %s", code, out)
	}
}

// TestWitnessInit: a witness's key is made once and its verifier key printed for the trust file.
func TestWitnessInit(t *testing.T) {
	state := filepath.Join(t.TempDir(), "w")
	code, out := run(t, "witness", "init", "--name", "witness.example", "--state", state)
	if code != 0 || !regexp.MustCompile(`(?m)^witness\.example\+[0-9a-f]{8}\+\S+$`).MatchString(out) {
		t.Fatalf("init: exit %d: %s", code, out)
	}
	if code, out = run(t, "witness", "init", "--name", "witness.example", "--state", state); code == 0 || !strings.Contains(out, "already has a key") {
		t.Fatalf("a second init: exit %d: %s", code, out)
	}
}

// TestMassRevokeAgainstDev: offboarding alice is one command. Security (carol) revokes every active
// grant alice holds, sees each one's outcome as observed at the target, and frank's grant of the same
// entitlement is untouched; someone who may read none of them is told there is nothing to revoke.
func TestMassRevokeAgainstDev(t *testing.T) {
	dbURL := pgtest.New(t)
	_, _, api := startDevOn(t, dbURL)
	target, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { target.Close(context.Background()) })
	aliceHoldsRoleThrough := func(id string) bool { return holdsAnalyticsThrough(t, target, "alice", id) }
	submit := func(who string) string {
		_, out := run(t, append([]string{"request", "create", "--as", who, "--entitlement", "analytics-read",
			"--duration", "1h", "--justification", "weekly revenue report"}, api...)...)
		id := regexp.MustCompile(`01[0-9A-HJKMNP-TV-Z]{24}`).FindString(out)
		if id == "" {
			t.Fatalf("%s's request: %s", who, out)
		}
		return id
	}
	alices := []string{submit("alice"), submit("alice"), submit("alice")}
	franks := submit("frank")
	for _, id := range append([]string{franks}, alices...) {
		poll.Until(t, 30*time.Second, "the grant of "+id, func() bool {
			_, out := run(t, append([]string{"request", "show", id, "--as", "erin", "--json"}, api...)...)
			return strings.Contains(out, `"status": "granted"`)
		})
	}
	// The grants list is the read side's: wait until it has caught up with all four.
	poll.Until(t, 30*time.Second, "the read side to list the four grants", func() bool {
		_, out := run(t, append([]string{"grant", "list", "--as", "erin"}, api...)...)
		return strings.Count(out, "analytics-read") >= 4
	})

	for _, id := range alices {
		if !aliceHoldsRoleThrough(id) {
			t.Fatalf("the target does not show alice's grant %s before the revocation", id)
		}
	}
	if code, out := run(t, append([]string{"revoke", "--user", "alice", "--reason", "left the company", "--as", "dave"}, api...)...); code != 0 || !strings.Contains(out, "No active grant held by alice") {
		t.Fatalf("dave, who may read none of alice's grants: exit %d: %s", code, out)
	}
	if code, out := run(t, append([]string{"revoke", alices[0], "--user", "alice", "--reason", "x", "--as", "carol"}, api...)...); code == 0 || !strings.Contains(out, "exactly one") {
		t.Fatalf("a request ID and --user at once: exit %d: %s", code, out)
	}

	code, out := run(t, append([]string{"revoke", "--user", "alice", "--reason", "left the company", "--as", "carol"}, api...)...)
	if code != 0 || !strings.Contains(out, "3 of 3 revoked") || !strings.Contains(out, "revoked 3/3") {
		t.Fatalf("carol offboards alice: exit %d: %s", code, out)
	}
	for _, id := range alices {
		if !regexp.MustCompile(id + `\s+alice\s+analytics-read\s+revoked, gone from the target`).MatchString(out) {
			t.Errorf("no line for %s revoked and gone from the target:\n%s", id, out)
		}
		_, view := run(t, append([]string{"request", "show", id, "--as", "erin", "--json"}, api...)...)
		if !strings.Contains(view, `"status": "revoked"`) || !strings.Contains(view, `"reason": "early"`) {
			t.Errorf("%s after the mass revocation: %s", id, view)
		}
	}
	for _, id := range alices {
		if aliceHoldsRoleThrough(id) {
			t.Errorf("the target still shows alice holding analytics_read through %s after it was revoked", id)
		}
	}
	if strings.Contains(out, franks) {
		t.Errorf("frank's grant was in alice's revocation:\n%s", out)
	}
	if _, view := run(t, append([]string{"request", "show", franks, "--as", "erin", "--json"}, api...)...); !strings.Contains(view, `"status": "granted"`) {
		t.Errorf("frank's grant after alice's offboarding: %s", view)
	}
	poll.Until(t, 30*time.Second, "the read side to see alice's grants ended", func() bool {
		code, out = run(t, append([]string{"revoke", "--user", "alice", "--reason", "left the company", "--as", "carol"}, api...)...)
		return code == 0 && strings.Contains(out, "No active grant held by alice")
	})

	// A compromised target: every grant of the entitlement, for a script.
	code, out = run(t, append([]string{"revoke", "--entitlement", "analytics-read", "--reason", "INC-77", "--as", "carol", "--json"}, api...)...)
	var lines []struct {
		RequestID string `json:"request_id"`
		Holder    string `json:"holder"`
		Outcome   string `json:"outcome"`
	}
	// run gives stdout then stderr (the progress): the JSON is the first.
	jsonOut, _, _ := strings.Cut(out, "\n]\n")
	if err := json.Unmarshal([]byte(jsonOut+"]"), &lines); code != 0 || err != nil || len(lines) != 1 ||
		lines[0].RequestID != franks || lines[0].Holder != "frank" || lines[0].Outcome != "revoked" {
		t.Fatalf("revoking every analytics-read grant: exit %d, %v: %s", code, err, out)
	}
}
