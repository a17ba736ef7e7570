// Package checkpointer keeps the evidence stream's checkpoints: it follows GRANTLINE_EVENTS in stream
// order, every Every events or Interval (whichever comes first, if anything new arrived) signs the
// Merkle tree head of everything stored so far with its own key, appends the record (signed head,
// the new leaves, the frontier) to GRANTLINE_CHECKPOINTS, and hands the checkpoint to the witnesses:
// the HTTP witnesses countersign it against a consistency proof from what they saw last, and the
// directory witness keeps a file of it with whatever cosignatures it got.
//
// It notarises what is stored, whatever it is: judging events is the auditor's job (grantline audit
// verify). It refuses to resume on an evidence stream that is not the one its last checkpoint
// describes (created at another time, or shorter), rather than sign a rewritten history.
// Run one replica: a second one's append loses the compare-and-set on the heads subject and stops it.
package checkpointer

import (
	"bytes"
	"context"
	"encoding/json/v2"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/mod/sumdb/note"

	"github.com/grantline/grantline/pkg/checkpoint"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/pkg/witness"
)

// Deps are what the checkpointer runs on.
type Deps struct {
	JS jetstream.JetStream
	// Signer signs the checkpoints; its verifier key must be a checkpointer's in the trust file.
	Signer note.Signer
	// Trust is the trust file's checkpoint section: the log's origin and the keys that verify the
	// checkpointer's own past records and the witnesses' cosignatures.
	Trust *checkpoint.Trust
	// Every is the most events one checkpoint adds; Interval the longest an event waits for one.
	Every    int
	Interval time.Duration
	// Dir, if not nil, receives every checkpoint as a file.
	Dir *witness.Dir
	// Witnesses countersign each checkpoint.
	Witnesses []*witness.Client
	// WitnessTimeout bounds each exchange with an HTTP witness; defaults to 5s.
	WitnessTimeout time.Duration
	// Now is the clock of the checkpoints' time lines; defaults to time.Now.
	Now func() time.Time
	Log *slog.Logger
}

// ErrWrongStream means the evidence stream is not the one the last checkpoint describes: recreated,
// restored from an older copy, or cut. The checkpointer stops rather than sign it.
var ErrWrongStream = errors.New("the evidence stream is not the one the last checkpoint describes")

// Checkpointer is the running log; build it with New.
type Checkpointer struct {
	d       Deps
	created time.Time
	tree    *checkpoint.Tree
	last    *checkpoint.Signed // the latest checkpoint, nil before the first
	lastSeq uint64             // stream sequence of the last leaf
	headSeq uint64             // stream sequence of the latest record on the heads subject
	// witnessed is each HTTP witness's size as last seen, so the next proof starts there.
	witnessed map[string]uint64
}

// New prepares a checkpointer and resumes from the latest record in the checkpoint stream (see
// Resume).
func New(ctx context.Context, d Deps) (*Checkpointer, error) {
	if d.JS == nil || d.Signer == nil || d.Trust == nil || d.Every <= 0 || d.Interval <= 0 {
		return nil, errors.New("the checkpointer needs JetStream, a signer, the trust file, and positive Every and Interval")
	}
	if d.WitnessTimeout <= 0 {
		d.WitnessTimeout = 5 * time.Second
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	c := &Checkpointer{d: d, witnessed: map[string]uint64{}}
	if err := c.resume(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Size is the size of the latest checkpoint.
func (c *Checkpointer) Size() uint64 { return c.tree.Size() }

// resume loads the latest record and checks the evidence stream is still the one it describes: the
// same creation time, at least as long, and the last checkpointed event still the same leaf.
func (c *Checkpointer) resume(ctx context.Context) error {
	evidence, err := c.d.JS.Stream(ctx, topology.EventsStream)
	if err != nil {
		return fmt.Errorf("evidence stream: %w", err)
	}
	info := evidence.CachedInfo()
	c.created = info.Created.UTC()
	c.tree = checkpoint.NewTree()
	head, err := checkpoint.LatestHead(ctx, c.d.JS, c.d.Trust)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	last := head.Signed
	switch {
	case last.Stream != topology.EventsStream:
		return fmt.Errorf("%w: the last checkpoint is of stream %s", ErrWrongStream, last.Stream)
	case !last.StreamCreated.Equal(c.created):
		return fmt.Errorf("%w: checkpoint %d was of a stream created at %s, this one was created at %s", ErrWrongStream,
			last.Size, last.StreamCreated.Format(time.RFC3339Nano), c.created.Format(time.RFC3339Nano))
	case info.State.LastSeq < last.LastSeq:
		return fmt.Errorf("%w: checkpoint %d covers stream sequences up to %d, the stream ends at %d", ErrWrongStream,
			last.Size, last.LastSeq, info.State.LastSeq)
	}
	tree, err := checkpoint.TreeFromFrontier(last.Size, head.Record.Frontier)
	if err != nil {
		return err
	}
	if !bytes.Equal(tree.Root(), last.Root) {
		return fmt.Errorf("the frontier of checkpoint %d does not hash to its root", last.Size)
	}
	if n := len(head.Record.Leaves); n > 0 {
		msg, err := evidence.GetMsg(ctx, last.LastSeq)
		if err != nil {
			return fmt.Errorf("read the last checkpointed event (stream sequence %d): %w", last.LastSeq, err)
		}
		if !bytes.Equal(checkpoint.LeafHash(recordOf(msg)), head.Record.Leaves[n-1]) {
			return fmt.Errorf("%w: the event at stream sequence %d is not the one checkpoint %d holds", ErrWrongStream, last.LastSeq, last.Size)
		}
	}
	c.tree, c.last, c.lastSeq, c.headSeq = tree, last, last.LastSeq, head.Seq
	c.d.Log.Info("resuming checkpoints", "size", last.Size, "last_seq", last.LastSeq)
	// The witnesses may have missed it (a crash between the append and them): offer it again.
	c.witness(ctx, c.last, nil)
	return nil
}

func recordOf(msg *jetstream.RawStreamMsg) events.Record {
	return events.Record{Seq: msg.Sequence, Subject: msg.Subject, Body: msg.Data, Signature: msg.Header.Get(events.SignatureHeader), StoredAt: msg.Time}
}

// Run follows the evidence stream and checkpoints it until ctx ends; then it checkpoints what it has
// read and returns nil. An error (the append refused, the stream gone) stops it.
func (c *Checkpointer) Run(ctx context.Context) error {
	// A bounded number of resets: an ordered consumer that cannot be recreated (the stream gone, the
	// cluster down) makes Run fail, and the process restart, rather than wait for ever.
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{events.AllSubjects}, MaxResetAttempts: 5}
	if c.lastSeq > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, c.lastSeq+1
	}
	cons, err := c.d.JS.OrderedConsumer(ctx, topology.EventsStream, cfg)
	if err != nil {
		return fmt.Errorf("follow the evidence stream: %w", err)
	}
	var pending [][]byte
	var pendingLast uint64
	sealed := c.d.Now()
	seal := func(ctx context.Context) error {
		if len(pending) == 0 {
			return nil
		}
		if err := c.seal(ctx, pending, pendingLast); err != nil {
			return err
		}
		pending, sealed = nil, c.d.Now()
		return nil
	}
	for {
		wait := max(c.d.Interval-c.d.Now().Sub(sealed), 50*time.Millisecond)
		batch, err := cons.Fetch(c.d.Every-len(pending), jetstream.FetchMaxWait(wait))
		if err == nil {
			for msg := range batch.Messages() {
				meta, err := msg.Metadata()
				if err != nil {
					return err
				}
				pending = append(pending, checkpoint.LeafHash(events.Record{Seq: meta.Sequence.Stream, Subject: msg.Subject(),
					Body: msg.Data(), Signature: msg.Headers().Get(events.SignatureHeader), StoredAt: meta.Timestamp}))
				pendingLast = meta.Sequence.Stream
			}
			err = batch.Error()
		}
		if ctx.Err() != nil {
			// What was read before the stop is checkpointed, within a short bound of its own.
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.d.WitnessTimeout)
			defer cancel()
			return seal(stopCtx)
		}
		if err != nil && !errors.Is(err, nats.ErrTimeout) {
			// The ordered consumer recreates itself after a leader change; say so and go on.
			c.d.Log.Warn("reading the evidence stream", "error", err.Error())
		}
		if len(pending) >= c.d.Every || c.d.Now().Sub(sealed) >= c.d.Interval {
			if err := seal(ctx); err != nil {
				return err
			}
		}
	}
}

// seal signs the tree with leaves appended, appends the record and offers it to the witnesses.
func (c *Checkpointer) seal(ctx context.Context, leaves [][]byte, lastSeq uint64) error {
	prevSize, prevFrontier := c.tree.Size(), c.tree.Frontier()
	next := c.tree.Clone()
	for _, h := range leaves {
		next.Append(h)
	}
	cp := checkpoint.Checkpoint{Origin: c.d.Trust.Origin(), Size: next.Size(), Root: next.Root(), Stream: topology.EventsStream,
		StreamCreated: c.created, LastSeq: lastSeq, Time: c.d.Now().UTC()}
	msg, err := checkpoint.Sign(cp, c.d.Signer)
	if err != nil {
		return err
	}
	body, err := json.Marshal(checkpoint.Record{Checkpoint: msg, Leaves: leaves, Frontier: next.Frontier()})
	if err != nil {
		return err
	}
	ack, err := c.d.JS.Publish(ctx, topology.CheckpointHeads, body, jetstream.WithMsgID(fmt.Sprintf("checkpoint:%d", cp.Size)),
		jetstream.WithExpectLastSequenceForSubject(c.headSeq, topology.CheckpointHeads))
	if err != nil {
		return fmt.Errorf("append checkpoint %d: %w", cp.Size, err)
	}
	signed, err := c.d.Trust.Open(msg)
	if err != nil {
		return fmt.Errorf("checkpoint %d: %w (is the checkpointer's key in the trust file?)", cp.Size, err)
	}
	c.tree, c.last, c.lastSeq, c.headSeq = next, signed, lastSeq, ack.Sequence
	c.d.Log.Info("checkpoint", "size", cp.Size, "added", len(leaves), "last_seq", lastSeq)
	c.witness(ctx, signed, &checkpoint.Span{Base: prevSize, Frontier: prevFrontier, Leaves: leaves})
	return nil
}

// witness offers signed to every witness: each HTTP witness with a consistency proof from the size
// it last saw (span, when it covers that size, or else one rebuilt from the checkpoint stream), then
// the directory with the cosignatures received. Failures are logged, not returned: a witness that is
// down must not stop the checkpoints, and it catches up on the next one.
func (c *Checkpointer) witness(ctx context.Context, signed *checkpoint.Signed, span *checkpoint.Span) {
	cosigned := signed.Note
	got := 0
	for _, w := range c.d.Witnesses {
		sig, err := c.offer(ctx, w, signed, span)
		if err != nil {
			c.d.Log.Error("witness did not countersign", "witness", w.URL, "size", signed.Size, "error", err.Error())
			continue
		}
		cosigned = append(slices.Clone(cosigned), sig...)
		got++
	}
	if got > 0 {
		if opened, err := c.d.Trust.Open(cosigned); err != nil || len(opened.Witnesses) < got {
			c.d.Log.Error("a witness's countersignature does not verify with the trust file", "size", signed.Size)
		}
		if _, err := c.d.JS.Publish(ctx, topology.CheckpointCosigned, cosigned,
			jetstream.WithMsgID(fmt.Sprintf("cosigned:%d:%d", signed.Size, got))); err != nil {
			c.d.Log.Error("cosigned checkpoint not stored", "size", signed.Size, "error", err.Error())
		}
	}
	if c.d.Dir != nil {
		if err := c.d.Dir.Put(signed.Checkpoint, cosigned); err != nil {
			c.d.Log.Error("directory witness", "size", signed.Size, "error", err.Error())
		}
	}
}

// offer submits signed to one HTTP witness, retrying once from the size the witness says it is at.
func (c *Checkpointer) offer(ctx context.Context, w *witness.Client, signed *checkpoint.Signed, span *checkpoint.Span) ([]byte, error) {
	old, known := c.witnessed[w.URL]
	if !known {
		old = signed.Size
		if span != nil {
			old = span.Base
		}
	}
	for attempt := 0; ; attempt++ {
		proof, err := c.proof(ctx, old, signed.Size, span)
		if err != nil {
			return nil, err
		}
		wctx, cancel := context.WithTimeout(ctx, c.d.WitnessTimeout)
		sig, err := w.Add(wctx, old, proof, signed.Note)
		cancel()
		var conflict *witness.ConflictError
		if errors.As(err, &conflict) && attempt == 0 {
			old = conflict.Size
			continue
		}
		if err != nil {
			return nil, err
		}
		c.witnessed[w.URL] = signed.Size
		return sig, nil
	}
}

// proof is the consistency proof from size old to size new: none for equal sizes or from nothing,
// from span when it starts at old, else from the checkpoint stream's records.
func (c *Checkpointer) proof(ctx context.Context, old, size uint64, span *checkpoint.Span) ([][]byte, error) {
	switch {
	case old == 0 || old == size:
		return nil, nil
	case old > size:
		return nil, fmt.Errorf("the witness has seen %d entries, more than this log's %d: a fork or another log", old, size)
	case span != nil && span.Base == old && span.End() == size:
		return span.ConsistencyProof(old, size)
	}
	s, err := checkpoint.SpanBetween(ctx, c.d.JS, c.d.Trust, old, size)
	if err != nil {
		return nil, err
	}
	return s.ConsistencyProof(old, size)
}
