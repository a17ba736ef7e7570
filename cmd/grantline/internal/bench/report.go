package bench

import (
	"cmp"
	"encoding/json/jsontext"
	"encoding/json/v2"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	pgconnector "github.com/grantline/grantline/pkg/connector/postgres"
)

// Report is what a run measured.
type Report struct {
	Started time.Time
	Config  Config
	Ceiling Ceiling
	// RawSyncAfter repeats the sync publish once the load is over: how far the machine moved meanwhile.
	RawSyncAfter Rate
	Phases       []Phase
	// Idle is the system's CPU while it does nothing.
	Idle IdleCPU
	// Sustainable is the highest rate at which every consumer kept up (with RateHalf).
	Sustainable Sustainable
	// WorstCase is the postgres connector's cost per grant against the grants one person holds.
	WorstCase []WorstCasePoint
	Processes []Process
	Profiles  []Profile
	// WebhookCalls is how many calls the webhook target answered.
	WebhookCalls int64
	// WorkDir held the run's logs, configuration and stores (removed unless kept).
	WorkDir string
}

// Process is one process of the system with its peak memory.
type Process struct {
	Name string
	PID  int
	// PeakRSS is VmHWM in bytes at the end of the run; for PostgreSQL, of the postmaster alone.
	PeakRSS int64
}

// Phase is what one load phase measured.
type Phase struct {
	Name string
	// TargetRate is the rate held, in requests/s; 0 in the maximum-rate phase, whose InFlight bounds it.
	TargetRate float64
	InFlight   int
	// Planned, Submitted, Granted, Failed count requests; Failures are the first distinct reasons.
	Planned, Submitted, Granted, Failed int
	Failures                            []string
	// Requesters is how many distinct people of the population the requests were for.
	Requesters int
	// Elapsed runs from the first submission to the last grant.
	Elapsed time.Duration
	// SubmitRate is the rate of submissions; Overall the grants over Elapsed; Sustained the grants of
	// the middle 80% over their own span.
	SubmitRate, Overall, Sustained float64
	// Events were appended to the evidence stream during the phase.
	Events int
	// Submit is the time intake took to answer (HTTP 202, or the accepted CloudEvent); Decision and
	// GrantedLatency run from submission to when nats-server stored policy_decided and granted.
	Submit, Decision, GrantedLatency Latency
	// Lag is the largest backlog (pending plus unacknowledged) seen on each consumer.
	Lag map[string]uint64
	// KeepUp says whether every consumer kept up with the phase's rate.
	KeepUp KeepUp
	// CPU is each process's CPU time over CPUWindow, from the phase's start until its last request was
	// granted and every consumer's backlog drained, so work deferred past the last grant counts.
	CPU       map[string]time.Duration
	CPUWindow time.Duration
	// Budget is CPU per granted request.
	Budget Budget
}

// EventsPerRequest is how many events one granted request appended.
func (p Phase) EventsPerRequest() float64 {
	if p.Granted == 0 {
		return 0
	}
	return float64(p.Events) / float64(p.Granted)
}

// EventsPerSecond is the sustained rate in events.
func (p Phase) EventsPerSecond() float64 { return p.Sustained * p.EventsPerRequest() }

// DESIGN §8's targets for this machine.
const (
	targetRequestsPerSecond = 500
	targetRatioToPublish    = 0.5
	targetDecisionP99       = 20 * time.Millisecond
	targetGrantedP99        = 50 * time.Millisecond
	targetServiceRSS        = 64 << 20
)

// Print writes the report for people: what ran, the ceiling, each phase, the ratios and targets, peak
// memory and the profiles.
func (rep *Report) Print(w io.Writer) {
	cfg := rep.Config
	fmt.Fprintf(w, "Grantline system benchmark, %s\n", rep.Started.Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(w, "  processes   nats-server (JetStream, sync_interval: always, R1 file streams) and %s, from %s/\n", strings.Join(Services, ", "), cfg.BinDir)
	if cfg.Via == ViaIntegration {
		fmt.Fprintf(w, "  submitted   as CloudEvents on grantline.intake.%s.requests (JetStream publish), accepted when intake answers\n", integrationName)
	} else {
		fmt.Fprintf(w, "  submitted   over HTTP: POST /v1/requests with a bearer token and an Idempotency-Key, kept-alive connections\n")
	}
	fmt.Fprintf(w, "  requests    %s for 1h, for %d people of group %s in turn, auto-approved by %s/policies, ", entitlement, cfg.People, populationGroup, cfg.Examples)
	if cfg.Connector == pgconnector.Name {
		fmt.Fprintf(w, "granted by the postgres connector (a grant role per grant, granted to the person's role, on the private PostgreSQL)\n")
	} else {
		fmt.Fprintf(w, "granted by the webhook connector (an HMAC-checking target in the bench process: %d calls)\n", rep.WebhookCalls)
	}
	fmt.Fprintf(w, "  latencies   from just before the bench submits to when nats-server stored the event; nearest-rank percentiles\n\n")

	c := rep.Ceiling
	fmt.Fprintln(w, "Raw ceiling, same nats-server, same run")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  JetStream publish, sync\t%s msgs/s\t%s\n", num(c.SyncPublish.PerSecond()), lat(c.SyncPublish.Latency))
	fmt.Fprintf(tw, "  JetStream publish, async (%d in flight)\t%s msgs/s\t\n", c.AsyncWindow, num(c.AsyncPublish.PerSecond()))
	fmt.Fprintf(tw, "  load+append with CAS, 1 writer\t%s events/s\t%s\n", num(c.Update.PerSecond()), lat(c.Update.Latency))
	fmt.Fprintf(tw, "  load+append with CAS, %d writers\t%s events/s\t%s\n", c.UpdateWriters, num(c.UpdateParallel.PerSecond()), lat(c.UpdateParallel.Latency))
	if rep.RawSyncAfter.Ops > 0 {
		fmt.Fprintf(tw, "  JetStream publish, sync, after the load\t%s msgs/s\t%s (%.2f× the first: the machine's drift)\n",
			num(rep.RawSyncAfter.PerSecond()), lat(rep.RawSyncAfter.Latency), ratio(rep.RawSyncAfter.PerSecond(), c.SyncPublish.PerSecond()))
	}
	tw.Flush()

	for _, ph := range rep.Phases {
		if ph.Name != phaseKeepUp {
			fmt.Fprintln(w)
			ph.print(w)
		}
	}
	rep.printComparison(w)
	rep.printSustainable(w)
	rep.printRatios(w)
	rep.printBudget(w)
	rep.printWorstCase(w)
	rep.printMemory(w)
	for _, p := range rep.Profiles {
		fmt.Fprintf(w, "\nCPU profile of %s during the first maximum-rate phase (%d × %s, merged; cumulative)\n", p.Process, len(p.Files), profileWindow)
		if len(p.Files) > 0 {
			fmt.Fprintf(w, "  saved in %s as %s-*.pb.gz; more with: go tool pprof -top -cum %s\n", filepath.Dir(p.Files[0]), p.Process,
				filepath.Join(filepath.Dir(p.Files[0]), p.Process+"-*.pb.gz"))
		}
		if p.Err != "" {
			fmt.Fprintf(w, "  %s\n", p.Err)
		}
		fmt.Fprint(w, indent(p.Top))
	}
}

// WriteJSON writes the report as one JSON document, for scripts: durations as Go duration strings
// ("12.5ms"), figures per granted request as the *MS fields.
func (rep *Report) WriteJSON(w io.Writer) error {
	durations := json.MarshalFunc(func(d time.Duration) ([]byte, error) { return json.Marshal(d.String()) })
	return json.MarshalWrite(w, rep, json.WithMarshalers(durations), jsontext.WithIndent("  "))
}

func (ph Phase) print(w io.Writer) {
	if ph.TargetRate == 0 {
		fmt.Fprintf(w, "Phase %s: as fast as the system takes them, at most %d in flight\n", ph.Name, ph.InFlight)
	} else {
		fmt.Fprintf(w, "Phase %s: %.1f requests/s held (%.1f submitted/s achieved)\n", ph.Name, ph.TargetRate, ph.SubmitRate)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  requests\t%d submitted, %d granted, %d failed; first submit to last grant %s; for %d distinct people\n",
		ph.Submitted, ph.Granted, ph.Failed, ph.Elapsed.Round(time.Millisecond), ph.Requesters)
	for _, f := range ph.Failures {
		fmt.Fprintf(tw, "  failure\t%s\n", f)
	}
	fmt.Fprintf(tw, "  throughput\t%s requests/s sustained (middle 80%% of grants), %s overall; %.2f events/request = %s events/s\n",
		num(ph.Sustained), num(ph.Overall), ph.EventsPerRequest(), num(ph.EventsPerSecond()))
	fmt.Fprintf(tw, "  submit\t%s\n", lat(ph.Submit))
	fmt.Fprintf(tw, "  submit → decision\t%s\n", lat(ph.Decision))
	fmt.Fprintf(tw, "  submit → granted\t%s\n", lat(ph.GrantedLatency))
	var lags []string
	for _, name := range slices.Sorted(maps.Keys(ph.Lag)) {
		lags = append(lags, fmt.Sprintf("%s %d", name, ph.Lag[name]))
	}
	fmt.Fprintf(tw, "  consumer lag, max\t%s\n", strings.Join(lags, ", "))
	fmt.Fprintf(tw, "  every consumer kept up\t%s\n", ph.KeepUp.describe())
	var total time.Duration
	for name, d := range ph.CPU {
		if name != benchProcess {
			total += d
		}
	}
	names := slices.SortedFunc(maps.Keys(ph.CPU), func(a, b string) int { return cmp.Compare(ph.CPU[b], ph.CPU[a]) })
	var cpu []string
	for _, name := range names {
		if name != benchProcess {
			cpu = append(cpu, fmt.Sprintf("%s %.1fs (%.0f%%)", name, ph.CPU[name].Seconds(), 100*ratio(ph.CPU[name].Seconds(), total.Seconds())))
		}
	}
	fmt.Fprintf(tw, "  CPU\t%s; %.1fs in all over %s = %.2f cores busy (the bench itself: %.1fs more)\n", strings.Join(cpu, ", "), total.Seconds(),
		ph.CPUWindow.Round(100*time.Millisecond), ratio(total.Seconds(), ph.CPUWindow.Seconds()), ph.CPU[benchProcess].Seconds())
	fmt.Fprintf(tw, "  CPU per granted request\t%.2f ms in all processes (DESIGN §8: ≤ %s, %s)\n", ph.Budget.TotalMS, ms(targetCPUPerRequest),
		verdict(ph.Budget.TotalMS <= msOf(targetCPUPerRequest)))
	if ph.TargetRate > 0 {
		fmt.Fprintf(tw, "  DESIGN §8\tsubmit → decision p99 %s (target ≤ %s: %s); submit → granted p99 %s (target ≤ %s: %s)\n",
			ms(ph.Decision.P99), ms(targetDecisionP99), verdict(ph.Decision.P99 <= targetDecisionP99),
			ms(ph.GrantedLatency.P99), ms(targetGrantedP99), verdict(ph.GrantedLatency.P99 <= targetGrantedP99))
	}
	tw.Flush()
}

// throughputPhase is the phase whose rate the ratios use: the maximum-rate phase when there is one.
func (rep *Report) throughputPhase() (Phase, bool) {
	for _, ph := range rep.Phases {
		if ph.Name == phaseMax {
			return ph, true
		}
	}
	if len(rep.Phases) > 0 {
		return rep.Phases[0], true
	}
	return Phase{}, false
}

// printRatios sets the maximum-rate phase's rate, and the highest rate at which every consumer kept
// up, against the ceiling; DESIGN §8 judges the latter when the search ran.
func (rep *Report) printRatios(w io.Writer) {
	ph, ok := rep.throughputPhase()
	if !ok {
		return
	}
	c := rep.Ceiling
	type column struct {
		label           string
		requests, evnts float64
	}
	cols := []column{{fmt.Sprintf("%s phase: %s requests/s, %s events/s", ph.Name, num(ph.Sustained), num(ph.EventsPerSecond())),
		ph.Sustained, ph.EventsPerSecond()}}
	if k := rep.Sustainable; k.Rate > 0 {
		cols = append(cols, column{fmt.Sprintf("every consumer keeping up: %s requests/s, %s events/s", num(k.Rate), num(k.EventsPerSecond())),
			k.Rate, k.EventsPerSecond()})
	}
	judged := cols[len(cols)-1]
	fmt.Fprintln(w, "\nRatios to the ceiling")
	for i, col := range cols {
		fmt.Fprintf(w, "  (%d) %s\n", i+1, col.label)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(label string, divisor float64, design string) {
		cells := []string{"  " + label}
		for _, col := range cols {
			cells = append(cells, fmt.Sprintf("%.2f×", ratio(col.evnts, divisor)))
		}
		fmt.Fprintln(tw, strings.Join(append(cells, design), "\t"))
	}
	head := []string{""}
	for i := range cols {
		head = append(head, fmt.Sprintf("(%d)", i+1))
	}
	fmt.Fprintln(tw, strings.Join(append(head, ""), "\t"))
	row("events/s ÷ raw async publish", c.AsyncPublish.PerSecond(), fmt.Sprintf("DESIGN §8 (%d): ≥ %.1f× (%s)", len(cols), targetRatioToPublish,
		verdict(ratio(judged.evnts, c.AsyncPublish.PerSecond()) >= targetRatioToPublish)))
	row("events/s ÷ raw sync publish", c.SyncPublish.PerSecond(), "")
	row("events/s ÷ load+append, 1 writer", c.Update.PerSecond(), "")
	row(fmt.Sprintf("events/s ÷ load+append, %d writers", c.UpdateWriters), c.UpdateParallel.PerSecond(), "")
	cells := []string{fmt.Sprintf("  requests/s ÷ %d", targetRequestsPerSecond)}
	for _, col := range cols {
		cells = append(cells, fmt.Sprintf("%.2f×", col.requests/targetRequestsPerSecond))
	}
	fmt.Fprintln(tw, strings.Join(append(cells, fmt.Sprintf("DESIGN §8 (%d): ≥ %d requests/s (%s)", len(cols), targetRequestsPerSecond,
		verdict(judged.requests >= targetRequestsPerSecond))), "\t"))
	tw.Flush()
	for _, p := range rep.Phases {
		if p.Name == phaseHold && c.SyncPublish.Latency.P50 > 0 {
			fmt.Fprintf(w, "  %s: submit → granted p50 ÷ raw sync publish p50 = %.1f× (%.1f events per request, each at least one fsync'd publish)\n",
				p.Name, ratio(p.GrantedLatency.P50.Seconds(), c.SyncPublish.Latency.P50.Seconds()), p.EventsPerRequest())
		}
	}
}

// printComparison sets the maximum-rate phases run with the --compare binaries beside those run with
// the usual ones.
func (rep *Report) printComparison(w io.Writer) {
	if len(rep.Config.Compare) == 0 {
		return
	}
	var base, compared []Phase
	for _, ph := range rep.Phases {
		switch ph.Name {
		case phaseMax:
			base = append(base, ph)
		case phaseCompared:
			compared = append(compared, ph)
		}
	}
	var with []string
	for _, svc := range slices.Sorted(maps.Keys(rep.Config.Compare)) {
		with = append(with, svc+" from "+rep.Config.Compare[svc])
	}
	fmt.Fprintf(w, "\nComparison at the maximum rate, rounds alternating: the usual binaries, then %s\n", strings.Join(with, ", "))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(label string, phases []Phase) (mean float64) {
		var rates, dec []string
		for _, ph := range phases {
			mean += ph.Sustained / float64(len(phases))
			rates = append(rates, num(ph.Sustained))
			dec = append(dec, ms(ph.Decision.P50))
		}
		fmt.Fprintf(tw, "  %s\t%s requests/s (mean %s)\tsubmit → decision p50 %s\n", label, strings.Join(rates, ", "), num(mean), strings.Join(dec, ", "))
		return mean
	}
	usual := row("usual", base)
	other := row("compared", compared)
	fmt.Fprintf(tw, "  compared ÷ usual\t%.2f×\t\n", ratio(other, usual))
	tw.Flush()
}

func (rep *Report) printMemory(w io.Writer) {
	if len(rep.Processes) == 0 {
		return
	}
	fmt.Fprintf(w, "\nPeak memory (VmHWM; DESIGN §8: each service ≤ %d MB with 10k requests in flight, here at most %d)\n", targetServiceRSS>>20, rep.Config.InFlight)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, p := range rep.Processes {
		note := ""
		switch {
		case slices.Contains(Services, p.Name):
			note = verdict(p.PeakRSS <= targetServiceRSS)
		case p.Name == "postgres":
			note = "the postmaster alone"
		case p.Name == benchProcess:
			note = "load generator, issuer, webhook target"
		}
		fmt.Fprintf(tw, "  %s\t%.1f MB\t%s\n", p.Name, float64(p.PeakRSS)/(1<<20), note)
	}
	tw.Flush()
}

func verdict(met bool) string {
	if met {
		return "met"
	}
	return "missed"
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func num(v float64) string {
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func lat(l Latency) string {
	if l.N == 0 {
		return ""
	}
	return fmt.Sprintf("p50 %s  p99 %s  max %s", ms(l.P50), ms(l.P99), ms(l.Max))
}

func indent(s string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		b.WriteString("  " + line)
	}
	return b.String()
}
