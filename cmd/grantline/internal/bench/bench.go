// Package bench is the system benchmark (`grantline bench`, `make bench-system`): it measures what a
// user feels, how many access requests per second the whole system carries from submit to granted and
// how fast, with nats-server and every service as processes of their own and the broker fsyncing
// every write. In the same run it measures the ceiling under it (raw JetStream publishes and the event
// store's load+append loop on the same server), and reports the system's figures as ratios to it.
//
// A run: nats-server (from bin/, config written by natsConfig), a private PostgreSQL, the dev identity
// issuer and a webhook target served by the bench; the raw ceiling; then the six services from bin/,
// configured through their environment; a warm-up; the phases; the raw publish once more (how far the
// machine drifted); and everything stopped, with no process left behind.
package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/cmd/grantline/internal/devmode"
	"github.com/grantline/grantline/pkg/topology"
)

// Phase names.
const (
	phaseWarmup = "warm-up"
	phaseMax    = "max"
	// phaseCompared is the maximum rate with the --compare binaries.
	phaseCompared = "max-compared"
	// phaseKeepUp is a step of the search for the highest rate every consumer keeps up with.
	phaseKeepUp = "keep-up"
	phaseHold   = "hold"
)

// Run runs the benchmark and returns what it measured; progress receives a line per step and, in long
// phases, every few seconds. Whatever happens, every process it started has stopped when it returns,
// and the report holds what was measured until then.
func Run(ctx context.Context, cfg Config, progress io.Writer) (rep *Report, err error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "grantline-bench-")
	if err != nil {
		return nil, err
	}
	if len(cfg.Profile) > 0 && cfg.ProfileDir == "" {
		cfg.ProfileDir = filepath.Join(os.TempDir(), "grantline-bench-profiles-"+time.Now().UTC().Format("20060102T150405"))
	}
	rep = &Report{Started: time.Now().UTC(), Config: cfg, WorkDir: work}
	s := &system{cfg: cfg, work: work, logs: filepath.Join(work, "logs")}
	say := func(format string, args ...any) { fmt.Fprintf(progress, "bench: "+format+"\n", args...) }
	r := &run{s: s, rep: rep, tracker: newTracker(), say: say, runID: newRunID(),
		client: &http.Client{Timeout: 30 * time.Second, Transport: keepAlive()}}
	defer func() {
		rep.Processes = r.processes()
		if cerr := s.close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("stop the system: %w", cerr))
		}
		if cfg.KeepWorkDir {
			say("kept the run's logs and stores in %s", work)
		}
	}()
	if err := os.MkdirAll(s.logs, 0o755); err != nil {
		return rep, err
	}
	return rep, r.all(ctx)
}

// run is one benchmark run in progress.
type run struct {
	s       *system
	rep     *Report
	tracker *tracker
	lag     lagSampler
	client  *http.Client
	runID   string
	say     func(format string, args ...any)
	prof    *profiler
	// consumed are the streams the services consume, whose consumers' lag is sampled.
	consumed []jetstream.Stream
	// phases counts the phases run so far.
	phases int
}

// all is the run, step by step.
func (r *run) all(ctx context.Context) error {
	for _, step := range []func(context.Context) error{r.start, r.ceiling, r.startServices, r.load, r.worstCase, r.finish} {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return nil
}

// start starts what the ceiling is measured on: nats-server, PostgreSQL, the issuer and the target.
func (r *run) start(ctx context.Context) error {
	s := r.s
	r.say("starting nats-server (sync_interval: always), PostgreSQL, the identity issuer and the webhook target")
	if err := s.startNATS(ctx); err != nil {
		return err
	}
	var err error
	if s.keys, err = devmode.EnsureKeys(filepath.Join(s.work, "keys")); err != nil {
		return err
	}
	if err := s.startPostgres(ctx); err != nil {
		return err
	}
	if err := s.startFront(ctx); err != nil {
		return err
	}
	return s.writeFiles()
}

// ceiling measures the raw ceiling, then leaves the services an empty evidence stream.
func (r *run) ceiling(ctx context.Context) error {
	s, cfg := r.s, r.s.cfg
	r.say("raw ceiling: %d sync and %d async publishes, %d events through load+append with 1 and %d writers",
		cfg.RawMessages, 5*cfg.RawMessages, cfg.Updates, cfg.UpdateWriters)
	c := &r.rep.Ceiling
	err := s.withRawStream(ctx, func() error {
		var err error
		if c.SyncPublish, err = s.rawSync(ctx, cfg.RawMessages); err != nil {
			return err
		}
		c.AsyncWindow = asyncWindow
		c.AsyncPublish, err = s.rawAsync(ctx, 5*cfg.RawMessages)
		return err
	})
	if err != nil {
		return err
	}
	if c.Update, err = s.updateCeiling(ctx, 1, cfg.Updates); err != nil {
		return err
	}
	c.UpdateWriters = cfg.UpdateWriters
	if c.UpdateParallel, err = s.updateCeiling(ctx, cfg.UpdateWriters, cfg.Updates); err != nil {
		return err
	}
	return s.resetEvents(ctx)
}

// startServices starts the service processes.
func (r *run) startServices(ctx context.Context) error {
	r.say("starting the services: %s", strings.Join(Services, ", "))
	return r.s.startServices(ctx)
}

// load runs the phases, watching the stream for decisions and grants and the consumers for lag.
func (r *run) load(ctx context.Context) error {
	cfg := r.s.cfg
	stopObserving, err := r.observe(ctx)
	if err != nil {
		return err
	}
	defer stopObserving()
	if err := r.consumedStreams(ctx); err != nil {
		return err
	}
	lagCtx, stopLag := context.WithCancel(ctx)
	defer stopLag()
	go r.sampleLag(lagCtx, lagInterval)

	if cfg.Warmup > 0 {
		r.say("warm-up: %d requests", cfg.Warmup)
		if _, err := r.phase(ctx, phaseWarmup, cfg.Warmup, 0); err != nil {
			return err
		}
	}
	if err := r.idle(ctx); err != nil {
		return err
	}
	if cfg.Rate == RateMax || cfg.Rate == RateHalf {
		r.say("maximum rate: %d requests, at most %d in flight", cfg.Requests, cfg.InFlight)
		ph, err := r.phase(ctx, phaseMax, cfg.Requests, 0)
		r.rep.Phases = append(r.rep.Phases, ph)
		if err != nil {
			return err
		}
		if err := r.compare(ctx); err != nil {
			return err
		}
	}
	if cfg.Rate == RateMax {
		return nil
	}
	if cfg.Rate == RateHalf {
		if err := r.sustain(ctx, r.rep.Phases[0].Sustained); err != nil {
			return err
		}
	}
	rate, err := cfg.heldRate(r.rep.Sustainable.Rate)
	if err != nil {
		return err
	}
	n := max(1, int(rate*cfg.Hold.Seconds()))
	r.say("holding %.1f requests/s for %s (%d requests)", rate, cfg.Hold, n)
	ph, err := r.phase(ctx, phaseHold, n, rate)
	r.rep.Phases = append(r.rep.Phases, ph)
	return err
}

// finish measures the raw publish again and summarises the profiles.
func (r *run) finish(ctx context.Context) error {
	s, cfg := r.s, r.s.cfg
	r.rep.WebhookCalls = s.target.calls.Load()
	r.say("raw sync publish again, to see how far the machine moved")
	if err := r.waitIdle(ctx, cfg.PhaseTimeout); err != nil {
		return err
	}
	err := s.withRawStream(ctx, func() error {
		var err error
		r.rep.RawSyncAfter, err = s.rawSync(ctx, cfg.RawMessages)
		return err
	})
	if err != nil {
		return err
	}
	if r.prof != nil {
		r.say("summarising the profiles in %s", cfg.ProfileDir)
		r.rep.Profiles = r.prof.summarise(ctx)
	}
	return nil
}

// compare runs the maximum-rate phase again with the --compare binaries in place, alternating with
// the usual ones (the first round of which has run), so drift of the machine during the run falls on
// both; it leaves the usual binaries running.
func (r *run) compare(ctx context.Context) error {
	cfg := r.s.cfg
	swap := func(candidate bool) error {
		for _, svc := range slices.Sorted(maps.Keys(cfg.Compare)) {
			bin := r.s.binary(svc)
			if candidate {
				bin = cfg.Compare[svc]
			}
			r.say("running %s from %s", svc, bin)
			if err := r.s.swap(ctx, svc, bin); err != nil {
				return err
			}
		}
		return nil
	}
	if len(cfg.Compare) == 0 {
		return nil
	}
	for round := range cfg.CompareRounds {
		if round > 0 {
			ph, err := r.phase(ctx, phaseMax, cfg.Requests, 0)
			r.rep.Phases = append(r.rep.Phases, ph)
			if err != nil {
				return err
			}
		}
		if err := swap(true); err != nil {
			return err
		}
		ph, err := r.phase(ctx, phaseCompared, cfg.Requests, 0)
		r.rep.Phases = append(r.rep.Phases, ph)
		if err != nil {
			return err
		}
		if err := swap(false); err != nil {
			return err
		}
	}
	return nil
}

// phase submits n requests, as fast as the system takes them (rate 0) or at rate per second, and
// waits until every one is granted or has failed and every consumer's backlog is drained, within the
// phase timeout: the CPU the phase measures is then all the work its requests caused, including work
// deferred past the last grant.
func (r *run) phase(ctx context.Context, name string, n int, rate float64) (Phase, error) {
	ph := Phase{Name: name, TargetRate: rate, Planned: n}
	var window chan struct{}
	if rate == 0 {
		ph.InFlight = r.s.cfg.InFlight
		window = make(chan struct{}, ph.InFlight)
	}
	// Keys are unique in the run: a key used again would be an Idempotency-Key (or CloudEvent id)
	// replayed, answered with the request it made before.
	r.phases++
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s-%d-%s-%05d", r.runID, r.phases, name, i)
	}
	if err := r.waitIdle(ctx, r.s.cfg.PhaseTimeout); err != nil {
		return ph, fmt.Errorf("before phase %s: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return ph, err
	}
	ctx, cancel := context.WithTimeout(ctx, r.s.cfg.PhaseTimeout)
	defer cancel()
	seq0, err := r.lastSeq(ctx)
	if err != nil {
		return ph, err
	}
	r.tracker.begin(window)
	r.lag.reset()
	r.recordLag(ctx)
	cpu0, cpuFrom := r.cpu(), time.Now()
	if name == phaseMax && len(r.s.cfg.Profile) > 0 && r.prof == nil {
		if r.prof, err = startProfiler(ctx, r.s.cfg.ProfileDir, r.s.children()); err != nil {
			return ph, err
		}
	}
	stopProgress := r.progress(name, n)
	submitFrom := time.Now()
	if rate == 0 {
		r.closedLoop(ctx, keys, window)
	} else {
		r.openLoop(ctx, keys, rate)
	}
	// The backlog as the last request went out ends the window the phase is judged on, so that window
	// holds a sample however short the phase.
	submitTo := r.recordLag(ctx)
	err = r.tracker.waitFinished(ctx, n)
	stopProgress()
	if err == nil {
		err = r.waitIdle(ctx, r.s.cfg.PhaseTimeout)
	}
	ph.CPU, ph.CPUWindow = since(r.cpu(), cpu0), time.Since(cpuFrom)
	if r.prof != nil {
		r.prof.stopAndWait()
	}
	r.recordLag(context.WithoutCancel(ctx))
	samples := r.lag.reset()
	ph.Lag = maxLag(samples)
	r.tracker.fill(&ph)
	ph.Budget = budgetOf(ph.CPU, ph.Granted)
	judged, offered := rate, rate > 0
	if !offered {
		judged = ph.Sustained
	}
	ph.KeepUp = judgeKeepUp(samples, submitFrom, submitTo, judged, ph.SubmitRate, offered)
	seq1, serr := r.lastSeq(context.WithoutCancel(ctx))
	ph.Events = int(seq1 - seq0)
	if err != nil {
		return ph, fmt.Errorf("phase %s: %w", name, err)
	}
	if serr != nil {
		return ph, serr
	}
	if ph.Failed > 0 {
		return ph, fmt.Errorf("phase %s: %d of %d requests failed, first: %s", name, ph.Failed, n, strings.Join(ph.Failures, "; "))
	}
	return ph, nil
}

// progress prints the phase's state every few seconds until stopped.
func (r *run) progress(name string, n int) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(finished)
		tick := time.NewTicker(3 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				sub, fin := r.tracker.progress()
				r.say("  %s %4.0fs: %d of %d submitted, %d granted or failed", name, time.Since(start).Seconds(), sub, n, fin)
			}
		}
	}()
	return func() { close(done); <-finished }
}

func (r *run) lastSeq(ctx context.Context) (uint64, error) {
	st, err := r.s.js.Stream(ctx, topology.EventsStream)
	if err != nil {
		return 0, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.LastSeq, nil
}

func newRunID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "bench" + hex.EncodeToString(b)
}

// keepAlive is a transport that keeps a connection per submitter open, as a client library would,
// instead of the default two idle connections per host.
func keepAlive() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns, t.MaxIdleConnsPerHost = submitters*2, submitters*2
	return t
}
