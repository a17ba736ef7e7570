package audit

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/mod/sumdb/note"

	"github.com/grantline/grantline/pkg/checkpoint"
	"github.com/grantline/grantline/pkg/events"
)

// exportPack exports h's whole stream with a controls report for [since, until) into a new directory.
func exportPack(t *testing.T, h *history, since, until time.Time) (string, *Controls, *Report) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pack")
	c := NewControls(since, until)
	x, err := NewExporter(dir, NewVerifier(h.trust, Options{Now: h.now, ExpectFirstSeq: 1, Controls: c}))
	if err != nil {
		t.Fatal(err)
	}
	if err := ReadStream(context.Background(), h.js, Range{}, x.Add); err != nil {
		t.Fatal(err)
	}
	_, report, err := x.Finish(h.now)
	if err != nil {
		t.Fatal(err)
	}
	return dir, c, report
}

// TestControlsReportCounts: the report of the known history (a grant revoked at expiry, an approval
// by an owner, a denial) holds its figures, whole and for a period that ends before the second
// request.
func TestControlsReportCounts(t *testing.T) {
	h := newHistory(t)
	dir, c, report := exportPack(t, h, time.Time{}, time.Time{})
	got := c.Counts(report)
	want := map[string]int{
		"requests": 3, "auto_approved": 1, "approval_required": 1, "deny": 1, "reviews": 1, "reviewers": 1, "approved": 1,
		"grants": 1, "observed": 1, "revocations": 1, "gone": 1, "expired": 1, "active": 0, "emergencies": 0, "findings": 0,
	}
	have := map[string]int{
		"requests": got.Requests, "auto_approved": got.Decisions[events.OutcomeAutoApproved], "approval_required": got.Decisions[events.OutcomeApprovalRequired],
		"deny": got.Decisions[events.OutcomeDeny], "reviews": got.Reviews, "reviewers": got.Reviewers, "approved": got.Approved,
		"grants": got.Grants, "observed": got.GrantsObserved, "revocations": got.Revocations, "gone": got.RevocationsObservedGone,
		"expired": got.Expired, "active": got.ActiveAtEnd, "emergencies": got.Emergencies, "findings": got.Findings,
	}
	if diff := cmp.Diff(want, have); diff != "" {
		t.Fatalf("whole history (-want +got):\n%s", diff)
	}
	html, err := os.ReadFile(filepath.Join(dir, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"3 requests submitted; 3 decided by policy-as-code: 1 denied, 1 approval required, 1 auto-approved, 0 emergency",
		"1 approvals and 0 rejections from 1 reviews by 1 distinct reviewers",
		"1 grants, 1 observed present on the target", "1 revocations (expired 1), 1 observed gone from the target",
		"CC6.1", "CC6.2", "CC6.3", "A.5.15", "A.5.18", "AC-2", "AC-6", "AU-9", "drift detection", "not checked against signed checkpoints",
	} {
		if !strings.Contains(string(html), s) {
			t.Errorf("the report does not say %q", s)
		}
	}

	// The period ends when the second request (the approval) is submitted: the first request only.
	var second time.Time
	_ = ReadStream(context.Background(), h.js, Range{Subject: events.RequestFilter(h.ids["approved"])}, func(r events.Record) error {
		if ev, err := events.Decode(r.Body); err == nil && second.IsZero() {
			second = ev.Time
		}
		return nil
	})
	_, c, report = exportPack(t, h, time.Time{}, second)
	got = c.Counts(report)
	if got.Requests != 1 || got.Grants != 1 || got.Revocations != 1 || got.Reviews != 0 || got.Decisions[events.OutcomeDeny] != 0 {
		t.Fatalf("the period before the second request: %+v", got)
	}
}

// TestPackSignature: an evidence pack signed with an exporter key verifies with the trust file, and
// fails once any file is edited, the manifest included, or against a trust file without that key.
func TestPackSignature(t *testing.T) {
	h := newHistory(t)
	skey, vkey, _ := checkpoint.GenerateKey("exporter-test")
	signer, _ := note.NewSigner(skey)
	var signers []*events.Signer
	for _, s := range h.signers {
		signers = append(signers, s)
	}
	tf := events.NewTrustFile(time.Now().Add(-3*time.Hour), signers...)
	tf.Exporters = []string{vkey}
	trust, err := events.NewVerifier(tf)
	if err != nil {
		t.Fatal(err)
	}
	fresh := func() string {
		dir, _, _ := exportPack(t, h, time.Time{}, time.Time{})
		if err := SignPack(dir, signer); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	dir := fresh()
	if m, who, err := VerifyPack(dir, trust); err != nil || who != "exporter-test" || m.Files["report.html"] == "" {
		t.Fatalf("the signed pack: %v (%s, %+v)", err, who, m)
	}

	edit := func(dir, name, old, repl string) {
		b, _ := os.ReadFile(filepath.Join(dir, name))
		if !strings.Contains(string(b), old) {
			t.Fatalf("%s does not hold %q", name, old)
		}
		_ = os.WriteFile(filepath.Join(dir, name), []byte(strings.Replace(string(b), old, repl, 1)), 0o644)
	}
	dir = fresh()
	edit(dir, "report.html", "3 requests submitted", "2 requests submitted")
	if _, _, err := VerifyPack(dir, trust); err == nil || !strings.Contains(err.Error(), "report.html does not match the manifest") {
		t.Fatalf("an edited report: %v", err)
	}
	// Now the manifest too, so the files match it: the signature no longer does.
	b, _ := os.ReadFile(filepath.Join(dir, "manifest.json"))
	var signed Manifest
	if err := events.UnmarshalStrict(b, &signed); err != nil {
		t.Fatal(err)
	}
	sum, _ := fileSHA256(filepath.Join(dir, "report.html"))
	edit(dir, "manifest.json", signed.Files["report.html"], sum)
	if _, err := CheckManifest(dir); err != nil {
		t.Fatalf("the edited manifest should describe the edited files: %v", err)
	}
	if _, _, err := VerifyPack(dir, trust); err == nil || !strings.Contains(err.Error(), "not the manifest that was signed") {
		t.Fatalf("an edited manifest: %v", err)
	}
	dir = fresh()
	if _, _, err := VerifyPack(dir, h.trust); err == nil {
		t.Fatal("a pack verified against a trust file without its exporter key")
	}
	if err := os.Remove(filepath.Join(dir, "manifest.sig")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := VerifyPack(dir, trust); err != ErrUnsigned {
		t.Fatalf("an unsigned pack: %v", err)
	}
}

// TestExpiriesCountedOnce: an expiry is counted once whichever way it was recorded: revoked (reason
// expired) straight from granted, or expired before the retries of a failed first attempt and revoked
// after them.
func TestExpiriesCountedOnce(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	expires := t0.Add(time.Hour)
	s := events.Submitted{Requester: events.Principal{ID: "alice"}, Subject: events.RequestSubject{Kind: events.SubjectHuman, ID: "alice"},
		Entitlement: "analytics-read", DurationSeconds: 3600}
	s.RequestDigest = s.Digest()
	start := []events.Payload{s, events.PolicyDecided{Outcome: events.OutcomeAutoApproved, Reasons: []string{"low"}, EffectiveDurationSeconds: 3600, PolicyRevision: "sha256:p"},
		events.Granted{Connector: "postgres", TargetRef: "r", Observed: events.Observed{Present: true}, ExpiresAt: expires, Fulfiller: "service:fulfilment"}}
	gone := events.Revoked{Reason: events.RevokeExpired, Observed: events.Observed{Present: false}}
	c := NewControls(time.Time{}, time.Time{})
	for _, story := range [][]events.Payload{
		append(slices.Clone(start), gone),
		append(slices.Clone(start), events.Expired{ExpiresAt: expires}, gone),
	} {
		id := events.NewID()
		var evs []events.Event
		for i, p := range story {
			at := t0.Add(time.Duration(i) * time.Second)
			if i >= len(start) {
				at = expires.Add(time.Duration(i) * time.Second)
			}
			evs = append(evs, events.Event{Envelope: events.Envelope{ID: events.NewID(), Type: p.EventType(), Subject: id, Time: at, Actor: "alice"}, Payload: p})
			r, err := events.Fold(id, evs)
			if err != nil {
				t.Fatal(err)
			}
			c.observe(evs[i], r)
		}
	}
	if got := c.Counts(&Report{}); got.Expired != 2 || got.Revocations != 2 || got.RevocationsByReason[events.RevokeExpired] != 2 {
		t.Fatalf("expired %d, revocations %d (%v); want 2 expiries, 2 revocations", got.Expired, got.Revocations, got.RevocationsByReason)
	}
}
