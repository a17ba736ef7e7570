package bench

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	pgconnector "github.com/grantline/grantline/pkg/connector/postgres"
)

// repoRoot is where the go.work of the workspace is, seen from this package.
const repoRoot = "../../../.."

// binaries are built once for the package's tests and removed by TestMain.
var binaries struct {
	once sync.Once
	dir  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binaries.dir != "" {
		os.RemoveAll(binaries.dir)
	}
	os.Exit(code)
}

// buildBinaries builds nats-server and every service into a temporary directory, as `make binaries`
// does into bin/, so the tests measure the code they run with.
func buildBinaries(t *testing.T) string {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the system benchmark runs the services as binaries, and there is no go command to build them")
	}
	binaries.once.Do(func() {
		if binaries.dir, binaries.err = os.MkdirTemp("", "grantline-bench-test-bin-"); binaries.err != nil {
			return
		}
		args := []string{"build", "-ldflags=-s -w", "-o", binaries.dir + "/"}
		for _, s := range Services {
			args = append(args, "./services/"+s+"/cmd/grantline-"+s)
		}
		args = append(args, "github.com/nats-io/nats-server/v2")
		cmd := exec.Command(goCmd, args...)
		cmd.Dir = repoRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			binaries.err = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	})
	if binaries.err != nil {
		t.Fatal(binaries.err)
	}
	return binaries.dir
}

// lineLogger sends the bench's progress lines to the test log.
type lineLogger struct{ t *testing.T }

func (l lineLogger) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// smallConfig is a run of the bench at a tiny size, on binaries built for the tests.
func smallConfig(t *testing.T) Config {
	cfg := DefaultConfig()
	cfg.BinDir = buildBinaries(t)
	cfg.Examples = repoRoot + "/examples"
	cfg.Requests, cfg.InFlight, cfg.Warmup, cfg.Hold = 20, 8, 5, time.Second
	// Three steps: the maximum phase's rate, then half and a quarter of it if need be, so a loaded
	// machine still finds a rate every consumer keeps up with.
	cfg.KeepUpSteps, cfg.KeepUpStep, cfg.People, cfg.Idle = 3, 2*time.Second, 50, time.Second
	cfg.RawMessages, cfg.Updates, cfg.UpdateWriters = 100, 30, 2
	cfg.PhaseTimeout = time.Minute
	return cfg
}

// printed is the report as people read it, logged, with the lines it must hold checked.
func printed(t *testing.T, rep *Report, want ...string) {
	t.Helper()
	var out strings.Builder
	rep.Print(&out)
	t.Log("\n" + out.String())
	for _, w := range want {
		if !strings.Contains(out.String(), w) {
			t.Errorf("the printed report has no %q", w)
		}
	}
}

// checkPhases checks that every phase granted what it planned, for several people, with figures that
// make sense, a CPU budget for every process that worked, and a verdict on its consumers.
func checkPhases(t *testing.T, rep *Report, cfg Config) {
	t.Helper()
	for _, ph := range rep.Phases {
		if ph.Submitted != ph.Planned || ph.Granted != ph.Planned || ph.Failed != 0 {
			t.Errorf("phase %s: %d planned, %d submitted, %d granted, %d failed (%v)", ph.Name, ph.Planned, ph.Submitted, ph.Granted, ph.Failed, ph.Failures)
		}
		// submitted, policy_decided, granted: anything else would be work the benchmark does not expect.
		if ph.EventsPerRequest() != 3 {
			t.Errorf("phase %s: %.2f events per request, want 3", ph.Name, ph.EventsPerRequest())
		}
		if ph.Sustained <= 0 || ph.Decision.N != ph.Granted || ph.Decision.P50 <= 0 || ph.GrantedLatency.P50 < ph.Decision.P50 {
			t.Errorf("phase %s: %.1f requests/s, decision %+v, granted %+v", ph.Name, ph.Sustained, ph.Decision, ph.GrantedLatency)
		}
		if want := min(ph.Planned, cfg.People); ph.Requesters != want {
			t.Errorf("phase %s: requests for %d distinct people, want %d (the population in turn)", ph.Name, ph.Requesters, want)
		}
		if _, ok := ph.Lag["policy"]; !ok {
			t.Errorf("phase %s: no lag of policy's consumer in %v", ph.Name, ph.Lag)
		}
		if ph.KeepUp.Bound == 0 || ph.KeepUp.Kept != (len(ph.KeepUp.Behind) == 0) {
			t.Errorf("phase %s: keep-up verdict %+v", ph.Name, ph.KeepUp)
		}
		// CPU time comes in ticks of 10 ms, so a process that did little in a tiny phase may show none;
		// nats-server stores every event and always shows some.
		if ph.CPU[NATSServer] <= 0 || ph.Budget.PerProcessMS[NATSServer] <= 0 {
			t.Errorf("phase %s: no CPU of nats-server in %v", ph.Name, ph.CPU)
		}
		var total float64
		for name, d := range ph.CPU {
			perGrant := float64(d) / float64(time.Millisecond) / float64(ph.Granted)
			got := ph.Budget.PerProcessMS[name]
			if name == benchProcess {
				got = ph.Budget.BenchMS
			} else {
				total += perGrant
			}
			if d > 0 && got <= 0 || math.Abs(got-perGrant) > 1e-9 {
				t.Errorf("phase %s: %s used %s for %d grants, budget says %.3f ms each", ph.Name, name, d, ph.Granted, got)
			}
		}
		if _, ok := ph.Budget.PerProcessMS["postgres"]; !ok || total <= 0 || math.Abs(ph.Budget.TotalMS-total) > 1e-9 {
			t.Errorf("phase %s: total CPU per grant %.3f ms, processes sum to %.3f (%v)", ph.Name, ph.Budget.TotalMS, total, ph.Budget.PerProcessMS)
		}
	}
}

// checkIdle checks the idle measurement covers every process of the system.
func checkIdle(t *testing.T, rep *Report, cfg Config) {
	t.Helper()
	idle := rep.Idle
	if idle.Window < cfg.Idle || idle.TotalMSPerSecond < 0 {
		t.Errorf("idle %+v, want at least %s measured", idle, cfg.Idle)
	}
	for _, name := range append(Services, NATSServer, "postgres") {
		if _, ok := idle.PerProcessMSPerSecond[name]; !ok {
			t.Errorf("no idle CPU of %s in %v", name, idle.PerProcessMSPerSecond)
		}
	}
	if _, ok := idle.PerProcessMSPerSecond[benchProcess]; ok {
		t.Errorf("the bench's own CPU counted as the idle system's: %v", idle.PerProcessMSPerSecond)
	}
}

// checkSustained checks the search for the rate every consumer keeps up with, and that the hold ran at
// half of it.
func checkSustained(t *testing.T, rep *Report, cfg Config) {
	t.Helper()
	k := rep.Sustainable
	var steps []Phase
	for _, ph := range rep.Phases {
		if ph.Name == phaseKeepUp {
			steps = append(steps, ph)
		}
	}
	if len(steps) != cfg.KeepUpSteps || k.Steps != len(steps) {
		t.Fatalf("%d keep-up steps (%+v), want %d", len(steps), k, cfg.KeepUpSteps)
	}
	best := 0.0
	for _, ph := range steps {
		if ph.KeepUp.Kept {
			best = max(best, ph.TargetRate)
		}
	}
	if k.Rate <= 0 || k.Rate != best || k.EventsPerRequest != 3 {
		t.Errorf("sustained %+v, want the highest step that kept up, %.1f requests/s", k, best)
	}
	hold := rep.Phases[len(rep.Phases)-1]
	if hold.Name != phaseHold || hold.TargetRate != k.Rate/2 {
		t.Errorf("last phase %s held %.1f requests/s, want hold at half of %.1f", hold.Name, hold.TargetRate, k.Rate)
	}
	if r := k.EventsPerSecond() / rep.Ceiling.AsyncPublish.PerSecond(); r <= 0 {
		t.Errorf("sustained rate's ratio to the raw async publish ceiling %.2f", r)
	}
}

// checkStopped checks that everything the bench started was stopped and its directory removed.
func checkStopped(t *testing.T, rep *Report) {
	t.Helper()
	var names []string
	for _, p := range rep.Processes {
		names = append(names, p.Name)
		if p.PeakRSS <= 0 {
			t.Errorf("%s: peak memory %d", p.Name, p.PeakRSS)
		}
		if p.Name != benchProcess && running(p.PID) {
			t.Errorf("%s (pid %d) still runs after the bench ended", p.Name, p.PID)
		}
	}
	for _, want := range append(Services, NATSServer, "postgres") {
		if !slices.Contains(names, want) {
			t.Errorf("no peak memory of %s in %v", want, names)
		}
	}
	if _, err := os.Stat(rep.WorkDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("work directory %s left behind (%v)", rep.WorkDir, err)
	}
}

// TestBenchRunsTheSystemEndToEnd runs the whole benchmark at a tiny size: every request must be granted,
// every figure and ratio must be there, the CPU budget of every process, the search for the rate every
// consumer keeps up with, the profile taken, and nothing the bench started may be left running or on
// disk.
func TestBenchRunsTheSystemEndToEnd(t *testing.T) {
	cfg := smallConfig(t)
	cfg.Profile, cfg.ProfileDir = []string{"policy"}, t.TempDir()
	// The same policy binary again: the comparison's mechanics, not a change, are under test.
	cfg.Compare, cfg.CompareRounds = map[string]string{"policy": cfg.BinDir + "/grantline-policy"}, 1
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()

	rep, err := Run(ctx, cfg, lineLogger{t})
	if rep != nil {
		printed(t, rep, "requests/s sustained", "compared ÷ usual", "events/s ÷ raw async publish", "CPU per granted request",
			"Sustained requests/s with every consumer keeping up", "every consumer kept up", "idle, ms per second")
	}
	if err != nil {
		t.Fatalf("bench: %v", err)
	}

	c := rep.Ceiling
	for name, rate := range map[string]float64{"sync publish": c.SyncPublish.PerSecond(), "async publish": c.AsyncPublish.PerSecond(),
		"load+append": c.Update.PerSecond(), "parallel load+append": c.UpdateParallel.PerSecond(), "sync publish after": rep.RawSyncAfter.PerSecond()} {
		if rate <= 0 {
			t.Errorf("ceiling %s: %.1f/s", name, rate)
		}
	}
	var phases []string
	for _, ph := range rep.Phases {
		if len(phases) == 0 || phases[len(phases)-1] != ph.Name {
			phases = append(phases, ph.Name)
		}
	}
	if !slices.Equal(phases, []string{phaseMax, phaseCompared, phaseKeepUp, phaseHold}) {
		t.Fatalf("phases %v, want max, max-compared, keep-up steps, hold", phases)
	}
	checkPhases(t, rep, cfg)
	checkIdle(t, rep, cfg)
	checkSustained(t, rep, cfg)
	if eps, ceiling := rep.Phases[0].EventsPerSecond(), c.AsyncPublish.PerSecond(); eps/ceiling <= 0 {
		t.Errorf("ratio to the raw publish ceiling %.2f", eps/ceiling)
	}
	granted := 0
	for _, ph := range rep.Phases {
		granted += ph.Granted
	}
	// Every grant went through the webhook target.
	if rep.WebhookCalls < int64(granted) {
		t.Errorf("%d webhook calls for %d grants", rep.WebhookCalls, granted)
	}
	if len(rep.WorstCase) != 0 {
		t.Errorf("a worst case measured with the webhook connector: %+v", rep.WorstCase)
	}
	checkStopped(t, rep)
	if len(rep.Profiles) != 1 || rep.Profiles[0].Process != "policy" || len(rep.Profiles[0].Files) == 0 || rep.Profiles[0].Top == "" {
		t.Errorf("profiles %+v, want policy's with its top functions", rep.Profiles)
	}
	var js strings.Builder
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatalf("report as JSON: %v", err)
	}
	for _, want := range []string{`"TotalMS"`, `"PerProcessMS"`, `"Sustainable"`, `"KeepUp"`, `"TotalMSPerSecond"`} {
		if !strings.Contains(js.String(), want) {
			t.Errorf("the JSON report has no %s", want)
		}
	}
}

// TestBenchPostgresConnectorViaIntegration runs the bench submitting as an integration and granting
// with the postgres connector: the people get their grant roles on the target, and the worst case
// measures the connector's cost for one person against the grants they already hold.
func TestBenchPostgresConnectorViaIntegration(t *testing.T) {
	cfg := smallConfig(t)
	cfg.Via, cfg.Connector = ViaIntegration, pgconnector.Name
	cfg.WorstCaseHeld, cfg.WorstCaseGrants = []int{30, 0}, 4
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()

	rep, err := Run(ctx, cfg, lineLogger{t})
	if rep != nil {
		printed(t, rep, "CloudEvents on grantline.intake.bench.requests", "postgres connector", "Worst case: one person holding many grants")
	}
	if err != nil {
		t.Fatalf("bench: %v", err)
	}
	checkPhases(t, rep, cfg)
	checkIdle(t, rep, cfg)
	checkSustained(t, rep, cfg)
	if rep.WebhookCalls != 0 {
		t.Errorf("%d webhook calls with the postgres connector", rep.WebhookCalls)
	}
	var held []int
	for _, p := range rep.WorstCase {
		held = append(held, p.Held)
		if p.Grants != cfg.WorstCaseGrants || p.Grant.N != p.Grants || p.Grant.P50 <= 0 || p.Revoke.N != p.Grants || p.Revoke.P50 <= 0 ||
			p.PostgresGrantMS < 0 || p.PostgresRevokeMS < 0 {
			t.Errorf("worst case at %d held: %+v", p.Held, p)
		}
	}
	if !slices.Equal(held, []int{0, 30}) {
		t.Errorf("worst case measured at %v grants held, want 0 and 30", held)
	}
	checkStopped(t, rep)
}

// interruptAt cancels the run when the bench reports a step whose line holds marker.
type interruptAt struct {
	lineLogger
	marker string
	cancel context.CancelFunc
}

func (w interruptAt) Write(p []byte) (int, error) {
	if strings.Contains(string(p), w.marker) {
		w.cancel()
	}
	return w.lineLogger.Write(p)
}

// TestBenchInterruptedLeavesNothingRunning: Ctrl-C in the middle of a phase stops every process the
// bench started and removes its directory.
func TestBenchInterruptedLeavesNothingRunning(t *testing.T) {
	cfg := DefaultConfig()
	cfg.BinDir = buildBinaries(t)
	cfg.Examples = repoRoot + "/examples"
	cfg.RawMessages, cfg.Updates, cfg.UpdateWriters = 10, 3, 1
	// Far more than it could submit before the interrupt.
	cfg.Warmup, cfg.PhaseTimeout = 1_000_000, time.Minute
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	rep, err := Run(ctx, cfg, interruptAt{lineLogger{t}, "warm-up", cancel})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted bench returned %v, want context.Canceled", err)
	}
	var names []string
	for _, p := range rep.Processes {
		names = append(names, p.Name)
		if p.Name != benchProcess && running(p.PID) {
			t.Errorf("%s (pid %d) still runs after the interrupted bench returned", p.Name, p.PID)
		}
	}
	for _, want := range append(Services, NATSServer, "postgres") {
		if !slices.Contains(names, want) {
			t.Errorf("%s was not running when interrupted: %v", want, names)
		}
	}
	if _, err := os.Stat(rep.WorkDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("work directory %s left behind (%v)", rep.WorkDir, err)
	}
}
