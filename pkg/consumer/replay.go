package consumer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/telemetry"
)

// replayed answers one replay request: it reads the original message from the durable's stream at the
// sequence the dead letter recorded, to be delivered to the handler as if the durable had, with the
// request's own delivery count. Settling the delivery settles the request, so the runner's table
// applies unchanged: a handler that fails again is retried, then set aside as a new dead letter.
// Nothing is published to the original stream, so a replay adds no event to the evidence. It returns
// nil, having settled the request, if there is nothing to deliver.
func (r *runner) replayed(ctx context.Context, req jetstream.Msg) jetstream.Msg {
	log := r.log.With("replay", req.Subject())
	original, err := r.original(ctx, req)
	switch {
	case errors.Is(err, errUnreplayable):
		log.Error("replay refused", telemetry.KeyError, err.Error())
		_ = req.TermWithReason(err.Error())
		return nil
	case err != nil:
		log.Warn("replay: read the original", telemetry.KeyError, err.Error())
		_ = req.NakWithDelay(r.spec.Backoff(1))
		return nil
	}
	log.Info("replaying", "entry", original.entry, "actor", req.Headers().Get(HeaderActor), "stream_seq", original.raw.Sequence)
	return original
}

// errUnreplayable marks a replay request no retry can answer.
var errUnreplayable = errors.New("unreplayable")

// original reads the message a replay request names, checking it is one this durable was given.
func (r *runner) original(ctx context.Context, req jetstream.Msg) (*replayed, error) {
	h := req.Headers()
	seq, err := strconv.ParseUint(h.Get(HeaderSeq), 10, 64)
	switch {
	case err != nil || h.Get(HeaderEntry) == "":
		return nil, fmt.Errorf("%w: the request names no dead letter or no stream sequence", errUnreplayable)
	case h.Get(HeaderStream) != r.spec.Stream || h.Get(HeaderConsumer) != r.spec.Durable:
		return nil, fmt.Errorf("%w: the dead letter came from %s on %s, not from this consumer", errUnreplayable,
			h.Get(HeaderConsumer), h.Get(HeaderStream))
	}
	reqMeta, err := req.Metadata()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errUnreplayable, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := r.js.Stream(ctx, r.spec.Stream)
	if err != nil {
		return nil, err
	}
	raw, err := st.GetMsg(ctx, seq)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return nil, fmt.Errorf("%w: %s no longer holds sequence %d", errUnreplayable, r.spec.Stream, seq)
	case err != nil:
		return nil, err
	case raw.Subject != h.Get(HeaderSubject):
		return nil, fmt.Errorf("%w: sequence %d of %s is on %s, the dead letter was on %s", errUnreplayable,
			seq, r.spec.Stream, raw.Subject, h.Get(HeaderSubject))
	}
	return &replayed{Msg: req, entry: h.Get(HeaderEntry), raw: raw, meta: &jetstream.MsgMetadata{
		Sequence:     jetstream.SequencePair{Stream: seq, Consumer: reqMeta.Sequence.Consumer},
		NumDelivered: reqMeta.NumDelivered, Timestamp: raw.Time, Stream: r.spec.Stream, Consumer: r.spec.Durable,
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
