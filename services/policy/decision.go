package policy

import (
	"bytes"
	"encoding/json/jsontext"
	"encoding/json/v2"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/grantline/grantline/pkg/events"
)

// Decision is the policy's answer, data.grantline.decision, once checked: see the comment at parseDecision
// for what an answer must satisfy to become a Decision.
type Decision struct {
	Outcome events.Outcome `json:"outcome"`
	// Reasons explain the outcome to the requester and the auditor; there is at least one.
	Reasons []string `json:"reasons"`
	// Stages are the approval stages of an approval_required decision; empty otherwise.
	Stages []events.Stage `json:"stages"`
	// StagesOrdered says stage i+1 opens only once stage i is satisfied.
	StagesOrdered bool `json:"stages_ordered"`
	// EffectiveDurationSeconds is how long access lasts once granted: 0 for deny, otherwise positive and
	// at most the requested duration.
	EffectiveDurationSeconds int64 `json:"effective_duration_seconds"`
	// ApprovalWindowSeconds is how long reviewers have for an approval_required decision; 0 otherwise.
	ApprovalWindowSeconds int64 `json:"approval_window_seconds"`
	// PostReview is the review an emergency grant owes afterwards; nil for other outcomes.
	PostReview *PostReview `json:"post_review,omitempty"`
}

// PostReview is who must review an emergency grant, and how soon after the decision.
type PostReview struct {
	Groups        []string `json:"groups"`
	WithinSeconds int64    `json:"within_seconds"`
}

// ErrBadDecision is wrapped by every error about a policy answer that does not have the expected shape.
// Such an answer is an error, never a decision.
var ErrBadDecision = errors.New("policy answer does not have the shape of a decision")

// requiredMembers must all be present in an answer; only post_review is optional.
var requiredMembers = []string{"outcome", "reasons", "stages", "stages_ordered", "effective_duration_seconds", "approval_window_seconds"}

// facts are what a decision is checked against: the requested duration, whether the request is an
// emergency, and whether the catalogue knows the entitlement.
type facts struct {
	requested int64
	emergency bool
	known     bool
}

func (in Input) facts() facts {
	return facts{requested: in.Request.DurationSeconds, emergency: in.Request.Emergency, known: in.Entitlement != nil}
}

// factsOf reads what a decision is checked against from a canonical input document.
func factsOf(doc []byte) (facts, error) {
	var view struct {
		Request struct {
			DurationSeconds int64 `json:"duration_seconds"`
			Emergency       bool  `json:"emergency"`
		} `json:"request"`
		Entitlement jsontext.Value `json:"entitlement"`
	}
	if err := json.Unmarshal(doc, &view); err != nil {
		return facts{}, fmt.Errorf("policy input: %w", err)
	}
	return facts{requested: view.Request.DurationSeconds, emergency: view.Request.Emergency, known: view.Entitlement.Kind() == '{'}, nil
}

// parseDecision strictly decodes the policy's answer and checks it against the input's facts: every
// member present and none unknown, a known outcome with reasons, stages exactly for approval_required, an approval window for it,
// a post-review exactly for emergency (and emergency only for an emergency request), an effective
// duration within the requested one, and nothing but deny for an entitlement the catalogue does not
// know. Any mismatch returns an error wrapping ErrBadDecision.
func parseDecision(answer []byte, in facts) (Decision, error) {
	var members map[string]jsontext.Value
	if err := json.Unmarshal(answer, &members); err != nil {
		return Decision{}, fmt.Errorf("%w: %v", ErrBadDecision, err)
	}
	for _, name := range requiredMembers {
		if _, ok := members[name]; !ok {
			return Decision{}, fmt.Errorf("%w: member %q is missing", ErrBadDecision, name)
		}
	}
	var d Decision
	if err := events.UnmarshalStrict(answer, &d); err != nil {
		return Decision{}, fmt.Errorf("%w: %v", ErrBadDecision, err)
	}
	if err := d.check(in); err != nil {
		return Decision{}, fmt.Errorf("%w: %v", ErrBadDecision, err)
	}
	return d, nil
}

func (d Decision) check(in facts) error {
	requested := in.requested
	if len(d.Reasons) == 0 || slices.Contains(d.Reasons, "") {
		return errors.New("a decision needs non-empty reasons")
	}
	if d.Outcome != events.OutcomeApprovalRequired && (len(d.Stages) > 0 || d.ApprovalWindowSeconds != 0) {
		return fmt.Errorf("a %s decision has no stages and no approval window", d.Outcome)
	}
	if d.Outcome != events.OutcomeEmergency && d.PostReview != nil {
		return fmt.Errorf("a %s decision has no post-review", d.Outcome)
	}
	if !in.known && d.Outcome != events.OutcomeDeny {
		return fmt.Errorf("%s for an entitlement the catalogue does not know", d.Outcome)
	}
	switch d.Outcome {
	case events.OutcomeDeny:
		if d.EffectiveDurationSeconds != 0 {
			return errors.New("a deny grants no duration")
		}
		return nil
	case events.OutcomeAutoApproved:
	case events.OutcomeApprovalRequired:
		if len(d.Stages) == 0 {
			return errors.New("approval_required needs at least one stage")
		}
		for i, st := range d.Stages {
			if st.Name == "" || len(st.Groups) == 0 || slices.Contains(st.Groups, "") || st.MinApprovals < 1 {
				return fmt.Errorf("stage %d needs a name, groups and at least one approval", i)
			}
		}
		if d.ApprovalWindowSeconds <= 0 {
			return errors.New("approval_required needs a positive approval window")
		}
	case events.OutcomeEmergency:
		if !in.emergency {
			return errors.New("emergency for a request that is not an emergency")
		}
		if d.PostReview == nil || len(d.PostReview.Groups) == 0 || slices.Contains(d.PostReview.Groups, "") || d.PostReview.WithinSeconds <= 0 {
			return errors.New("emergency needs a post-review with groups and a positive deadline")
		}
	default:
		return fmt.Errorf("unknown outcome %q", d.Outcome)
	}
	if d.EffectiveDurationSeconds <= 0 || d.EffectiveDurationSeconds > requested {
		return fmt.Errorf("effective duration %d must be positive and at most the %d seconds requested", d.EffectiveDurationSeconds, requested)
	}
	return nil
}

// Event is the policy_decided payload for d, decided at now by the policy at revision on the input with
// digest inputDigest: the approval deadline is now plus the approval window, the post-review deadline
// now plus its allowance.
func (d Decision) Event(now time.Time, revision, inputDigest string) events.PolicyDecided {
	pd := events.PolicyDecided{
		Outcome: d.Outcome, Reasons: slices.Clone(d.Reasons), StagesOrdered: d.StagesOrdered,
		EffectiveDurationSeconds: d.EffectiveDurationSeconds, PolicyRevision: revision, InputDigest: inputDigest,
	}
	if len(d.Stages) > 0 {
		pd.Stages = slices.Clone(d.Stages)
	}
	now = now.UTC()
	if d.Outcome == events.OutcomeApprovalRequired {
		deadline := now.Add(time.Duration(d.ApprovalWindowSeconds) * time.Second)
		pd.ApprovalDeadline = &deadline
	}
	if d.PostReview != nil {
		pd.PostReview = &events.PostReview{
			Groups:   slices.Clone(d.PostReview.Groups),
			Deadline: now.Add(time.Duration(d.PostReview.WithinSeconds) * time.Second),
		}
	}
	return pd
}

// maxReasonBytes bounds the error text carried in a fail-closed deny: an event is at most 64 KiB.
const maxReasonBytes = 2048

// FailedDecision is the deny recorded when the policy could not decide (the engine failed, timed out or
// answered out of shape, or its input could not be built) after every allowed attempt: policy fails
// closed, and the reason carries the error. revision and inputDigest are those of the failed attempt.
func FailedDecision(err error, revision, inputDigest string) events.PolicyDecided {
	return events.PolicyDecided{
		Outcome: events.OutcomeDeny, Reasons: []string{failureReason("policy could not decide, so the request is denied: ", err)},
		PolicyRevision: revision, InputDigest: inputDigest,
	}
}

// failureReason is prefix and the error, cut to maxReasonBytes on a rune boundary and valid UTF-8.
func failureReason(prefix string, err error) string {
	reason := prefix + err.Error()
	if len(reason) > maxReasonBytes {
		cut := maxReasonBytes
		for cut > 0 && !utf8.RuneStart(reason[cut]) {
			cut--
		}
		reason = reason[:cut] + "…"
	}
	return strings.ToValidUTF8(reason, "?")
}

// Checked is what a start check found out about the requester: their groups at the start, and where
// they came from.
type Checked struct {
	Groups []string
	From   events.GroupsFrom
}

// StartCheck is the start_checked payload of e, evaluated at the start of r with the requester's groups
// as c found them: allowed when policy would let r through now with the approvals it holds (see
// events.StartChecked). When approvals it never got are what stands in the way, a reason says so.
func (e Evaluation) StartCheck(r *events.Request, c Checked) events.StartChecked {
	d := e.Decision
	sc := events.StartChecked{Outcome: d.Outcome, Reasons: slices.Clone(d.Reasons), RequesterGroups: sortedGroups(c.Groups),
		GroupsFrom: c.From, PolicyRevision: e.Revision, InputDigest: e.InputDigest, Input: jsontext.Value(bytes.Clone(e.Input))}
	switch d.Outcome {
	case events.OutcomeAutoApproved, events.OutcomeEmergency:
		sc.Allowed = true
	case events.OutcomeApprovalRequired:
		sc.Stages = slices.Clone(d.Stages)
		sc.Allowed = r.ApprovalsSatisfy(d.Stages)
		if !sc.Allowed {
			sc.Reasons = append(sc.Reasons, "at its start the request needs approvals it does not have, so it is not granted")
		}
	}
	return sc
}

// FailedStartCheck is the check recorded when policy could not evaluate a request at its start after
// every allowed attempt: it fails closed, so the request is not granted, and the reason carries the
// error.
func FailedStartCheck(err error, revision, inputDigest string, c Checked) events.StartChecked {
	return events.StartChecked{Outcome: events.OutcomeDeny,
		Reasons:         []string{failureReason("policy could not check the request at its start, so it is not granted: ", err)},
		RequesterGroups: sortedGroups(c.Groups), GroupsFrom: c.From, PolicyRevision: revision, InputDigest: inputDigest}
}

// sortedGroups is a sorted copy of groups, never nil.
func sortedGroups(groups []string) []string {
	out := append([]string{}, groups...)
	slices.Sort(out)
	return out
}
