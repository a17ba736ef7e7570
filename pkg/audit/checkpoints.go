package audit

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/checkpoint"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/witness"
)

// Finding kinds of a verification against checkpoints.
const (
	// FindingCheckpointDiverged: the stored history differs from what a checkpoint signed (an event
	// changed, missing, inserted or moved), from the position named.
	FindingCheckpointDiverged FindingKind = "checkpoint_diverged"
	// FindingCheckpointTail: a checkpoint covers more events than the stream holds: its tail was cut
	// (or an older copy restored).
	FindingCheckpointTail FindingKind = "checkpoint_tail_missing"
	// FindingStreamRecreated: the stream was created after a checkpoint of it was signed.
	FindingStreamRecreated FindingKind = "stream_recreated"
	// FindingCheckpointFork: two signed checkpoints of the same size disagree.
	FindingCheckpointFork FindingKind = "checkpoint_fork"
	// FindingCheckpointInvalid: a checkpoint that does not verify (unsigned, unknown key, another
	// log), or a record of the checkpoint stream that does not continue the log.
	FindingCheckpointInvalid FindingKind = "checkpoint_invalid"
)

// Checkpoints are the signed checkpoints a history is checked against, gathered from any number of
// sources (the checkpoint stream, witness directories), with the leaf hashes the checkpoint stream's
// records hold, which name the exact position of a difference.
type Checkpoints struct {
	trust   *checkpoint.Trust
	entries []*checkpointEntry
	// leaves are the leaf hashes of positions 1..len(leaves), as the checkpoint stream's records give
	// them (each record checked against its signed root).
	leaves   [][]byte
	findings []Finding
}

type checkpointEntry struct {
	signed *checkpoint.Signed
	from   string
}

// NewCheckpoints starts an empty set verified against trust.
func NewCheckpoints(trust *checkpoint.Trust) *Checkpoints { return &Checkpoints{trust: trust} }

// Len is how many distinct checkpoints the set holds.
func (cs *Checkpoints) Len() int { return len(cs.entries) }

// Latest is the checkpoint of the largest size, or nil.
func (cs *Checkpoints) Latest() *checkpoint.Signed {
	if len(cs.entries) == 0 {
		return nil
	}
	return cs.entries[len(cs.entries)-1].signed
}

// add merges one opened checkpoint: a second copy of the same one adds its witnesses; another
// checkpoint of the same size is a fork.
func (cs *Checkpoints) add(s *checkpoint.Signed, from string) {
	i, found := slices.BinarySearchFunc(cs.entries, s.Size, func(e *checkpointEntry, size uint64) int { return cmp.Compare(e.signed.Size, size) })
	if !found {
		cs.entries = slices.Insert(cs.entries, i, &checkpointEntry{signed: s, from: from})
		return
	}
	e := cs.entries[i]
	if !bytes.Equal(e.signed.Root, s.Root) {
		cs.findings = append(cs.findings, Finding{Kind: FindingCheckpointFork, Position: int(s.Size),
			Detail: fmt.Sprintf("two signed checkpoints of size %d disagree: %s and %s", s.Size, e.from, from)})
		return
	}
	for _, w := range s.Witnesses {
		if !slices.Contains(e.signed.Witnesses, w) {
			e.signed.Witnesses = append(e.signed.Witnesses, w)
		}
	}
	slices.Sort(e.signed.Witnesses)
}

// SignedBy returns the checkpoints signed at or before t, for a history taken at t (an export): a
// checkpoint signed later may cover events the history could not hold.
func (cs *Checkpoints) SignedBy(t time.Time) *Checkpoints {
	out := &Checkpoints{trust: cs.trust, findings: cs.findings}
	for _, e := range cs.entries {
		if !e.signed.Time.After(t) {
			out.entries = append(out.entries, e)
		}
	}
	if latest := out.Latest(); latest != nil {
		out.leaves = cs.leaves[:min(uint64(len(cs.leaves)), latest.Size)]
	}
	return out
}

// AddStream adds every checkpoint of the checkpoint stream (the records, then their cosigned copies)
// and the leaf hashes the records hold.
func (cs *Checkpoints) AddStream(ctx context.Context, js jetstream.JetStream) error {
	follow := checkpoint.NewFollow()
	broken := false
	err := checkpoint.ReadHeads(ctx, js, cs.trust, func(h *checkpoint.Head) error {
		from := fmt.Sprintf("checkpoint stream record %d", h.Seq)
		cs.add(h.Signed, from)
		if broken {
			return nil
		}
		if err := follow.Add(h.Signed.Checkpoint, h.Record); err != nil {
			broken = true
			cs.findings = append(cs.findings, Finding{Kind: FindingCheckpointInvalid, Position: int(h.Signed.Size),
				Detail: fmt.Sprintf("%s: %v; its leaves are not used", from, err)})
			return nil
		}
		cs.leaves = append(cs.leaves, h.Record.Leaves...)
		return nil
	})
	if err != nil {
		return err
	}
	return checkpoint.ReadCosigned(ctx, js, func(seq uint64, msg []byte) error {
		s, err := cs.trust.Open(msg)
		if err != nil {
			cs.findings = append(cs.findings, Finding{Kind: FindingCheckpointInvalid, Detail: fmt.Sprintf("cosigned checkpoint at stream sequence %d: %v", seq, err)})
			return nil
		}
		cs.add(s, fmt.Sprintf("cosigned checkpoint %d", seq))
		return nil
	})
}

// AddDir adds every checkpoint file of a directory witness.
func (cs *Checkpoints) AddDir(dir string) error {
	files, err := witness.Dir{Path: dir}.Read()
	if err != nil {
		return err
	}
	for _, f := range files {
		s, err := cs.trust.Open(f.Note)
		if err != nil {
			cs.findings = append(cs.findings, Finding{Kind: FindingCheckpointInvalid, Detail: fmt.Sprintf("%s: %v", f.Name, err)})
			continue
		}
		cs.add(s, f.Name)
	}
	return nil
}

// describe names a checkpoint for a finding: its size, who signed it when, who cosigned it and where
// it was found.
func (e *checkpointEntry) describe() string {
	w := "no witness"
	if len(e.signed.Witnesses) > 0 {
		w = "cosigned by " + strings.Join(e.signed.Witnesses, ", ")
	}
	return fmt.Sprintf("checkpoint of size %d (signed by %s at %s, %s; %s)", e.signed.Size, e.signed.Signer,
		e.signed.Time.Format(time.RFC3339), w, e.from)
}

// checkpointRun compares a history, event by event, with a set of checkpoints.
type checkpointRun struct {
	cs       *Checkpoints
	tree     *checkpoint.Tree
	next     int // index of the next checkpoint to reach
	diverged bool
	lastSeq  uint64
}

func newCheckpointRun(cs *Checkpoints) *checkpointRun {
	return &checkpointRun{cs: cs, tree: checkpoint.NewTree()}
}

// add takes the event at position pos and reports the first place the history departs from the
// checkpoints: at the event itself when the checkpoint stream holds that position's leaf, else at
// the first checkpoint whose root differs, naming the positions it covers.
func (r *checkpointRun) add(pos int, rec events.Record, find func(Finding)) {
	h := checkpoint.LeafHash(rec)
	r.lastSeq = rec.Seq
	if !r.diverged && pos <= len(r.cs.leaves) && !bytes.Equal(r.cs.leaves[pos-1], h) {
		r.diverged = true
		e := r.cs.entries[r.covering(uint64(pos))]
		find(Finding{Kind: FindingCheckpointDiverged, Position: pos, Seq: rec.Seq, RequestID: requestOf(rec),
			Detail: fmt.Sprintf("the event stored at position %d is not the one %s holds there: the history was changed from here on", pos, e.describe())})
	}
	r.tree.Append(h)
	for r.next < len(r.cs.entries) && r.cs.entries[r.next].signed.Size == uint64(pos) {
		e := r.cs.entries[r.next]
		if !r.diverged && !bytes.Equal(r.tree.Root(), e.signed.Root) {
			r.diverged = true
			from := uint64(1)
			if r.next > 0 {
				from = r.cs.entries[r.next-1].signed.Size + 1
			}
			find(Finding{Kind: FindingCheckpointDiverged, Position: int(from), Seq: rec.Seq, RequestID: requestOf(rec),
				Detail: fmt.Sprintf("the first %d events do not hash to the root of %s: an event between positions %d and %d was changed, removed, inserted or moved", pos, e.describe(), from, pos)})
		}
		r.next++
	}
}

// covering is the index of the first checkpoint that covers position pos (there is one, as the
// leaves known come from checkpoints).
func (r *checkpointRun) covering(pos uint64) int {
	i, _ := slices.BinarySearchFunc(r.cs.entries, pos, func(e *checkpointEntry, p uint64) int { return cmp.Compare(e.signed.Size, p) })
	return min(i, len(r.cs.entries)-1)
}

// finish reports a cut tail (checkpoints beyond the history's end, unless it ends early on purpose)
// and, when created is the live stream's creation time, checkpoints of a stream created at another
// time.
func (r *checkpointRun) finish(events int, created time.Time, endsEarly bool, find func(Finding)) {
	if len(r.cs.entries) > 0 && !endsEarly {
		latest := r.cs.entries[len(r.cs.entries)-1]
		if latest.signed.Size > uint64(events) {
			first := r.covering(uint64(events) + 1)
			find(Finding{Kind: FindingCheckpointTail, Position: events + 1, Seq: r.lastSeq,
				Detail: fmt.Sprintf("the history ends at position %d (stream sequence %d), but %s covers %d events: positions %d to %d are missing (the first checkpoint to cover them is the one of size %d, signed at %s, its last event at stream sequence %d)",
					events, r.lastSeq, latest.describe(), latest.signed.Size, events+1, latest.signed.Size,
					r.cs.entries[first].signed.Size, r.cs.entries[first].signed.Time.Format(time.RFC3339), r.cs.entries[first].signed.LastSeq)})
		}
	}
	if created.IsZero() {
		return
	}
	for _, e := range r.cs.entries {
		if !e.signed.StreamCreated.Equal(created) {
			find(Finding{Kind: FindingStreamRecreated, Position: int(e.signed.Size),
				Detail: fmt.Sprintf("%s was signed for a stream created at %s; the stream now was created at %s: it was deleted and created again",
					e.describe(), e.signed.StreamCreated.Format(time.RFC3339Nano), created.UTC().Format(time.RFC3339Nano))})
			return
		}
	}
}

// requestOf is the request a stored event's subject names, or "".
func requestOf(rec events.Record) string {
	id, _, err := events.ParseNATSSubject(rec.Subject)
	if err != nil {
		return ""
	}
	return id
}
