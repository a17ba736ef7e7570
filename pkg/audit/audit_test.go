package audit

import (
	"bytes"
	"context"
	"encoding/json/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/natstest"
)

// history is a small real history on a real stream: three requests, each through a different path,
// signed by the service that owns each event.
type history struct {
	js      jetstream.JetStream
	signers map[events.Service]*events.Signer
	trust   *events.Verifier
	ids     map[string]string // story name → request ID
	now     time.Time
	// step appends p to id as svc, a second after the previous event.
	step func(id string, svc events.Service, p events.Payload, actor string)
}

// clock is a fake time the stores stamp events with, so expiry can pass without waiting.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newHistory(t *testing.T) *history {
	t.Helper()
	ctx := context.Background()
	ns := natstest.RunServer(t)
	_, js := natstest.Connect(t, ns.ClientURL())
	if err := eventstore.Provision(ctx, js, eventstore.DefaultSettings); err != nil {
		t.Fatal(err)
	}
	h := &history{js: js, signers: map[events.Service]*events.Signer{}, ids: map[string]string{}}
	var all []*events.Signer
	for _, svc := range events.Services {
		s, _ := events.GenerateSigner(svc, string(svc)+"-1")
		h.signers[svc] = s
		all = append(all, s)
	}
	clk := &clock{t: time.Now().Add(-2 * time.Hour)}
	// Keys are trusted from well before the fake clock's start; the broker stamps real times.
	h.trust, _ = events.NewVerifier(events.NewTrustFile(clk.Now().Add(-time.Hour), all...))
	stores := map[events.Service]*eventstore.Store{}
	for _, svc := range events.Services {
		st, err := eventstore.Open(ctx, js, eventstore.Config{Signer: h.signers[svc], Verifier: h.trust, Durability: eventstore.EmbeddedProbe(ns), Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		stores[svc] = st
	}
	step := func(id string, svc events.Service, p events.Payload, actor string) {
		t.Helper()
		clk.Add(time.Second)
		if _, err := stores[svc].Update(ctx, id, func(*events.Request) ([]events.Draft, error) {
			return []events.Draft{{Payload: p, Actor: actor}}, nil
		}); err != nil {
			t.Fatalf("%s on %s: %v", p.EventType().Name(), id, err)
		}
	}
	sub := func(requester, ent string) events.Submitted {
		s := events.Submitted{Requester: events.Principal{ID: requester, Groups: []string{"engineers"}},
			Subject: events.RequestSubject{Kind: events.SubjectHuman, ID: requester}, Entitlement: ent,
			Justification: "audit test", DurationSeconds: 600, Channel: "http"}
		s.RequestDigest = s.Digest()
		return s
	}
	h.step = step
	// granted and revoked at expiry
	a := events.NewID()
	h.ids["revoked"] = a
	step(a, events.Intake, sub("alice", "analytics-read"), "alice")
	step(a, events.Policy, events.PolicyDecided{Outcome: events.OutcomeAutoApproved, Reasons: []string{"low"}, EffectiveDurationSeconds: 600, PolicyRevision: "sha256:p"}, "")
	// The grant is stamped one tick later than now; it expires exactly at the end of its 600 s.
	expires := clk.Now().Add(time.Second + 600*time.Second)
	step(a, events.Fulfilment, events.Granted{Connector: "postgres", TargetRef: "r", Observed: events.Observed{Present: true}, ExpiresAt: expires, Fulfiller: "service:fulfilment"}, "")
	clk.Add(10 * time.Minute)
	step(a, events.Revoker, events.Expired{ExpiresAt: expires}, "")
	step(a, events.Revoker, events.Revoked{Reason: events.RevokeExpired, Observed: events.Observed{Present: false}}, "")
	// approved by two reviewers
	b := events.NewID()
	h.ids["approved"] = b
	bs := sub("frank", "payments-admin")
	step(b, events.Intake, bs, "frank")
	step(b, events.Policy, events.PolicyDecided{Outcome: events.OutcomeApprovalRequired, Reasons: []string{"high"}, EffectiveDurationSeconds: 600, PolicyRevision: "sha256:p",
		Stages: []events.Stage{{Name: "owners", Groups: []string{"payments-owners"}, MinApprovals: 1}}}, "")
	step(b, events.Approval, events.Reviewed{Reviewer: events.Principal{ID: "bob", Groups: []string{"payments-owners"}}, Stage: 0, Decision: events.ReviewApprove, RequestDigest: bs.RequestDigest}, "bob")
	step(b, events.Approval, events.Approved{Approvers: []string{"bob"}}, "")
	// denied
	c := events.NewID()
	h.ids["denied"] = c
	step(c, events.Intake, sub("dave", "payments-admin"), "dave")
	step(c, events.Policy, events.PolicyDecided{Outcome: events.OutcomeDeny, Reasons: []string{"no"}, PolicyRevision: "sha256:p"}, "")
	// Judged a minute after the last event: the approved request is still within its fulfilment SLO.
	h.now = clk.Now().Add(time.Minute)
	return h
}

func (h *history) export(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "export")
	x, err := NewExporter(dir, NewVerifier(h.trust, Options{Now: h.now, ExpectFirstSeq: 1}))
	if err != nil {
		t.Fatal(err)
	}
	if err := x.AddAll(func(fn func(events.Record) error) error { return ReadStream(context.Background(), h.js, Range{}, fn) }, runtime.GOMAXPROCS(0)); err != nil {
		t.Fatal(err)
	}
	if _, report, err := x.Finish(h.now); err != nil || !report.Clean() {
		t.Fatalf("exporting a clean history: %v %+v", err, report)
	}
	return dir
}

// verifyExport verifies an export one event at a time and with a worker per core (batched signatures),
// fails unless both report the same, and returns the report.
func verifyExport(t *testing.T, h *history, dir string) *Report {
	t.Helper()
	read := func(fn func(events.Record) error) error {
		f, err := os.Open(filepath.Join(dir, "events.jsonl"))
		if err != nil {
			return err
		}
		defer f.Close()
		return ReadExport(f, fn)
	}
	v := NewVerifier(h.trust, Options{Now: h.now, ExpectFirstSeq: 1})
	if err := read(func(r events.Record) error { v.Add(r); return nil }); err != nil {
		t.Fatal(err)
	}
	one := v.Finish()
	parallel, err := NewVerifier(h.trust, Options{Now: h.now, ExpectFirstSeq: 1}).Run(read, runtime.GOMAXPROCS(0))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(one, parallel); diff != "" {
		t.Fatalf("parallel verification differs (-one at a time +parallel):\n%s", diff)
	}
	return one
}

func TestCleanHistoryReportsNothing(t *testing.T) {
	h := newHistory(t)
	v := NewVerifier(h.trust, Options{Now: h.now, ExpectFirstSeq: 1})
	if err := ReadStream(context.Background(), h.js, Range{}, func(r events.Record) error { v.Add(r); return nil }); err != nil {
		t.Fatal(err)
	}
	if r := v.Finish(); !r.Clean() || r.Events != 11 || r.Requests != 3 {
		t.Fatalf("live verification: %+v", r)
	}
	dir := h.export(t)
	if _, err := CheckManifest(dir); err != nil {
		t.Fatal(err)
	}
	if r := verifyExport(t, h, dir); !r.Clean() || r.Events != 11 {
		t.Fatalf("offline verification of the export: %+v", r)
	}
}

// TestApprovedButNeverFulfilledIsReported: a request approved longer ago than the fulfilment SLO that
// was neither granted nor recorded failed is reported; one still within it, or ended, is not.
func TestApprovedButNeverFulfilledIsReported(t *testing.T) {
	h := newHistory(t)
	verify := func(now time.Time) *Report {
		v := NewVerifier(h.trust, Options{Now: now, ExpectFirstSeq: 1})
		if err := ReadStream(context.Background(), h.js, Range{}, func(r events.Record) error { v.Add(r); return nil }); err != nil {
			t.Fatal(err)
		}
		return v.Finish()
	}
	if r := verify(h.now.Add(DefaultFulfilmentSLO - 2*time.Minute)); !r.Clean() {
		t.Fatalf("within the SLO: %+v", r.Findings)
	}
	r := verify(h.now.Add(DefaultFulfilmentSLO))
	if len(r.Findings) != 1 || r.Findings[0].Kind != FindingFulfilmentOverdue || r.Findings[0].RequestID != h.ids["approved"] {
		t.Fatalf("past the SLO, want one fulfilment_overdue finding for the approved request: %+v", r.Findings)
	}
}

// TestDriftIsReportedNotFound: drift the reconciler recorded (access back after a revocation, revoked
// again; a stray role as a finding of its own) is listed by the verification, which stays clean, and the
// finding is not counted as a request.
func TestDriftIsReportedNotFound(t *testing.T) {
	h := newHistory(t)
	stray := events.DriftDetected{Kind: events.DriftUnexplained, Connector: "postgres", TargetRef: "role grantline_hotfix",
		Observed: events.Observed{Present: true, Detail: map[string]string{"grant_role": "grantline_hotfix", "member": "mallory"}},
		Action:   events.DriftRecorded}
	finding := events.FindingID(stray.Connector, stray.TargetRef)
	h.step(h.ids["revoked"], events.Revoker, events.DriftDetected{Kind: events.DriftAfterRevocation, Connector: "postgres",
		TargetRef: "role grantline_x", Observed: events.Observed{Present: true}, Action: events.DriftRevoke}, "")
	h.step(h.ids["revoked"], events.Revoker, events.Revoked{Reason: events.RevokeDrift, Observed: events.Observed{Present: false}}, "")
	h.step(finding, events.Revoker, stray, "")

	v := NewVerifier(h.trust, Options{Now: h.now, ExpectFirstSeq: 1})
	if err := ReadStream(context.Background(), h.js, Range{}, func(r events.Record) error { v.Add(r); return nil }); err != nil {
		t.Fatal(err)
	}
	r := v.Finish()
	if !r.Clean() || r.Events != 14 || r.Requests != 3 {
		t.Fatalf("verification: %d events, %d requests, findings %+v", r.Events, r.Requests, r.Findings)
	}
	if len(r.Drift) != 2 {
		t.Fatalf("drift %+v, want the access after revocation and the finding", r.Drift)
	}
	if d := r.Drift[0]; d.RequestID != h.ids["revoked"] || d.FindingID != "" || d.Kind != events.DriftAfterRevocation || d.Action != events.DriftRevoke || d.Seq != 12 {
		t.Fatalf("drift on the revoked request: %+v", d)
	}
	if d := r.Drift[1]; d.RequestID != "" || d.FindingID != finding || d.Kind != events.DriftUnexplained || d.TargetRef != stray.TargetRef || !d.Present {
		t.Fatalf("the finding: %+v", d)
	}
}

// TestTamperSuite alters an export in the ways an attacker or an accident would, and checks the first
// finding's position and kind. Lines are numbered from 1 like positions.
func TestTamperSuite(t *testing.T) {
	h := newHistory(t)
	clean := h.export(t)
	lines := func() [][]byte {
		b, _ := os.ReadFile(filepath.Join(clean, "events.jsonl"))
		return bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
	}
	cases := []struct {
		name     string
		tamper   func([][]byte) [][]byte
		position int
		kind     FindingKind
	}{
		{"a byte flipped in a body", func(l [][]byte) [][]byte {
			l[5] = bytes.Replace(l[5], []byte("payments-admin"), []byte("payments-admim"), 1)
			return l
		}, 6, FindingKind(events.ViolationBadSignature)},
		{"a deleted event", func(l [][]byte) [][]byte { return append(l[:2:2], l[3:]...) }, 3, FindingGap},
		{"two events swapped", func(l [][]byte) [][]byte { l[6], l[7] = l[7], l[6]; return l }, 7, FindingGap},
		{"an event inserted with a valid signature of a service not allowed its type", func(l [][]byte) [][]byte {
			forged := h.forge(t, h.ids["denied"], l[10], events.Intake, events.Approved{Approvers: []string{"dave"}}, 12)
			return append(l, forged)
		}, 12, FindingKind(events.ViolationTypeNotAllowed)},
		{"an old approval replayed under a new request", func(l [][]byte) [][]byte {
			// The approval service's own key, a correct chain link: only the lifecycle can tell.
			replay := h.forge(t, h.ids["denied"], l[10], events.Approval, events.Approved{Approvers: []string{"bob"}}, 12)
			return append(l, replay)
		}, 12, FindingInvariant},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "tampered")
			_ = os.MkdirAll(dir, 0o755)
			tampered := tc.tamper(lines())
			if err := os.WriteFile(filepath.Join(dir, "events.jsonl"), append(bytes.Join(tampered, []byte("\n")), '\n'), 0o644); err != nil {
				t.Fatal(err)
			}
			r := verifyExport(t, h, dir)
			if r.Clean() {
				t.Fatal("the tampered history verified clean")
			}
			if f := r.Findings[0]; f.Position != tc.position || f.Kind != tc.kind {
				t.Fatalf("first finding %s at %d (%s), want %s at %d; all: %+v", f.Kind, f.Position, f.Detail, tc.kind, tc.position, r.Findings)
			}
		})
	}

	t.Run("a request's tail cut off", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "cut")
		_ = os.MkdirAll(dir, 0o755)
		for _, name := range []string{"requests.csv", "campaigns.csv", "manifest.json"} {
			b, _ := os.ReadFile(filepath.Join(clean, name))
			_ = os.WriteFile(filepath.Join(dir, name), b, 0o644)
		}
		l := lines()
		_ = os.WriteFile(filepath.Join(dir, "events.jsonl"), append(bytes.Join(l[:len(l)-1], []byte("\n")), '\n'), 0o644)
		_, err := CheckManifest(dir)
		if err == nil || !strings.Contains(err.Error(), "events.jsonl does not match the manifest") {
			t.Fatalf("a cut tail: %v", err)
		}
	})
}

// forge seals a payload as the next event of request id after the stored line prev, signed by svc,
// and returns it as an export line at sequence seq.
func (h *history) forge(t *testing.T, id string, prev []byte, svc events.Service, p events.Payload, seq uint64) []byte {
	t.Helper()
	var prior ExportedEvent
	if err := json.Unmarshal(prev, &prior); err != nil {
		t.Fatal(err)
	}
	_, body, err := events.Draft{Payload: p}.Seal(id, svc, prior.StoredAt, events.ChainHash(prior.Body))
	if err != nil {
		t.Fatal(err)
	}
	line, _ := json.Marshal(ExportedEvent{Seq: seq, Subject: events.NATSSubject(id, p.EventType()), StoredAt: prior.StoredAt,
		Signature: h.signers[svc].Sign(body), Body: body})
	return line
}
