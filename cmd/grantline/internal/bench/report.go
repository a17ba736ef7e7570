package bench

import (
	"cmp"
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
	Processes    []Process
	Profiles     []Profile
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
	// CPU is each process's CPU time during the phase.
	CPU map[string]time.Duration
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
	if cfg.Connector == pgconnector.Name {
		fmt.Fprintf(w, "  requests    %s by %s for 1h, auto-approved by %s/policies, granted by the postgres connector (a role per grant on the private PostgreSQL)\n", entitlement, requester, cfg.Examples)
	} else {
		fmt.Fprintf(w, "  requests    %s by %s for 1h, auto-approved by %s/policies, granted by the webhook connector (an HMAC-checking target in the bench process: %d calls)\n", entitlement, requester, cfg.Examples, rep.WebhookCalls)
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
		fmt.Fprintln(w)
		ph.print(w)
	}
	rep.printComparison(w)
	rep.printRatios(w)
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

func (ph Phase) print(w io.Writer) {
	if ph.TargetRate == 0 {
		fmt.Fprintf(w, "Phase %s: as fast as the system takes them, at most %d in flight\n", ph.Name, ph.InFlight)
	} else {
		fmt.Fprintf(w, "Phase %s: %.1f requests/s held (%.1f submitted/s achieved)\n", ph.Name, ph.TargetRate, ph.SubmitRate)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  requests\t%d submitted, %d granted, %d failed; first submit to last grant %s\n", ph.Submitted, ph.Granted, ph.Failed, ph.Elapsed.Round(time.Millisecond))
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
	var total time.Duration
	for _, d := range ph.CPU {
		total += d
	}
	names := slices.SortedFunc(maps.Keys(ph.CPU), func(a, b string) int { return cmp.Compare(ph.CPU[b], ph.CPU[a]) })
	var cpu []string
	for _, name := range names {
		cpu = append(cpu, fmt.Sprintf("%s %.1fs (%.0f%%)", name, ph.CPU[name].Seconds(), 100*ratio(ph.CPU[name].Seconds(), total.Seconds())))
	}
	fmt.Fprintf(tw, "  CPU\t%s; %.1fs in all = %.2f cores busy\n", strings.Join(cpu, ", "), total.Seconds(), ratio(total.Seconds(), ph.Elapsed.Seconds()))
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

func (rep *Report) printRatios(w io.Writer) {
	ph, ok := rep.throughputPhase()
	if !ok {
		return
	}
	c := rep.Ceiling
	eps := ph.EventsPerSecond()
	fmt.Fprintf(w, "\nRatios: the %s phase's %s events/s (%s requests/s) to the ceiling\n", ph.Name, num(eps), num(ph.Sustained))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  ÷ raw async publish\t%.2f×\tDESIGN §8: ≥ %.1f× (%s)\n", ratio(eps, c.AsyncPublish.PerSecond()), targetRatioToPublish,
		verdict(ratio(eps, c.AsyncPublish.PerSecond()) >= targetRatioToPublish))
	fmt.Fprintf(tw, "  ÷ raw sync publish\t%.2f×\t\n", ratio(eps, c.SyncPublish.PerSecond()))
	fmt.Fprintf(tw, "  ÷ load+append, 1 writer\t%.2f×\t\n", ratio(eps, c.Update.PerSecond()))
	fmt.Fprintf(tw, "  ÷ load+append, %d writers\t%.2f×\t\n", c.UpdateWriters, ratio(eps, c.UpdateParallel.PerSecond()))
	fmt.Fprintf(tw, "  requests/s ÷ %d\t%.2f×\tDESIGN §8: ≥ 500 requests/s (%s)\n", targetRequestsPerSecond,
		ph.Sustained/targetRequestsPerSecond, verdict(ph.Sustained >= targetRequestsPerSecond))
	for _, p := range rep.Phases {
		if p.TargetRate > 0 && c.SyncPublish.Latency.P50 > 0 {
			fmt.Fprintf(tw, "  %s: submit → granted p50 ÷ raw sync publish p50\t%.1f×\t(%s events per request, each at least one fsync'd publish)\n",
				p.Name, ratio(p.GrantedLatency.P50.Seconds(), c.SyncPublish.Latency.P50.Seconds()), fmt.Sprintf("%.1f", p.EventsPerRequest()))
		}
	}
	tw.Flush()
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
		case p.Name == "bench":
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
