package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/grantline/grantline/pkg/telemetry"
	"github.com/grantline/grantline/services/notifier"
	"github.com/grantline/grantline/services/notifier/channel"
	"github.com/grantline/grantline/services/notifier/natskv"
)

// errBusy: another replica holds the notification's claim, or an older notification for the same
// person will carry this one in its digest; look again later. It says nothing about the channel, so
// the circuit breaker ignores it.
var errBusy = errors.New("another delivery is sending it")

// deliverer sends one channel's outbox entries, each exactly once as people experience it.
type deliverer struct {
	channel notifier.Channel
	sender  channel.Sender
	buckets *natskv.Buckets
	// owner names this replica in the claims it holds.
	owner string
	// lease is how long a claim holds before another replica presumes its holder dead.
	lease time.Duration
	// maxDigest bounds how many notifications one message carries (0: no coalescing).
	maxDigest int
	// hold is how long a younger entry waits for the oldest to carry it.
	hold time.Duration
	now  func() time.Time
	log  *slog.Logger
}

// target names what a delivery goes to, for the circuit breaker: each webhook is its own target; the
// SMTP relay and the Slack API are one each.
func (d *deliverer) target(msg *message.Message) string {
	if d.channel != notifier.Webhook {
		return string(d.channel)
	}
	if e, err := natskv.Decode(msg.Payload); err == nil {
		return "webhook:" + e.Notification.Address
	}
	return "webhook"
}

// handle sends the outbox entry in msg, with whatever else waits for the same person on this channel
// (a digest), once each:
//
//  1. removals (the bucket's own delete markers) are nothing to send;
//  2. the entry waits until its NotBefore, so a burst arriving meanwhile is coalesced;
//  3. when coalescing, only the oldest entry waiting for the person sends: a younger one comes back
//     later, by when the oldest has carried it or it is the oldest itself;
//  4. it is claimed in the sent record; if it was sent already its entry is removed, if another
//     replica holds it the message comes back later;
//  5. the other entries waiting for the same person are claimed too (those already sent are removed,
//     those another replica holds are left to it);
//  6. one message goes out; on success every claim is marked sent and every entry removed, on failure
//     every claim is released for the next attempt.
//
// A permanent refusal goes to the poison queue with the entry removed; anything else is retried.
func (d *deliverer) handle(msg *message.Message) error {
	if msg.Metadata.Get(metaOperation) != "" || len(msg.Payload) == 0 {
		return nil
	}
	ctx := msg.Context()
	key, ok := natskv.KeyOfSubject(msg.Metadata.Get(metaSubject))
	if !ok {
		return errPermanent{fmt.Errorf("%q is not an outbox key", msg.Metadata.Get(metaSubject))}
	}
	entry, err := natskv.Decode(msg.Payload)
	if err != nil {
		return errPermanent{err}
	}
	n := entry.Notification
	log := d.log.With(telemetry.KeyRequestID, n.RequestID, "kind", string(n.Kind), "to", n.To.ID, "key", n.Key())
	if err := waitUntil(ctx, entry.NotBefore); err != nil {
		return err
	}
	var waiting []natskv.Pending
	if d.maxDigest > 1 {
		if waiting, err = d.buckets.Outbox.Waiting(ctx, n); err != nil {
			// Coalescing is a courtesy: without the list, this one goes alone and the others follow.
			log.Warn("list waiting notifications", telemetry.KeyError, err.Error())
		}
		if len(waiting) > 0 && waiting[0].Key != key && waiting[0].Revision < seqOf(msg) {
			retryAfter(msg, d.hold)
			return errBusy
		}
	}

	primary, err := d.buckets.Sent.Claim(ctx, n.Key(), d.owner, d.now(), d.lease)
	if err != nil {
		return err
	}
	switch primary.Status {
	case natskv.AlreadySent:
		return d.buckets.Outbox.Remove(ctx, key)
	case natskv.Busy:
		retryAfter(msg, d.lease/4)
		return errBusy
	}
	batch := append([]held{{key: key, claim: primary, n: n}}, d.siblings(ctx, log, key, waiting)...)

	ns := make([]notifier.Notification, len(batch))
	for i, h := range batch {
		ns[i] = h.n
	}
	receipt, sendErr := d.sender.Send(ctx, channel.Delivery{ID: n.Key(), Channel: d.channel, Address: n.Address, To: n.To, Notifications: ns})
	// What happened is recorded even if the process is stopping: a message that went out must be
	// known as sent, and a claim that failed must not wait out its lease.
	record, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if sendErr != nil {
		for _, h := range batch {
			if err := d.buckets.Sent.Release(record, h.claim); err != nil {
				log.Warn("release claim", telemetry.KeyError, err.Error())
			}
		}
		if channel.IsPermanent(sendErr) {
			log.Error("refused for good", telemetry.KeyError, sendErr.Error())
			if err := d.buckets.Outbox.Remove(record, key); err != nil {
				return err
			}
			return errPermanent{sendErr}
		}
		retryAfter(msg, channel.RetryAfterOf(sendErr))
		return sendErr
	}
	for _, h := range batch {
		if err := d.buckets.Sent.MarkSent(record, h.claim, d.owner, d.now(), receipt.Ref); err != nil {
			log.Error("sent, but not recorded as sent", telemetry.KeyError, err.Error())
			return err
		}
		if err := d.buckets.Outbox.Remove(record, h.key); err != nil {
			log.Warn("remove sent entry", telemetry.KeyError, err.Error())
		}
	}
	log.Info("sent", "channel", string(d.channel), "notifications", len(batch))
	return nil
}

// held is a claimed outbox entry.
type held struct {
	key   string
	claim natskv.Claim
	n     notifier.Notification
}

// siblings claims the waiting entries other than key, up to the digest's size.
func (d *deliverer) siblings(ctx context.Context, log *slog.Logger, key string, waiting []natskv.Pending) []held {
	var out []held
	for _, w := range waiting {
		if w.Key == key || len(out)+1 >= d.maxDigest {
			continue
		}
		c, err := d.buckets.Sent.Claim(ctx, w.Entry.Notification.Key(), d.owner, d.now(), d.lease)
		switch {
		case err != nil:
			log.Warn("claim waiting notification", telemetry.KeyError, err.Error())
		case c.Status == natskv.Claimed:
			out = append(out, held{key: w.Key, claim: c, n: w.Entry.Notification})
		case c.Status == natskv.AlreadySent:
			_ = d.buckets.Outbox.Remove(ctx, w.Key)
		}
	}
	return out
}

// seqOf is msg's stream sequence: its revision in the outbox bucket.
func seqOf(msg *message.Message) uint64 {
	n, _ := strconv.ParseUint(msg.Metadata.Get(metaSeq), 10, 64)
	return n
}

// waitUntil returns at t, or with ctx's error if it ends first.
func waitUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}
