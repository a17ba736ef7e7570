// Package projection turns the evidence stream into the read side's rows: each stored event, in stream
// order, is verified and folded onto its request's history (held in memory, or restored from the state
// the sink keeps with the request's row), and the requests' rows, with the new checkpoint, go to a Sink
// that writes them in one transaction.
//
// Why an ordered consumer starting at checkpoint+1 rather than a durable consumer with MaxAckPending 1:
// the checkpoint lives in the database, in the same transaction as the rows, so it is the one position
// of record. A durable consumer keeps a second position on the server (its ack floor) that drifts from
// the database whenever the database is restored or replaced, which is exactly what a rebuild into a
// fresh schema does; the approval inbox needs a reset step for that. An ordered consumer holds no server
// state, delivers in stream order without acks (no round trip per event, which is what makes a rebuild
// from sequence 1 fast), and never dead-letters: a projection must not skip an event silently, so an
// event that fails verification is recorded as a fault in the read side itself and the checkpoint moves
// past it. The cost is that every replica would read the stream, so one replica at a time projects (the
// postgres adapter's advisory lock), and the checkpoint is advanced with a compare-and-set so that two
// writers can never both apply the same events.
package projection

import (
	"fmt"
	"time"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/services/query"
)

// Rows are what one request (or one finding) contributes to the read side as of its verified history.
type Rows struct {
	// Finding is set instead of Request for the history of a finding (access no request explains).
	Finding *query.Finding
	Request RequestRow
	// Reviews are append-only: a recorded review never changes, so the sink inserts the ones it lacks.
	Reviews []ReviewRow
	Grant   *query.Grant
	// Audit indexes the history's events after the position the sink already had for the request.
	Audit []AuditRow
	// State is the history's query.History.State, kept with the request's (or finding's) row, so that
	// the projection can fold the request's next event without holding it in memory or reading its
	// events back from the stream.
	State []byte
}

// RequestRow is the request as one row: its view and the facts the queries filter on.
type RequestRow struct {
	View query.View
	// ReviewGroups decide on the request (stage and post-review groups): they may read it.
	ReviewGroups []string
	// OpenGroups are the groups of the stages that accept approvals now.
	OpenGroups []string
	// Reviewers already reviewed its stages; they cannot review again.
	Reviewers []string
}

// ReviewRow is one review: of an approval stage, or the post-review of an emergency grant (Stage -1).
type ReviewRow struct {
	RequestID      string
	Position       int
	Seq            uint64
	Kind           string
	Reviewer       string
	ReviewerGroups []string
	Stage          int
	StageName      string
	Decision       string
	Comment        string
	At             time.Time
}

// AuditRow indexes one stored event.
type AuditRow struct {
	Seq       uint64
	RequestID string
	EventID   string
	Type      events.Type
	Actor     string
	Source    string
	// Time is when the emitter says it happened; StoredAt, when the broker stored it.
	Time     time.Time
	StoredAt time.Time
}

// Fault is a stored event the projection could not apply: its request's history fails verification or
// the lifecycle at or before it (Problem says where first), or it is not a request event at all.
type Fault struct {
	Seq       uint64
	RequestID string
	Problem   query.Problem
}

// Review kinds.
const (
	KindReview     = "review"
	KindPostReview = "post_review"
)

// FromHistory returns the rows of a verified history whose request was submitted, or of a finding: the
// request's (or finding's) row and grant as of the whole history, its state, and the review and audit
// rows of the events not yet settled (History.Events). after is the stream sequence up to which the sink
// already holds the request's events: only later ones are indexed.
func FromHistory(h *query.History, after uint64) (Rows, error) {
	r := h.Request
	state, err := h.State()
	if err != nil {
		return Rows{}, fmt.Errorf("state of request %s: %w", h.ID, err)
	}
	rows := Rows{State: state}
	if f, ok := query.NewFinding(h); ok {
		rows.Finding = &f
	} else {
		rows.Request = RequestRow{
			View:         query.NewView(h),
			ReviewGroups: query.ReviewGroups(r),
			OpenGroups:   query.OpenGroups(r),
			Reviewers:    query.Reviewers(r),
		}
	}
	if g, ok := query.NewGrant(h); ok {
		rows.Grant = &g
	}
	stages := r.Decision().Stages
	for i, ev := range h.Events {
		rec := h.Records[i]
		if rec.Seq > after {
			rows.Audit = append(rows.Audit, AuditRow{Seq: rec.Seq, RequestID: h.ID, EventID: ev.ID, Type: ev.Type,
				Actor: ev.Actor, Source: ev.Source, Time: ev.Time.UTC(), StoredAt: rec.StoredAt.UTC()})
		}
		row := ReviewRow{RequestID: h.ID, Position: h.SettledReviews() + len(rows.Reviews) + 1, Seq: rec.Seq, At: ev.Time.UTC()}
		switch p := ev.Payload.(type) {
		case events.Reviewed:
			row.Kind, row.Reviewer, row.ReviewerGroups, row.Stage = KindReview, p.Reviewer.ID, p.Reviewer.Groups, p.Stage
			row.Decision, row.Comment = string(p.Decision), p.Comment
			if p.Stage >= 0 && p.Stage < len(stages) {
				row.StageName = stages[p.Stage].Name
			}
		case events.PostReviewed:
			row.Kind, row.Reviewer, row.ReviewerGroups, row.Stage = KindPostReview, p.Reviewer.ID, p.Reviewer.Groups, -1
			row.StageName, row.Decision, row.Comment = "post-review", string(p.Outcome), p.Reason
		default:
			continue
		}
		if row.ReviewerGroups == nil {
			row.ReviewerGroups = []string{}
		}
		rows.Reviews = append(rows.Reviews, row)
	}
	return rows, nil
}
