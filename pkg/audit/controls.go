package audit

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/grantline/grantline/pkg/events"
)

// Controls counts a period's evidence for an auditor: what was requested and decided, approved with
// separation of duties, granted and revoked as observed on the targets, the emergencies and their
// post-reviews. It is fed every verified event of the history (so requests begun before the period
// are known) and counts those whose signed time lies in [Since, Until).
type Controls struct {
	Since, Until time.Time
	c            ControlCounts
	reviewers    map[string]bool
	revisions    map[string]int
	emergencies  map[string]bool // requests submitted in the period as emergencies
	// granted is what the end's counts need of each request granted before Until, as of its latest
	// event: facts, not the aggregate, which the verifier does not keep for a closed request.
	granted map[string]*grantEnd
}

type grantEnd struct{ revoked, postReviewOpen bool }

// ControlCounts are the period's figures, and what the whole history's verification found.
type ControlCounts struct {
	EventsInPeriod                                      int
	Requests, Emergencies, Withdrawn                    int
	Decisions                                           map[events.Outcome]int
	Revisions                                           []RevisionCount
	Reviews, Reviewers, Approved, Rejected              int
	Grants, GrantsObserved, GrantsWithoutExpiry         int
	LongestGrant                                        time.Duration
	FulfilmentFailures                                  int
	Revocations, RevocationsObservedGone, Expired       int
	RevocationsByReason                                 map[events.RevocationReason]int
	RevocationsOfEarlierGrants                          int
	RevocationFailures, RevocationsOverdue, ActiveAtEnd int
	PostReviewsRatified, PostReviewsFlagged             int
	PostReviewsOverdue, EmergencyReviewsOpen            int
	// SeparationOfDutiesFindings are lifecycle findings where a requester, subject or fulfiller acted
	// on their own request.
	SeparationOfDutiesFindings       int
	VerifiedEvents, VerifiedRequests int
	Findings                         int
	FindingsByKind                   map[FindingKind]int
	FirstSeq, LastSeq                uint64
	Checkpoints                      *CheckpointSummary
	// Uncheckpointed are the verified events no checkpoint covers yet.
	Uncheckpointed uint64
	// DriftByKind counts the drift the revoker's reconciler recorded in the period, by kind; Drift says
	// it in words.
	DriftByKind map[events.DriftKind]int
	Drift       string
}

// RevisionCount is how many decisions one policy revision made.
type RevisionCount struct {
	Revision string
	Count    int
}

// NewControls counts the period [since, until); a zero until means no end.
func NewControls(since, until time.Time) *Controls {
	return &Controls{Since: since, Until: until, reviewers: map[string]bool{}, revisions: map[string]int{},
		emergencies: map[string]bool{}, granted: map[string]*grantEnd{},
		c: ControlCounts{Decisions: map[events.Outcome]int{}, RevocationsByReason: map[events.RevocationReason]int{}, FindingsByKind: map[FindingKind]int{},
			DriftByKind: map[events.DriftKind]int{}}}
}

func (c *Controls) in(t time.Time) bool {
	return !t.Before(c.Since) && (c.Until.IsZero() || t.Before(c.Until))
}

// observe takes one verified event, after the request r it belongs to has applied it.
func (c *Controls) observe(ev events.Event, r *events.Request) {
	before := c.Until.IsZero() || ev.Time.Before(c.Until)
	if ev.Type == events.TypeGranted && before {
		c.granted[ev.Subject] = &grantEnd{}
	}
	if g := c.granted[ev.Subject]; g != nil {
		g.revoked, g.postReviewOpen = r.Revoked() != nil, r.PostReviewOpen()
	}
	if !before {
		return
	}
	if !c.in(ev.Time) {
		return
	}
	c.c.EventsInPeriod++
	switch p := ev.Payload.(type) {
	case events.Submitted:
		c.c.Requests++
		if p.Emergency {
			c.c.Emergencies++
			c.emergencies[ev.Subject] = true
		}
	case events.Withdrawn:
		c.c.Withdrawn++
	case events.PolicyDecided:
		c.c.Decisions[p.Outcome]++
		c.revisions[p.PolicyRevision]++
	case events.Reviewed:
		c.c.Reviews++
		c.reviewers[p.Reviewer.ID] = true
	case events.Approved:
		c.c.Approved++
	case events.Rejected:
		c.c.Rejected++
	case events.Granted:
		c.c.Grants++
		if p.Observed.Present {
			c.c.GrantsObserved++
		}
		if p.ExpiresAt.IsZero() {
			c.c.GrantsWithoutExpiry++
		}
		c.c.LongestGrant = max(c.c.LongestGrant, p.ExpiresAt.Sub(ev.Time))
	case events.FulfilmentFailed:
		c.c.FulfilmentFailures++
	case events.Expired:
		c.c.Expired++
	case events.Revoked:
		if p.Reason == events.RevokeExpired && r.RevocationDue() == "" {
			// Revoked at its expiry by the first attempt: the expiry's one event (an expired is recorded
			// only before a failed attempt's retries, and counted above).
			c.c.Expired++
		}
		c.c.Revocations++
		c.c.RevocationsByReason[p.Reason]++
		if !p.Observed.Present {
			c.c.RevocationsObservedGone++
		}
		if !c.in(r.GrantedAt()) {
			c.c.RevocationsOfEarlierGrants++
		}
	case events.RevocationFailed:
		c.c.RevocationFailures++
	case events.PostReviewed:
		if p.Outcome == events.PostReviewRatified {
			c.c.PostReviewsRatified++
		} else {
			c.c.PostReviewsFlagged++
		}
	case events.PostReviewOverdue:
		c.c.PostReviewsOverdue++
	case events.DriftDetected:
		c.c.DriftByKind[p.Kind]++
	}
}

// Counts finishes the figures with what the verification report says: the findings (self-approvals
// the lifecycle refused among them), overdue revocations, checkpoint coverage, and what was still
// active or unreviewed at the period's end.
func (c *Controls) Counts(rep *Report) ControlCounts {
	out := c.c
	out.Reviewers = len(c.reviewers)
	for rev, n := range c.revisions {
		out.Revisions = append(out.Revisions, RevisionCount{Revision: rev, Count: n})
	}
	slices.SortFunc(out.Revisions, func(a, b RevisionCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Revision, b.Revision))
	})
	for id, g := range c.granted {
		if !g.revoked {
			out.ActiveAtEnd++
		}
		if c.emergencies[id] && g.postReviewOpen {
			out.EmergencyReviewsOpen++
		}
	}
	out.VerifiedEvents, out.VerifiedRequests = rep.Events, rep.Requests
	out.FirstSeq, out.LastSeq = rep.FirstSeq, rep.LastSeq
	out.Findings = len(rep.Findings)
	out.FindingsByKind = map[FindingKind]int{}
	for _, f := range rep.Findings {
		out.FindingsByKind[f.Kind]++
		switch {
		case f.Kind == FindingInvariant && (strings.Contains(f.Detail, "requester") || strings.Contains(f.Detail, "subject") || strings.Contains(f.Detail, "fulfiller")):
			out.SeparationOfDutiesFindings++
		case f.Kind == FindingRevocationOverdue:
			out.RevocationsOverdue++
		}
	}
	out.Checkpoints = rep.Checkpoints
	if cp := rep.Checkpoints; cp != nil {
		out.Uncheckpointed = uint64(rep.Events) - min(cp.Covered, uint64(rep.Events))
	}
	out.DriftByKind = maps.Clone(c.c.DriftByKind)
	out.Drift = fmt.Sprintf("drift detection (the revoker's reconciler, comparing the targets with the evidence) recorded "+
		"%d access present after revocation (revoked again), %d live grants' access missing, %d unexplained findings",
		out.DriftByKind[events.DriftAfterRevocation], out.DriftByKind[events.DriftMissing], out.DriftByKind[events.DriftUnexplained])
	return out
}

// Period describes the period for people.
func (c *Controls) Period() string {
	until := "now"
	if !c.Until.IsZero() {
		until = c.Until.UTC().Format(time.RFC3339)
	}
	since := "the first event"
	if !c.Since.IsZero() {
		since = c.Since.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("%s to %s", since, until)
}
