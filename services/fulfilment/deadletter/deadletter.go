// Package deadletter sets aside a delivery that no retry can help (a malformed message, a request whose
// stream fails verification) in GRANTLINE_DLQ, in the runner's format, so the consumer can acknowledge
// it instead of retrying for ever.
//
// pkg/consumer's own dead-lettering (consumer.Permanent) cannot be used for deliveries from
// GRANTLINE_EVENTS or GRANTLINE_TIMERS yet: its copy keeps the delivered message's Nats-* headers, and
// the server refuses to store an event carrying the event store's Nats-Expected-Stream:
// GRANTLINE_EVENTS (or a fired timer's Nats-Schedule-Next) in GRANTLINE_DLQ, so the message would be
// redelivered without end. Once pkg/consumer leaves the server-interpreted headers out, SetAside
// becomes `return consumer.Permanent(err)` (the approval service carries the same workaround).
package deadletter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/consumer"
	"github.com/grantline/grantline/pkg/events"
)

// SetAside copies msg to grantline.dlq.<durable> with err as the reason and the runner's headers, and
// returns nil once the copy is stored (the caller then acknowledges msg). If the copy cannot be stored
// it returns an error, so msg is redelivered rather than lost.
func SetAside(ctx context.Context, js jetstream.JetStream, msg jetstream.Msg, durable string, err error, log *slog.Logger) error {
	meta, merr := msg.Metadata()
	if merr != nil {
		return consumer.Permanent(err)
	}
	dl := nats.NewMsg("grantline.dlq." + durable)
	dl.Data = msg.Data()
	for k, vs := range msg.Headers() {
		if strings.HasPrefix(k, "Nats-") {
			continue
		}
		for _, v := range vs {
			dl.Header.Add(k, v)
		}
	}
	reason := "permanent: " + err.Error()
	dl.Header.Set(consumer.HeaderReason, reason)
	dl.Header.Set(consumer.HeaderStream, meta.Stream)
	dl.Header.Set(consumer.HeaderSeq, strconv.FormatUint(meta.Sequence.Stream, 10))
	dl.Header.Set(consumer.HeaderSubject, msg.Subject())
	dl.Header.Set(consumer.HeaderConsumer, durable)
	dl.Header.Set(consumer.HeaderDeliveries, strconv.FormatUint(meta.NumDelivered, 10))
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, perr := js.PublishMsg(pctx, dl, jetstream.WithMsgID(fmt.Sprintf("dlq:%s:%s:%d", durable, meta.Stream, meta.Sequence.Stream))); perr != nil {
		return fmt.Errorf("dead-letter: %w (set aside because: %v)", perr, err)
	}
	log.Error("dead-lettered", "consumer", durable, "subject", msg.Subject(), "stream_seq", meta.Sequence.Stream, "reason", reason)
	return nil
}

// Permanent reports whether err is one no retry can change: a stream that fails verification, an event
// the aggregate refuses, a malformed event.
func Permanent(err error) bool {
	return errors.Is(err, events.ErrViolation) || errors.Is(err, events.ErrRefused) || errors.Is(err, events.ErrMalformed)
}
