// Package audit is the auditor's toolkit: it verifies a history of stored events (live from the stream
// or from an export on disk) against a trust file and the lifecycle rules, replays one request as a
// timeline, and exports evidence with a manifest of hashes.
package audit

import (
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/grantline/grantline/pkg/events"
)

// FindingKind classifies a problem in a history.
type FindingKind string

// Finding kinds beyond the per-event verification kinds of events.ViolationKind.
const (
	// FindingGap: stream sequences are missing between two stored events (deleted or withheld).
	FindingGap FindingKind = "sequence_gap"
	// FindingInvariant: a request's events do not form a legal lifecycle (the aggregate refused one),
	// such as a grant without an allowing decision, or a self-approval.
	FindingInvariant FindingKind = "invariant"
	// FindingRevocationOverdue: a grant expired more than the SLO ago with neither a revocation nor a
	// recorded failed attempt.
	FindingRevocationOverdue FindingKind = "revocation_overdue"
	// FindingFulfilmentOverdue: a request was allowed (approved, or auto-approved) more than the SLO ago
	// and is neither granted nor failed, nor waiting on a manual task: work nobody will see finish.
	FindingFulfilmentOverdue FindingKind = "fulfilment_overdue"
)

// Finding is one problem, with where it was found: the position in the history (counted from 1) and
// the stream sequence. Findings about a request as a whole point at its last event.
type Finding struct {
	Kind      FindingKind `json:"kind"`
	Position  int         `json:"position"`
	Seq       uint64      `json:"seq"`
	RequestID string      `json:"request_id,omitempty"`
	EventID   string      `json:"event_id,omitempty"`
	Detail    string      `json:"detail"`
}

// Drift is one drift_detected event of a history that verified: what the revoker's reconciler found
// on a target against the evidence, and what it did.
type Drift struct {
	Position int       `json:"position"`
	Seq      uint64    `json:"seq"`
	Time     time.Time `json:"time"`
	// RequestID is the request the drift concerns; FindingID instead for access no request explains.
	RequestID string             `json:"request_id,omitempty"`
	FindingID string             `json:"finding_id,omitempty"`
	Kind      events.DriftKind   `json:"kind"`
	Action    events.DriftAction `json:"action"`
	Connector string             `json:"connector"`
	TargetRef string             `json:"target_ref"`
	Present   bool               `json:"present"`
}

// Report is the outcome of a verification run.
type Report struct {
	Events int `json:"events"`
	// Requests counts the requests; findings of unexplained access (events.FindingID) are not requests.
	Requests int       `json:"requests"`
	FirstSeq uint64    `json:"first_seq"`
	LastSeq  uint64    `json:"last_seq"`
	Findings []Finding `json:"findings"`
	// Drift is the drift the history records between the targets and the evidence. It says what the
	// targets showed, not that the history is wrong, so it leaves the report clean.
	Drift []Drift `json:"drift,omitempty"`
	// Checkpoints summarises the checkpoints the history was checked against, if any.
	Checkpoints *CheckpointSummary `json:"checkpoints,omitempty"`
}

// CheckpointSummary is how much of a history signed checkpoints cover.
type CheckpointSummary struct {
	// Count is the number of distinct checkpoints.
	Count int `json:"count"`
	// Covered is the size of the latest one: the events it vouches for.
	Covered uint64 `json:"covered"`
	// Latest is when the latest was signed; Witnesses who cosigned it.
	Latest    time.Time `json:"latest,omitzero"`
	Witnesses []string  `json:"witnesses,omitempty"`
}

// Clean reports whether nothing was found.
func (r *Report) Clean() bool { return len(r.Findings) == 0 }

// Options tune a verification.
type Options struct {
	// RevocationSLO is how long after expiry a revocation (or a recorded failed attempt) may take.
	RevocationSLO time.Duration
	// FulfilmentSLO is how long after a request is allowed (or its requested start) a grant, or a
	// recorded failure, may take. It must exceed fulfilment's retry time (GRANTLINE_FULFILMENT_RETRY_FOR).
	FulfilmentSLO time.Duration
	// Now is the instant overdue work is judged at (for an export: when it was taken).
	Now time.Time
	// ExpectFirstSeq is the sequence the history must start at (1 for a whole stream); 0 skips the check.
	ExpectFirstSeq uint64
	// Checkpoints, if not nil, are signed checkpoints the history (from the stream's first event) must
	// agree with: every event at the position they signed, nothing missing at the end.
	Checkpoints *Checkpoints
	// StreamCreated is when the live stream was created (zero for an export): a checkpoint of a stream
	// created at another time shows it was recreated.
	StreamCreated time.Time
	// EndsEarly says the history deliberately stops before the stream's end (an export up to a time):
	// checkpoints beyond it are not a cut tail.
	EndsEarly bool
	// Controls, if not nil, is fed every event that verifies, for an evidence pack's report.
	Controls *Controls
}

// DefaultFulfilmentSLO is Options.FulfilmentSLO when zero: fulfilment's default retry time (15 min)
// and then some.
const DefaultFulfilmentSLO = 30 * time.Minute

// Verifier checks a history one stored event at a time, in stream order, and keeps going after a
// problem so one run reports every finding.
type Verifier struct {
	opts     Options
	trust    *events.Verifier
	chain    *events.Chain
	report   Report
	requests map[string]*requestState
	order    []string
	// others are the locks and campaigns, folded apart from the requests: their events obey their own
	// aggregates' rules. campaigns lists the campaigns in the order they opened, for the export.
	others    map[string]*otherState
	campaigns []*events.Campaign
	cps       *checkpointRun
	// deflate and packed compress the snapshots of closed requests, reused from one to the next.
	deflate *flate.Writer
	packed  bytes.Buffer
}

type requestState struct {
	// lastEventID is the ID of the request's latest event, which findings about the whole request name;
	// it and allowedAt are all that is kept of its events, so memory grows with the requests, not the events.
	lastEventID string
	// allowedAt is when the latest decision or approval was recorded: when fulfilment became due if
	// it allows it.
	allowedAt time.Time
	// req is the folded aggregate while the request is open. Once it is closed (a terminal status),
	// only its snapshot is kept: a few events may still legally follow (a post-review, drift after the
	// revocation), rarely, so the aggregate is restored for those rather than held for every request
	// until the end, which made the run's memory grow by kilobytes per request.
	req    *events.Request
	snap   []byte
	status events.Status
	broken bool
}

// NewVerifier starts a run against the trust file's verifier.
func NewVerifier(trust *events.Verifier, opts Options) *Verifier {
	if opts.RevocationSLO == 0 {
		opts.RevocationSLO = time.Minute
	}
	if opts.FulfilmentSLO == 0 {
		opts.FulfilmentSLO = DefaultFulfilmentSLO
	}
	deflate, _ := flate.NewWriter(nil, flate.BestSpeed) // BestSpeed is a valid level: no error
	v := &Verifier{opts: opts, trust: trust, chain: trust.NewChain(), requests: map[string]*requestState{}, deflate: deflate}
	if opts.Checkpoints != nil {
		v.cps = newCheckpointRun(opts.Checkpoints)
	}
	return v
}

// Add verifies the next stored event.
func (v *Verifier) Add(rec events.Record) { v.fold(v.trust.Check(rec, v.report.Events+1)) }

// fold judges the next stored event, already checked on its own at its position, against everything
// before it: the stream's sequence, the request's chain and lifecycle, and the checkpoints.
func (v *Verifier) fold(ck events.Checked) {
	rec := ck.Record
	v.report.Events++
	pos := v.report.Events
	switch {
	case v.report.LastSeq == 0 && v.opts.ExpectFirstSeq != 0 && rec.Seq != v.opts.ExpectFirstSeq:
		v.find(Finding{Kind: FindingGap, Position: pos, Seq: rec.Seq,
			Detail: fmt.Sprintf("history starts at sequence %d, want %d", rec.Seq, v.opts.ExpectFirstSeq)})
	case v.report.LastSeq != 0 && rec.Seq > v.report.LastSeq+1:
		v.find(Finding{Kind: FindingGap, Position: pos, Seq: rec.Seq,
			Detail: fmt.Sprintf("sequences %d to %d are missing", v.report.LastSeq+1, rec.Seq-1)})
	}
	if v.report.FirstSeq == 0 {
		v.report.FirstSeq = rec.Seq
	}
	v.report.LastSeq = max(v.report.LastSeq, rec.Seq)
	if v.cps != nil {
		v.cps.add(pos, rec, v.find)
	}

	ev, err := v.chain.Link(ck)
	var viol *events.Violation
	if errors.As(err, &viol) {
		v.find(Finding{Kind: FindingKind(viol.Kind), Position: pos, Seq: rec.Seq, RequestID: viol.RequestID, EventID: viol.EventID, Detail: viol.Detail})
		if st := v.requests[viol.RequestID]; st != nil {
			st.broken = true
		}
		// Continue the chain from the stored bytes, so the next event of this request is judged
		// against what is there rather than failing again for the same cause.
		if viol.RequestID != "" {
			v.chain.Seed(viol.RequestID, ck.Hash)
		}
		return
	}
	if !ev.Type.Request() {
		v.otherEvent(pos, rec.Seq, ev)
		return
	}
	st := v.state(ev.Subject)
	if st.broken {
		return
	}
	if err := v.open(st, ev.Subject); err != nil {
		st.broken = true
		v.find(Finding{Kind: FindingInvariant, Position: pos, Seq: rec.Seq, RequestID: ev.Subject, EventID: ev.ID, Detail: err.Error()})
		return
	}
	if err := st.req.Apply(ev); err != nil {
		st.broken = true
		v.find(Finding{Kind: FindingInvariant, Position: pos, Seq: rec.Seq, RequestID: ev.Subject, EventID: ev.ID, Detail: err.Error()})
		return
	}
	st.lastEventID = ev.ID
	if ev.Type == events.TypeApproved || ev.Type == events.TypePolicyDecided {
		st.allowedAt = ev.Time
	}
	if d, ok := ev.Payload.(events.DriftDetected); ok {
		entry := Drift{Position: pos, Seq: rec.Seq, Time: ev.Time, RequestID: ev.Subject, Kind: d.Kind, Action: d.Action,
			Connector: d.Connector, TargetRef: d.TargetRef, Present: d.Observed.Present}
		if st.req.Status() == events.StatusFinding {
			entry.RequestID, entry.FindingID = "", ev.Subject
		}
		v.report.Drift = append(v.report.Drift, entry)
	}
	if v.opts.Controls != nil {
		v.opts.Controls.observe(ev, st.req)
	}
	v.close(st)
}

// open makes st's aggregate ready for its next event, restoring it if close kept only its snapshot.
func (v *Verifier) open(st *requestState, id string) error {
	if st.req != nil {
		return nil
	}
	r, err := restore(id, st.snap)
	if err != nil {
		return err
	}
	st.req, st.snap = r, nil
	return nil
}

// restore inflates a closed request's snapshot and restores its aggregate.
func restore(id string, packed []byte) (*events.Request, error) {
	snap, err := io.ReadAll(flate.NewReader(bytes.NewReader(packed)))
	if err != nil {
		return nil, fmt.Errorf("restore request %s: %w", id, err)
	}
	return events.RestoreRequest(id, snap)
}

// close keeps only the snapshot of a request in a terminal status that Finish has nothing to judge
// in (no fulfilment or revocation still owed).
func (v *Verifier) close(st *requestState) {
	r := st.req
	st.status = r.Status()
	if !st.status.Terminal() || r.AllowsFulfilment() || r.StartCheckDue() || revocationOwed(r) {
		return
	}
	snap, err := r.Snapshot()
	if err != nil {
		return // kept whole: the aggregate is still right, only larger
	}
	// Compressed: the snapshot is JSON whose names and values repeat, about a third of its size
	// deflated, and restoring is rare.
	v.packed.Reset()
	v.deflate.Reset(&v.packed)
	if _, err := v.deflate.Write(snap); err != nil || v.deflate.Close() != nil {
		return
	}
	st.req, st.snap = nil, bytes.Clone(v.packed.Bytes())
}

// revocationOwed reports whether r holds a grant neither revoked nor recorded as failing to revoke.
func revocationOwed(r *events.Request) bool {
	return r.Grant() != nil && r.Status() != events.StatusRevoked && r.RevocationFailure() == nil
}

func (v *Verifier) state(id string) *requestState {
	st, ok := v.requests[id]
	if !ok {
		st = &requestState{req: events.NewRequest(id)}
		v.requests[id] = st
		v.order = append(v.order, id)
	}
	return st
}

// aggregate is what a lock and a campaign have in common for verification: their own rule table.
type aggregate interface {
	Apply(events.Event) error
}

type otherState struct {
	agg    aggregate
	broken bool
}

// otherEvent folds a lock's or a campaign's event into its aggregate, chosen by the ID's first event,
// and records an invariant finding when the aggregate refuses it; one once broken is judged no further,
// like a request.
func (v *Verifier) otherEvent(pos int, seq uint64, ev events.Event) {
	if v.others == nil {
		v.others = map[string]*otherState{}
	}
	st, ok := v.others[ev.Subject]
	if !ok {
		st = &otherState{agg: events.NewLock(ev.Subject)}
		if ev.Type.Campaign() {
			c := events.NewCampaign(ev.Subject)
			st.agg = c
			v.campaigns = append(v.campaigns, c)
		}
		v.others[ev.Subject] = st
	}
	if st.broken {
		return
	}
	if err := st.agg.Apply(ev); err != nil {
		st.broken = true
		v.find(Finding{Kind: FindingInvariant, Position: pos, Seq: seq, RequestID: ev.Subject, EventID: ev.ID, Detail: err.Error()})
	}
}

func (v *Verifier) find(f Finding) { v.report.Findings = append(v.report.Findings, f) }

// Finish runs the checks that need the whole history (overdue fulfilments and revocations) and returns
// the report.
func (v *Verifier) Finish() *Report {
	for _, st := range v.requests {
		if st.status != events.StatusFinding {
			v.report.Requests++
		}
	}
	if v.cps != nil {
		cs := v.cps.cs
		v.cps.finish(v.report.Events, v.opts.StreamCreated, v.opts.EndsEarly, v.find)
		v.report.Findings = slices.Concat(cs.findings, v.report.Findings)
		v.report.Checkpoints = &CheckpointSummary{}
		for _, e := range cs.entries {
			if v.opts.EndsEarly && e.signed.Size > uint64(v.report.Events) {
				break
			}
			v.report.Checkpoints.Count++
			v.report.Checkpoints.Covered, v.report.Checkpoints.Latest, v.report.Checkpoints.Witnesses = e.signed.Size, e.signed.Time, e.signed.Witnesses
		}
	}
	for _, id := range v.order {
		st := v.requests[id]
		if due, overdue := v.fulfilmentOverdue(st); overdue {
			v.find(Finding{Kind: FindingFulfilmentOverdue, Position: v.report.Events, RequestID: id, EventID: st.lastEventID,
				Detail: fmt.Sprintf("allowed at %s, neither granted nor failed within %s", due.Format(time.RFC3339), v.opts.FulfilmentSLO)})
		}
		r := st.req
		if st.broken || r == nil || !revocationOwed(r) {
			continue
		}
		if g := r.Grant(); v.opts.Now.After(g.ExpiresAt.Add(v.opts.RevocationSLO)) {
			v.find(Finding{Kind: FindingRevocationOverdue, Position: v.report.Events, RequestID: id, EventID: st.lastEventID,
				Detail: fmt.Sprintf("expired at %s, not revoked and no failed attempt recorded within %s", g.ExpiresAt.Format(time.RFC3339), v.opts.RevocationSLO)})
		}
	}
	return &v.report
}

// fulfilmentOverdue reports whether st is allowed but neither granted nor failed more than the SLO
// after it became due (the allowing event, or the requested start), and that instant. A request approved
// for a later start whose check at the start never came is overdue the same way. A request waiting on a
// manual task waits on people, who have the task's own due time.
func (v *Verifier) fulfilmentOverdue(st *requestState) (time.Time, bool) {
	r := st.req
	if st.broken || r == nil || !(r.AllowsFulfilment() || r.StartCheckDue()) || len(r.Tasks()) > 0 {
		return time.Time{}, false
	}
	due := st.allowedAt
	if start := r.Submitted().StartAt; start != nil && start.After(due) {
		due = *start
	}
	return due, v.opts.Now.After(due.Add(v.opts.FulfilmentSLO))
}

// Request returns the folded request id as verified so far, or nil.
func (v *Verifier) Request(id string) *events.Request {
	r, _ := v.request(id)
	return r
}

// request is Request, with why a closed request's snapshot did not restore.
func (v *Verifier) request(id string) (*events.Request, error) {
	switch st := v.requests[id]; {
	case st == nil:
		return nil, nil
	case st.req != nil:
		return st.req, nil
	default:
		return restore(id, st.snap)
	}
}
