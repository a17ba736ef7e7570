package checkpoint

import (
	"context"
	"encoding/json/v2"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/topology"
)

// Head is one record of the checkpoint stream as read: where it is stored, its checkpoint opened
// against the trust file, and the record.
type Head struct {
	Seq    uint64
	Signed *Signed
	Record Record
}

// decodeHead opens a stored heads record.
func decodeHead(trust *Trust, seq uint64, data []byte) (*Head, error) {
	var rec Record
	if err := json.Unmarshal(data, &rec, json.RejectUnknownMembers(true)); err != nil {
		return nil, fmt.Errorf("checkpoint record at stream sequence %d: %w", seq, err)
	}
	signed, err := trust.Open(rec.Checkpoint)
	if err != nil {
		return nil, fmt.Errorf("checkpoint record at stream sequence %d: %w", seq, err)
	}
	return &Head{Seq: seq, Signed: signed, Record: rec}, nil
}

// LatestHead reads the latest record of the checkpoint stream's heads subject; the error wraps
// jetstream.ErrMsgNotFound when there is none yet.
func LatestHead(ctx context.Context, js jetstream.JetStream, trust *Trust) (*Head, error) {
	st, err := js.Stream(ctx, topology.CheckpointsStream)
	if err != nil {
		return nil, fmt.Errorf("checkpoint stream: %w", err)
	}
	msg, err := st.GetLastMsgForSubject(ctx, topology.CheckpointHeads)
	if err != nil {
		return nil, fmt.Errorf("latest checkpoint: %w", err)
	}
	return decodeHead(trust, msg.Sequence, msg.Data)
}

// ReadHeads calls fn with every record of the heads subject, in order, up to the last one stored when
// it starts. A record that does not open against the trust file is an error.
func ReadHeads(ctx context.Context, js jetstream.JetStream, trust *Trust, fn func(*Head) error) error {
	return readSubject(ctx, js, topology.CheckpointHeads, func(seq uint64, data []byte) error {
		h, err := decodeHead(trust, seq, data)
		if err != nil {
			return err
		}
		return fn(h)
	})
}

// ReadCosigned calls fn with every cosigned checkpoint note stored, in order.
func ReadCosigned(ctx context.Context, js jetstream.JetStream, fn func(seq uint64, msg []byte) error) error {
	return readSubject(ctx, js, topology.CheckpointCosigned, fn)
}

// readSubject reads subject of the checkpoint stream with an ordered consumer, which keeps no state on
// the server, up to the stream's last sequence when it starts.
func readSubject(ctx context.Context, js jetstream.JetStream, subject string, fn func(seq uint64, data []byte) error) error {
	st, err := js.Stream(ctx, topology.CheckpointsStream)
	if err != nil {
		return fmt.Errorf("checkpoint stream: %w", err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return fmt.Errorf("checkpoint stream: %w", err)
	}
	if info.State.Subjects[subject] == 0 {
		return nil
	}
	last := info.State.LastSeq
	cons, err := js.OrderedConsumer(ctx, topology.CheckpointsStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		return fmt.Errorf("read the checkpoint stream: %w", err)
	}
	for {
		batch, err := cons.Fetch(256)
		if err != nil {
			return fmt.Errorf("read the checkpoint stream: %w", err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			meta, err := msg.Metadata()
			if err != nil {
				return err
			}
			if meta.Sequence.Stream > last {
				return nil
			}
			if err := fn(meta.Sequence.Stream, msg.Data()); err != nil {
				return err
			}
			if meta.Sequence.Stream == last || meta.NumPending == 0 {
				return nil
			}
		}
		if err := batch.Error(); err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
		if n == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// SpanBetween rebuilds, from the checkpoint stream's records, the span from a checkpoint of size old
// to one of size size: the frontier at old and the leaves after it. It fails when no record has
// size old (a size the checkpointer never signed).
func SpanBetween(ctx context.Context, js jetstream.JetStream, trust *Trust, old, size uint64) (*Span, error) {
	follow := NewFollow()
	var span *Span
	errDone := errors.New("done")
	err := ReadHeads(ctx, js, trust, func(h *Head) error {
		if err := follow.Add(h.Signed.Checkpoint, h.Record); err != nil {
			return fmt.Errorf("checkpoint stream: %w", err)
		}
		tree := follow.Tree()
		switch {
		case span == nil && tree.Size() == old:
			span = &Span{Base: old, Frontier: tree.Frontier()}
		case span != nil:
			span.Leaves = append(span.Leaves, h.Record.Leaves...)
		}
		if tree.Size() >= size {
			return errDone
		}
		return nil
	})
	if err != nil && !errors.Is(err, errDone) {
		return nil, err
	}
	if span == nil || span.End() < size {
		return nil, fmt.Errorf("no checkpoint of size %d up to %d in the checkpoint stream", old, size)
	}
	span.Leaves = span.Leaves[:size-old]
	return span, nil
}
