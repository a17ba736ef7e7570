// Package query is Grantline's read side: what the projections store and the query API shows — request
// views, grants past and present, who held an entitlement at an instant — and the rules deciding who may
// read what. The stream is the record; everything here can be rebuilt from it.
//
// Like the aggregate, this package imports only the standard library and pkg/events: the NATS reading
// lives in natsjs, the tables in postgres, the HTTP edge in httpapi.
package query

import (
	"encoding/json/jsontext"
	"encoding/json/v2"
	"errors"
	"fmt"
	"time"

	"github.com/grantline/grantline/pkg/events"
)

// ErrStale means the stream replica that answered a read has not caught up with a sequence the caller
// knows of; a retry will find it.
var ErrStale = errors.New("stream replica behind")

// ProblemInvariant is the kind of a Problem where the events verify but do not form a legal lifecycle:
// the aggregate refused one (a grant without an allowing decision, a self-approval, …). The other kinds
// are those of events.ViolationKind.
const ProblemInvariant = "invariant"

// Problem is the first thing wrong with a request's stored history: where (position among the request's
// events, counted from 1, and stream sequence), which event, what kind and why.
type Problem struct {
	Kind     string `json:"kind"`
	Position int    `json:"position"`
	Seq      uint64 `json:"seq"`
	EventID  string `json:"event_id,omitempty"`
	Detail   string `json:"detail"`
}

// History is one request's stored events, verified and folded as far as they can be: Request is the
// aggregate folded from the verified prefix (everything before Problem), Count the prefix's events,
// LastSeq the stream sequence of its last event (0 if none), Through that of the last stored event added
// (the prefix, the problem and anything after it), and Problem is nil for a clean history.
//
// Records and Events are the verified events added since the history was started, restored or last
// settled (Settle), with their position and storage time but not their bodies: a whole history for
// Verify, the new events for the projection, which keeps between batches only what the next event
// needs (State: the chain's head, the counts, the aggregate's snapshot), so its memory does not grow
// with the events a request has had.
type History struct {
	ID      string
	Records []events.Record
	Events  []events.Event
	Request *events.Request
	Count   int
	LastSeq uint64
	Through uint64
	Problem *Problem
	// SubmittedAt is when the request's first event was stored by its emitter; RevokedAt, when its last
	// revoked event was (zero for none).
	SubmittedAt time.Time
	RevokedAt   time.Time
	// Reviews counts the review and post-review events of the verified prefix; settledReviews those
	// before Events.
	Reviews        int
	settledReviews int
	// head is the chain hash of the prefix's last event, the prevhash the next one must carry.
	head     string
	verifier *events.Verifier
	chain    *events.Chain
}

// NewHistory starts the history of request id, to be verified against the trust file's verifier one
// stored event at a time with Add.
func NewHistory(v *events.Verifier, id string) *History {
	return &History{ID: id, Request: events.NewRequest(id), verifier: v, chain: v.NewChain()}
}

// Add verifies rec, the request's next stored event in stream order (signature, key validity, the
// emitting service's right to the type, the chain), and folds it through the aggregate. It returns the
// history's problem: the one rec caused, or the earlier one that already ended the verified prefix (rec
// is then not looked at), or nil.
func (h *History) Add(rec events.Record) *Problem {
	if h.Problem != nil {
		h.Through = max(h.Through, rec.Seq)
		return h.Problem
	}
	return h.AddChecked(h.verifier.Check(rec, h.Count+1))
}

// AddChecked is Add for an event already checked on its own by Verifier.Check (at any position: the
// history counts its own), so that the costly part can run for many events at once.
func (h *History) AddChecked(ck events.Checked) *Problem {
	rec := ck.Record
	h.Through = max(h.Through, rec.Seq)
	if h.Problem != nil {
		return h.Problem
	}
	position := h.Count + 1
	ev, err := h.chain.Link(ck)
	if err != nil {
		h.Problem = problemOf(err, position, rec)
		return h.Problem
	}
	if err := h.Request.Apply(ev); err != nil {
		h.Problem = &Problem{Kind: ProblemInvariant, Position: position, Seq: rec.Seq, EventID: ev.ID, Detail: err.Error()}
		return h.Problem
	}
	if h.Count == 0 {
		h.SubmittedAt = ev.Time.UTC()
	}
	switch ev.Type {
	case events.TypeRevoked:
		h.RevokedAt = ev.Time.UTC()
	case events.TypeReviewed, events.TypePostReviewed:
		h.Reviews++
	}
	rec.Body, ev.Data = nil, nil
	h.Records = append(h.Records, rec)
	h.Events = append(h.Events, ev)
	h.Count, h.LastSeq, h.head = position, rec.Seq, ck.Hash
	return nil
}

// SettledReviews counts the review and post-review events before Events.
func (h *History) SettledReviews() int { return h.settledReviews }

// Settle forgets Records and Events once they have been written: what is left is what the next
// event needs.
func (h *History) Settle() {
	h.Records, h.Events, h.settledReviews = nil, nil, h.Reviews
}

// state is what State encodes.
type state struct {
	Head        string         `json:"head,omitempty"`
	Count       int            `json:"count"`
	LastSeq     uint64         `json:"last_seq"`
	SubmittedAt time.Time      `json:"submitted_at,omitzero"`
	RevokedAt   time.Time      `json:"revoked_at,omitzero"`
	Reviews     int            `json:"reviews,omitempty"`
	Request     jsontext.Value `json:"request"`
}

// State encodes what the next event needs of the verified prefix (Records and Events aside): Restore
// gives back a history that verifies and folds it as this one would. A problem is not part of it: the
// read side reads a faulty request back from the stream rather than restore it, and so the state is
// the same whichever events were delivered with the problem.
func (h *History) State() ([]byte, error) {
	req, err := h.Request.Snapshot()
	if err != nil {
		return nil, err
	}
	return json.Marshal(state{Head: h.head, Count: h.Count, LastSeq: h.LastSeq,
		SubmittedAt: h.SubmittedAt, RevokedAt: h.RevokedAt, Reviews: h.Reviews, Request: req})
}

// Restore returns the clean history of request id whose State was b, settled, to be continued with Add.
func Restore(v *events.Verifier, id string, b []byte) (*History, error) {
	var s state
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("restore history of %s: %w", id, err)
	}
	req, err := events.RestoreRequest(id, s.Request)
	if err != nil {
		return nil, err
	}
	h := &History{ID: id, Request: req, Count: s.Count, LastSeq: s.LastSeq, Through: s.LastSeq,
		SubmittedAt: s.SubmittedAt, RevokedAt: s.RevokedAt, Reviews: s.Reviews, settledReviews: s.Reviews, head: s.Head,
		verifier: v, chain: v.NewChain()}
	if s.Count > 0 {
		h.chain.Seed(id, s.Head)
	}
	return h, nil
}

// Verify checks recs, all of request id's stored events in stream order, with Add. It never fails as a
// whole: what is wrong is reported in History.Problem, and what came before it is still usable — the
// read side shows a tampered request as it was before the tampering.
func Verify(v *events.Verifier, id string, recs []events.Record) *History {
	h := NewHistory(v, id)
	for _, rec := range recs {
		h.Add(rec)
	}
	return h
}

func problemOf(err error, position int, rec events.Record) *Problem {
	var viol *events.Violation
	if errors.As(err, &viol) {
		return &Problem{Kind: string(viol.Kind), Position: position, Seq: rec.Seq, EventID: viol.EventID, Detail: viol.Detail}
	}
	return &Problem{Kind: string(events.ViolationMalformed), Position: position, Seq: rec.Seq, Detail: err.Error()}
}

// Exists reports whether the verified prefix holds the request's submission.
func (h *History) Exists() bool { return h.Request != nil && h.Request.Status() != events.StatusNone }

// Error describes the problem in one line.
func (p *Problem) Error() string {
	return fmt.Sprintf("event %d (stream seq %d): %s: %s", p.Position, p.Seq, p.Kind, p.Detail)
}
