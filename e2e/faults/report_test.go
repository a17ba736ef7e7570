package faults

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// report is what the fault-injection run found: the load as the client saw it, the faults and their
// recovery, the verdicts of the checks, the revocation lag and the auditor's verdict.
type report struct {
	began      time.Time
	subs       []*submission
	faults     []*fault
	submits    submitChecks
	grants     grantChecks
	lifecycles lifecycleChecks
	target     targetChecks
	// lags groups the revocation lag of the acknowledged grants by what was going on at expiry.
	lags []lagGroup
	// expiredInPause counts the grants that expired while the revoker was frozen.
	expiredInPause int
	audit          string
}

type lagGroup struct {
	name string
	lags []time.Duration
}

// redeliveredAfter tells a grant the surviving replica made on its first delivery (well under a
// second) from one the killed replica held, redelivered after the consumer's ack wait (30 s).
const redeliveredAfter = 10 * time.Second

// within reports whether t falls in [from, to].
func within(t, from, to time.Time) bool { return !t.Before(from) && !t.After(to) }

// timeline is when the faults began and ended.
type timeline struct {
	natsKill, natsBack *fault
	// natsCaughtUp is when the restarted node was current again on the evidence stream.
	natsCaughtUp time.Time
	fulfilKill   *fault
	pause        *fault
	unpause      *fault
}

// settle is how long a revocation normally takes after expiry: the expiry timer fires on the next
// whole second (the scheduler drops fractions), then the revoker appends, revokes and appends again. An
// expiry this close before a fault began was still being handled when it hit.
const settle = 2 * time.Second

// measure works out, from the client's log and the stream's timestamps, how the system came back from
// each fault, and groups the revocation lag by what was going on at expiry.
func (r *report) measure(tl timeline) {
	// The node outage as clients saw it: the slowest acknowledgement of a submission sent while the
	// node was down, and how many needed a retry.
	var slowest time.Duration
	sent, retried := 0, 0
	for _, s := range r.subs {
		if !within(s.started, tl.natsKill.at, tl.natsBack.at) {
			continue
		}
		sent++
		if s.attempts > 1 {
			retried++
		}
		if !s.acked.IsZero() {
			slowest = max(slowest, s.acked.Sub(s.started))
		}
	}
	tl.natsKill.note("%d submissions sent while the node was down, %d of them retried; slowest acknowledged after %s",
		sent, retried, slowest.Round(time.Millisecond))
	grantedDown, revokedDown := 0, 0
	for _, g := range r.lifecycles.grants {
		if within(g.grantedAt, tl.natsKill.at, tl.natsBack.at) {
			grantedDown++
		}
		if within(g.revokedAt, tl.natsKill.at, tl.natsBack.at) {
			revokedDown++
		}
	}
	tl.natsKill.note("%d grants and %d revocations recorded while the node was down", grantedDown, revokedDown)

	// The replica's grants in flight: acknowledged before the kill, granted after it.
	acked := map[string]time.Time{}
	for _, s := range r.subs {
		if s.id != "" {
			acked[s.id] = s.acked
		}
	}
	inFlight, redelivered := 0, 0
	var lastGrant time.Duration
	for _, g := range r.lifecycles.grants {
		if acked[g.id].Before(tl.fulfilKill.at) && g.grantedAt.After(tl.fulfilKill.at) {
			inFlight++
			lastGrant = max(lastGrant, g.grantedAt.Sub(tl.fulfilKill.at))
			if g.grantedAt.Sub(tl.fulfilKill.at) > redeliveredAfter {
				redelivered++
			}
		}
	}
	tl.fulfilKill.note("%d requests acknowledged before the kill were granted after it, %d of them only after redelivery; the last %s after the kill",
		inFlight, redelivered, lastGrant.Round(time.Millisecond))

	// The revoker's backlog: grants that expired while it was frozen, revoked after it resumed.
	var backlog []time.Duration
	for _, g := range r.lifecycles.grants {
		if within(g.expiresAt, tl.pause.at, tl.unpause.at) {
			backlog = append(backlog, g.revokedAt.Sub(tl.unpause.at))
		}
	}
	slices.Sort(backlog)
	r.expiredInPause = len(backlog)
	drained := percentile(backlog, 100)
	tl.unpause.note("%d grants expired while the revoker was frozen (%s); half revoked %s after it resumed, all %s after",
		r.expiredInPause, tl.unpause.at.Sub(tl.pause.at).Round(time.Second), percentile(backlog, 50).Round(time.Millisecond),
		drained.Round(time.Millisecond))

	groups := []lagGroup{{name: "every expiry"}, {name: "revoker frozen or draining its backlog"},
		{name: "NATS node down or catching up"}, {name: "no fault in progress"}}
	for _, g := range r.lifecycles.grants {
		if g.revokedAt.IsZero() {
			continue
		}
		groups[0].lags = append(groups[0].lags, g.lag())
		switch {
		case within(g.expiresAt, tl.pause.at.Add(-settle), tl.unpause.at.Add(drained)):
			groups[1].lags = append(groups[1].lags, g.lag())
		case within(g.expiresAt, tl.natsKill.at.Add(-settle), tl.natsCaughtUp):
			groups[2].lags = append(groups[2].lags, g.lag())
		default:
			groups[3].lags = append(groups[3].lags, g.lag())
		}
	}
	r.lags = groups
}

// percentile is the nearest-rank p-th percentile of sorted ds.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	return ds[max(0, (p*len(ds)+99)/100-1)]
}

func (r report) String() string {
	var b strings.Builder
	acked, retried, gaveUp := 0, 0, 0
	for _, s := range r.subs {
		switch {
		case s.id != "":
			acked++
		case s.refusal != "":
			gaveUp++
		}
		if s.attempts > 1 {
			retried++
		}
	}
	fmt.Fprintf(&b, "driven %d, acknowledged %d, retried %d, never acknowledged %d (of which stored %d)\n",
		len(r.subs), acked, retried, gaveUp, len(r.submits.unacknowledged))
	b.WriteString("faults:\n")
	for _, f := range r.faults {
		fmt.Fprintf(&b, "  t+%5.1fs  %s\n", f.at.Sub(r.began).Seconds(), f.what)
		for _, n := range f.notes {
			fmt.Fprintf(&b, "             %s\n", n)
		}
	}
	fmt.Fprintf(&b, "lost %d, duplicated submits %d\n", len(r.submits.lost), len(r.submits.duplicated))
	fmt.Fprintf(&b, "grants applied twice: %d in the stream, %d at the target (%d samples of the target); granted without an allowing decision or approval %d\n",
		len(r.grants.twice), len(r.target.twice), r.target.samples, len(r.grants.groundless))
	fmt.Fprintf(&b, "acknowledged requests never granted %d, granted but not revoked at expiry %d; on the target: grants never seen %d, left after revocation %d, with no granted event %d\n",
		len(r.lifecycles.ungranted), len(r.lifecycles.unrevoked), len(r.target.unseen), len(r.target.left), len(r.target.unrecorded))
	b.WriteString("revocation lag (revoked stored − expires_at):\n")
	for _, g := range r.lags {
		ds := slices.Sorted(slices.Values(g.lags))
		fmt.Fprintf(&b, "  %-38s %4d  p50 %7s  p99 %7s  max %7s\n", g.name, len(ds),
			percentile(ds, 50).Round(time.Millisecond), percentile(ds, 99).Round(time.Millisecond), percentile(ds, 100).Round(time.Millisecond))
	}
	fmt.Fprintf(&b, "grantline audit verify: %s\n", r.audit)
	return b.String()
}

// verdicts fails t for every finding, naming the first few requests of each.
func (r report) verdicts(t *testing.T) {
	t.Helper()
	// The stream's verdicts are the other scenarios'; the target's are this one's own.
	failOn(t, append(endStates{submits: r.submits, grants: r.grants, lifecycles: r.lifecycles}.findings(), []findings{
		{"grants applied twice at the target", r.target.twice},
		{"grants the target never showed", r.target.unseen},
		{"grants left on the target after revocation", r.target.left},
		{"grants on the target that no granted event records", r.target.unrecorded},
	}...))
	for _, s := range r.subs {
		if s.id == "" {
			t.Errorf("submission #%d was never acknowledged: %s", s.n, s.refusal)
		}
	}
	if r.expiredInPause < minExpiriesInPause {
		t.Errorf("only %d grants expired while the revoker was frozen, want at least %d: the pause proved little", r.expiredInPause, minExpiriesInPause)
	}
	for _, d := range r.lags[0].lags {
		if d < 0 {
			t.Errorf("a grant was recorded revoked %s before its expiry", -d)
		}
	}
}
