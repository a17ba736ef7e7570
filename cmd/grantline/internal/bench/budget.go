package bench

import (
	"cmp"
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
	fmt.Fprintln(tw, strings.Join(header, "\t"))
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
	row := func(label string, value func(Phase) float64) {
		cells := []string{"  " + label}
		for _, ph := range phases {
			cells = append(cells, fmt.Sprintf("%7.2f", value(ph)))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	for _, name := range names {
		row(name, func(ph Phase) float64 { return ph.Budget.PerProcessMS[name] })
	}
	row("total", func(ph Phase) float64 { return ph.Budget.TotalMS })
	row("bench, not counted", func(ph Phase) float64 { return ph.Budget.BenchMS })
	tw.Flush()
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
