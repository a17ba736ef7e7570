package deadletter

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/consumer"
	"github.com/grantline/grantline/pkg/topology"
)

// Letter is one dead letter: the copy a consumer set aside, why, and where the original is.
type Letter struct {
	// Seq is the dead letter's sequence in GRANTLINE_DLQ, which the operator names it by.
	Seq uint64
	At  time.Time
	// Consumer is the durable consumer that gave up on it, Reason why, after Deliveries deliveries.
	Consumer, Reason string
	Deliveries       int
	// Stream, StreamSeq and Subject locate the original, which is still there (the copy is only a copy).
	Stream    string
	StreamSeq uint64
	Subject   string
	// ReplayOf is the dead letter whose replay failed again and set this one aside; 0 for a first.
	ReplayOf uint64
	Headers  nats.Header
	Data     []byte
	// Replayed is the operator's replay of this dead letter, nil until there is one.
	Replayed *Action
}

// Action is an operator's replay or discard of a dead letter, as recorded in GRANTLINE_DLQ.
type Action struct {
	At          time.Time
	Actor, Note string
}

// Errors of the operator's actions.
var (
	// ErrNotFound: GRANTLINE_DLQ holds no dead letter at that sequence (never, or it was discarded).
	ErrNotFound = errors.New("no such dead letter")
	// ErrAlreadyReplayed: the dead letter was replayed before; a replay happens once.
	ErrAlreadyReplayed = errors.New("dead letter already replayed")
	// ErrNoReplayConsumer: the dead letter's consumer takes no replays (its service never started the
	// replay consumer, or is not run by pkg/consumer).
	ErrNoReplayConsumer = errors.New("the consumer takes no replays")
	// ErrOriginalGone: the original is no longer in its stream at its sequence, so there is nothing to
	// replay.
	ErrOriginalGone = errors.New("the original message is gone")
)

// List returns every dead letter in GRANTLINE_DLQ, oldest first, each with its replay if it had one.
func List(ctx context.Context, js jetstream.JetStream) ([]Letter, error) {
	st, err := js.Stream(ctx, topology.DLQStream)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", topology.DLQStream, err)
	}
	last := st.CachedInfo().State.LastSeq
	if st.CachedInfo().State.Msgs == 0 {
		return nil, nil
	}
	cons, err := js.OrderedConsumer(ctx, topology.DLQStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", topology.DLQStream, err)
	}
	var letters []Letter
	replays := map[string]*Action{}
	for {
		msg, err := cons.Next(jetstream.FetchContext(ctx))
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", topology.DLQStream, err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return nil, err
		}
		raw := &jetstream.RawStreamMsg{Subject: msg.Subject(), Sequence: meta.Sequence.Stream, Header: msg.Headers(),
			Data: msg.Data(), Time: meta.Timestamp}
		if l, ok := letterOf(raw); ok {
			letters = append(letters, l)
		} else if durable, rec, entry, ok := topology.ParseDeadLetter(raw.Subject); ok && rec == topology.RecordReplay {
			replays[durable+"."+entry] = actionOf(raw)
		}
		if meta.Sequence.Stream >= last {
			break
		}
	}
	for i, l := range letters {
		letters[i].Replayed = replays[l.Consumer+"."+strconv.FormatUint(l.Seq, 10)]
	}
	return letters, nil
}

// Get returns dead letter seq, with its replay if it had one. It returns ErrNotFound if there is none.
func Get(ctx context.Context, js jetstream.JetStream, seq uint64) (Letter, error) {
	st, err := js.Stream(ctx, topology.DLQStream)
	if err != nil {
		return Letter{}, fmt.Errorf("open %s: %w", topology.DLQStream, err)
	}
	raw, err := st.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Letter{}, fmt.Errorf("%w at %d", ErrNotFound, seq)
	}
	if err != nil {
		return Letter{}, fmt.Errorf("dead letter %d: %w", seq, err)
	}
	l, ok := letterOf(raw)
	if !ok {
		return Letter{}, fmt.Errorf("%w at %d (%s holds an operator's record there)", ErrNotFound, seq, raw.Subject)
	}
	replay, err := st.GetLastMsgForSubject(ctx, topology.DeadLetterReplay(l.Consumer, strconv.FormatUint(seq, 10)))
	switch {
	case err == nil:
		l.Replayed = actionOf(replay)
	case !errors.Is(err, jetstream.ErrMsgNotFound):
		return Letter{}, fmt.Errorf("dead letter %d: look for its replay: %w", seq, err)
	}
	return l, nil
}

// Replay asks the dead letter's consumer to handle the original message once more: it records the
// request in GRANTLINE_DLQ, where the consumer's replicas receive it and read the original from its
// stream at its sequence (consumer.Run). Nothing is published to the original stream, so a replay adds
// no event to the evidence, and the request can be made once per dead letter: a second returns
// ErrAlreadyReplayed, even from two operators at the same moment. It returns ErrNotFound,
// ErrNoReplayConsumer or ErrOriginalGone when there is nothing the consumer could be given.
func Replay(ctx context.Context, js jetstream.JetStream, seq uint64, actor, note string) (Letter, error) {
	l, err := Get(ctx, js, seq)
	if err != nil {
		return Letter{}, err
	}
	if l.Replayed != nil {
		return l, fmt.Errorf("%w: dead letter %d at %s by %s", ErrAlreadyReplayed, seq, l.Replayed.At.Format(time.RFC3339), l.Replayed.Actor)
	}
	replays := topology.ReplayConsumer(l.Consumer)
	if _, err := js.Consumer(ctx, replays.Stream, replays.Durable); errors.Is(err, jetstream.ErrConsumerNotFound) {
		return l, fmt.Errorf("%w: %s has no replay consumer %s (is its service running this version?)", ErrNoReplayConsumer, l.Consumer, replays.Durable)
	} else if err != nil {
		return l, fmt.Errorf("replay consumer of %s: %w", l.Consumer, err)
	}
	if err := originalExists(ctx, js, l); err != nil {
		return l, err
	}
	req := record(l, topology.DeadLetterReplay(l.Consumer, strconv.FormatUint(seq, 10)), actor, note)
	// Expecting no earlier message on the request's own subject makes the request once-only without a
	// time window, unlike a message ID.
	if _, err := js.PublishMsg(ctx, req, jetstream.WithExpectLastSequencePerSubject(0)); err != nil {
		if isWrongLastSequence(err) {
			return l, fmt.Errorf("%w: dead letter %d", ErrAlreadyReplayed, seq)
		}
		return l, fmt.Errorf("request the replay of dead letter %d: %w", seq, err)
	}
	return l, nil
}

// Discard removes dead letter seq from GRANTLINE_DLQ, first recording who discarded it and why next to
// where it was. Discarding again after a failure between the two finishes the removal.
func Discard(ctx context.Context, js jetstream.JetStream, seq uint64, actor, note string) (Letter, error) {
	if strings.TrimSpace(note) == "" {
		return Letter{}, errors.New("a discard needs a reason")
	}
	l, err := Get(ctx, js, seq)
	if err != nil {
		return Letter{}, err
	}
	rec := record(l, topology.DeadLetterDiscard(l.Consumer, strconv.FormatUint(seq, 10)), actor, note)
	if _, err := js.PublishMsg(ctx, rec, jetstream.WithExpectLastSequencePerSubject(0)); err != nil && !isWrongLastSequence(err) {
		return l, fmt.Errorf("record the discard of dead letter %d: %w", seq, err)
	}
	st, err := js.Stream(ctx, topology.DLQStream)
	if err != nil {
		return l, err
	}
	if err := st.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return l, fmt.Errorf("remove dead letter %d: %w", seq, err)
	}
	return l, nil
}

// originalExists checks that the original of l is still in its stream at its sequence.
func originalExists(ctx context.Context, js jetstream.JetStream, l Letter) error {
	st, err := js.Stream(ctx, l.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("%w: stream %s does not exist", ErrOriginalGone, l.Stream)
	}
	if err != nil {
		return fmt.Errorf("original of dead letter %d: %w", l.Seq, err)
	}
	raw, err := st.GetMsg(ctx, l.StreamSeq)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return fmt.Errorf("%w: %s no longer holds sequence %d", ErrOriginalGone, l.Stream, l.StreamSeq)
	case err != nil:
		return fmt.Errorf("original of dead letter %d: %w", l.Seq, err)
	case raw.Subject != l.Subject:
		return fmt.Errorf("%w: sequence %d of %s is on %s, not %s", ErrOriginalGone, l.StreamSeq, l.Stream, raw.Subject, l.Subject)
	}
	return nil
}

// record is an operator's record about l on subject: where the original is, which dead letter, who
// and why.
func record(l Letter, subject, actor, note string) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Header.Set(consumer.HeaderStream, l.Stream)
	m.Header.Set(consumer.HeaderSeq, strconv.FormatUint(l.StreamSeq, 10))
	m.Header.Set(consumer.HeaderSubject, l.Subject)
	m.Header.Set(consumer.HeaderConsumer, l.Consumer)
	m.Header.Set(consumer.HeaderReason, l.Reason)
	m.Header.Set(consumer.HeaderEntry, strconv.FormatUint(l.Seq, 10))
	m.Header.Set(consumer.HeaderActor, actor)
	m.Header.Set(consumer.HeaderNote, note)
	return m
}

// letterOf reads a dead letter from its message, and false for an operator's record.
func letterOf(raw *jetstream.RawStreamMsg) (Letter, bool) {
	durable, rec, _, ok := topology.ParseDeadLetter(raw.Subject)
	if !ok || rec != "" {
		return Letter{}, false
	}
	h := raw.Header
	l := Letter{Seq: raw.Sequence, At: raw.Time, Consumer: durable, Reason: h.Get(consumer.HeaderReason), Stream: h.Get(consumer.HeaderStream),
		Subject: h.Get(consumer.HeaderSubject), Headers: h, Data: raw.Data}
	l.Deliveries, _ = strconv.Atoi(h.Get(consumer.HeaderDeliveries))
	l.StreamSeq, _ = strconv.ParseUint(h.Get(consumer.HeaderSeq), 10, 64)
	l.ReplayOf, _ = strconv.ParseUint(h.Get(consumer.HeaderReplayOf), 10, 64)
	return l, true
}

func actionOf(raw *jetstream.RawStreamMsg) *Action {
	return &Action{At: raw.Time, Actor: raw.Header.Get(consumer.HeaderActor), Note: raw.Header.Get(consumer.HeaderNote)}
}

// isWrongLastSequence reports the server's refusal of a publish whose expected last subject sequence
// did not hold: here, a record that already exists.
func isWrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}
