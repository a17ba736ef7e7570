// Package query is Grantline's read side: what the projections store and the query API shows — request
// views, grants past and present, who held an entitlement at an instant — and the rules deciding who may
// read what. The stream is the record; everything here can be rebuilt from it.
//
// Like the aggregate, this package imports only the standard library and pkg/events: the NATS reading
// lives in natsjs, the tables in postgres, the HTTP edge in httpapi.
package query

import (
	"errors"
	"fmt"

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

// History is one request's stored events, verified and folded as far as they can be: Records, Events and
// Request cover the verified prefix (everything before Problem), LastSeq is the stream sequence of the
// prefix's last event (0 if none), Through that of the last stored event added (the prefix, the problem
// and anything after it), and Problem is nil for a clean history. Records keep their position and
// storage time but not their bodies, and Events their payloads but not their raw data: a History is
// what the read side needs, kept small enough to hold many.
type History struct {
	ID      string
	Records []events.Record
	Events  []events.Event
	Request *events.Request
	LastSeq uint64
	Through uint64
	Problem *Problem
	chain   *events.Chain
}

// NewHistory starts the history of request id, to be verified against the trust file's verifier one
// stored event at a time with Add.
func NewHistory(v *events.Verifier, id string) *History {
	return &History{ID: id, Request: events.NewRequest(id), chain: v.NewChain()}
}

// Add verifies rec, the request's next stored event in stream order (signature, key validity, the
// emitting service's right to the type, the chain), and folds it through the aggregate. It returns the
// history's problem: the one rec caused, or the earlier one that already ended the verified prefix (rec
// is then not looked at), or nil.
func (h *History) Add(rec events.Record) *Problem {
	h.Through = max(h.Through, rec.Seq)
	if h.Problem != nil {
		return h.Problem
	}
	position := len(h.Records) + 1
	ev, err := h.chain.Next(rec)
	if err != nil {
		h.Problem = problemOf(err, position, rec)
		return h.Problem
	}
	if err := h.Request.Apply(ev); err != nil {
		h.Problem = &Problem{Kind: ProblemInvariant, Position: position, Seq: rec.Seq, EventID: ev.ID, Detail: err.Error()}
		return h.Problem
	}
	rec.Body, ev.Data = nil, nil
	h.Records = append(h.Records, rec)
	h.Events = append(h.Events, ev)
	h.LastSeq = rec.Seq
	return nil
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
