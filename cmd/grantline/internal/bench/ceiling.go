package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/services/fulfilment"
	"github.com/grantline/grantline/services/intake"
)

// Ceiling is what the same nats-server carries without Grantline's services, measured in the same run:
// raw JetStream publishes to a throwaway stream with the evidence stream's settings, and the event
// store's load → decide → append loop with its compare-and-set doing a lifecycle's work (submitted,
// policy_decided, granted), with one writer and with several.
type Ceiling struct {
	SyncPublish  Rate
	AsyncPublish Rate
	// AsyncWindow is how many async publishes were in flight at most.
	AsyncWindow int
	// Update is one writer's load+append rate in events/s; UpdateParallel that of UpdateWriters writers
	// on requests of their own.
	Update, UpdateParallel Rate
	UpdateWriters          int
}

// Rate is a count of operations over a time, with the latency of each when they were timed one by one.
type Rate struct {
	Ops     int
	Elapsed time.Duration
	Latency Latency
}

// PerSecond is the rate; 0 for an empty measurement.
func (r Rate) PerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Elapsed.Seconds()
}

// Latency summarises a set of durations.
type Latency struct {
	N             int
	P50, P99, Max time.Duration
}

// latencyOf is nearest-rank percentiles of d.
func latencyOf(d []time.Duration) Latency {
	if len(d) == 0 {
		return Latency{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	rank := func(p float64) time.Duration {
		i := int(float64(len(s))*p+0.999999) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	return Latency{N: len(s), P50: rank(0.50), P99: rank(0.99), Max: s[len(s)-1]}
}

const (
	rawStream  = "GRANTLINE_BENCH_RAW"
	rawSubject = "grantline.benchraw"
	// rawBodySize is close to a signed event's body, as in the event store's own benchmarks.
	rawBodySize = 600
	asyncWindow = 256
)

// withRawStream runs measure on a throwaway stream configured as the evidence stream (file storage,
// the same replicas, duplicate window, limits and flags) but on subjects of its own, then deletes it.
func (s *system) withRawStream(ctx context.Context, measure func() error) error {
	var cfg jetstream.StreamConfig
	for _, c := range eventstore.StreamConfigs(eventstore.DefaultSettings) {
		if c.Name == topology.EventsStream {
			cfg = c
		}
	}
	cfg.Name, cfg.Subjects, cfg.Description = rawStream, []string{rawSubject + ".>"}, "grantline bench: raw publish ceiling, deleted after"
	if _, err := s.js.CreateStream(ctx, cfg); err != nil {
		return fmt.Errorf("create %s: %w", rawStream, err)
	}
	err := measure()
	if derr := s.js.DeleteStream(context.WithoutCancel(ctx), rawStream); derr != nil {
		err = errors.Join(err, fmt.Errorf("delete %s: %w", rawStream, derr))
	}
	return err
}

var rawBody = func() []byte {
	b := make([]byte, rawBodySize)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	return b
}()

// rawMsg is a raw message on a request subject of its own, as each request's first event is.
func rawMsg() *nats.Msg {
	m := nats.NewMsg(rawSubject + "." + events.NewID() + ".submitted")
	m.Data = rawBody
	return m
}

// rawSync publishes n messages one at a time, each waiting for its ack.
func (s *system) rawSync(ctx context.Context, n int) (Rate, error) {
	lat := make([]time.Duration, 0, n)
	start := time.Now()
	for range n {
		t0 := time.Now()
		if _, err := s.js.PublishMsg(ctx, rawMsg()); err != nil {
			return Rate{}, fmt.Errorf("raw publish: %w", err)
		}
		lat = append(lat, time.Since(t0))
	}
	return Rate{Ops: n, Elapsed: time.Since(start), Latency: latencyOf(lat)}, nil
}

// rawAsync publishes n messages with at most asyncWindow awaiting their ack; the time includes the
// last acks.
func (s *system) rawAsync(ctx context.Context, n int) (Rate, error) {
	pending := make([]jetstream.PubAckFuture, 0, asyncWindow)
	await := func(f jetstream.PubAckFuture) error {
		select {
		case <-f.Ok():
			return nil
		case err := <-f.Err():
			return fmt.Errorf("raw async publish: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	start := time.Now()
	for range n {
		if len(pending) == asyncWindow {
			if err := await(pending[0]); err != nil {
				return Rate{}, err
			}
			pending = pending[1:]
		}
		f, err := s.js.PublishMsgAsync(rawMsg())
		if err != nil {
			return Rate{}, fmt.Errorf("raw async publish: %w", err)
		}
		pending = append(pending, f)
	}
	for _, f := range pending {
		if err := await(f); err != nil {
			return Rate{}, err
		}
	}
	return Rate{Ops: n, Elapsed: time.Since(start)}, nil
}

// updateCeiling runs the services' own loop without the services: writers each take requests of
// their own through submitted, policy_decided (auto_approved) and granted, every event one
// Store.Update (load, decide, append with the compare-and-set) signed with that service's key, until
// about ops events are appended in all.
func (s *system) updateCeiling(ctx context.Context, writers, ops int) (Rate, error) {
	stores := map[events.Service]*eventstore.Store{}
	for _, svc := range []events.Service{events.Intake, events.Policy, events.Fulfilment} {
		st, err := eventstore.Open(ctx, s.js, eventstore.Config{Signer: s.keys.Signers[svc], Verifier: s.keys.Verifier, Durability: s.durability()})
		if err != nil {
			return Rate{}, err
		}
		stores[svc] = st
	}
	lifecycles := max(ops/writers/3, 1)
	lat := make([][]time.Duration, writers)
	errs := make([]error, writers)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range writers {
		wg.Go(func() {
			for range lifecycles {
				id := events.NewID()
				for _, step := range s.lifecycle(id) {
					t0 := time.Now()
					if _, err := stores[step.svc].Update(ctx, id, step.decide); err != nil {
						errs[w] = fmt.Errorf("load+append ceiling, %s of %s: %w", step.svc, id, err)
						return
					}
					lat[w] = append(lat[w], time.Since(t0))
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return Rate{}, err
	}
	all := slices.Concat(lat...)
	return Rate{Ops: len(all), Elapsed: elapsed, Latency: latencyOf(all)}, nil
}

type step struct {
	svc    events.Service
	decide eventstore.Decide
}

// lifecycle is the work the services do for one auto-approved request, as decisions: the submitted
// event intake validates, the decision policy records, the grant fulfilment records.
func (s *system) lifecycle(id string) []step {
	return []step{
		{events.Intake, func(*events.Request) ([]events.Draft, error) {
			person := s.people.ids[0]
			sub, err := intake.Validate(intake.Body{Entitlement: entitlement, Justification: "load+append ceiling", Duration: "1h"},
				intake.Requester{ID: person, Groups: []string{populationGroup}}, "http", s.cat, time.Now())
			if err != nil {
				return nil, err
			}
			return []events.Draft{{Payload: sub, Actor: person}}, nil
		}},
		{events.Policy, func(*events.Request) ([]events.Draft, error) {
			return []events.Draft{{Payload: events.PolicyDecided{Outcome: events.OutcomeAutoApproved, Reasons: []string{"load+append ceiling"},
				EffectiveDurationSeconds: 3600, PolicyRevision: "sha256:bench", InputDigest: "sha256:bench"}, CausationID: "ceiling-decide:" + id}}, nil
		}},
		{events.Fulfilment, fulfilment.DecideGranted(fulfilment.Recorded{Connector: "webhook", TargetRef: "grantline-bench " + id,
			Observed: events.Observed{Present: true}, ExpiresAt: time.Now().Add(time.Hour)}, "ceiling-grant:"+id)},
	}
}
