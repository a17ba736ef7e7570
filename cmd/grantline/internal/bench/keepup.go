package bench

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// A rate the system only appears to carry, granting quickly while a consumer off the granting path (the
// approval inbox, the read side) falls ever further behind, is not a rate it can hold. So the bench
// judges every phase by its consumers' backlogs, and the held phase runs at half the highest offered
// rate at which every consumer keeps up.
//
// A consumer keeps up with a phase when, over the last half of its submissions (the first half fills
// the pipeline), its backlog
//   - stays under a bound: one second of arrivals (the offered rate in requests, and never less than
//     minLagBound, since a few deliveries in flight are no backlog), and
//   - does not grow: its mean over the last quarter of the submissions exceeds its mean over the third
//     quarter by less than a quarter of that bound, so a slow drift that would cross the bound in a
//     longer phase fails too.
//
// An open-loop phase also needs the submissions to have gone out at 95% of the offered rate or more:
// below that, intake's answers held the bench back and the offered rate was never carried.
const (
	minLagBound = 50
	// minSubmitShare is the share of the offered rate the submissions must achieve.
	minSubmitShare = 0.95
)

// KeepUp is the verdict on whether every consumer kept up during a phase.
type KeepUp struct {
	// Kept is true when every consumer's backlog stayed bounded and did not grow.
	Kept bool
	// Bound is the largest backlog allowed to each consumer, in messages.
	Bound uint64
	// Samples is how many backlog samples the judged window held.
	Samples int
	// Behind says, per consumer or for the submissions, why it did not keep up.
	Behind []string
}

// judgeKeepUp judges the backlog samples of a phase whose submissions ran from first to last at rate
// requests/s (offered, for an open loop; what it sustained, for the maximum rate), achieving
// submitRate when offered is true.
func judgeKeepUp(samples []lagSample, first, last time.Time, rate, submitRate float64, offered bool) KeepUp {
	k := KeepUp{Bound: max(minLagBound, uint64(rate))}
	half, threeQuarters := first.Add(last.Sub(first)/2), first.Add(last.Sub(first)*3/4)
	var third, fourth []map[string]uint64
	for _, s := range samples {
		switch {
		case s.at.Before(half) || s.at.After(last):
		case s.at.Before(threeQuarters):
			third = append(third, s.lag)
		default:
			fourth = append(fourth, s.lag)
		}
	}
	k.Samples = len(third) + len(fourth)
	consumers := map[string]bool{}
	for _, s := range slices.Concat(third, fourth) {
		for name := range s {
			consumers[name] = true
		}
	}
	for _, name := range slices.Sorted(maps.Keys(consumers)) {
		var peak uint64
		for _, s := range slices.Concat(third, fourth) {
			peak = max(peak, s[name])
		}
		if peak > k.Bound {
			k.Behind = append(k.Behind, fmt.Sprintf("%s %d waiting (bound %d)", name, peak, k.Bound))
			continue
		}
		if len(third) > 0 && len(fourth) > 0 {
			if grew := meanLag(fourth, name) - meanLag(third, name); grew >= float64(k.Bound)/4 {
				k.Behind = append(k.Behind, fmt.Sprintf("%s backlog grew by %.0f", name, grew))
			}
		}
	}
	if offered && submitRate < minSubmitShare*rate {
		k.Behind = append(k.Behind, fmt.Sprintf("submissions went out at %.1f/s of %.1f/s offered", submitRate, rate))
	}
	if k.Samples == 0 {
		k.Behind = append(k.Behind, "no backlog sample in the last half of the submissions")
	}
	k.Kept = len(k.Behind) == 0
	return k
}

func meanLag(samples []map[string]uint64, name string) float64 {
	var sum uint64
	for _, s := range samples {
		sum += s[name]
	}
	return float64(sum) / float64(len(samples))
}

// Sustainable is the highest offered rate at which every consumer kept up, found by a short search.
type Sustainable struct {
	// Rate is the highest offered rate, in requests/s, of a step at which every consumer kept up; 0
	// when none did.
	Rate float64
	// FellBehind is the lowest offered rate of a step at which a consumer fell behind; 0 when none did
	// (Rate is then only a lower bound).
	FellBehind float64
	// EventsPerRequest is what a request appended in the step at Rate.
	EventsPerRequest float64
	// Steps is how many steps the search ran.
	Steps int
}

// EventsPerSecond is Rate in events.
func (s Sustainable) EventsPerSecond() float64 { return s.Rate * s.EventsPerRequest }

// sustain searches for the highest rate every consumer keeps up with, starting at the maximum phase's
// sustained rate (start): while every step keeps up and no higher step has fallen behind, the next
// offers half as much again (a closed loop with a deep window can sustain less than the system
// carries open loop); once one has fallen behind, the steps bisect between the highest rate that
// kept up so far (at first none) and the lowest that did not. Each step offers its rate for
// KeepUpStep and finishes (all granted, every backlog drained) before the next; KeepUpSteps bounds
// the search. With the default five steps, a first step that falls behind leaves the rate resolved to
// a sixteenth of start.
func (r *run) sustain(ctx context.Context, start float64) error {
	cfg := r.s.cfg
	k := &r.rep.Sustainable
	lo, hi := 0.0, 0.0
	for step := range cfg.KeepUpSteps {
		rate := nextRate(start, lo, hi)
		n := max(1, int(rate*cfg.KeepUpStep.Seconds()))
		r.say("keep-up step %d of at most %d: %.1f requests/s for %s", step+1, cfg.KeepUpSteps, rate, cfg.KeepUpStep)
		ph, err := r.phase(ctx, phaseKeepUp, n, rate)
		r.rep.Phases = append(r.rep.Phases, ph)
		k.Steps++
		if err != nil {
			return err
		}
		if ph.KeepUp.Kept {
			lo, k.EventsPerRequest = rate, ph.EventsPerRequest()
		} else {
			hi, k.FellBehind = rate, rate
			r.say("  fell behind: %v", ph.KeepUp.Behind)
		}
	}
	k.Rate = lo
	if lo == 0 {
		return fmt.Errorf("no offered rate kept every consumer up, down to %.1f requests/s", hi)
	}
	return nil
}

// nextRate is the rate the next step of the search offers, given the rate it starts at, the highest
// rate that kept up so far (lo) and the lowest that fell behind (hi), 0 for none.
func nextRate(start, lo, hi float64) float64 {
	switch {
	case lo == 0 && hi == 0:
		return start
	case hi == 0:
		return lo * 1.5
	default:
		return (lo + hi) / 2
	}
}

// describe says whether every consumer kept up, and if not, which fell behind.
func (k KeepUp) describe() string {
	if k.Kept {
		return fmt.Sprintf("yes: every backlog under %d and not growing over the last half of the submissions (samples: %d)", k.Bound, k.Samples)
	}
	return "no: " + strings.Join(k.Behind, "; ")
}

// printSustainable lists the steps of the search and the highest rate every consumer kept up with.
func (rep *Report) printSustainable(w io.Writer) {
	var steps []Phase
	for _, ph := range rep.Phases {
		if ph.Name == phaseKeepUp {
			steps = append(steps, ph)
		}
	}
	if len(steps) == 0 {
		return
	}
	k := rep.Sustainable
	fmt.Fprintf(w, "\nSustained requests/s with every consumer keeping up: %s", num(k.Rate))
	if k.FellBehind > 0 {
		fmt.Fprintf(w, " (%s fell behind)", num(k.FellBehind))
	} else {
		fmt.Fprintf(w, " or more (no step fell behind)")
	}
	fmt.Fprintf(w, " = %s events/s = %.2f× the raw async publish ceiling\n", num(k.EventsPerSecond()), ratio(k.EventsPerSecond(), rep.Ceiling.AsyncPublish.PerSecond()))
	fmt.Fprintf(w, "  steps of %s, each offered at a fixed rate; a consumer keeps up when its backlog stays under one second of requests (at least %d) and does not grow over the last half\n",
		rep.Config.KeepUpStep, minLagBound)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  offered/s\tsubmitted/s\tgranted/s\tdecision p99\tgranted p99\tCPU/grant\tkept up")
	for _, ph := range steps {
		kept := "yes"
		if !ph.KeepUp.Kept {
			kept = "no: " + strings.Join(ph.KeepUp.Behind, "; ")
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%.2f ms\t%s\n", num(ph.TargetRate), num(ph.SubmitRate), num(ph.Sustained),
			ms(ph.Decision.P99), ms(ph.GrantedLatency.P99), ph.Budget.TotalMS, kept)
	}
	tw.Flush()
}
