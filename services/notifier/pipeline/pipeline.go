// Package pipeline is the notifier's consumption and delivery, on a watermill router
// (github.com/ThreeDotsLabs/watermill):
//
//	GRANTLINE_EVENTS ──durable "notifier"──────────▶ plan ─┐
//	GRANTLINE_TIMERS ──durable "notifier-reminders"▶ plan ─┴▶ outbox bucket (one key per notification)
//	outbox stream ──durable "notifier-email"───▶ deliver e-mail
//	              ──durable "notifier-slack"───▶ deliver Slack
//	              ──durable "notifier-webhook"─▶ deliver webhooks
//
// Planning stores its notifications in the outbox before it acknowledges the event, so nothing planned
// is lost; each channel reads the outbox on its own durable consumer, so a channel that is down holds
// up no other, and what it could not send waits in the outbox until it can. Every delivery is claimed
// in the sent record first, so nothing is sent twice (natskv).
//
// Middleware: Recoverer (a panic fails one message, not the replica), a poison queue per handler
// (permanent failures go to GRANTLINE_DLQ with their reason), the Deduplicator over the sent record,
// Throttle (a ceiling per channel on messages per second), Retry (a few quick attempts before a
// redelivery with backoff) and a circuit breaker per target (gobreaker/v2). The evidence path (reading
// and verifying requests) stays on nats.go through the event store.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sony/gobreaker/v2"

	"github.com/grantline/grantline/pkg/consumer"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/services/notifier"
	"github.com/grantline/grantline/services/notifier/channel"
	"github.com/grantline/grantline/services/notifier/natskv"
)

// Config is what the pipeline runs with. Zero durations and counts get the defaults in their comments.
type Config struct {
	JS jetstream.JetStream
	// Store reads and verifies requests (eventstore.OpenReader).
	Store   *eventstore.Store
	Rules   notifier.Rules
	Buckets *natskv.Buckets
	// Senders are the channels; a channel without a sender is not consumed, and what waits for it stays
	// in the outbox.
	Senders map[notifier.Channel]channel.Sender
	// Owner names this replica in its claims; required.
	Owner string

	// Hold is how long e-mail and Slack messages wait for others to the same person, to go as one
	// digest; defaults to 2s.
	Hold time.Duration
	// MaxDigest bounds the notifications in one e-mail (and a fifth of it in one Slack message, whose
	// blocks are limited); defaults to 40.
	MaxDigest int
	// Lease is how long a claim holds before another replica presumes its holder dead; defaults to 1m.
	Lease time.Duration
	// AckWait is how long a delivered message may be held before the server delivers it again; it must
	// exceed Hold and a channel's slowest send. Defaults to 30s.
	AckWait time.Duration
	// MaxInFlight is how many messages each consumer handles at once; defaults to 64 (a delivery
	// waiting out its Hold occupies one).
	MaxInFlight int
	// MaxPlanDeliveries bounds the attempts to plan one event before it is dead-lettered; defaults to 10.
	// Deliveries are retried for as long as their channel fails.
	MaxPlanDeliveries int
	// BackoffCeiling caps the redelivery delay; defaults to 1m.
	BackoffCeiling time.Duration
	// PerSecond caps each channel's messages per second; defaults to 20.
	PerSecond int
	// BreakerFailures consecutive failures open a target's breaker for BreakerOpen; default 5 and 30s.
	BreakerFailures uint32
	BreakerOpen     time.Duration
	// Now is the clock; defaults to time.Now.
	Now func() time.Time
	Log *slog.Logger
}

func (c *Config) defaults() error {
	if c.JS == nil || c.Store == nil || c.Buckets == nil || c.Owner == "" || c.Log == nil {
		return errors.New("pipeline: JS, Store, Buckets, Owner and Log are required")
	}
	set := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	set(&c.Hold, 2*time.Second)
	set(&c.Lease, time.Minute)
	set(&c.AckWait, 30*time.Second)
	set(&c.BackoffCeiling, time.Minute)
	set(&c.BreakerOpen, 30*time.Second)
	if c.MaxDigest <= 0 {
		c.MaxDigest = 40
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 64
	}
	if c.MaxPlanDeliveries <= 0 {
		c.MaxPlanDeliveries = 10
	}
	if c.PerSecond <= 0 {
		c.PerSecond = 20
	}
	if c.BreakerFailures == 0 {
		c.BreakerFailures = 5
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Run builds the router and runs it until ctx ends. Stopping abandons the messages in flight without
// settling them, as a crash would: each comes back after AckWait, and the sent record keeps what went
// out from going out again. It returns an error if the router cannot start.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.defaults(); err != nil {
		return err
	}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 15 * time.Second}, watermill.NewSlogLogger(cfg.Log))
	if err != nil {
		return err
	}
	router.AddMiddleware(middleware.Recoverer)
	backoff := consumer.ExponentialBackoff(250*time.Millisecond, cfg.BackoffCeiling)
	subscribe := func(c topology.Consumer, filters ...string) *subscriber {
		return newSubscriber(cfg.JS, source{Stream: c.Stream, Durable: c.Durable, Filters: filters, AckWait: cfg.AckWait,
			MaxInFlight: cfg.MaxInFlight, Backoff: backoff}, cfg.Log)
	}
	poison := func(c topology.Consumer) (message.HandlerMiddleware, error) {
		return middleware.PoisonQueueWithFilter(deadLetters{js: cfg.JS, stream: c.Stream}, topology.DeadLetter(c.Durable), isPermanent)
	}

	p := &planner{rules: cfg.Rules, store: cfg.Store, js: cfg.JS, hold: cfg.Hold, maxDeliveries: cfg.MaxPlanDeliveries, now: cfg.Now,
		log: cfg.Log.With("handler", "plan")}
	var reminderFilters []string
	for _, kind := range reminderKinds {
		reminderFilters = append(reminderFilters, topology.TimerFired("*", kind))
	}
	out := outboxPublisher{outbox: cfg.Buckets.Outbox}
	for _, h := range []struct {
		c       topology.Consumer
		filters []string
		handle  message.HandlerFunc
	}{
		{topology.NotifierEvents, []string{events.AllSubjects}, p.event},
		{topology.NotifierReminders, reminderFilters, p.reminder},
	} {
		pq, err := poison(h.c)
		if err != nil {
			return err
		}
		router.AddHandler(h.c.Durable, h.c.Durable, subscribe(h.c, h.filters...), "outbox", out, h.handle).AddMiddleware(pq)
	}

	brk := &breakers{failures: cfg.BreakerFailures, open: cfg.BreakerOpen, m: map[string]*gobreaker.CircuitBreaker[struct{}]{},
		onState: func(target string, from, to gobreaker.State) {
			cfg.Log.Warn("circuit breaker", "target", target, "from", from.String(), "to", to.String())
		}}
	for _, ch := range []struct {
		channel notifier.Channel
		c       topology.Consumer
		digest  int
	}{
		{notifier.Email, topology.NotifierEmail, cfg.MaxDigest},
		{notifier.Slack, topology.NotifierSlack, max(cfg.MaxDigest/5, 1)},
		{notifier.Webhook, topology.NotifierWebhook, 0},
	} {
		sender, ok := cfg.Senders[ch.channel]
		if !ok {
			continue
		}
		d := &deliverer{channel: ch.channel, sender: sender, buckets: cfg.Buckets, owner: cfg.Owner, lease: cfg.Lease,
			maxDigest: ch.digest, hold: cfg.Hold, now: cfg.Now, log: cfg.Log.With("handler", ch.c.Durable)}
		pq, err := poison(ch.c)
		if err != nil {
			return err
		}
		dedup := &middleware.Deduplicator{KeyFactory: outboxKey, Repository: sentRecord{buckets: cfg.Buckets}, Timeout: 5 * time.Second}
		retry := middleware.Retry{MaxRetries: 2, InitialInterval: 200 * time.Millisecond, MaxInterval: time.Second, Multiplier: 2,
			ShouldRetry: func(p middleware.RetryParams) bool {
				return !isPermanent(p.Err) && !errors.Is(p.Err, errBusy) && channel.RetryAfterOf(p.Err) == 0 &&
					!errors.Is(p.Err, gobreaker.ErrOpenState) && !errors.Is(p.Err, context.Canceled)
			}}
		router.AddConsumerHandler(ch.c.Durable, ch.c.Durable, subscribe(ch.c, natskv.ChannelSubjects(ch.channel)), d.handle).
			AddMiddleware(pq, dedup.Middleware, middleware.NewThrottle(int64(cfg.PerSecond), time.Second).Middleware,
				retry.Middleware, brk.middleware(d.target))
	}

	go func() {
		<-ctx.Done()
		_ = router.Close()
	}()
	err = router.Run(ctx)
	// Stopped while the router was still subscribing: the subscription gives up with the context, and
	// that is the stop asked for, not a failure to start.
	if err != nil && !(ctx.Err() != nil && errors.Is(err, context.Canceled)) {
		return fmt.Errorf("notifier pipeline: %w", err)
	}
	return nil
}
