package bench

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// DESIGN §8's CPU budget: all processes of the system, per granted request.
const (
	targetCPUPerRequest = 4 * time.Millisecond
	goalCPUPerRequest   = 2 * time.Millisecond
)

// benchProcess is the bench itself in the CPU and memory figures.
const benchProcess = "bench"

// Budget is the CPU a phase spent per granted request, in milliseconds: what DESIGN §8 budgets, and
// the most stable figure on a CPU-bound machine.
type Budget struct {
	// PerProcessMS is each process's CPU per granted request: nats-server, the services, and postgres,
	// which counts every process of the private cluster (the postmaster and all its backends, live and
	// exited).
	PerProcessMS map[string]float64
	// TotalMS sums PerProcessMS.
	TotalMS float64
	// BenchMS is the bench's own CPU per granted request (load generator, identity issuer, webhook
	// target): not the system's, so not in TotalMS.
	BenchMS float64
}

// budgetOf is the budget of a phase whose processes used cpu for granted requests; empty when nothing
// was granted.
func budgetOf(cpu map[string]time.Duration, granted int) Budget {
	b := Budget{PerProcessMS: map[string]float64{}}
	if granted == 0 {
		return b
	}
	perGrant := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / float64(granted) }
	for name, d := range cpu {
		if name == benchProcess {
			b.BenchMS = perGrant(d)
			continue
		}
		b.PerProcessMS[name] = perGrant(d)
		b.TotalMS += perGrant(d)
	}
	return b
}

// IdleCPU is what the system's processes use while no request is submitted: consumers polling,
// heartbeats, timers, PostgreSQL's background work, and the bench's backlog sampling that every
// phase pays too.
type IdleCPU struct {
	Window time.Duration
	// PerProcessMSPerSecond is each system process's CPU milliseconds per second of the window.
	PerProcessMSPerSecond map[string]float64
	// TotalMSPerSecond sums PerProcessMSPerSecond: at r requests/s, TotalMSPerSecond/r of a phase's
	// CPU per granted request is this fixed cost.
	TotalMSPerSecond float64
}

// idle measures the system's CPU over the Idle window once every backlog has drained.
func (r *run) idle(ctx context.Context) error {
	cfg := r.s.cfg
	if cfg.Idle <= 0 {
		return nil
	}
	if err := r.waitIdle(ctx, cfg.PhaseTimeout); err != nil {
		return err
	}
	r.say("idle: measuring the system's CPU for %s", cfg.Idle)
	cpu0, from := r.cpu(), time.Now()
	window := time.NewTimer(cfg.Idle)
	defer window.Stop()
	select {
	case <-window.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	cpu, elapsed := since(r.cpu(), cpu0), time.Since(from)
	idle := IdleCPU{Window: elapsed, PerProcessMSPerSecond: map[string]float64{}}
	for name, d := range cpu {
		if name == benchProcess {
			continue
		}
		perSecond := msOf(d) / elapsed.Seconds()
		idle.PerProcessMSPerSecond[name] = perSecond
		idle.TotalMSPerSecond += perSecond
	}
	r.rep.Idle = idle
	return nil
}

// printBudget sets side by side the CPU per granted request of the maximum-rate and held phases.
func (rep *Report) printBudget(w io.Writer) {
	var phases []Phase
	for _, ph := range rep.Phases {
		if ph.Name == phaseMax || ph.Name == phaseHold {
			phases = append(phases, ph)
		}
	}
	if len(phases) == 0 {
		return
	}
	fmt.Fprintf(w, "\nCPU per granted request, ms (user + system time from the phase's start until every consumer had drained; postgres: all its processes)\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	header := []string{""}
	for _, ph := range phases {
		header = append(header, phaseLabel(ph))
	}
	procs := map[string]bool{}
	for _, ph := range phases {
		for name := range ph.Budget.PerProcessMS {
			procs[name] = true
		}
	}
	// Heaviest first, by the first phase.
	names := slices.SortedFunc(maps.Keys(procs), func(a, b string) int {
		return cmp.Or(cmp.Compare(phases[0].Budget.PerProcessMS[b], phases[0].Budget.PerProcessMS[a]), cmp.Compare(a, b))
	})
	idle := rep.Idle
	if idle.Window > 0 {
		header = append(header, "idle, ms per second")
	}
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	row := func(label string, value func(Phase) float64, idleValue string) {
		cells := []string{"  " + label}
		for _, ph := range phases {
			cells = append(cells, fmt.Sprintf("%7.2f", value(ph)))
		}
		if idle.Window > 0 {
			cells = append(cells, idleValue)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	for _, name := range names {
		row(name, func(ph Phase) float64 { return ph.Budget.PerProcessMS[name] }, fmt.Sprintf("%7.2f", idle.PerProcessMSPerSecond[name]))
	}
	row("total", func(ph Phase) float64 { return ph.Budget.TotalMS }, fmt.Sprintf("%7.2f", idle.TotalMSPerSecond))
	row("bench, not counted", func(ph Phase) float64 { return ph.Budget.BenchMS }, "")
	tw.Flush()
	if idle.Window > 0 {
		fmt.Fprintf(w, "  idle: measured over %s after the warm-up with nothing submitted; at r requests/s it adds %.1f/r ms to each granted request\n",
			idle.Window.Round(100*time.Millisecond), idle.TotalMSPerSecond)
	}
	for _, ph := range phases {
		fmt.Fprintf(w, "  %s: %.2f ms in all; DESIGN §8: ≤ %s (%s), goal %s (%s)\n", phaseLabel(ph), ph.Budget.TotalMS,
			ms(targetCPUPerRequest), verdict(ph.Budget.TotalMS <= msOf(targetCPUPerRequest)),
			ms(goalCPUPerRequest), verdict(ph.Budget.TotalMS <= msOf(goalCPUPerRequest)))
	}
}

// phaseLabel names a phase with its rate, for tables.
func phaseLabel(ph Phase) string {
	if ph.TargetRate == 0 {
		return fmt.Sprintf("%s (%s/s)", ph.Name, num(ph.Sustained))
	}
	return fmt.Sprintf("%s (%s/s)", ph.Name, num(ph.TargetRate))
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
