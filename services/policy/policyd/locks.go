package policyd

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/streamscan"
	"github.com/grantline/grantline/pkg/telemetry"
	"github.com/grantline/grantline/pkg/topology"
)

// lockIndex keeps every lock in memory for the decisions (policy.CoveringLocks), and guarantees that a
// decision knows every lock whose event was stored before the decision asked.
//
// Started with the service, it reads the lock subjects once, then follows the whole evidence stream
// (headers only, an ordered consumer) and notes which locks the lock events touch: it always knows the
// stream sequence through which it has looked at every event. Before a decision, the fence asks the
// stream leader for its last sequence (one stream info, answered from the leader's counters whatever
// the size of the stream) and waits until the index has looked that far; the locks touched meanwhile
// are then reloaded with LoadLock. Decisions that ask while a read of the fence is under way share the
// next one, so a burst of decisions costs a few reads of the leader, not one each.
//
// Why not the leader's last lock event before each decision (eventstore.LastLockEvent, as before)? It
// is a last_by_subj read of grantline.events.*.lock_placed, whose * makes the leader visit every
// request's subject: a cost that grows with every request stored (BenchmarkLockFence). Why not a
// consumer of the lock subjects alone, fenced by its consumer info (delivered sequence and pending
// count, which nats-server keeps as counters)? The leader acknowledges an append before it signals the
// consumers (from a queue, after the ack), and an R1 consumer may live on a replica behind the leader:
// its pending count can miss a lock already acknowledged, and nothing in its info says how far it has
// looked. Following every event tells exactly how far the index has looked, for the price of a header
// per event, as the checkpointer and the query projection already pay.
type lockIndex struct {
	js    jetstream.JetStream
	store *eventstore.Store
	log   *slog.Logger
	fence fence
	// wait bounds how long a decision waits for the index to reach the fence (a lost consumer being
	// recreated, a replica catching up): past it, the decision fails and is retried.
	wait time.Duration

	mu sync.Mutex
	// seen is the stream sequence through which every event has been looked at; valid once caughtUp.
	seen     uint64
	caughtUp bool
	// moved is closed, and replaced, whenever seen moves.
	moved chan struct{}
	// touched are the locks with events seen but not loaded since: the sequence of the last one each.
	touched map[string]uint64
	locks   map[string]*events.Lock
}

// followerInactive is how long the server keeps the follower of a replica gone.
const followerInactive = 10 * time.Second

func newLockIndex(js jetstream.JetStream, st *eventstore.Store, log *slog.Logger) *lockIndex {
	return &lockIndex{js: js, store: st, log: log, fence: fence{read: st.LastSeq}, wait: 5 * time.Second,
		moved: make(chan struct{}), touched: map[string]uint64{}, locks: map[string]*events.Lock{}}
}

// current returns every lock as of now (its event stored before the call, at least); an error means
// the decision must wait and be retried, never that there are no locks.
func (x *lockIndex) current(ctx context.Context) ([]*events.Lock, error) {
	last, err := x.fence.last(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the locks: %w", err)
	}
	if err := x.reach(ctx, last); err != nil {
		return nil, err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for id, seq := range x.touched {
		l, err := x.store.LoadLock(ctx, id)
		if err != nil {
			return nil, err
		}
		if l.LastSeq() < seq {
			return nil, fmt.Errorf("lock %s loaded through %d, its event %d not yet readable: %w", id, l.LastSeq(), seq, eventstore.ErrStale)
		}
		x.locks[id] = l.Lock
		delete(x.touched, id)
	}
	out := make([]*events.Lock, 0, len(x.locks))
	for _, l := range x.locks {
		out = append(out, l)
	}
	return out, nil
}

// reach waits until the index has looked at every event through stream sequence seq, at most x.wait.
func (x *lockIndex) reach(ctx context.Context, seq uint64) error {
	ctx, cancel := context.WithTimeout(ctx, x.wait)
	defer cancel()
	for {
		x.mu.Lock()
		done, at, moved := x.caughtUp && x.seen >= seq, x.seen, x.moved
		x.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-moved:
		case <-ctx.Done():
			return fmt.Errorf("read the locks: the index has looked through sequence %d, the stream is at %d: %w", at, seq, ctx.Err())
		}
	}
}

// saw records that every event through seq has been looked at; x.mu held.
func (x *lockIndex) saw(seq uint64) {
	x.seen, x.caughtUp = max(x.seen, seq), true
	close(x.moved)
	x.moved = make(chan struct{})
}

// run keeps the index following the stream until ctx ends, and returns nil then. A failure (the
// stream unreachable, the consumer lost for good) is logged and the following resumed a second later
// from where it stopped; meanwhile decisions wait at the fence and fail if it lasts.
func (x *lockIndex) run(ctx context.Context) error {
	for {
		err := x.follow(ctx)
		if ctx.Err() != nil {
			return nil
		}
		x.log.Warn("following the locks", telemetry.KeyError, err.Error())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

// follow catches up once, then follows the stream's events from the one after the last seen.
func (x *lockIndex) follow(ctx context.Context) error {
	x.mu.Lock()
	from, caughtUp := x.seen+1, x.caughtUp
	x.mu.Unlock()
	if !caughtUp {
		if err := x.catchUp(ctx); err != nil {
			return err
		}
		x.mu.Lock()
		from = x.seen + 1
		x.mu.Unlock()
	}
	cons, err := x.js.OrderedConsumer(ctx, topology.EventsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.AllSubjects}, DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq: from, HeadersOnly: true,
		// A replica that dies leaves its follower on the server; the server removes it this long after
		// its last pull, not the client's default 5 minutes, so it is not mistaken for work owed.
		InactiveThreshold: followerInactive,
	})
	if err != nil {
		return fmt.Errorf("follow the evidence stream: %w", err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(512))
	if err != nil {
		return fmt.Errorf("follow the evidence stream: %w", err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("follow the evidence stream: %w", err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("follow the evidence stream: %w", err)
		}
		x.mu.Lock()
		// A subject that is not an event's is no lock's either.
		if id, t, err := events.ParseNATSSubject(msg.Subject()); err == nil && (t == events.TypeLockPlaced || t == events.TypeLockRemoved) {
			x.touched[id] = max(x.touched[id], meta.Sequence.Stream)
		}
		x.saw(meta.Sequence.Stream)
		x.mu.Unlock()
	}
}

// catchUp reads the history once, through the lock subjects alone, up to the leader's last sequence
// then, and marks the index as having looked that far. The scan's consumer may live on a replica behind
// the leader, so the leader is asked for the last lock event too (a walk of every subject, once per
// start), and a scan that did not reach it fails and is made again.
func (x *lockIndex) catchUp(ctx context.Context) error {
	last, err := x.store.LastSeq(ctx)
	if err != nil {
		return err
	}
	lastLock, err := x.store.LastLockEvent(ctx)
	if err != nil {
		return err
	}
	var reached uint64
	err = streamscan.Events(ctx, x.js, []events.Type{events.TypeLockPlaced, events.TypeLockRemoved},
		func(id string, _ events.Type, seq uint64) error {
			x.mu.Lock()
			x.touched[id] = max(x.touched[id], seq)
			x.mu.Unlock()
			reached = seq
			return nil
		})
	if err != nil {
		return fmt.Errorf("read the locks: %w", err)
	}
	if reached < lastLock {
		return fmt.Errorf("read the locks through sequence %d, the leader's last lock event is %d: %w", reached, lastLock, eventstore.ErrStale)
	}
	x.mu.Lock()
	// No lock event lies between the last one and last: lastLock was read after last.
	x.saw(max(last, reached))
	x.mu.Unlock()
	return nil
}

// fence reads the stream leader's last sequence for decisions. A decision must be answered by a read
// that began after it asked: one that asks while a read is under way joins the next read, which the
// first of them to find the way free makes. So at most two reads are under way or queued at once,
// however many decisions ask.
type fence struct {
	read func(context.Context) (uint64, error)

	mu      sync.Mutex
	running *fenceRead // the read under way, if any
	next    *fenceRead // the read the askers since it began wait for, if any
}

type fenceRead struct {
	done chan struct{}
	seq  uint64
	err  error
}

// last returns the leader's last sequence from a read begun after the call.
func (f *fence) last(ctx context.Context) (uint64, error) {
	f.mu.Lock()
	r := f.next
	if r == nil {
		r = &fenceRead{done: make(chan struct{})}
		f.next = r
	}
	for {
		if f.next != r {
			// Another asker took r and reads it.
			f.mu.Unlock()
			select {
			case <-r.done:
				return r.seq, r.err
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
		if f.running == nil {
			f.next, f.running = nil, r
			f.mu.Unlock()
			// The read is shared, so one asker's cancellation must not fail the others; it is
			// bounded by the store's request timeout.
			r.seq, r.err = f.read(context.WithoutCancel(ctx))
			f.mu.Lock()
			f.running = nil
			f.mu.Unlock()
			close(r.done)
			return r.seq, r.err
		}
		busy := f.running
		f.mu.Unlock()
		select {
		case <-busy.done:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		f.mu.Lock()
	}
}
