package bench

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
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

// TestBenchRunsTheSystemEndToEnd runs the whole benchmark at a tiny size: every request must be granted,
// every figure and ratio must be there, the profile taken, and nothing the bench started may be left
// running or on disk.
func TestBenchRunsTheSystemEndToEnd(t *testing.T) {
	cfg := DefaultConfig()
	cfg.BinDir = buildBinaries(t)
	cfg.Examples = repoRoot + "/examples"
	cfg.Requests, cfg.InFlight, cfg.Warmup, cfg.Hold = 20, 8, 5, time.Second
	cfg.KeepUpSteps, cfg.KeepUpStep = 3, 2*time.Second
	cfg.RawMessages, cfg.Updates, cfg.UpdateWriters = 100, 30, 2
	cfg.PhaseTimeout = time.Minute
	cfg.Profile, cfg.ProfileDir = []string{"policy"}, t.TempDir()
	// The same policy binary again: the comparison's mechanics, not a change, are under test.
	cfg.Compare, cfg.CompareRounds = map[string]string{"policy": cfg.BinDir + "/grantline-policy"}, 1
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	rep, err := Run(ctx, cfg, lineLogger{t})
	if rep != nil {
		var out strings.Builder
		rep.Print(&out)
		t.Log("\n" + out.String())
		for _, want := range []string{"requests/s sustained", "compared ÷ usual", "÷ raw async publish",
			"Sustained requests/s with every consumer keeping up"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("the printed report has no %q", want)
			}
		}
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
		if _, ok := ph.Lag["policy"]; !ok {
			t.Errorf("phase %s: no lag of policy's consumer in %v", ph.Name, ph.Lag)
		}
		if ph.CPU["nats-server"] <= 0 {
			t.Errorf("phase %s: no CPU time of nats-server in %v", ph.Name, ph.CPU)
		}
	}
	if hold := rep.Phases[len(rep.Phases)-1]; rep.Sustainable.Rate <= 0 || hold.TargetRate != rep.Sustainable.Rate/2 {
		t.Errorf("held %.1f requests/s, want half of the rate every consumer kept up with, %.1f", hold.TargetRate, rep.Sustainable.Rate)
	}
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

	var names []string
	for _, p := range rep.Processes {
		names = append(names, p.Name)
		if p.PeakRSS <= 0 {
			t.Errorf("%s: peak memory %d", p.Name, p.PeakRSS)
		}
		if p.Name != "bench" && running(p.PID) {
			t.Errorf("%s (pid %d) still runs after the bench ended", p.Name, p.PID)
		}
	}
	for _, want := range append(Services, NATSServer, "postgres") {
		if !slices.Contains(names, want) {
			t.Errorf("no peak memory of %s in %v", want, names)
		}
	}
	if len(rep.Profiles) != 1 || rep.Profiles[0].Process != "policy" || len(rep.Profiles[0].Files) == 0 || rep.Profiles[0].Top == "" {
		t.Errorf("profiles %+v, want policy's with its top functions", rep.Profiles)
	}
	if _, err := os.Stat(rep.WorkDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("work directory %s left behind (%v)", rep.WorkDir, err)
	}
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
		if p.Name != "bench" && running(p.PID) {
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
