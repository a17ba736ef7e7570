package projection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/grantline/grantline/pkg/consumer"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/services/query"
)

// Delivery is one stored event as the follower saw it go by, in stream order.
type Delivery struct {
	events.Record
}

// Source is the evidence stream as the projection reads it; *natsjs.Reader implements it.
type Source interface {
	// Follow sends every stored event from stream sequence from on, in stream order, to out, until ctx
	// ends (it then returns ctx's error) or reading fails.
	Follow(ctx context.Context, from uint64, out chan<- Delivery) error
	// Records returns request id's stored events in stream order, including at least stream sequence
	// atLeast (rereading a replica that is behind), unverified: eventstore.LoadAtLeast's reading.
	Records(ctx context.Context, id string, atLeast uint64) ([]events.Record, error)
}

// Batch is what one transaction writes: the rows of the requests the events touched, the faults, and
// the move of the checkpoint from From to To.
type Batch struct {
	From, To uint64
	Requests []Rows
	Faults   []Fault
}

// ErrCheckpointMoved means the sink's checkpoint is no longer the batch's From: another writer got there
// first. Nothing was written; reread the checkpoint and follow on from it.
var ErrCheckpointMoved = errors.New("projection checkpoint moved")

// Sink is where the projection writes; *postgres.Store implements it.
type Sink interface {
	// Checkpoint is the stream sequence of the last event applied (0 for none).
	Checkpoint(ctx context.Context) (uint64, error)
	// Projected returns, for each of ids the sink holds anything of (rows or faults), what it holds. A
	// request missing from the answer has no event at or below the checkpoint.
	Projected(ctx context.Context, ids []string) (map[string]Held, error)
	// Apply writes b in one transaction if the checkpoint is still b.From, else returns
	// ErrCheckpointMoved. Writing rows the sink already has changes nothing.
	Apply(ctx context.Context, b *Batch) error
}

// Held is what a sink holds of a request: the stream sequence of the request's last event its rows
// reflect (0 if it holds only faults), and the history's state as of it (Rows.State), if it has one
// and no faults (a faulty history is read back from the stream, which names its problems as they were).
type Held struct {
	Seq   uint64
	State []byte
}

// Projector keeps a Sink up to date with the stream.
//
// Every event is verified (signature, key, the emitter's right to the type, the request's chain) and
// folded through the aggregate before anything is written, with the same code eventstore.Load runs.
// Each delivered event is verified and folded onto its request's history: the one in memory, or, for a
// request not held there (after a restart, or dropped to keep memory within MaxCacheBytes), the one
// restored from the state the sink keeps with the request's row (Held.State: the chain's head, the
// counts, the aggregate's snapshot). So memory is bounded by bytes, not by the requests or events the
// stream has. Only a request the sink holds no state of (faults only, or a schema older than the state
// column) is read back from the stream (a batched direct get, LoadAtLeast's equivalent): a wildcard
// direct get costs the server a scan from the request's first event to the end of the stream
// (docs/benchmarks.md), so reading back for every event, as a reaction does, would make a rebuild
// from sequence 1 cost events × stream length.
type Projector struct {
	Source   Source
	Sink     Sink
	Verifier *events.Verifier
	Log      *slog.Logger
	// BatchSize bounds how many events one transaction covers (events that are already waiting; a live
	// projection writes each event as it comes). Defaults to 256.
	BatchSize int
	// MaxCacheBytes bounds the memory of the request histories held between batches, as the size of
	// their state (twice its encoded length, plus a fixed cost per request); defaults to 16 MiB. Past
	// it, closed requests are dropped first; a dropped request is restored from the sink's state when it
	// next changes.
	MaxCacheBytes int
	// Stall, when set, reports the projection stopped on a failure (the database, the broker) until it
	// reads its checkpoint again: its readiness. Nil tracks nothing.
	Stall *consumer.Stall
	// Progress, when set, is told the checkpoint after each transaction that moved it (a rebuild's
	// progress and rate). It runs on the goroutine that writes, and must not block.
	Progress func(checkpoint uint64)

	// checkpoint is where the next batch starts: past every batch prepared, committed or in flight.
	checkpoint uint64
	// committed is the checkpoint of the last transaction that succeeded.
	committed uint64
	// known is what this follow session knows of each request it met: whether the sink holds any of its
	// events, and the stream sequence its rows reflect. Rows only move forward, so a known position is
	// never ahead of the sink's.
	known map[string]position
	// cache holds the histories of requests met in this session, verified up to their last event seen,
	// and cacheBytes their estimated size.
	cache      map[string]*cached
	cacheBytes int
}

// cached is a history held between batches and its estimated memory.
type cached struct {
	h     *query.History
	bytes int
}

type position struct {
	held bool
	seq  uint64
}

// knownLimit bounds the positions remembered (about 100 bytes each); past it they are asked again
// (they are only a shortcut).
const knownLimit = 50_000

// historyCost is the memory a history holds beside twice its encoded state: the struct, its chain,
// the map entries.
const historyCost = 512

// Run projects every event from the sink's checkpoint on, and then each new one, until ctx ends; it
// returns nil then. Failures (NATS, the database, another writer taking over) are logged and retried
// from the checkpoint with a growing delay.
func (p *Projector) Run(ctx context.Context) error { return p.run(ctx, 0) }

// CatchUp projects until the checkpoint reaches until (a rebuild's target: the stream's last sequence
// when it started), then returns. It returns ctx's error if ctx ends first.
func (p *Projector) CatchUp(ctx context.Context, until uint64) error {
	if until == 0 {
		return nil
	}
	return p.run(ctx, until)
}

var errReached = errors.New("target sequence reached")

func (p *Projector) run(ctx context.Context, until uint64) error {
	failures := 0
	for {
		before := p.committed
		err := p.follow(ctx, until)
		if p.committed > before {
			// It got somewhere: a new failure starts the delays over.
			failures = 0
		}
		switch {
		case errors.Is(err, errReached):
			return nil
		case ctx.Err() != nil:
			if until != 0 {
				return ctx.Err()
			}
			return nil
		case errors.Is(err, ErrCheckpointMoved):
			p.Log.Warn("projection checkpoint moved under us; following on from the new one")
			failures = 0
			continue
		}
		failures++
		p.Stall.Hold(p.committed+1, err.Error())
		delay := min(100*time.Millisecond<<min(failures, 8), 10*time.Second)
		p.Log.Warn("projection stopped; resuming from the checkpoint", "error", err.Error(), "retry_in", delay.String())
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
}

// follow reads the checkpoint and applies the stream from the next sequence on, in batches of what is
// already waiting, until an error (errReached once until is reached). Each call is a session: what it
// knows of requests starts empty, and is void once a transaction fails.
//
// While one batch's transaction runs, the next batch is verified and folded: the two overlap, but
// transactions run one at a time and in order, each starting from the checkpoint the previous one set.
func (p *Projector) follow(ctx context.Context, until uint64) (err error) {
	cp, err := p.Sink.Checkpoint(ctx)
	if err != nil {
		return err
	}
	p.Stall.Release(p.committed + 1)
	p.checkpoint, p.committed, p.known, p.cache, p.cacheBytes = cp, cp, map[string]position{}, map[string]*cached{}, 0
	if until != 0 && cp >= until {
		return errReached
	}
	size := p.BatchSize
	if size <= 0 {
		size = 256
	}
	fctx, stop := context.WithCancel(ctx)
	ch := make(chan Delivery, size)
	done := make(chan error, 1)
	go func() { done <- p.Source.Follow(fctx, cp+1, ch) }()
	// applied reports the transaction in flight, if any (nil otherwise).
	var applied chan error
	settle := func() error {
		if applied == nil {
			return nil
		}
		err := <-applied
		applied = nil
		return err
	}
	defer func() {
		stop()
		if done != nil {
			<-done
		}
		// A failed last transaction outranks having reached the target.
		if aerr := settle(); aerr != nil && (err == nil || errors.Is(err, errReached)) {
			err = aerr
		}
		if err != nil && !errors.Is(err, errReached) {
			p.known, p.cache, p.cacheBytes = nil, nil, 0
		}
	}()
	for {
		var batch []Delivery
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-done:
			done = nil
			return fmt.Errorf("follow the stream: %w", err)
		case err := <-applied:
			applied = nil
			if err != nil {
				return err
			}
			continue
		case d := <-ch:
			batch = append(batch, d)
		}
	drain:
		for len(batch) < size {
			select {
			case d := <-ch:
				batch = append(batch, d)
			default:
				break drain
			}
		}
		b, err := p.prepare(ctx, batch)
		if err != nil {
			return err
		}
		if err := settle(); err != nil {
			return err
		}
		if b != nil {
			applied = make(chan error, 1)
			go func(out chan<- error) { out <- p.write(ctx, b) }(applied)
		}
		if until != 0 && p.checkpoint >= until {
			return errReached
		}
	}
}

// write applies a prepared batch and logs its faults once they are recorded.
func (p *Projector) write(ctx context.Context, b *Batch) error {
	if err := p.Sink.Apply(ctx, b); err != nil {
		return err
	}
	p.committed = b.To
	if p.Progress != nil {
		p.Progress(b.To)
	}
	for _, f := range b.Faults {
		p.Log.Error("event not projected", "stream_seq", f.Seq, "request_id", f.RequestID, "kind", f.Problem.Kind, "error", f.Problem.Detail)
	}
	return nil
}

// prepare verifies and folds a batch of deliveries and returns the rows and faults to write, moving
// the checkpoint past them (nil when every delivery was applied already).
func (p *Projector) prepare(ctx context.Context, ds []Delivery) (*Batch, error) {
	if err := p.meet(ctx, ds); err != nil {
		return nil, err
	}
	checked := p.check(ds)
	b := &Batch{From: p.checkpoint, To: p.checkpoint}
	// Each request touched gets one set of rows, as of its last event in the batch, indexing every
	// event after the position the sink had at the start of the batch.
	type touch struct {
		h     *query.History
		after uint64
	}
	var order, met []string
	touched := map[string]touch{}
	fault := func(seq uint64, id string, pr *query.Problem) {
		f := Fault{Seq: seq, RequestID: id, Problem: *pr}
		if pr.Seq != seq {
			f.Problem.Detail = fmt.Sprintf("the request's history is broken at stream sequence %d: %s", pr.Seq, pr.Detail)
		}
		b.Faults = append(b.Faults, f)
	}
	for i, d := range ds {
		if d.Seq <= b.To {
			// Already applied (a redelivery, or a follower restarted behind the checkpoint).
			continue
		}
		b.To = d.Seq
		if _, t, err := events.ParseNATSSubject(d.Subject); err == nil && !t.Request() {
			continue // a lock or a campaign is no request; the revoker lists the locks, approval the campaigns
		}
		id, err := requestID(d.Subject)
		if err != nil {
			fault(d.Seq, "", &query.Problem{Kind: string(events.ViolationMalformed), Seq: d.Seq, Detail: err.Error()})
			continue
		}
		k := p.known[id]
		var h *query.History
		if c := p.cache[id]; c != nil {
			h = c.h
		}
		before := k.seq
		switch {
		case h == nil && k.held && k.seq >= d.Seq:
			// The rows already reflect it: a read-back went ahead of the delivery.
			continue
		case h == nil && k.held:
			// The request has events this session did not see go by: read it back, through this one.
			recs, err := p.Source.Records(ctx, id, d.Seq)
			if err != nil {
				return nil, fmt.Errorf("read request %s for stream sequence %d: %w", id, d.Seq, err)
			}
			h = query.Verify(p.Verifier, id, recs)
			if pr := h.Problem; pr != nil && pr.Seq <= d.Seq {
				fault(d.Seq, id, pr)
			}
		case h == nil:
			// Neither the sink nor this session has met the request: this is its first event.
			h = query.NewHistory(p.Verifier, id)
			fallthrough
		default:
			switch {
			case h.Problem != nil && d.Seq >= h.Problem.Seq:
				fault(d.Seq, id, h.Problem)
			case d.Seq <= h.Through:
				continue
			default:
				if pr := h.AddChecked(checked[i]); pr != nil {
					fault(d.Seq, id, pr)
				}
			}
		}
		p.hold(id, h)
		met = append(met, id)
		if h.Exists() && h.LastSeq > k.seq {
			if _, ok := touched[id]; !ok {
				order = append(order, id)
				touched[id] = touch{h: h, after: before}
			}
			k.seq = h.LastSeq
		}
		k.held = true
		p.known[id] = k
	}
	if b.To == b.From {
		return nil, nil
	}
	for _, id := range order {
		t := touched[id]
		rows, err := FromHistory(t.h, t.after)
		if err != nil {
			return nil, err
		}
		b.Requests = append(b.Requests, rows)
		p.size(id, len(rows.State))
	}
	for _, id := range met {
		if c := p.cache[id]; c != nil {
			c.h.Settle()
		}
	}
	p.checkpoint = b.To
	// Not the requests of this batch: its rows and faults may not be committed when the next batch asks.
	inBatch := make(map[string]bool, len(met))
	for _, id := range met {
		inBatch[id] = true
	}
	p.evict(func(id string) bool { return inBatch[id] })
	return b, nil
}

// check checks each of ds on its own (signature, decoding, hash: events.Verifier.CheckBatch), on a
// goroutine per core for a batch large enough to share, so that a rebuild's verification runs at the
// speed of the cores; the fold, which needs the events before, stays in stream order.
func (p *Projector) check(ds []Delivery) []events.Checked {
	recs := make([]events.Record, len(ds))
	for i, d := range ds {
		recs[i] = d.Record
	}
	out := make([]events.Checked, len(ds))
	const share = 64 // a signature batch: less is not worth a goroutine
	workers := min(runtime.GOMAXPROCS(0), (len(ds)+share-1)/share)
	if workers <= 1 {
		p.Verifier.CheckBatch(recs, 1, out)
		return out
	}
	var wg sync.WaitGroup
	per := (len(ds) + workers - 1) / workers
	for lo := 0; lo < len(ds); lo += per {
		hi := min(lo+per, len(ds))
		wg.Go(func() { p.Verifier.CheckBatch(recs[lo:hi], 1+lo, out[lo:hi]) })
	}
	wg.Wait()
	return out
}

// meet asks the sink about the requests of ds it may hold that are not in memory: their positions, and
// their states, restored into the cache.
func (p *Projector) meet(ctx context.Context, ds []Delivery) error {
	var ask []string
	for _, d := range ds {
		if id, err := requestID(d.Subject); err == nil {
			// A request met before but no longer cached is asked again: its state is in the sink.
			k, known := p.known[id]
			if p.cache[id] == nil && (!known || k.held) && !slices.Contains(ask, id) {
				ask = append(ask, id)
			}
		}
	}
	if len(ask) == 0 {
		return nil
	}
	got, err := p.Sink.Projected(ctx, ask)
	if err != nil {
		return err
	}
	if len(p.known)+len(ask) > knownLimit {
		p.known = map[string]position{}
	}
	for _, id := range ask {
		held, ok := got[id]
		p.known[id] = position{held: ok, seq: held.Seq}
		if held.State == nil {
			continue
		}
		h, err := query.Restore(p.Verifier, id, held.State)
		if err != nil {
			// Read back from the stream instead, as for a request without state.
			p.Log.Warn("request state not restored", "request_id", id, "error", err.Error())
			continue
		}
		p.hold(id, h)
		p.size(id, len(held.State))
	}
	return nil
}

// hold keeps h in the cache, at a first estimate of its size until size is told its state's.
func (p *Projector) hold(id string, h *query.History) {
	if _, ok := p.cache[id]; !ok {
		p.cache[id] = &cached{h: h, bytes: historyCost}
		p.cacheBytes += historyCost
	}
	p.cache[id].h = h
}

// size records the encoded length of a held history's state.
func (p *Projector) size(id string, state int) {
	if c := p.cache[id]; c != nil {
		n := historyCost + 2*state
		p.cacheBytes += n - c.bytes
		c.bytes = n
	}
}

// evict keeps the cache within MaxCacheBytes: closed requests go first (only an emergency's post-review
// can still follow), then everything but the requests of the batch just prepared. A request dropped is
// restored from the sink when it next changes; the batch's own are kept because their rows and faults
// may not be committed before the next batch asks the sink.
func (p *Projector) evict(inBatch func(id string) bool) {
	limit := p.MaxCacheBytes
	if limit <= 0 {
		limit = 16 << 20
	}
	if p.cacheBytes <= limit {
		return
	}
	drop := func(closedOnly bool) {
		for id, c := range p.cache {
			closed := c.h.Problem != nil || c.h.Request.Status().Terminal() && !c.h.Request.PostReviewOpen()
			if (closed || !closedOnly) && !inBatch(id) {
				delete(p.cache, id)
				p.cacheBytes -= c.bytes
			}
		}
	}
	drop(true)
	if p.cacheBytes > limit*9/10 {
		drop(false)
	}
}

// requestID returns the request ID in an evidence subject, or why there is none.
func requestID(subject string) (string, error) {
	id, _, err := events.ParseNATSSubject(subject)
	if err != nil {
		return "", err
	}
	if !events.ValidRequestID(id) {
		return "", fmt.Errorf("subject %q does not name a request", subject)
	}
	return id, nil
}
