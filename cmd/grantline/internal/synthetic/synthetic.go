// Package synthetic writes realistic histories for scale runs: requests of every kind Grantline sees
// (auto-approved, staged approvals, rejections, denials, emergencies with their post-reviews, early
// revocations, failed fulfilments and failed revocation attempts), each event sealed, signed and chained
// as the services would, accepted by the real request aggregate before it is written, and interleaved
// in time order as a busy deployment stores them. `grantline bench history` writes one into a fresh
// store; audit verify, the read side and the benchmarks then run on it.
package synthetic

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/events"
)

// Story is the path a generated request takes.
type Story string

// The stories, with how many of every hundred requests take each (weights sum to 100).
const (
	AutoApproved     Story = "auto_approved"
	Staged           Story = "staged_approvals"
	Rejected         Story = "rejected"
	Denied           Story = "denied"
	Emergency        Story = "emergency"
	EarlyRevocation  Story = "early_revocation"
	FulfilmentFailed Story = "fulfilment_failed"
	RevocationFailed Story = "revocation_failed"
)

var weights = []struct {
	story  Story
	weight int
}{
	{AutoApproved, 40}, {Staged, 20}, {Rejected, 5}, {Denied, 10},
	{Emergency, 5}, {EarlyRevocation, 10}, {FulfilmentFailed, 5}, {RevocationFailed, 5},
}

// Stories lists every story, in the order of their weights.
var Stories = func() []Story {
	var all []Story
	for _, w := range weights {
		all = append(all, w.story)
	}
	return all
}()

// Config says what to write.
type Config struct {
	// Requests is how many requests the history holds.
	Requests int
	// Signers sign each service's events; they must be in the trust file the history is verified with,
	// valid from before the generation starts (the broker's storage time is what keys are judged at).
	Signers map[events.Service]*events.Signer
	// End is when the last request was submitted; the history starts as long before as Requests at
	// Interval need, and every grant in it has ended by End plus a few hours.
	End time.Time
	// Interval is the time between two submissions (default 100 ms: 36,000 requests an hour).
	Interval time.Duration
	// InFlight is how many publishes may await their acknowledgement (default 1024); it must stay below
	// the JetStream client's limit of pending asynchronous publishes (4000 unless set), or publishing stalls.
	InFlight int
	// Seed makes the history reproducible: the same seed gives the same stories and people.
	Seed uint64
	// Progress, if set, is called now and then with the events and requests written so far.
	Progress func(events, requests int)
}

// Result says what was written.
type Result struct {
	Requests int
	Events   int
	Stories  map[Story]int
	Elapsed  time.Duration
}

// Write appends a history to GRANTLINE_EVENTS through js, which must be empty: events are published
// asynchronously, in time order, without the append path's compare-and-set (nothing else writes a
// fresh store, and the chains are built here) and without message IDs (deduplicating millions of
// publishes would only fill the server's memory). It returns once the server acknowledged every event.
func Write(ctx context.Context, js jetstream.JetStream, cfg Config) (*Result, error) {
	if cfg.Requests <= 0 {
		return nil, errors.New("synthetic: at least one request")
	}
	for _, svc := range events.Services {
		if cfg.Signers[svc] == nil {
			return nil, fmt.Errorf("synthetic: no signer for %s", svc)
		}
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 100 * time.Millisecond
	}
	if cfg.InFlight <= 0 {
		cfg.InFlight = 1024
	}
	start := time.Now()
	g := &generator{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		res: Result{Stories: map[Story]int{}}, pending: make(chan jetstream.PubAckFuture, cfg.InFlight)}
	acks := make(chan error, 1)
	go func() { acks <- g.awaitAcks(ctx) }()
	err := g.run(ctx, js)
	close(g.pending)
	if ackErr := <-acks; err == nil {
		err = ackErr
	}
	if err != nil {
		return nil, err
	}
	g.res.Elapsed = time.Since(start)
	return &g.res, nil
}

type generator struct {
	cfg     Config
	rng     *rand.Rand
	res     Result
	queue   timeline
	pending chan jetstream.PubAckFuture
}

// run submits a request every Interval and, between submissions, writes every event of the requests
// under way that falls due, earliest first, until every request has ended.
func (g *generator) run(ctx context.Context, js jetstream.JetStream) error {
	next := g.cfg.End.Add(-time.Duration(g.cfg.Requests-1) * g.cfg.Interval)
	for submitted := 0; submitted < g.cfg.Requests || g.queue.Len() > 0; {
		if submitted < g.cfg.Requests && (g.queue.Len() == 0 || !g.queue[0].at.Before(next)) {
			heap.Push(&g.queue, g.newRequest(submitted, next))
			submitted++
			next = next.Add(g.cfg.Interval)
			continue
		}
		r := heap.Pop(&g.queue).(*request)
		if err := g.emit(ctx, js, r); err != nil {
			return err
		}
		if r.step < len(r.steps) {
			heap.Push(&g.queue, r)
		}
		if g.cfg.Progress != nil && g.res.Events%10000 == 0 {
			g.cfg.Progress(g.res.Events, submitted)
		}
	}
	return nil
}

// emit seals the request's next event at its time, has the aggregate accept it, and publishes it.
func (g *generator) emit(ctx context.Context, js jetstream.JetStream, r *request) error {
	st := r.steps[r.step]
	p := st.payload(r)
	env, body, err := events.Draft{Payload: p, Actor: st.actor}.Seal(r.agg.ID(), st.svc, r.at, r.head)
	if err != nil {
		return err
	}
	if err := r.agg.Apply(events.Event{Envelope: env, Payload: p}); err != nil {
		return fmt.Errorf("synthetic %s request: %w", r.story, err)
	}
	msg := nats.NewMsg(events.NATSSubject(r.agg.ID(), p.EventType()))
	msg.Data = body
	msg.Header.Set(events.SignatureHeader, g.cfg.Signers[st.svc].Sign(body))
	ack, err := js.PublishMsgAsync(msg)
	if err != nil {
		return fmt.Errorf("publish event %d: %w", g.res.Events+1, err)
	}
	select {
	case g.pending <- ack:
	case <-ctx.Done():
		return ctx.Err()
	}
	g.res.Events++
	r.head = events.ChainHash(body)
	r.step++
	if r.step < len(r.steps) {
		r.at = r.at.Add(r.steps[r.step].after)
	}
	return nil
}

// awaitAcks checks every publish's acknowledgement, in order, so a refused or lost event fails the run
// rather than leaving a gap in the history.
func (g *generator) awaitAcks(ctx context.Context) error {
	var first error
	for ack := range g.pending {
		if first != nil {
			continue
		}
		select {
		case <-ack.Ok():
		case err := <-ack.Err():
			first = fmt.Errorf("publish %s: %w", ack.Msg().Subject, err)
		case <-ctx.Done():
			first = ctx.Err()
		}
	}
	return first
}

// request is a generated request under way: its aggregate, its chain head, its story's steps and when
// the next one happens.
type request struct {
	agg   *events.Request
	story Story
	head  string
	steps []step
	step  int
	at    time.Time
}

// step is one event of a story: who emits it (a service, and the person if one acted), how long after
// the one before, and its payload given the request as it stands at the step's time.
type step struct {
	svc     events.Service
	actor   string
	after   time.Duration
	payload func(r *request) events.Payload
}

// timeline orders the requests under way by the time of their next event.
type timeline []*request

func (t timeline) Len() int           { return len(t) }
func (t timeline) Less(i, j int) bool { return t[i].at.Before(t[j].at) }
func (t timeline) Swap(i, j int)      { t[i], t[j] = t[j], t[i] }
func (t *timeline) Push(x any)        { *t = append(*t, x.(*request)) }
func (t *timeline) Pop() any {
	old := *t
	r := old[len(old)-1]
	old[len(old)-1] = nil
	*t = old[:len(old)-1]
	return r
}
