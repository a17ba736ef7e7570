package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/topology"
)

// lagInterval is how often the backlogs are sampled while a phase runs: often enough that the last
// half of a short keep-up step holds several samples, rarely enough that the consumer info requests
// cost nats-server next to nothing.
const lagInterval = 500 * time.Millisecond

// lagSample is the backlog (pending plus unacknowledged) of every service consumer at one time.
type lagSample struct {
	at  time.Time
	lag map[string]uint64
}

// lagSampler records the backlog samples taken while a phase runs.
type lagSampler struct {
	mu        sync.Mutex
	recording bool
	samples   []lagSample
}

// reset returns the samples recorded so far and starts a new recording.
func (l *lagSampler) reset() []lagSample {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.samples
	l.samples, l.recording = nil, true
	return out
}

// maxLag is the largest backlog of each consumer over samples.
func maxLag(samples []lagSample) map[string]uint64 {
	out := map[string]uint64{}
	for _, s := range samples {
		for name, lag := range s.lag {
			out[name] = max(out[name], lag)
		}
	}
	return out
}

// The ordered consumers that follow the whole evidence stream: the read side's, and policy's lock
// index's, which reads headers only.
const (
	readSide   = "query (ordered)"
	lockFollow = "policy (lock index, ordered)"
)

// lags reads the backlog of every service consumer: the durable consumers on the streams the services
// consume, and the ordered consumers that follow the whole stream. Other ephemeral consumers are the bench's own or
// start-up scans, not work the system owes.
func (r *run) lags(ctx context.Context) map[string]uint64 {
	out := map[string]uint64{}
	for _, st := range r.consumed {
		infos := st.ListConsumers(ctx)
		for info := range infos.Info() {
			name := info.Config.Durable
			if name == "" {
				if !slices.Equal(info.Config.FilterSubjects, []string{events.AllSubjects}) && info.Config.FilterSubject != events.AllSubjects {
					continue
				}
				name = readSide
				if info.Config.HeadersOnly {
					name = lockFollow
				}
			}
			out[name] = max(out[name], info.NumPending+uint64(info.NumAckPending))
		}
	}
	return out
}

// consumedStreams looks up the streams the services consume, once: each look-up is a stream info
// request, work for the server the bench would add to what it measures.
func (r *run) consumedStreams(ctx context.Context) error {
	for _, name := range []string{topology.EventsStream, topology.TimersStream, topology.IntakeStream} {
		st, err := r.s.js.Stream(ctx, name)
		if err != nil {
			return err
		}
		r.consumed = append(r.consumed, st)
	}
	return nil
}

// sampleLag records the backlogs every interval until ctx ends.
func (r *run) sampleLag(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		r.recordLag(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// recordLag samples the backlogs once into the running phase's recording and returns the time of the
// sample; a phase also takes a sample at its start, as its submissions end and at its end, so one
// shorter than the interval has its figures too.
func (r *run) recordLag(ctx context.Context) time.Time {
	at := time.Now()
	lags := r.lags(ctx)
	r.lag.mu.Lock()
	defer r.lag.mu.Unlock()
	if r.lag.recording {
		r.lag.samples = append(r.lag.samples, lagSample{at: at, lag: lags})
	}
	return at
}

// waitIdle waits until no service consumer has a backlog, so a phase does not pay for the last one's.
func (r *run) waitIdle(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		var busy []string
		for name, lag := range r.lags(ctx) {
			if lag > 0 {
				busy = append(busy, fmt.Sprintf("%s %d", name, lag))
			}
		}
		if len(busy) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			slices.Sort(busy)
			return fmt.Errorf("waited %s for the services' backlog (%s): %w", timeout, strings.Join(busy, ", "), ctx.Err())
		case <-tick.C:
		}
	}
}
