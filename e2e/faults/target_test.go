package faults

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/grantline/grantline/pkg/events"
)

// targetWatch samples, while the run goes on, the grants in force on the target database: the members
// of the entitlement's role, which are the grants' own roles. A grant applied twice after its role was
// dropped shows as one role name under two OIDs.
type targetWatch struct {
	role string

	mu       sync.Mutex
	oids     map[string][]uint32 // grant role → the OIDs it was seen under
	samples  int
	failures int
	lastErr  error
}

func newTargetWatch(role string) *targetWatch {
	return &targetWatch{role: role, oids: map[string][]uint32{}}
}

// run samples every interval until ctx ends.
func (w *targetWatch) run(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		members, err := deployment.RoleMembers(ctx, w.role)
		w.mu.Lock()
		if err != nil && ctx.Err() == nil {
			w.failures++
			w.lastErr = err
		}
		if err == nil {
			w.samples++
			for name, oid := range members {
				if !slices.Contains(w.oids[name], oid) {
					w.oids[name] = append(w.oids[name], oid)
				}
			}
		}
		w.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// targetChecks are the verdicts on the target database.
type targetChecks struct {
	// twice are grant roles seen under more than one OID (created again after being dropped);
	// unseen grants the samples never showed; left grant roles still in force after their revocation;
	// unrecorded roles in force at some point that no granted event in the stream names.
	twice, unseen, left, unrecorded []string
	samples                         int
}

// checkTarget compares what the samples saw, and what the target shows now, with the grants of the
// stream (of every request in it) and of the acknowledged requests.
func checkTarget(ctx context.Context, w *targetWatch, grants []grant, ev evidence) (targetChecks, error) {
	now, err := deployment.RoleMembers(ctx, w.role)
	if err != nil {
		return targetChecks{}, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failures > 0 {
		return targetChecks{}, fmt.Errorf("%d of the target's samples failed; the last: %w", w.failures, w.lastErr)
	}
	c := targetChecks{samples: w.samples}
	recorded := map[string]bool{}
	for _, evs := range ev {
		for _, s := range of(evs, events.TypeGranted) {
			recorded[s.ev.Payload.(events.Granted).Observed.Detail["grant_role"]] = true
		}
	}
	for _, g := range grants {
		switch oids := w.oids[g.role]; {
		case len(oids) == 0:
			c.unseen = append(c.unseen, g.id+" ("+g.role+")")
		case len(oids) > 1:
			c.twice = append(c.twice, fmt.Sprintf("%s (%s under OIDs %v)", g.id, g.role, oids))
		}
		if _, ok := now[g.role]; ok && !g.revokedAt.IsZero() {
			c.left = append(c.left, g.id+" ("+g.role+")")
		}
	}
	for role := range w.oids {
		if !recorded[role] {
			c.unrecorded = append(c.unrecorded, role)
		}
	}
	slices.Sort(c.unrecorded)
	return c, nil
}
