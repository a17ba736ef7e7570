package whatif

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/natstest"
	"github.com/grantline/grantline/services/policy"
)

const examples = "../../../../examples"

// scenario is one kind of request in the generated history, and what the tightened bundle (payments-admin
// capped at one hour, two approvals from security) does to its decision.
type scenario struct {
	requester   events.Principal
	entitlement string
	minutes     int64
	emergency   bool
	tightened   Kind // "" when the tightened bundle decides it the same
}

var (
	alice = events.Principal{ID: "alice", Groups: []string{"engineers"}}
	erin  = events.Principal{ID: "erin", Groups: []string{"analysts"}}
	frank = events.Principal{ID: "frank", Groups: []string{"payments-team"}}
)

var scenarios = []scenario{
	{requester: alice, entitlement: "analytics-read", minutes: 60},                           // auto-approved
	{requester: erin, entitlement: "analytics-read", minutes: 60},                            // one owner approval
	{requester: frank, entitlement: "payments-admin", minutes: 30, tightened: StagesChanged}, // owners then security
	{requester: frank, entitlement: "payments-admin", minutes: 90, tightened: AllowedToDenied},
	{requester: frank, entitlement: "payments-admin", minutes: 180, tightened: ReasonsChanged}, // denied either way
	{requester: alice, entitlement: "mainframe-operator", minutes: 60},
	{requester: alice, entitlement: "no-such-entitlement", minutes: 60},             // unknown: denied
	{requester: alice, entitlement: "analytics-read", minutes: 60, emergency: true}, // no emergency path: denied
	{requester: alice, entitlement: "payments-admin", minutes: 30, emergency: true}, // break-glass, unchanged under an hour
}

// recorded says how a generated decision kept its input.
type recorded int

const (
	withInput   recorded = iota // as the policy service records decisions now
	legacyExact                 // no input, decided at the event's own time: it rebuilds to its digest
	legacyLost                  // no input, decided a moment before the event's time: it cannot be rebuilt
)

type generated struct {
	id       string
	scenario scenario
	recorded recorded
	input    []byte // the decision's canonical input, whether or not it was recorded
}

// history writes n requests (submitted, then policy_decided by the demo bundle) straight to a real
// stream, signed by intake's and policy's keys, and returns them with the verifier of their keys.
func history(t testing.TB, n int) (jetstream.JetStream, *events.Verifier, *catalogue.Catalogue, []generated) {
	t.Helper()
	ctx := context.Background()
	ns := natstest.RunServer(t)
	_, js := natstest.Connect(t, ns.ClientURL())
	if err := eventstore.Provision(ctx, js, eventstore.DefaultSettings); err != nil {
		t.Fatal(err)
	}
	intake, _ := events.GenerateSigner(events.Intake, "intake-1")
	pol, _ := events.GenerateSigner(events.Policy, "policy-1")
	trust, err := events.NewVerifier(events.NewTrustFile(time.Now().Add(-time.Hour), intake, pol))
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalogue.Load(filepath.Join(examples, "catalogue.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	engine, err := policy.Load(ctx, filepath.Join(examples, "policies"))
	if err != nil {
		t.Fatal(err)
	}
	var out []generated
	var acks []jetstream.PubAckFuture
	publish := func(subject, sig string, body []byte) {
		msg := &nats.Msg{Subject: subject, Data: body, Header: nats.Header{}}
		msg.Header.Set(events.SignatureHeader, sig)
		// The client holds a bounded number of unacknowledged messages: let the acks catch up now and then.
		if len(acks)%1000 == 999 {
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(30 * time.Second):
				t.Fatal("publishing the history timed out")
			}
		}
		f, err := js.PublishMsgAsync(msg)
		if err != nil {
			t.Fatal(err)
		}
		acks = append(acks, f)
	}
	at := time.Now().Add(-30 * time.Minute).UTC()
	for i := range n {
		g := generated{id: events.NewID(), scenario: scenarios[i%len(scenarios)]}
		switch i % 50 {
		case 10:
			g.recorded = legacyExact
		case 35:
			g.recorded = legacyLost
		}
		sc := g.scenario
		sub := events.Submitted{Requester: sc.requester, Subject: events.RequestSubject{Kind: events.SubjectHuman, ID: sc.requester.ID},
			Entitlement: sc.entitlement, Justification: "generated history", DurationSeconds: sc.minutes * 60, Emergency: sc.emergency, Channel: "http"}
		sub.RequestDigest = sub.Digest()
		at = at.Add(time.Millisecond)
		_, subBody, err := events.Draft{Payload: sub, Actor: sc.requester.ID}.Seal(g.id, events.Intake, at, events.GenesisHash(g.id))
		if err != nil {
			t.Fatal(err)
		}
		publish(events.NATSSubject(g.id, events.TypeSubmitted), intake.Sign(subBody), subBody)
		at = at.Add(time.Millisecond)
		decidedAt := at
		if g.recorded == legacyLost {
			decidedAt = at.Add(-123 * time.Microsecond)
		}
		var ent *catalogue.Entitlement
		if e, ok := cat.Entitlement(sc.entitlement); ok {
			ent = &e
		}
		ev, err := engine.Evaluate(ctx, policy.NewInput(sub, ent, decidedAt, nil))
		if err != nil {
			t.Fatal(err)
		}
		pd := ev.Event(decidedAt)
		g.input = pd.Input
		if g.recorded != withInput {
			pd.Input = nil
		}
		_, decBody, err := events.Draft{Payload: pd}.Seal(g.id, events.Policy, at, events.ChainHash(subBody))
		if err != nil {
			t.Fatal(err)
		}
		publish(events.NATSSubject(g.id, events.TypePolicyDecided), pol.Sign(decBody), decBody)
		out = append(out, g)
	}
	for _, f := range acks {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			t.Fatal(err)
		case <-time.After(30 * time.Second):
			t.Fatal("publishing the history timed out")
		}
	}
	return js, trust, cat, out
}

// tightened writes the demo bundle with payments-admin capped at one hour and two approvals from
// security into a directory of its own.
func tightened(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src, err := os.ReadFile(filepath.Join(examples, "policies", "grantline.rego"))
	if err != nil {
		t.Fatal(err)
	}
	rego := string(src)
	for old, repl := range map[string]string{
		`"payments-admin": 2 * hour,`: `"payments-admin": hour,`,
		`[stage("owners", ent.owner_groups), stage("security", ["security"])], true,`: `[stage("owners", ent.owner_groups), {"name": "security", "groups": ["security"], "min_approvals": 2}], true,`,
	} {
		if !strings.Contains(rego, old) {
			t.Fatalf("the demo bundle no longer holds %q", old)
		}
		rego = strings.Replace(rego, old, repl, 1)
	}
	if err := os.WriteFile(filepath.Join(dir, "grantline.rego"), []byte(rego), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestWhatIfOnAGeneratedHistory: thousands of decisions made by the demo bundle. The demo bundle makes
// every one of them again exactly; a bundle that tightens payments-admin changes exactly the
// payments-admin decisions, each in the expected way. Decisions recorded without their input are
// rebuilt when they can be and reported when they cannot.
func TestWhatIfOnAGeneratedHistory(t *testing.T) {
	const n = 3000
	js, trust, cat, hist := history(t, n)
	ctx := context.Background()
	lost := map[string]bool{}
	var exact int
	for _, g := range hist {
		switch g.recorded {
		case legacyLost:
			lost[g.id] = true
		case legacyExact:
			exact++
		}
	}

	demo, err := policy.Load(ctx, filepath.Join(examples, "policies"))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(ctx, Config{JS: js, Trust: trust, Engine: demo, Catalogue: cat})
	if err != nil {
		t.Fatal(err)
	}
	evaluated := n - len(lost)
	if rep.Decisions != n || rep.Evaluated != evaluated || rep.Rebuilt != exact || rep.FromInput != evaluated-exact {
		t.Fatalf("decisions %d evaluated %d rebuilt %d from input %d; want %d %d %d %d", rep.Decisions, rep.Evaluated, rep.Rebuilt, rep.FromInput,
			n, evaluated, exact, evaluated-exact)
	}
	if rep.Changed != 0 || len(rep.Failed) != 0 || rep.SameRevision != evaluated || rep.SameRevisionChanged != 0 {
		t.Fatalf("the demo bundle did not make its own decisions again: %d changed (%v), %d failed, %d of %d same revision",
			rep.Changed, rep.Counts, len(rep.Failed), rep.SameRevision, evaluated)
	}
	if len(rep.Unreproducible) != len(lost) {
		t.Fatalf("%d unreproducible, want %d", len(rep.Unreproducible), len(lost))
	}
	for _, u := range rep.Unreproducible {
		if !lost[u.RequestID] || !strings.Contains(u.Reason, "rebuilt from the request") {
			t.Fatalf("unreproducible %+v", u)
		}
	}

	candidate, err := policy.Load(ctx, tightened(t))
	if err != nil {
		t.Fatal(err)
	}
	rep, err = Run(ctx, Config{JS: js, Trust: trust, Engine: candidate, Catalogue: cat})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Kind{}
	wantCounts := map[Kind]int{}
	for _, g := range hist {
		if g.scenario.tightened != "" && !lost[g.id] {
			want[g.id] = g.scenario.tightened
			wantCounts[g.scenario.tightened]++
		}
	}
	if rep.Changed != len(want) || rep.SameRevision != 0 {
		t.Fatalf("%d changed (%v), want %d (%v); %d of the same revision", rep.Changed, rep.Counts, len(want), wantCounts, rep.SameRevision)
	}
	for _, c := range rep.Changes {
		if want[c.RequestID] != c.Kind || c.Entitlement != "payments-admin" {
			t.Fatalf("change %+v, want %q", c, want[c.RequestID])
		}
	}
	for k, v := range wantCounts {
		if rep.Counts[k] != v {
			t.Fatalf("counts %v, want %v", rep.Counts, wantCounts)
		}
	}
	t.Logf("tightened payments-admin: %v", fmt.Sprint(rep.Counts))
}

// TestClassify: each difference between a recorded decision and a candidate's, named by its most
// consequential part.
func TestClassify(t *testing.T) {
	owners := []events.Stage{{Name: "owners", Groups: []string{"payments-owners"}, MinApprovals: 1}}
	deadline := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	later := deadline.Add(time.Hour)
	base := events.PolicyDecided{Outcome: events.OutcomeApprovalRequired, Reasons: []string{"r"}, Stages: owners, EffectiveDurationSeconds: 60, ApprovalDeadline: &deadline}
	with := func(f func(*events.PolicyDecided)) events.PolicyDecided {
		d := base
		d.Stages = append([]events.Stage(nil), base.Stages...)
		f(&d)
		return d
	}
	for _, tc := range []struct {
		name      string
		recorded  events.PolicyDecided
		candidate events.PolicyDecided
		kind      Kind
	}{
		{"the same decision", base, with(func(d *events.PolicyDecided) { d.PolicyRevision = "sha256:other" }), ""},
		{"approval now denied", base, events.PolicyDecided{Outcome: events.OutcomeDeny, Reasons: []string{"no"}}, AllowedToDenied},
		{"a deny now allowed", events.PolicyDecided{Outcome: events.OutcomeDeny}, base, DeniedToAllowed},
		{"auto-approval now needs approval", with(func(d *events.PolicyDecided) { d.Outcome, d.Stages = events.OutcomeAutoApproved, nil }), base, AutoToApproval},
		{"approval no longer needed", base, with(func(d *events.PolicyDecided) { d.Outcome, d.Stages = events.OutcomeAutoApproved, nil }), ApprovalToAuto},
		{"a second approval in a stage", base, with(func(d *events.PolicyDecided) { d.Stages[0].MinApprovals = 2 }), StagesChanged},
		{"stages now ordered", base, with(func(d *events.PolicyDecided) { d.StagesOrdered = true }), StagesChanged},
		{"a shorter grant", base, with(func(d *events.PolicyDecided) { d.EffectiveDurationSeconds = 30 }), DurationChanged},
		{"a longer approval window", base, with(func(d *events.PolicyDecided) { d.ApprovalDeadline = &later }), DeadlinesChanged},
		{"other words", base, with(func(d *events.PolicyDecided) { d.Reasons = []string{"s"} }), ReasonsChanged},
	} {
		kind, changed := Classify(tc.recorded, tc.candidate)
		if kind != tc.kind || changed != (tc.kind != "") {
			t.Errorf("%s: %q %v, want %q", tc.name, kind, changed, tc.kind)
		}
	}
}

// BenchmarkWhatIf: decisions re-evaluated per second with the demo bundle, read from a real stream of
// 2,000 recorded decisions, verified and decided again on all CPUs. Its same-run baseline is the engine
// alone deciding the same 2,000 inputs one at a time from memory (engine_alone_decisions/s).
func BenchmarkWhatIf(b *testing.B) {
	js, trust, cat, hist := history(b, 2000)
	engine, err := policy.Load(context.Background(), filepath.Join(examples, "policies"))
	if err != nil {
		b.Fatal(err)
	}
	var alone time.Duration
	for b.Loop() {
		rep, err := Run(context.Background(), Config{JS: js, Trust: trust, Engine: engine, Catalogue: cat})
		if err != nil || rep.Decisions != len(hist) {
			b.Fatalf("%v, %d decisions", err, rep.Decisions)
		}
		b.StopTimer()
		alone += evaluateAlone(b, engine, hist)
		b.StartTimer()
	}
	total := float64(b.N * len(hist))
	b.ReportMetric(total/b.Elapsed().Seconds(), "decisions/s")
	b.ReportMetric(total/alone.Seconds(), "engine_alone_decisions/s")
	b.ReportMetric(alone.Seconds()/b.Elapsed().Seconds(), "rate_ratio_to_engine_alone")
}

// evaluateAlone times the engine deciding every input of hist again, one at a time and straight from
// memory: the same-run baseline of what-if, which reads, verifies and compares them besides.
func evaluateAlone(b *testing.B, engine *policy.Engine, hist []generated) time.Duration {
	b.Helper()
	start := time.Now()
	for _, g := range hist {
		if _, err := engine.EvaluateRecorded(context.Background(), g.input); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}
