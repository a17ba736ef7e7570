package consumer

import (
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/telemetry"
)

// holding keeps every delivery a replica holds in progress on the server until it is settled:
// waiting for a slot, in its request's line or in a batch, running, or held while a dependency is
// down. The ack wait can then be short, so what a process that died (or lost its connection) held is
// delivered to another replica within seconds, while nothing a live replica holds is delivered twice.
// One handler run is kept in progress for at most handleTimeout: past it the run is taken as hung and
// the server delivers the message again, as it does for a crash.
//
// It also takes the deliveries off the consume callbacks without blocking them (take) and feeds them
// to the dispatcher in order (feed): a callback that blocked while every slot is busy would leave what
// the client already fetched in its buffer, where no heartbeat reaches it.
type holding struct {
	every, handleTimeout time.Duration
	log                  *slog.Logger

	mu sync.Mutex
	// held maps each delivery taken and not yet seen settled to when its handler run started (zero
	// while it waits).
	held map[jetstream.Msg]time.Time
	// queue holds what was taken and not yet dispatched, in order; more signals an addition, closed
	// ends feed once the queue is empty.
	queue  []jetstream.Msg
	more   chan struct{}
	closed bool
}

func newHolding(ackWait, handleTimeout time.Duration, log *slog.Logger) *holding {
	// Three heartbeats per ack wait: one lost or late one does not let the server redeliver.
	return &holding{every: max(ackWait/3, time.Millisecond), handleTimeout: handleTimeout, log: log,
		held: map[jetstream.Msg]time.Time{}, more: make(chan struct{}, 1)}
}

// take holds msg and queues it for feed. It never blocks.
func (h *holding) take(msg jetstream.Msg) {
	h.mu.Lock()
	h.held[msg] = time.Time{}
	h.queue = append(h.queue, msg)
	h.mu.Unlock()
	select {
	case h.more <- struct{}{}:
	default:
	}
}

// feed dispatches what take queued, in order, until close; what is queued then is still dispatched
// (a stopped dispatcher hands it back).
func (h *holding) feed(dispatch func(jetstream.Msg)) {
	for {
		h.mu.Lock()
		queue, closed := h.queue, h.closed
		h.queue = nil
		h.mu.Unlock()
		for _, msg := range queue {
			dispatch(msg)
		}
		if len(queue) > 0 {
			continue
		}
		if closed {
			return
		}
		<-h.more
	}
}

// close ends feed once the queue is empty; take must not be called after it.
func (h *holding) close() {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	select {
	case h.more <- struct{}{}:
	default:
	}
}

// running marks the handler run over msgs as started (on) or ended: while it runs, a message is kept
// in progress for at most handleTimeout. A message not taken (nil holding) is ignored.
func (h *holding) running(on bool, msgs ...jetstream.Msg) {
	if h == nil {
		return
	}
	var since time.Time
	if on {
		since = time.Now()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, msg := range msgs {
		if _, ok := h.held[msg]; ok {
			h.held[msg] = since
		}
	}
}

// beat keeps what is held in progress every third of the ack wait until stop closes.
func (h *holding) beat(stop <-chan struct{}) {
	ticker := time.NewTicker(h.every)
	defer ticker.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ticker.C:
			h.heartbeat(time.Now())
		}
	}
}

// heartbeat tells the server that each held message is still in progress, and forgets those settled
// since (the client refuses any reply after the message's ack, nak or term).
func (h *holding) heartbeat(now time.Time) {
	h.mu.Lock()
	msgs := make([]jetstream.Msg, 0, len(h.held))
	for msg, since := range h.held {
		if since.IsZero() || now.Sub(since) < h.handleTimeout {
			msgs = append(msgs, msg)
		}
	}
	h.mu.Unlock()
	var settled []jetstream.Msg
	var failed int
	var lastErr error
	for _, msg := range msgs {
		switch err := msg.InProgress(); {
		case errors.Is(err, jetstream.ErrMsgAlreadyAckd):
			settled = append(settled, msg)
		case err != nil:
			failed, lastErr = failed+1, err
		}
	}
	if failed > 0 {
		// A connection that is down fails every one of them; one line says so.
		h.log.Warn("keep held messages in progress", "failed", failed, "held", len(msgs), telemetry.KeyError, lastErr.Error())
	}
	h.mu.Lock()
	for _, msg := range settled {
		delete(h.held, msg)
	}
	h.mu.Unlock()
}
