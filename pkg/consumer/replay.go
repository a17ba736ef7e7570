package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/telemetry"
	"github.com/grantline/grantline/pkg/topology"
)

// Replays creates or updates the replay consumer of durable, whose messages are on stream
// (topology.ReplayConsumer), and consumes the operator's replay requests until the returned
// ConsumeContext is stopped. For each it reads the original message from stream at the sequence the
// dead letter recorded and hands deliver a message that reads as the original (subject, headers, body,
// stream sequence) with the request's own delivery count, and settles the request when settled
// (ReplayOf tells it apart). Settling it as any delivery lets the consumer's own rules apply unchanged:
// a handler that fails again is retried, then set aside as a new dead letter. Nothing is published to
// the original stream, so a replay adds no event to the evidence. A request naming nothing this durable
// was given is terminated; one whose original cannot be read now is retried after backoff(1).
func Replays(ctx context.Context, js jetstream.JetStream, stream, durable string, ackWait time.Duration, backoff func(int) time.Duration, log *slog.Logger,
	deliver func(jetstream.Msg)) (jetstream.ConsumeContext, error) {
	// The replay consumer starts at new requests: the operator's command refuses to ask for a replay
	// until it exists, and a recreated one must not run every past replay again.
	replays := topology.ReplayConsumer(durable)
	cons, err := js.CreateOrUpdateConsumer(ctx, replays.Stream, jetstream.ConsumerConfig{
		Durable: replays.Durable, FilterSubject: topology.DeadLetterReplay(durable, "*"), AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: ackWait, MaxDeliver: -1, MaxAckPending: 16, DeliverPolicy: jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", replays.Durable, err)
	}
	log = log.With("durable", replays.Durable)
	reads := context.WithoutCancel(ctx)
	cc, err := cons.Consume(func(req jetstream.Msg) {
		rlog := log.With("replay", req.Subject())
		original, err := readOriginal(reads, js, stream, durable, req)
		switch {
		case errors.Is(err, errUnreplayable):
			rlog.Error("replay refused", telemetry.KeyError, err.Error())
			_ = req.TermWithReason(err.Error())
			return
		case err != nil:
			rlog.Warn("replay: read the original", telemetry.KeyError, err.Error())
			_ = req.NakWithDelay(backoff(1))
			return
		}
		rlog.Info("replaying", "entry", original.entry, "actor", req.Headers().Get(HeaderActor), "stream_seq", original.raw.Sequence)
		deliver(original)
	}, jetstream.PullMaxMessages(8), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		log.Warn("consume", telemetry.KeyError, err.Error())
	}))
	if err != nil {
		return nil, fmt.Errorf("consumer %s: consume: %w", replays.Durable, err)
	}
	return cc, nil
}

// ReplayOf returns the dead letter (its sequence in GRANTLINE_DLQ) whose replay msg is, and false for a
// message the durable delivered itself.
func ReplayOf(msg jetstream.Msg) (entry string, ok bool) {
	if r, ok := msg.(*replayed); ok {
		return r.entry, true
	}
	return "", false
}

// errUnreplayable marks a replay request no retry can answer.
var errUnreplayable = errors.New("unreplayable")

// readOriginal reads the message a replay request names, checking it is one durable was given from
// stream.
func readOriginal(ctx context.Context, js jetstream.JetStream, stream, durable string, req jetstream.Msg) (*replayed, error) {
	h := req.Headers()
	seq, err := strconv.ParseUint(h.Get(HeaderSeq), 10, 64)
	switch {
	case err != nil || h.Get(HeaderEntry) == "":
		return nil, fmt.Errorf("%w: the request names no dead letter or no stream sequence", errUnreplayable)
	case h.Get(HeaderStream) != stream || h.Get(HeaderConsumer) != durable:
		return nil, fmt.Errorf("%w: the dead letter came from %s on %s, not from this consumer", errUnreplayable,
			h.Get(HeaderConsumer), h.Get(HeaderStream))
	}
	reqMeta, err := req.Metadata()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errUnreplayable, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	raw, err := st.GetMsg(ctx, seq)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return nil, fmt.Errorf("%w: %s no longer holds sequence %d", errUnreplayable, stream, seq)
	case err != nil:
		return nil, err
	case raw.Subject != h.Get(HeaderSubject):
		return nil, fmt.Errorf("%w: sequence %d of %s is on %s, the dead letter was on %s", errUnreplayable,
			seq, stream, raw.Subject, h.Get(HeaderSubject))
	}
	return &replayed{Msg: req, entry: h.Get(HeaderEntry), raw: raw, meta: &jetstream.MsgMetadata{
		Sequence:     jetstream.SequencePair{Stream: seq, Consumer: reqMeta.Sequence.Consumer},
		NumDelivered: reqMeta.NumDelivered, Timestamp: raw.Time, Stream: stream, Consumer: durable,
		Domain: reqMeta.Domain,
	}}, nil
}

// replayed is an original message delivered again through a replay request: it reads as the original
// (subject, headers, body, stream sequence) and settles the request.
type replayed struct {
	jetstream.Msg
	// entry is the dead letter's sequence in GRANTLINE_DLQ.
	entry string
	raw   *jetstream.RawStreamMsg
	meta  *jetstream.MsgMetadata
}

func (m *replayed) Metadata() (*jetstream.MsgMetadata, error) { return m.meta, nil }
func (m *replayed) Data() []byte                              { return m.raw.Data }
func (m *replayed) Headers() nats.Header                      { return m.raw.Header }
func (m *replayed) Subject() string                           { return m.raw.Subject }
