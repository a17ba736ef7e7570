package faults

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/audit"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/topology"
)

// stored is one event of the evidence stream, with its stream sequence and the time the broker stored
// it.
type stored struct {
	seq uint64
	at  time.Time
	ev  events.Event
}

// evidence is the whole evidence stream, read by the operator, by request ID in stream order.
type evidence map[string][]stored

// readEvidence reads the evidence stream up to its last sequence now. The events are decoded strictly
// but not verified here: `grantline audit verify` does that, as an auditor would.
func readEvidence(ctx context.Context) (evidence, error) {
	ev := evidence{}
	err := audit.ReadStream(ctx, deployment.JetStream(), audit.Range{}, func(r events.Record) error {
		e, err := events.Decode(r.Body)
		if err != nil {
			return fmt.Errorf("stream sequence %d: %w", r.Seq, err)
		}
		ev[e.Subject] = append(ev[e.Subject], stored{seq: r.Seq, at: r.StoredAt, ev: e})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the evidence stream: %w", err)
	}
	return ev, nil
}

// requestsWith are the requests that have at least one event of type t in the evidence stream now,
// from the stream's subject index: cheap enough to poll.
func requestsWith(ctx context.Context, t events.Type) (map[string]bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := deployment.JetStream().Stream(ctx, topology.EventsStream)
	if err != nil {
		return nil, err
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(events.NATSSubject("*", t)))
	if err != nil {
		return nil, err
	}
	ids := map[string]bool{}
	for subject := range info.State.Subjects {
		id, _, err := events.ParseNATSSubject(subject)
		if err != nil {
			return nil, err
		}
		ids[id] = true
	}
	return ids, nil
}

// awaitEvent waits until each of ids has an event of type t, and fails the test with those that have
// none when timeout passes first.
func awaitEvent(t *testing.T, ids []string, typ events.Type, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		have, err := requestsWith(t.Context(), typ)
		var missing []string
		for _, id := range ids {
			if !have[id] {
				missing = append(missing, id)
			}
		}
		if err == nil && len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s, %d of %d requests have no %s event (last error %v): %v", timeout, len(missing), len(ids),
				typ.Name(), err, missing[:min(len(missing), 20)])
		}
		<-time.After(time.Second)
	}
}

// of are the events of type t among evs.
func of(evs []stored, t events.Type) []stored {
	var out []stored
	for _, s := range evs {
		if s.ev.Type == t {
			out = append(out, s)
		}
	}
	return out
}

// lifecycle names a request's events in stream order, for a finding.
func lifecycle(evs []stored) string {
	var names []string
	for _, s := range evs {
		names = append(names, s.ev.Type.Name())
	}
	return "[" + strings.Join(names, " ") + "]"
}

// submitChecks are the verdicts on what the client submitted: each acknowledged submission must be
// in the stream exactly once.
type submitChecks struct {
	// lost were acknowledged but have no submitted event; duplicated have more than one, or share their
	// idempotency key with another request.
	lost, duplicated []string
	// unacknowledged were stored although the client never saw an acknowledgement (a retry that gave
	// up, or an answer lost with a node): not a fault of the system, but worth counting.
	unacknowledged []string
}

// checkSubmissions compares the client's submissions with the stream. Intake records a submission's
// idempotency key as the causation ("http:<key>") of its submitted event, which is how a submission
// stored under two request IDs would show.
func checkSubmissions(subs []*submission, ev evidence) submitChecks {
	var c submitChecks
	byKey := map[string][]string{}
	for id, evs := range ev {
		for _, s := range of(evs, events.TypeSubmitted) {
			if key, ok := strings.CutPrefix(s.ev.CausationID, "http:"); ok {
				byKey[key] = append(byKey[key], id)
			}
		}
	}
	for _, s := range subs {
		ids := byKey[s.key]
		switch {
		case s.id == "" && len(ids) > 0:
			c.unacknowledged = append(c.unacknowledged, fmt.Sprintf("#%d stored as %v", s.n, ids))
		case s.id == "":
		case len(of(ev[s.id], events.TypeSubmitted)) == 0:
			c.lost = append(c.lost, fmt.Sprintf("#%d %s", s.n, s.id))
		case len(ids) != 1 || len(of(ev[s.id], events.TypeSubmitted)) != 1:
			c.duplicated = append(c.duplicated, fmt.Sprintf("#%d %s: key stored as %v, %d submitted events", s.n, s.id, ids,
				len(of(ev[s.id], events.TypeSubmitted))))
		}
	}
	return c
}

// grantChecks are the verdicts on the grants the stream records, for every request in it.
type grantChecks struct {
	// twice have more than one granted event; groundless a granted event without an allowing decision
	// before it (and, where the decision required approval, an approval).
	twice, groundless []string
}

func checkGrants(ev evidence) grantChecks {
	var c grantChecks
	for id, evs := range ev {
		granted := of(evs, events.TypeGranted)
		if len(granted) > 1 {
			c.twice = append(c.twice, id+" "+lifecycle(evs))
		}
		var decision *events.PolicyDecided
		approved := false
		for _, s := range evs {
			switch p := s.ev.Payload.(type) {
			case events.PolicyDecided:
				decision = &p
			case events.Approved:
				approved = true
			case events.Granted:
				if !allows(decision, approved) {
					c.groundless = append(c.groundless, id+" "+lifecycle(evs))
				}
			}
		}
	}
	slices.Sort(c.twice)
	slices.Sort(c.groundless)
	return c
}

// allows reports whether a request with decision (nil if none yet) and, if approved, an approval may
// be granted.
func allows(decision *events.PolicyDecided, approved bool) bool {
	if decision == nil {
		return false
	}
	switch decision.Outcome {
	case events.OutcomeAutoApproved, events.OutcomeEmergency:
		return true
	case events.OutcomeApprovalRequired:
		return approved
	}
	return false
}

// grant is one acknowledged request's grant as the stream records it, and how it ended.
type grant struct {
	id        string
	role      string // the grant's own role on the target
	grantedAt time.Time
	expiresAt time.Time
	// revokedAt is when the broker stored the revoked event (zero if none); revoked the event.
	revokedAt time.Time
	revoked   events.Revoked
}

// lag is how long after its expiry the grant's access was removed and recorded.
func (g grant) lag() time.Duration { return g.revokedAt.Sub(g.expiresAt) }

// lifecycleChecks are the verdicts on the acknowledged requests' lifecycles.
type lifecycleChecks struct {
	grants []grant
	// ungranted never got their grant; unrevoked were granted but not revoked at expiry, or revoked
	// with the access still observed on the target.
	ungranted, unrevoked []string
}

// checkLifecycles follows each acknowledged request to its end: auto-approved, granted once, and revoked
// at expiry (reason expired) with the access observed gone; expired at most once before it, recorded
// when the first attempt failed.
func checkLifecycles(subs []*submission, ev evidence) lifecycleChecks {
	var c lifecycleChecks
	for _, s := range subs {
		if s.id == "" {
			continue
		}
		evs := ev[s.id]
		granted := of(evs, events.TypeGranted)
		if len(granted) == 0 {
			c.ungranted = append(c.ungranted, s.id+" "+lifecycle(evs))
			continue
		}
		gp := granted[0].ev.Payload.(events.Granted)
		g := grant{id: s.id, role: gp.Observed.Detail["grant_role"], grantedAt: granted[0].at, expiresAt: gp.ExpiresAt}
		revoked := of(evs, events.TypeRevoked)
		if len(revoked) > 0 {
			g.revokedAt, g.revoked = revoked[0].at, revoked[0].ev.Payload.(events.Revoked)
		}
		if len(revoked) != 1 || len(of(evs, events.TypeExpired)) > 1 || g.revoked.Reason != events.RevokeExpired || g.revoked.Observed.Present {
			c.unrevoked = append(c.unrevoked, s.id+" "+lifecycle(evs))
		}
		c.grants = append(c.grants, g)
	}
	return c
}
