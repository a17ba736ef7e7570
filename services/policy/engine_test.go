package policy_test

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"

	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/services/policy"
)

// The demo bundle, catalogue and directory that `grantline dev` runs with.
const (
	demoBundle    = "../../examples/policies"
	demoCatalogue = "../../examples/catalogue.yaml"
	demoDirectory = "../../examples/directory.yaml"
)

var now = time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)

// demo is the demo world: its catalogue and the groups of each person in its directory.
type demo struct {
	cat    *catalogue.Catalogue
	groups map[string][]string
}

func loadDemo(t testing.TB) demo {
	t.Helper()
	cat, err := catalogue.Load(demoCatalogue)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(demoDirectory)
	if err != nil {
		t.Fatal(err)
	}
	var dir struct {
		Users []struct {
			ID     string   `yaml:"id"`
			Name   string   `yaml:"name"`
			Groups []string `yaml:"groups"`
		} `yaml:"users"`
	}
	if err := yaml.Unmarshal(b, &dir); err != nil {
		t.Fatal(err)
	}
	d := demo{cat: cat, groups: map[string][]string{}}
	for _, u := range dir.Users {
		d.groups[u.ID] = u.Groups
	}
	return d
}

func loadEngine(t testing.TB, dir string, opts ...policy.Option) *policy.Engine {
	t.Helper()
	e, err := policy.Load(context.Background(), dir, opts...)
	if err != nil {
		t.Fatalf("load %s: %v", dir, err)
	}
	return e
}

// ask is one person's request, as a scenario names it.
type ask struct {
	who         string
	entitlement string
	minutes     int64
	// subject is the service account the request is for; empty means the requester themselves.
	subject   string
	emergency bool
	open      []string
	// extends is the active grant the request extends, if any (see extending).
	extends *events.Extension
}

// extending is a grant of original minutes, held since heldFor minutes before now, to be extended.
func extending(original, heldFor int64) *events.Extension {
	since := now.Add(-time.Duration(heldFor) * time.Minute)
	return &events.Extension{RequestID: "01KEXTENDED000000000000000", HeldSince: since,
		ExpiresAt: since.Add(time.Duration(original) * time.Minute), DurationSeconds: original * 60}
}

func (d demo) input(a ask) policy.Input {
	sub := events.Submitted{
		Requester:   events.Principal{ID: a.who, Groups: d.groups[a.who]},
		Subject:     events.RequestSubject{Kind: events.SubjectHuman, ID: a.who},
		Entitlement: a.entitlement, Justification: "scenario", Ticket: "T-1",
		DurationSeconds: a.minutes * 60, Emergency: a.emergency, Channel: "http", Extends: a.extends,
	}
	if a.subject != "" {
		sa, ok := d.cat.ServiceAccount(a.subject)
		if !ok {
			sa = catalogue.ServiceAccount{ID: a.subject, Kind: events.SubjectServiceAccount, Owner: "nobody"}
		}
		sub.Subject = events.RequestSubject{Kind: sa.Kind, ID: sa.ID, Owner: sa.Owner}
	}
	var ent *catalogue.Entitlement
	if e, ok := d.cat.Entitlement(a.entitlement); ok {
		ent = &e
	}
	return policy.NewInput(sub, ent, now, a.open)
}

func owners(groups ...string) events.Stage {
	return events.Stage{Name: "owners", Groups: groups, MinApprovals: 1}
}

var security = events.Stage{Name: "security", Groups: []string{"security"}, MinApprovals: 1}

// TestDemoPolicy is the demo policy as an auditor reads it: who asks for what, and what the policy
// decides, on the real bundle and catalogue of examples/.
func TestDemoPolicy(t *testing.T) {
	d := loadDemo(t)
	engine := loadEngine(t, demoBundle)
	day := int64(24 * 3600)

	tests := []struct {
		name     string
		ask      ask
		outcome  events.Outcome
		stages   []events.Stage
		ordered  bool
		duration int64 // effective, in minutes
		review   *policy.PostReview
		reason   string // a reason must contain this
	}{
		// analytics-read (low risk)
		{name: "an engineer reads analytics for 4h without review",
			ask: ask{who: "alice", entitlement: "analytics-read", minutes: 240}, outcome: events.OutcomeAutoApproved, duration: 240,
			reason: "alice is in engineers"},
		{name: "an engineer reads analytics for the full 8h without review",
			ask: ask{who: "frank", entitlement: "analytics-read", minutes: 480}, outcome: events.OutcomeAutoApproved, duration: 480},
		{name: "an auditor reading analytics needs one of its owners",
			ask: ask{who: "erin", entitlement: "analytics-read", minutes: 60}, outcome: events.OutcomeApprovalRequired,
			stages: []events.Stage{owners("analytics-owners")}, duration: 60},
		{name: "analytics for 9h is over its 8h maximum",
			ask: ask{who: "alice", entitlement: "analytics-read", minutes: 540}, outcome: events.OutcomeDeny, reason: "at most 28800 seconds"},
		{name: "analytics has no emergency path",
			ask: ask{who: "alice", entitlement: "analytics-read", minutes: 60, emergency: true}, outcome: events.OutcomeDeny, reason: "no emergency path"},

		// payments-admin (high risk)
		{name: "payments admin needs its owners, then security",
			ask: ask{who: "alice", entitlement: "payments-admin", minutes: 60}, outcome: events.OutcomeApprovalRequired,
			stages: []events.Stage{owners("payments-owners"), security}, ordered: true, duration: 60},
		{name: "an owner asking for payments admin still needs both stages",
			ask: ask{who: "bob", entitlement: "payments-admin", minutes: 120}, outcome: events.OutcomeApprovalRequired,
			stages: []events.Stage{owners("payments-owners"), security}, ordered: true, duration: 120},
		{name: "payments admin for 3h is over its 2h maximum",
			ask: ask{who: "alice", entitlement: "payments-admin", minutes: 180}, outcome: events.OutcomeDeny, reason: "at most 7200 seconds"},
		{name: "emergency payments admin is cut to 30 minutes and post-reviewed by security within 24h",
			ask: ask{who: "alice", entitlement: "payments-admin", minutes: 60, emergency: true}, outcome: events.OutcomeEmergency,
			duration: 30, review: &policy.PostReview{Groups: []string{"security"}, WithinSeconds: day}},
		{name: "a 10 minute emergency keeps its 10 minutes",
			ask: ask{who: "alice", entitlement: "payments-admin", minutes: 10, emergency: true}, outcome: events.OutcomeEmergency,
			duration: 10, review: &policy.PostReview{Groups: []string{"security"}, WithinSeconds: day}},
		{name: "a second emergency while the first awaits its post-review is denied",
			ask:     ask{who: "alice", entitlement: "payments-admin", minutes: 60, emergency: true, open: []string{"01KFIRSTEMERGENCY000000000"}},
			outcome: events.OutcomeDeny, reason: "open emergency review (01KFIRSTEMERGENCY000000000)"},

		// reporting-db-credential
		{name: "a credential for svc-reporting needs its owning team",
			ask: ask{who: "frank", entitlement: "reporting-db-credential", minutes: 30, subject: "svc-reporting"}, outcome: events.OutcomeApprovalRequired,
			stages: []events.Stage{owners("payments-owners")}, duration: 30},
		{name: "a credential for another service account is denied",
			ask: ask{who: "frank", entitlement: "reporting-db-credential", minutes: 30, subject: "svc-billing"}, outcome: events.OutcomeDeny,
			reason: "only to svc-reporting"},
		{name: "a reporting credential for a person is denied",
			ask: ask{who: "alice", entitlement: "reporting-db-credential", minutes: 30}, outcome: events.OutcomeDeny,
			reason: "cannot be held by a human subject"},
		{name: "a reporting credential for 2h is over its 1h maximum",
			ask: ask{who: "frank", entitlement: "reporting-db-credential", minutes: 120, subject: "svc-reporting"}, outcome: events.OutcomeDeny,
			reason: "at most 3600 seconds"},

		// mainframe-operator
		{name: "the mainframe operator profile needs security",
			ask: ask{who: "dave", entitlement: "mainframe-operator", minutes: 240}, outcome: events.OutcomeApprovalRequired,
			stages: []events.Stage{security}, duration: 240},

		// extensions of an active grant (analytics-read is held at most 24h in all, payments-admin 4h)
		{name: "an auditor extends her analytics grant by no more than it lasted: approved without review",
			ask:     ask{who: "erin", entitlement: "analytics-read", minutes: 120, extends: extending(120, 110)},
			outcome: events.OutcomeAutoApproved, duration: 120, reason: "extension of 01KEXTENDED000000000000000"},
		{name: "an extension longer than the grant it extends is decided as a new request",
			ask:     ask{who: "erin", entitlement: "analytics-read", minutes: 180, extends: extending(120, 110)},
			outcome: events.OutcomeApprovalRequired, stages: []events.Stage{owners("analytics-owners")}, duration: 180},
		{name: "a payments admin extension is approved again by its owners alone",
			ask:     ask{who: "alice", entitlement: "payments-admin", minutes: 60, extends: extending(60, 50)},
			outcome: events.OutcomeApprovalRequired, stages: []events.Stage{owners("payments-owners")}, duration: 60},
		{name: "a payments admin extension past 4h in all is denied",
			ask:     ask{who: "alice", entitlement: "payments-admin", minutes: 60, extends: extending(120, 190)},
			outcome: events.OutcomeDeny, reason: "at most 14400 seconds without a gap"},

		// general rules
		{name: "an entitlement outside the catalogue is denied",
			ask: ask{who: "alice", entitlement: "root-everywhere", minutes: 60}, outcome: events.OutcomeDeny, reason: `unknown entitlement "root-everywhere"`},
		{name: "an emergency outside the catalogue is denied",
			ask: ask{who: "alice", entitlement: "root-everywhere", minutes: 60, emergency: true}, outcome: events.OutcomeDeny, reason: "unknown entitlement"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := d.input(tt.ask)
			ev, err := engine.Evaluate(context.Background(), in)
			if err != nil {
				t.Fatalf("evaluate: %v", err)
			}
			got := ev.Decision
			if got.Outcome != tt.outcome {
				t.Fatalf("outcome %s, want %s; reasons %q", got.Outcome, tt.outcome, got.Reasons)
			}
			if diff := cmp.Diff(tt.stages, got.Stages, cmpEmpty); diff != "" {
				t.Errorf("stages (-want +got):\n%s", diff)
			}
			if got.StagesOrdered != tt.ordered {
				t.Errorf("stages ordered %v, want %v", got.StagesOrdered, tt.ordered)
			}
			if got.EffectiveDurationSeconds != tt.duration*60 {
				t.Errorf("effective duration %ds, want %ds", got.EffectiveDurationSeconds, tt.duration*60)
			}
			if diff := cmp.Diff(tt.review, got.PostReview); diff != "" {
				t.Errorf("post-review (-want +got):\n%s", diff)
			}
			if tt.reason != "" && !strings.Contains(strings.Join(got.Reasons, "\n"), tt.reason) {
				t.Errorf("reasons %q do not mention %q", got.Reasons, tt.reason)
			}
			if tt.outcome == events.OutcomeApprovalRequired && got.ApprovalWindowSeconds != day {
				t.Errorf("approval window %ds, want 24h", got.ApprovalWindowSeconds)
			}
			if ev.Revision != engine.Revision() || !strings.HasPrefix(ev.InputDigest, "sha256:") {
				t.Errorf("revision %q and input digest %q", ev.Revision, ev.InputDigest)
			}
		})
	}
}

// cmpEmpty treats a nil and an empty slice alike.
var cmpEmpty = cmp.FilterValues(func(a, b []events.Stage) bool { return len(a) == 0 && len(b) == 0 }, cmp.Ignore())

// TestDecisionEvent maps decisions onto policy_decided: deadlines count from the time of the decision.
func TestDecisionEvent(t *testing.T) {
	d := loadDemo(t)
	engine := loadEngine(t, demoBundle)
	tests := []struct {
		name             string
		ask              ask
		approvalDeadline *time.Time
		postReview       *events.PostReview
	}{
		{name: "approval_required carries the end of its 24h window",
			ask: ask{who: "erin", entitlement: "analytics-read", minutes: 60}, approvalDeadline: new(now.Add(24 * time.Hour))},
		{name: "emergency carries security's post-review deadline, 24h on",
			ask:        ask{who: "alice", entitlement: "payments-admin", minutes: 60, emergency: true},
			postReview: &events.PostReview{Groups: []string{"security"}, Deadline: now.Add(24 * time.Hour)}},
		{name: "auto_approved carries neither",
			ask: ask{who: "alice", entitlement: "analytics-read", minutes: 60}},
		{name: "deny carries neither",
			ask: ask{who: "alice", entitlement: "analytics-read", minutes: 600}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := engine.Evaluate(context.Background(), d.input(tt.ask))
			if err != nil {
				t.Fatal(err)
			}
			pd := ev.Decision.Event(now, ev.Revision, ev.InputDigest)
			if diff := cmp.Diff(tt.approvalDeadline, pd.ApprovalDeadline); diff != "" {
				t.Errorf("approval deadline (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.postReview, pd.PostReview); diff != "" {
				t.Errorf("post-review (-want +got):\n%s", diff)
			}
			if pd.PolicyRevision != engine.Revision() || pd.InputDigest != ev.InputDigest || pd.Outcome != ev.Decision.Outcome {
				t.Errorf("event %+v does not carry the evaluation", pd)
			}
		})
	}
}

// TestRecordedInputReevaluates: a decision records the canonical input it was made on, whose digest is
// its input_digest; EvaluateRecorded decides those bytes again to the same decision, and refuses input
// that is not canonical (it would not be the bytes that were evaluated).
func TestRecordedInputReevaluates(t *testing.T) {
	d := loadDemo(t)
	engine := loadEngine(t, demoBundle)
	for _, a := range []ask{
		{who: "erin", entitlement: "analytics-read", minutes: 60},
		{who: "alice", entitlement: "payments-admin", minutes: 60, emergency: true, open: []string{"01KFIRSTEMERGENCY000000000"}},
		{who: "alice", entitlement: "no-such-thing", minutes: 60},
	} {
		ev, err := engine.Evaluate(context.Background(), d.input(a))
		if err != nil {
			t.Fatal(err)
		}
		pd := ev.Event(now)
		if policy.Digest(pd.Input) != pd.InputDigest {
			t.Fatalf("%+v: the recorded input does not hash to the recorded digest", a)
		}
		again, err := engine.EvaluateRecorded(context.Background(), pd.Input)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(ev, again); diff != "" {
			t.Errorf("%+v: re-evaluated (-recorded +again):\n%s", a, diff)
		}
	}
	if _, err := engine.EvaluateRecorded(context.Background(), []byte(`{"request": {}, "entitlement": null}`)); !errors.Is(err, policy.ErrNotCanonical) {
		t.Fatalf("an input with insignificant whitespace: %v", err)
	}
}

// TestInputDigest: the digest names the canonical input, so the same request decided at the same time
// on the same state has the same digest, and any difference changes it.
func TestInputDigest(t *testing.T) {
	d := loadDemo(t)
	base := ask{who: "alice", entitlement: "payments-admin", minutes: 60, emergency: true}
	digest := func(in policy.Input) string {
		_, dg, err := in.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		return dg
	}
	want := digest(d.input(base))
	if got := digest(d.input(base)); got != want {
		t.Fatalf("the same input digests to %s and %s", want, got)
	}
	other := base
	other.open = []string{"01KFIRSTEMERGENCY000000000"}
	if digest(d.input(other)) == want {
		t.Error("an open emergency review does not change the digest")
	}
	later := d.input(base)
	later.Now = later.Now.Add(time.Second)
	if digest(later) == want {
		t.Error("the time of the decision does not change the digest")
	}
	canonical, _, _ := d.input(base).Canonical()
	if !strings.HasPrefix(string(canonical), `{"entitlement":{"connector":"postgres","description":`) {
		t.Errorf("input is not canonical JSON (sorted members): %.80s", canonical)
	}
}

// TestRevision: the revision is the sha256sum manifest of the bundle's .rego files, and it changes with
// any file.
func TestRevision(t *testing.T) {
	engine := loadEngine(t, demoBundle)
	if sh, err := exec.LookPath("sh"); err == nil {
		if _, err := exec.LookPath("sha256sum"); err == nil {
			cmd := exec.Command(sh, "-c", `find -L . -name '.?*' -prune -o -type f -name '*.rego' -print | sed 's|^\./||' | LC_ALL=C sort | xargs sha256sum | sha256sum`)
			cmd.Dir = demoBundle
			out, err := cmd.Output()
			if err != nil {
				t.Fatal(err)
			}
			if want := "sha256:" + strings.Fields(string(out))[0]; engine.Revision() != want {
				t.Errorf("revision %s, but the documented shell command says %s", engine.Revision(), want)
			}
		}
	}
	dir := copyBundle(t, demoBundle)
	if got := loadEngine(t, dir).Revision(); got != engine.Revision() {
		t.Errorf("a copy of the bundle has revision %s, want %s", got, engine.Revision())
	}
	writeFile(t, dir, "decision_test.rego", "package grantline_test\n\ntest_more if true\n")
	if got := loadEngine(t, dir).Revision(); got == engine.Revision() {
		t.Error("changing a test file does not change the revision")
	}
}

// A bundle mounted from a Kubernetes ConfigMap (each file a link into a hidden, timestamped directory)
// has the revision of the same files in a plain directory, and so does its next mount.
func TestRevisionOfAConfigMapMount(t *testing.T) {
	want := loadEngine(t, demoBundle).Revision()
	mount := t.TempDir()
	for i, stamp := range []string{"..2026_11_28_10_00_00.1", "..2026_11_28_11_00_00.2"} {
		if err := os.CopyFS(filepath.Join(mount, stamp), os.DirFS(demoBundle)); err != nil {
			t.Fatal(err)
		}
		_ = os.Remove(filepath.Join(mount, "..data"))
		if err := os.Symlink(stamp, filepath.Join(mount, "..data")); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			entries, err := os.ReadDir(demoBundle)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				if err := os.Symlink(filepath.Join("..data", e.Name()), filepath.Join(mount, e.Name())); err != nil {
					t.Fatal(err)
				}
			}
		}
		if got := loadEngine(t, mount).Revision(); got != want {
			t.Errorf("mount %d (%s): revision %s, want the plain bundle's %s", i+1, stamp, got, want)
		}
	}
}

// TestPolicyTests: the demo bundle's own Rego tests pass through Test, and a failing Rego test fails it.
func TestPolicyTests(t *testing.T) {
	var out strings.Builder
	if err := policy.Test(context.Background(), demoBundle, &out); err != nil {
		t.Fatalf("demo bundle tests: %v\n%s", err, out.String())
	}
	for _, want := range []string{"PASS  data.grantline_test.test_analytics_read_engineer_is_auto_approved",
		"PASS  data.grantline_test.test_payments_admin_second_emergency_while_one_is_open_is_denied", " passed, 0 failed\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}

	dir := copyBundle(t, demoBundle)
	writeFile(t, dir, "wrong_test.rego", `package grantline_test

import data.grantline

test_auditor_is_auto_approved if {
	d := grantline.decision with input as request("erin", "analytics-read", 3600)
	d.outcome == "auto_approved"
}
`)
	out.Reset()
	err := policy.Test(context.Background(), dir, &out)
	if err == nil {
		t.Fatalf("a failing Rego test passed:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "FAIL  data.grantline_test.test_auditor_is_auto_approved") || !strings.Contains(out.String(), ", 1 failed\n") {
		t.Errorf("output does not report the failure:\n%s", out.String())
	}

	empty := t.TempDir()
	writeFile(t, empty, "p.rego", "package grantline\n\ndecision := {}\n")
	if err := policy.Test(context.Background(), empty, io.Discard); err == nil || !strings.Contains(err.Error(), "has no tests") {
		t.Errorf("a bundle without tests: %v", err)
	}
	writeFile(t, empty, "broken_test.rego", "package grantline_test\n\ntest_x if {\n")
	if err := policy.Test(context.Background(), empty, io.Discard); err == nil || !strings.Contains(err.Error(), "rego_parse_error") {
		t.Errorf("a bundle with a broken test file: %v", err)
	}
}

// TestBrokenBundles: a bundle that cannot be compiled never loads, and an engine whose bundle misbehaves
// at evaluation answers with an error, never with a decision.
func TestBrokenBundles(t *testing.T) {
	d := loadDemo(t)
	in := d.input(ask{who: "alice", entitlement: "analytics-read", minutes: 60})

	loadErrors := []struct {
		name   string
		policy string
		says   string
	}{
		{name: "a syntax error", policy: "package grantline\n\ndecision := {\"outcome\": \n", says: "rego_parse_error"},
		{name: "an unknown function", policy: "package grantline\n\ndecision := no_such_function(input)\n", says: "undefined function"},
		{name: "strict mode: an unused variable", policy: "package grantline\n\ndecision := {} if { x := 1 }\n", says: "assigned var x unused"},
	}
	for _, tt := range loadErrors {
		t.Run("load fails on "+tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, "grantline.rego", tt.policy)
			_, err := policy.Load(context.Background(), dir)
			if err == nil {
				t.Fatal("the bundle loaded")
			}
			if !strings.Contains(err.Error(), tt.says) {
				t.Errorf("error %q does not say %q", err, tt.says)
			}
		})
	}
	if _, err := policy.Load(context.Background(), t.TempDir()); err == nil {
		t.Error("an empty bundle loaded")
	}

	evalErrors := []struct {
		name    string
		policy  string
		timeout time.Duration
		want    error
		says    string
	}{
		{name: "no decision rule", policy: "package grantline\n\nother := 1\n", want: policy.ErrUndefined},
		{name: "a decision undefined for this input", policy: "package grantline\n\ndecision := {} if input.nobody\n", want: policy.ErrUndefined},
		{name: "conflicting decisions", policy: conflicting, says: "eval_conflict_error"},
		{name: "a builtin error", policy: "package grantline\n\ndecision := {\"n\": to_number(\"many\")}\n", says: "to_number"},
		{name: "an answer that is not an object", policy: "package grantline\n\ndecision := \"auto_approved\"\n", want: policy.ErrBadDecision},
		{name: "an answer with a member missing", policy: decisionOf(`"outcome": "auto_approved", "reasons": ["x"], "stages": [], "stages_ordered": false, "effective_duration_seconds": 60`),
			want: policy.ErrBadDecision, says: "approval_window_seconds"},
		{name: "an answer with an unknown member", policy: decisionOf(`"outcome": "auto_approved", "reasons": ["x"], "stages": [], "stages_ordered": false, "effective_duration_seconds": 60, "approval_window_seconds": 0, "grant_forever": true`),
			want: policy.ErrBadDecision, says: "grant_forever"},
		{name: "an unknown outcome", policy: decisionOf(`"outcome": "allow", "reasons": ["x"], "stages": [], "stages_ordered": false, "effective_duration_seconds": 60, "approval_window_seconds": 0`),
			want: policy.ErrBadDecision, says: "unknown outcome"},
		{name: "approval without stages", policy: decisionOf(`"outcome": "approval_required", "reasons": ["x"], "stages": [], "stages_ordered": false, "effective_duration_seconds": 60, "approval_window_seconds": 60`),
			want: policy.ErrBadDecision, says: "at least one stage"},
		{name: "longer than requested", policy: decisionOf(`"outcome": "auto_approved", "reasons": ["x"], "stages": [], "stages_ordered": false, "effective_duration_seconds": 7200, "approval_window_seconds": 0`),
			want: policy.ErrBadDecision, says: "at most the 3600 seconds"},
		{name: "a fractional duration", policy: decisionOf(`"outcome": "auto_approved", "reasons": ["x"], "stages": [], "stages_ordered": false, "effective_duration_seconds": 60.5, "approval_window_seconds": 0`),
			want: policy.ErrBadDecision},
		{name: "no reasons", policy: decisionOf(`"outcome": "auto_approved", "reasons": [], "stages": [], "stages_ordered": false, "effective_duration_seconds": 60, "approval_window_seconds": 0`),
			want: policy.ErrBadDecision, says: "reasons"},
		{name: "emergency for a normal request", policy: decisionOf(`"outcome": "emergency", "reasons": ["x"], "stages": [], "stages_ordered": false, "effective_duration_seconds": 60, "approval_window_seconds": 0, "post_review": {"groups": ["security"], "within_seconds": 60}`),
			want: policy.ErrBadDecision, says: "not an emergency"},
		{name: "a slow policy", policy: slow, timeout: 50 * time.Millisecond, want: context.DeadlineExceeded, says: "gave up after 50ms"},
	}
	for _, tt := range evalErrors {
		t.Run("evaluation fails on "+tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, "grantline.rego", tt.policy)
			var opts []policy.Option
			if tt.timeout > 0 {
				opts = append(opts, policy.WithTimeout(tt.timeout))
			}
			engine := loadEngine(t, dir, opts...)
			start := time.Now()
			ev, err := engine.Evaluate(context.Background(), in)
			if err == nil {
				t.Fatalf("evaluation answered %+v", ev.Decision)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.says) {
				t.Errorf("error %q does not say %q", err, tt.says)
			}
			if !cmp.Equal(ev, policy.Evaluation{}) {
				t.Errorf("an error came with an evaluation: %+v", ev)
			}
			if tt.timeout > 0 && time.Since(start) > 5*time.Second {
				t.Errorf("the slow policy ran %s past a %s timeout", time.Since(start), tt.timeout)
			}
		})
	}
}

// slow counts pairs up to ten billion: far longer than any timeout.
const slow = `package grantline

decision := {"outcome": "deny", "reasons": ["slow"], "stages": [], "stages_ordered": false,
	"effective_duration_seconds": 0, "approval_window_seconds": 0} if {
	some i in numbers.range(1, 100000)
	some j in numbers.range(1, 100000)
	i * j == -1
}
`

const conflicting = `package grantline

decision := {"outcome": "deny"} if input.request
decision := {"outcome": "auto_approved"} if input.request
`

func decisionOf(members string) string {
	return "package grantline\n\ndecision := {" + members + "}\n"
}

// TestEval evaluates a JSON input document as the CLI does.
func TestEval(t *testing.T) {
	d := loadDemo(t)
	in, _, err := d.input(ask{who: "alice", entitlement: "payments-admin", minutes: 60, emergency: true}).Canonical()
	if err != nil {
		t.Fatal(err)
	}
	out, err := policy.Eval(context.Background(), demoBundle, in)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"outcome":"emergency"`) || !strings.Contains(string(out), `"effective_duration_seconds":1800`) {
		t.Errorf("decision %s", out)
	}
	if _, err := policy.Eval(context.Background(), demoBundle, []byte(`{"request": `)); err == nil {
		t.Error("a truncated input was evaluated")
	}
	if out, err := policy.Eval(context.Background(), demoBundle, []byte(`{}`)); err == nil {
		t.Errorf("an empty input got a decision: %s", out)
	}
}

func copyBundle(t *testing.T, from string) string {
	t.Helper()
	dir := t.TempDir()
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, dir, e.Name(), string(b))
	}
	return dir
}

func writeFile(t testing.TB, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
