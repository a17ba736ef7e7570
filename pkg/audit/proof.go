package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/checkpoint"
	"github.com/grantline/grantline/pkg/events"
)

// ProofFormat names the bundle format grantline audit prove writes.
const ProofFormat = "grantline-proof/v1"

// ProofBundle is an offline proof that a request's events are in the evidence log: the events as
// stored, each with its leaf index and an inclusion proof, and the signed checkpoint (with the
// witnesses' cosignatures) they are proven against. VerifyProof checks it with the trust file alone.
type ProofBundle struct {
	Format    string `json:"format"`
	RequestID string `json:"request_id"`
	// Checkpoint is the signed note, every signature included.
	Checkpoint string        `json:"checkpoint"`
	Events     []ProvenEvent `json:"events"`
}

// ProvenEvent is one stored event with its place in the log. The body is the exact stored bytes in
// base64, so reformatting the bundle cannot change what the signature covers.
type ProvenEvent struct {
	Seq       uint64    `json:"seq"`
	Subject   string    `json:"subject"`
	StoredAt  time.Time `json:"stored_at"`
	Signature string    `json:"signature"`
	Body      []byte    `json:"body"`
	LeafIndex uint64    `json:"leaf_index"`
	Inclusion [][]byte  `json:"inclusion_proof"`
}

func (pe ProvenEvent) record() events.Record {
	return events.Record{Seq: pe.Seq, Subject: pe.Subject, Body: pe.Body, Signature: pe.Signature, StoredAt: pe.StoredAt}
}

// ErrNotCheckpointed means an event of the request is not in any checkpoint yet.
var ErrNotCheckpointed = errors.New("not covered by a checkpoint yet")

// Prove builds the proof bundle of request id from the live broker: every leaf hash from the
// checkpoint stream's records (each record checked against its signed root), the latest checkpoint
// (its cosigned copy with the most witnesses, when there is one), and the request's events, verified
// against the trust file before they are bundled. An event newer than the latest checkpoint is
// ErrNotCheckpointed: try again after the next one.
func Prove(ctx context.Context, js jetstream.JetStream, trust *events.Verifier, id string) (*ProofBundle, error) {
	ct, err := checkpoint.NewTrust(trust)
	if err != nil {
		return nil, err
	}
	follow := checkpoint.NewFollow()
	var leaves [][]byte
	var latest *checkpoint.Signed
	if err := checkpoint.ReadHeads(ctx, js, ct, func(h *checkpoint.Head) error {
		if err := follow.Add(h.Signed.Checkpoint, h.Record); err != nil {
			return fmt.Errorf("checkpoint stream record %d: %w", h.Seq, err)
		}
		leaves = append(leaves, h.Record.Leaves...)
		latest = h.Signed
		return nil
	}); err != nil {
		return nil, err
	}
	if latest == nil {
		return nil, fmt.Errorf("request %s: %w (the checkpoint stream is empty)", id, ErrNotCheckpointed)
	}
	if err := checkpoint.ReadCosigned(ctx, js, func(_ uint64, msg []byte) error {
		s, err := ct.Open(msg)
		if err == nil && s.Size == latest.Size && bytes.Equal(s.Root, latest.Root) && len(s.Witnesses) > len(latest.Witnesses) {
			latest = s
		}
		return nil
	}); err != nil {
		return nil, err
	}
	var recs []events.Record
	if err := ReadStream(ctx, js, Range{Subject: events.RequestFilter(id)}, func(r events.Record) error {
		recs = append(recs, r)
		return nil
	}); err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("request %s has no events", id)
	}
	if _, err := trust.VerifyAll(recs); err != nil {
		return nil, fmt.Errorf("request %s does not verify: %w", id, err)
	}
	span := &checkpoint.Span{Leaves: leaves[:latest.Size]}
	b := &ProofBundle{Format: ProofFormat, RequestID: id, Checkpoint: string(latest.Note)}
	for _, r := range recs {
		index, ok := leafIndex(span.Leaves, r)
		if !ok {
			return nil, fmt.Errorf("request %s: the event at stream sequence %d is %w (the latest covers %d events)", id, r.Seq, ErrNotCheckpointed, latest.Size)
		}
		p, err := span.InclusionProof(index, latest.Size)
		if err != nil {
			return nil, err
		}
		b.Events = append(b.Events, ProvenEvent{Seq: r.Seq, Subject: r.Subject, StoredAt: r.StoredAt.UTC(), Signature: r.Signature,
			Body: r.Body, LeafIndex: index, Inclusion: p})
	}
	return b, nil
}

// leafIndex finds rec among leaves: where its stream sequence puts it in a stream without gaps, or
// else wherever it is.
func leafIndex(leaves [][]byte, rec events.Record) (uint64, bool) {
	h := checkpoint.LeafHash(rec)
	if rec.Seq >= 1 && rec.Seq <= uint64(len(leaves)) && bytes.Equal(leaves[rec.Seq-1], h) {
		return rec.Seq - 1, true
	}
	for i, l := range leaves {
		if bytes.Equal(l, h) {
			return uint64(i), true
		}
	}
	return 0, false
}

// ProofReport is what a verified bundle proves: these events of the request are in the log at these
// positions, under a checkpoint these keys signed. It does not prove that the request has no later
// event: a newer checkpoint and the stream answer that.
type ProofReport struct {
	RequestID string           `json:"request_id"`
	Status    events.Status    `json:"status"`
	Events    int              `json:"events"`
	Types     []string         `json:"types"`
	LogSize   uint64           `json:"log_size"`
	Signer    string           `json:"checkpoint_signer"`
	SignedAt  time.Time        `json:"checkpoint_time"`
	Witnesses []string         `json:"witnesses"`
	Positions []uint64         `json:"positions"`
	Origin    string           `json:"origin"`
	Decision  events.Outcome   `json:"decision,omitempty"`
	Grant     *events.Granted  `json:"grant,omitempty"`
	Revoked   *events.Revoked  `json:"revoked,omitempty"`
	Submitted events.Submitted `json:"submitted"`
}

// ErrProof is wrapped by every reason a bundle does not prove what it claims.
var ErrProof = errors.New("the proof does not hold")

// VerifyProof checks a bundle with nothing but the trust file: the checkpoint's signature by a trusted
// checkpointer (and which trusted witnesses cosigned it), every event's signature, emitter and chain
// from the request's first event, the request's lifecycle, and each event's inclusion in the
// checkpointed tree at its leaf index. minWitnesses is how many trusted cosignatures it needs. Every
// failure wraps ErrProof.
func VerifyProof(b *ProofBundle, trust *events.Verifier, minWitnesses int) (*ProofReport, error) {
	fail := func(format string, args ...any) (*ProofReport, error) {
		return nil, fmt.Errorf("%w: %s", ErrProof, fmt.Sprintf(format, args...))
	}
	if b.Format != ProofFormat {
		return fail("format %q, want %q", b.Format, ProofFormat)
	}
	ct, err := checkpoint.NewTrust(trust)
	if err != nil {
		return nil, err
	}
	signed, err := ct.Open([]byte(b.Checkpoint))
	if err != nil {
		return fail("checkpoint: %v", err)
	}
	if len(signed.Witnesses) < minWitnesses {
		return fail("the checkpoint has %d trusted witness cosignatures, %d required", len(signed.Witnesses), minWitnesses)
	}
	if len(b.Events) == 0 {
		return fail("no events")
	}
	chain := trust.NewChain()
	req := events.NewRequest(b.RequestID)
	r := &ProofReport{RequestID: b.RequestID, LogSize: signed.Size, Signer: signed.Signer,
		SignedAt: signed.Time, Witnesses: signed.Witnesses, Origin: signed.Origin}
	for i, pe := range b.Events {
		rec := pe.record()
		ev, err := chain.Next(rec)
		if err != nil {
			return fail("event %d: %v", i+1, err)
		}
		if ev.Subject != b.RequestID {
			return fail("event %d belongs to request %s", i+1, ev.Subject)
		}
		if i > 0 && pe.LeafIndex <= b.Events[i-1].LeafIndex {
			return fail("event %d is not after event %d in the log", i+1, i)
		}
		if err := checkpoint.VerifyInclusion(pe.LeafIndex, signed.Size, checkpoint.LeafHash(rec), pe.Inclusion, signed.Root); err != nil {
			return fail("event %d (leaf %d) is not in the checkpointed log: %v", i+1, pe.LeafIndex, err)
		}
		if err := req.Apply(ev); err != nil {
			return fail("event %d: %v", i+1, err)
		}
		r.Types = append(r.Types, ev.Type.Name())
		r.Positions = append(r.Positions, pe.LeafIndex+1)
	}
	r.Events = len(b.Events)
	r.Status, r.Submitted, r.Grant, r.Revoked = req.Status(), req.Submitted(), req.Grant(), req.Revoked()
	r.Decision = req.Decision().Outcome
	return r, nil
}
