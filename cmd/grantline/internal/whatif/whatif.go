// Package whatif answers "what would this policy change have done?": it re-evaluates every recorded
// policy decision of a period with a candidate bundle, on each decision's recorded input bit for bit,
// and reports what would have changed.
//
// A decision's input is what policy_decided recorded (its SHA-256 must be the recorded input_digest).
// A decision recorded before inputs were kept has only the digest: its input is rebuilt as the policy
// service built it (the submitted request, its catalogue entry, the decision's time) and used only if
// it hashes to that digest; otherwise the decision is reported as not reproducible, with the reason.
// The bundle that made a decision must make it again exactly: Report.SameRevision and
// SameRevisionChanged say whether it did.
package whatif

import (
	"cmp"
	"context"
	"encoding/json/v2"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/audit"
	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/services/policy"
)

// Kind is how a decision would change.
type Kind string

// The kinds of change, from the most to the least consequential.
const (
	AllowedToDenied  Kind = "allowed → denied"
	DeniedToAllowed  Kind = "denied → allowed"
	AutoToApproval   Kind = "auto-approved → approval required"
	ApprovalToAuto   Kind = "approval required → auto-approved"
	OutcomeChanged   Kind = "outcome changed"
	StagesChanged    Kind = "stages changed"
	DurationChanged  Kind = "duration changed"
	DeadlinesChanged Kind = "deadlines changed"
	ReasonsChanged   Kind = "reasons changed"
)

// Classify compares a recorded decision with the candidate's decision on the same input, and returns
// the most consequential difference, or false when they are the same decision (the revision, digest
// and input aside).
func Classify(recorded, candidate events.PolicyDecided) (Kind, bool) {
	r, c := recorded.Outcome, candidate.Outcome
	switch {
	case r != events.OutcomeDeny && c == events.OutcomeDeny:
		return AllowedToDenied, true
	case r == events.OutcomeDeny && c != events.OutcomeDeny:
		return DeniedToAllowed, true
	case r == events.OutcomeAutoApproved && c == events.OutcomeApprovalRequired:
		return AutoToApproval, true
	case r == events.OutcomeApprovalRequired && c == events.OutcomeAutoApproved:
		return ApprovalToAuto, true
	case r != c:
		return OutcomeChanged, true
	case !slices.EqualFunc(recorded.Stages, candidate.Stages, sameStage) || recorded.StagesOrdered != candidate.StagesOrdered:
		return StagesChanged, true
	case recorded.EffectiveDurationSeconds != candidate.EffectiveDurationSeconds:
		return DurationChanged, true
	case !sameTime(recorded.ApprovalDeadline, candidate.ApprovalDeadline) || !samePostReview(recorded.PostReview, candidate.PostReview):
		return DeadlinesChanged, true
	case !slices.Equal(recorded.Reasons, candidate.Reasons):
		return ReasonsChanged, true
	}
	return "", false
}

func sameStage(a, b events.Stage) bool {
	return a.Name == b.Name && a.MinApprovals == b.MinApprovals && slices.Equal(a.Groups, b.Groups)
}

func sameTime(a, b *time.Time) bool {
	return (a == nil) == (b == nil) && (a == nil || a.Equal(*b))
}

func samePostReview(a, b *events.PostReview) bool {
	return (a == nil) == (b == nil) && (a == nil || (a.Deadline.Equal(b.Deadline) && slices.Equal(a.Groups, b.Groups)))
}

// Summary is a decision in a few words: the outcome, its stages and its duration.
func Summary(d events.PolicyDecided) string {
	s := string(d.Outcome)
	if len(d.Stages) > 0 {
		var st []string
		for _, x := range d.Stages {
			st = append(st, fmt.Sprintf("%s:%s×%d", x.Name, strings.Join(x.Groups, "|"), x.MinApprovals))
		}
		sep := ", "
		if d.StagesOrdered {
			sep = " → "
		}
		s += " [" + strings.Join(st, sep) + "]"
	}
	if d.EffectiveDurationSeconds > 0 {
		s += " " + (time.Duration(d.EffectiveDurationSeconds) * time.Second).String()
	}
	return s
}

// Change is one decision the candidate would make differently.
type Change struct {
	RequestID   string    `json:"request_id"`
	Seq         uint64    `json:"seq"`
	DecidedAt   time.Time `json:"decided_at"`
	Entitlement string    `json:"entitlement"`
	Requester   string    `json:"requester"`
	Kind        Kind      `json:"change"`
	Recorded    string    `json:"recorded"`
	Candidate   string    `json:"candidate"`
	// CandidateReasons are the candidate's reasons, which say why.
	CandidateReasons []string `json:"candidate_reasons"`
}

// Unreproducible is a decision whose input could not be had bit for bit.
type Unreproducible struct {
	RequestID string `json:"request_id"`
	Seq       uint64 `json:"seq"`
	Reason    string `json:"reason"`
}

// Report is what a what-if run found.
type Report struct {
	// Revision is the candidate bundle's.
	Revision string `json:"revision"`
	// Decisions is how many recorded decisions the period holds; Evaluated how many were decided again,
	// of which FromInput on their recorded input and Rebuilt on an input rebuilt to the recorded digest.
	Decisions int `json:"decisions"`
	Evaluated int `json:"evaluated"`
	FromInput int `json:"from_recorded_input"`
	Rebuilt   int `json:"rebuilt"`
	// SameRevision counts the decisions made by the candidate bundle itself; SameRevisionChanged those of
	// them it did not make again exactly, which should never happen.
	SameRevision        int              `json:"same_revision"`
	SameRevisionChanged int              `json:"same_revision_changed"`
	Changed             int              `json:"changed"`
	Counts              map[Kind]int     `json:"counts"`
	Changes             []Change         `json:"changes"`
	Unreproducible      []Unreproducible `json:"unreproducible"`
	// Failed are decisions the candidate could not make (an engine error or an answer of the wrong
	// shape): the policy service would deny them.
	Failed []Unreproducible `json:"failed"`
}

// Config is what a run reads and decides with.
type Config struct {
	JS    jetstream.JetStream
	Trust *events.Verifier
	// Engine is the candidate bundle.
	Engine *policy.Engine
	// Catalogue rebuilds the inputs of decisions that did not record theirs; nil leaves them
	// unreproducible.
	Catalogue *catalogue.Catalogue
	// Range of stream sequences; Since and Until (when not zero) narrow it to decisions stored in
	// [Since, Until).
	Range        audit.Range
	Since, Until time.Time
	// Workers decide in parallel; 0 means one per CPU.
	Workers int
	// Progress, if not nil, is called after each decision with its stream sequence.
	Progress func(seq uint64)
}

// job is one recorded decision on its way to being decided again.
type job struct {
	rec     events.Record
	ev      events.Event
	pd      events.PolicyDecided
	input   []byte
	rebuilt bool
	problem string
}

type result struct {
	job
	candidate *policy.Evaluation
	err       error
}

// Run re-evaluates every decision of the period with cfg.Engine and reports what would change.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	workers := cmp.Or(cfg.Workers, runtime.GOMAXPROCS(0))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan job, 4*workers)
	results := make(chan result, 4*workers)
	var readErr error
	go func() {
		defer close(jobs)
		readErr = read(ctx, cfg, jobs)
	}()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for j := range jobs {
				r := result{job: j}
				if j.problem == "" {
					ev, err := cfg.Engine.EvaluateRecorded(ctx, j.input)
					r.candidate, r.err = &ev, err
				}
				results <- r
			}
		})
	}
	go func() { wg.Wait(); close(results) }()
	rep := &Report{Revision: cfg.Engine.Revision(), Counts: map[Kind]int{}, Changes: []Change{}, Unreproducible: []Unreproducible{}, Failed: []Unreproducible{}}
	for r := range results {
		rep.add(r)
		if cfg.Progress != nil {
			cfg.Progress(r.rec.Seq)
		}
	}
	if readErr != nil {
		return nil, readErr
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	slices.SortFunc(rep.Changes, func(a, b Change) int { return cmp.Compare(a.Seq, b.Seq) })
	slices.SortFunc(rep.Unreproducible, func(a, b Unreproducible) int { return cmp.Compare(a.Seq, b.Seq) })
	slices.SortFunc(rep.Failed, func(a, b Unreproducible) int { return cmp.Compare(a.Seq, b.Seq) })
	return rep, nil
}

// add takes one decided-again decision into the report.
func (rep *Report) add(r result) {
	rep.Decisions++
	id := r.ev.Subject
	if r.problem != "" {
		rep.Unreproducible = append(rep.Unreproducible, Unreproducible{RequestID: id, Seq: r.rec.Seq, Reason: r.problem})
		return
	}
	rep.Evaluated++
	if r.rebuilt {
		rep.Rebuilt++
	} else {
		rep.FromInput++
	}
	same := r.pd.PolicyRevision == rep.Revision
	if same {
		rep.SameRevision++
	}
	if r.err != nil {
		rep.Failed = append(rep.Failed, Unreproducible{RequestID: id, Seq: r.rec.Seq, Reason: r.err.Error()})
		if same {
			rep.SameRevisionChanged++
		}
		return
	}
	var view struct {
		Now     time.Time `json:"now"`
		Request struct {
			Entitlement string `json:"entitlement"`
			Requester   struct {
				ID string `json:"id"`
			} `json:"requester"`
		} `json:"request"`
	}
	_ = json.Unmarshal(r.input, &view)
	candidate := r.candidate.Decision.Event(view.Now, r.candidate.Revision, r.candidate.InputDigest)
	kind, changed := Classify(r.pd, candidate)
	if !changed {
		return
	}
	if same {
		rep.SameRevisionChanged++
	}
	rep.Changed++
	rep.Counts[kind]++
	rep.Changes = append(rep.Changes, Change{RequestID: id, Seq: r.rec.Seq, DecidedAt: r.ev.Time, Entitlement: view.Request.Entitlement,
		Requester: view.Request.Requester.ID, Kind: kind, Recorded: Summary(r.pd), Candidate: Summary(candidate), CandidateReasons: candidate.Reasons})
}

// read sends every recorded decision of the period, verified, with its input or the reason it has none.
func read(ctx context.Context, cfg Config, out chan<- job) error {
	rng := cfg.Range
	rng.Subject = events.NATSSubject("*", events.TypePolicyDecided)
	var submitted jetstream.Stream
	if cfg.Catalogue != nil {
		var err error
		if submitted, err = cfg.JS.Stream(ctx, topology.EventsStream); err != nil {
			return err
		}
	}
	return audit.ReadStream(ctx, cfg.JS, rng, func(rec events.Record) error {
		if (!cfg.Since.IsZero() && rec.StoredAt.Before(cfg.Since)) || (!cfg.Until.IsZero() && !rec.StoredAt.Before(cfg.Until)) {
			return nil
		}
		j := job{rec: rec}
		ev, err := verifyOne(cfg.Trust, rec)
		switch {
		case err != nil:
			j.ev.Subject, _, _ = events.ParseNATSSubject(rec.Subject)
			j.problem = "the stored decision does not verify: " + err.Error()
		default:
			j.ev, j.pd = ev, ev.Payload.(events.PolicyDecided)
			j.input, j.rebuilt, j.problem = inputOf(ctx, cfg, submitted, ev, j.pd)
		}
		select {
		case out <- j:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
}

// verifyOne checks one stored event on its own: signature, key, emitter and source (its link to the
// request's previous event is the request's business, and what-if reads decisions only).
func verifyOne(trust *events.Verifier, rec events.Record) (events.Event, error) {
	var env struct {
		Subject  string `json:"subject"`
		PrevHash string `json:"prevhash"`
	}
	// The prevhash read here, unverified, only seeds the chain so that it checks everything else; the
	// signature check that follows covers the bytes it came from.
	_ = json.Unmarshal(rec.Body, &env)
	chain := trust.NewChain()
	chain.Seed(env.Subject, env.PrevHash)
	return chain.Next(rec)
}

// errNoInput explains why a decision without its input could not be rebuilt.
var errNoInput = errors.New("the decision recorded no input")

// inputOf returns the decision's input: the recorded one when its digest matches, or else one rebuilt
// from the submitted request, the catalogue and the decision's time when that matches the digest.
func inputOf(ctx context.Context, cfg Config, st jetstream.Stream, ev events.Event, pd events.PolicyDecided) ([]byte, bool, string) {
	if len(pd.Input) > 0 {
		if policy.Digest(pd.Input) != pd.InputDigest {
			return nil, false, fmt.Sprintf("the recorded input hashes to %s, not to the recorded %s", policy.Digest(pd.Input), pd.InputDigest)
		}
		return pd.Input, false, ""
	}
	if st == nil {
		return nil, false, errNoInput.Error() + " (give --catalogue to rebuild it)"
	}
	msg, err := st.GetLastMsgForSubject(ctx, events.NATSSubject(ev.Subject, events.TypeSubmitted))
	if err != nil {
		return nil, false, fmt.Sprintf("%v, and its submitted event could not be read: %v", errNoInput, err)
	}
	sev, err := verifyOne(cfg.Trust, events.Record{Seq: msg.Sequence, Subject: msg.Subject, Body: msg.Data,
		Signature: msg.Header.Get(events.SignatureHeader), StoredAt: msg.Time})
	if err != nil {
		return nil, false, fmt.Sprintf("%v, and its submitted event does not verify: %v", errNoInput, err)
	}
	sub := sev.Payload.(events.Submitted)
	var ent *catalogue.Entitlement
	if e, ok := cfg.Catalogue.Entitlement(sub.Entitlement); ok {
		ent = &e
	}
	in, digest, err := policy.NewInput(sub, ent, ev.Time, nil).Canonical()
	if err != nil {
		return nil, false, err.Error()
	}
	if digest != pd.InputDigest {
		return nil, false, fmt.Sprintf("%v, and the input rebuilt from the request, this catalogue and the decision's time hashes to %s, not %s "+
			"(the decision time, the catalogue of the moment or the review debt differ)", errNoInput, digest, pd.InputDigest)
	}
	return in, true, ""
}
