package bench

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	pgconnector "github.com/grantline/grantline/pkg/connector/postgres"
	"github.com/grantline/grantline/pkg/connector/webhook"
)

// How requests are submitted.
const (
	// ViaHTTP is POST /v1/requests with a bearer token and an Idempotency-Key: what a person's client does.
	ViaHTTP = "http"
	// ViaIntegration is a CloudEvent on grantline.intake.<name>.requests: what an integration does.
	ViaIntegration = "integration"
)

// Rates the phases can hold besides a number of requests per second.
const (
	// RateMax runs only the maximum-rate phase.
	RateMax = "max"
	// RateHalf runs the maximum-rate phase, searches for the highest rate at which every consumer
	// keeps up (see KeepUp), then holds half of it.
	RateHalf = "half"
)

// Config is what a run does. DefaultConfig finishes within a few minutes on two cores.
type Config struct {
	// BinDir holds nats-server and grantline-<service> for each of Services (`make binaries`).
	BinDir string
	// Examples holds policies/, the policy bundle; the bench writes its own directory of people.
	Examples string
	// Via is ViaHTTP or ViaIntegration.
	Via string
	// Connector fulfils the benchmark's entitlement: "webhook" (an HMAC-checking target in the bench
	// process, so the figures are Grantline's own cost) or "postgres" (a role per grant on the private
	// PostgreSQL, so they include a real target's).
	Connector string
	// Rate is RateHalf, RateMax, or requests per second to hold.
	Rate string
	// Requests is how many requests the maximum-rate phase submits.
	Requests int
	// InFlight bounds the requests submitted and not yet granted in the maximum-rate phase.
	InFlight int
	// Hold is how long a held-rate phase submits.
	Hold time.Duration
	// KeepUpSteps bounds the search for the highest rate every consumer keeps up with (RateHalf); each
	// step offers its rate for KeepUpStep.
	KeepUpSteps int
	KeepUpStep  time.Duration
	// Idle is how long the system's CPU is measured while it does nothing, after the warm-up: the
	// fixed cost a phase's CPU per granted request includes, the more so the lower its rate.
	Idle time.Duration
	// People is the size of the population the requests are drawn from.
	People int
	// WorstCaseHeld lists the numbers of grants one person holds at which the postgres connector's
	// cost per grant is measured, WorstCaseGrants grants at each; empty, or the webhook connector, skips
	// the measurement.
	WorstCaseHeld   []int
	WorstCaseGrants int
	// Warmup is how many requests run, unmeasured, before the first phase.
	Warmup int
	// RawMessages is how many sync publishes measure the raw ceiling (async: five times as many).
	RawMessages int
	// Updates is how many events the load+append ceiling appends with one writer, and again with
	// UpdateWriters.
	Updates       int
	UpdateWriters int
	// PhaseTimeout bounds each phase, from its first submission to its last grant.
	PhaseTimeout time.Duration
	// Profile names the processes (Services, NATSServer) to CPU-profile during the maximum-rate phase.
	Profile []string
	// ProfileDir receives the profiles; empty means a new directory under the system's temporary one.
	ProfileDir string
	// Compare maps services to other binaries of them: the maximum-rate phase then runs CompareRounds
	// times more with those binaries in place, alternating with the usual ones, so a change is measured
	// against the code before it in the same run, on the same server.
	Compare       map[string]string
	CompareRounds int
	// KeepWorkDir keeps the run's directory (logs, NATS store, configuration) for inspection.
	KeepWorkDir bool
}

// DefaultConfig is the run `make bench-system` does.
func DefaultConfig() Config {
	return Config{BinDir: "bin", Examples: "examples", Via: ViaHTTP, Connector: webhook.Name, Rate: RateHalf,
		Requests: 3000, InFlight: 256, Hold: 30 * time.Second, KeepUpSteps: 5, KeepUpStep: 10 * time.Second, Idle: 5 * time.Second, People: 1000,
		WorstCaseHeld: []int{0, 100, 1000, 3000}, WorstCaseGrants: 50, Warmup: 200, RawMessages: 2000, Updates: 1500,
		UpdateWriters: 4, PhaseTimeout: 3 * time.Minute, CompareRounds: 2}
}

func (c Config) check() error {
	var errs []error
	if c.Via != ViaHTTP && c.Via != ViaIntegration {
		errs = append(errs, fmt.Errorf("via %q: want %s or %s", c.Via, ViaHTTP, ViaIntegration))
	}
	if c.Connector != webhook.Name && c.Connector != pgconnector.Name {
		errs = append(errs, fmt.Errorf("connector %q: want %s or %s", c.Connector, webhook.Name, pgconnector.Name))
	}
	if _, err := c.heldRate(0); err != nil && c.Rate != RateMax {
		errs = append(errs, err)
	}
	for _, n := range []struct {
		name string
		v    int
	}{{"requests", c.Requests}, {"in-flight", c.InFlight}, {"raw messages", c.RawMessages}, {"updates", c.Updates},
		{"update writers", c.UpdateWriters}, {"keep-up steps", c.KeepUpSteps}, {"people", c.People}, {"worst-case grants", c.WorstCaseGrants}} {
		if n.v < 1 {
			errs = append(errs, fmt.Errorf("%s must be at least 1", n.name))
		}
	}
	if c.Warmup < 0 || c.Idle < 0 || c.Hold <= 0 || c.KeepUpStep <= 0 || c.PhaseTimeout <= 0 {
		errs = append(errs, errors.New("warm-up and idle must not be negative; hold, keep-up step and phase timeout must be positive"))
	}
	for _, n := range c.WorstCaseHeld {
		if n < 0 {
			errs = append(errs, fmt.Errorf("worst case: %d grants held", n))
		}
	}
	for svc, bin := range c.Compare {
		if !slices.Contains(Services, svc) {
			errs = append(errs, fmt.Errorf("compare %q: not a service", svc))
		} else if _, err := os.Stat(bin); err != nil {
			errs = append(errs, fmt.Errorf("compare %s: %w", svc, err))
		}
	}
	if len(c.Compare) > 0 && c.Rate != RateMax && c.Rate != RateHalf {
		errs = append(errs, errors.New("compare needs the maximum-rate phase (rate half or max)"))
	}
	if len(c.Compare) > 0 && c.CompareRounds < 1 {
		errs = append(errs, errors.New("compare rounds must be at least 1"))
	}
	for _, p := range c.Profile {
		if !slices.Contains(Services, p) && p != NATSServer {
			errs = append(errs, fmt.Errorf("profile %q: want one of %s, %s", p, strings.Join(Services, ", "), NATSServer))
		}
	}
	return errors.Join(errs...)
}

// heldRate is the rate the hold phase keeps, given the highest rate every consumer kept up with.
func (c Config) heldRate(sustainable float64) (float64, error) {
	if c.Rate == RateHalf {
		return sustainable / 2, nil
	}
	r, err := strconv.ParseFloat(c.Rate, 64)
	if err != nil || r <= 0 {
		return 0, fmt.Errorf("rate %q: want %s, %s or requests per second", c.Rate, RateHalf, RateMax)
	}
	return r, nil
}
