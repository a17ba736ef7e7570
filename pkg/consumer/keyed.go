package consumer

import (
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/topology"
)

// RequestKey is the request a delivery on subject belongs to: the request ID of an event
// (grantline.events.<id>.<type>) or of a fired timer (grantline.timers.fired.<id>.<kind>), and "" for
// any other subject. The runner handles the deliveries of one request one at a time, in delivery order,
// so that a reaction never races itself on a request; deliveries without a request run side by side.
func RequestKey(subject string) string {
	if id, _, err := events.ParseNATSSubject(subject); err == nil {
		return id
	}
	if id, _, ok := topology.ParseTimerFired(subject); ok {
		return id
	}
	return ""
}

// keyed runs deliveries with at most cap(slots) at once and at most one per request key. A delivery
// whose request is already being handled waits in that request's line, which holds only deliveries
// already fetched, so memory is bounded by the consumer's MaxAckPending; other requests never wait for
// it. dispatch is called by the consume callbacks (the durable's and its replays'), each in delivery
// order.
type keyed struct {
	// deliver handles one delivery and settles it, returning what it did.
	deliver func(jetstream.Msg) Action
	// handBack returns a delivery that was fetched but not started when stopping began.
	handBack func(jetstream.Msg)
	slots    chan struct{}
	// running counts the goroutines handling a request's line.
	running sync.WaitGroup

	mu sync.Mutex
	// lines holds, for each request being handled, its deliveries still waiting, in delivery order.
	lines map[string]*line
	// stopping is set once Run stops fetching: nothing waiting starts any more.
	stopping bool
}

type line struct {
	waiting []jetstream.Msg
}

func newKeyed(concurrency int, deliver func(jetstream.Msg) Action, handBack func(jetstream.Msg)) *keyed {
	return &keyed{deliver: deliver, handBack: handBack, slots: make(chan struct{}, concurrency), lines: map[string]*line{}}
}

// dispatch starts msg, or puts it in its request's line if the request is being handled. It blocks
// while every slot is busy, which stops the consume callback and so the fetching.
func (k *keyed) dispatch(msg jetstream.Msg) {
	key := RequestKey(msg.Subject())
	k.mu.Lock()
	if k.stopping {
		k.mu.Unlock()
		k.handBack(msg)
		return
	}
	if l, busy := k.lines[key]; busy && key != "" {
		l.add(msg)
		k.mu.Unlock()
		return
	}
	if key != "" {
		k.lines[key] = &line{}
	}
	k.mu.Unlock()

	k.slots <- struct{}{}
	k.mu.Lock()
	if k.stopping {
		// Stopping began while this waited for a slot: hand back msg and what queued behind it.
		if l := k.lines[key]; l != nil && key != "" {
			for _, m := range l.waiting {
				k.handBack(m)
			}
			delete(k.lines, key)
		}
		k.mu.Unlock()
		<-k.slots
		k.handBack(msg)
		return
	}
	k.running.Add(1)
	k.mu.Unlock()
	go func() {
		defer k.running.Done()
		defer func() { <-k.slots }()
		for msg != nil {
			action := k.deliver(msg)
			msg = k.next(key, msg, action)
		}
	}()
}

// next returns the delivery of key to handle after done, which ended in action, or nil once key's line
// is empty (the key is then free) or stopping began (what waits is handed back).
func (k *keyed) next(key string, done jetstream.Msg, action Action) jetstream.Msg {
	if key == "" {
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	l := k.lines[key]
	if action == Ack {
		// done was redelivered while it ran past the ack wait; its redelivery waits here. The work is
		// done: acknowledge the redelivery too rather than handle the request again.
		if i := l.find(seqOf(done)); i >= 0 {
			_ = l.waiting[i].Ack()
			l.waiting = append(l.waiting[:i], l.waiting[i+1:]...)
		}
	}
	if k.stopping {
		for _, m := range l.waiting {
			k.handBack(m)
		}
		l.waiting = nil
	}
	if len(l.waiting) == 0 {
		delete(k.lines, key)
		return nil
	}
	msg := l.waiting[0]
	l.waiting = l.waiting[1:]
	return msg
}

// stop starts nothing more: deliveries dispatched from now on, and those waiting in a line once the
// delivery ahead of them finishes, are handed back.
func (k *keyed) stop() {
	k.mu.Lock()
	k.stopping = true
	k.mu.Unlock()
}

func (k *keyed) wait() { k.running.Wait() }

// add puts msg at the end of the line, or in place of an earlier delivery of the same message still
// waiting (the server redelivered it after the ack wait): a line holds each message once.
func (l *line) add(msg jetstream.Msg) {
	if i := l.find(seqOf(msg)); i >= 0 {
		l.waiting[i] = msg
		return
	}
	l.waiting = append(l.waiting, msg)
}

// find returns the index of the waiting delivery of stream sequence seq, or -1.
func (l *line) find(seq uint64) int {
	if seq == 0 {
		return -1
	}
	for i, m := range l.waiting {
		if seqOf(m) == seq {
			return i
		}
	}
	return -1
}

// seqOf is msg's stream sequence, 0 if its metadata cannot be read (deliver terminates such a message).
func seqOf(msg jetstream.Msg) uint64 {
	meta, err := msg.Metadata()
	if err != nil {
		return 0
	}
	return meta.Sequence.Stream
}
