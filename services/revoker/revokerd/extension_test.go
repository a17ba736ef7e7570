package revokerd_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/pkg/targettest"
)

// TestExtensionKeepsAccessWithoutGap (issue 16): a person extends an active analytics-read grant, and
// the extension is granted before the first grant expires. Sampled every 100 ms, the person logs in to
// the target and reads a table only analytics_read may read, at every moment from before the first
// grant's expiry until after the revoker has expired and revoked it: role-per-grant means revoking the
// first grant drops only its own grant role. When the extension ends too, nothing of either remains.
func TestExtensionKeepsAccessWithoutGap(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.Target.Exec(ctx, `CREATE TABLE extension_probe (n int); INSERT INTO extension_probe VALUES (1);
		GRANT SELECT ON extension_probe TO analytics_read`); err != nil {
		t.Fatal(err)
	}
	person := someone("engineers")
	first := e.Granted(t, targettest.Request{Requester: person, Entitlement: "analytics-read", Duration: 3 * time.Second})
	use := e.user(t, person.ID)

	samples := startSampling(t, 100*time.Millisecond, use)
	extension := e.Approved(t, targettest.Request{Requester: person, Entitlement: "analytics-read", Duration: 5 * time.Second, Extends: first})
	e.grant(t, extension, 5*time.Second)
	r := e.WaitFor(t, first, 30*time.Second, "the first grant's revocation at expiry", revoked)
	if r.Revoked().Observed.Present || e.GrantRoles(t, first) != 0 {
		t.Fatal("the first grant's role is still on the target after its revocation")
	}
	// A few samples after the revocation, to be sure access outlived it.
	revokedAt := time.Now()
	poll.Until(t, 10*time.Second, "samples after the first grant's revocation", func() bool { return samples.since(revokedAt) >= 3 })
	got := samples.stop()
	if len(got.failures) > 0 {
		t.Fatalf("%d of %d samples found no access across the first grant's expiry; first: %s", len(got.failures), got.n, got.failures[0])
	}
	if got.n < 20 {
		t.Fatalf("only %d samples across the first grant's expiry", got.n)
	}
	if l := e.Load(t, extension).Request; l.Status() != events.StatusGranted || l.Submitted().Extends.RequestID != first {
		t.Fatalf("the extension is %s, extending %+v", l.Status(), l.Submitted().Extends)
	}

	e.WaitFor(t, extension, 30*time.Second, "the extension's revocation at expiry", revoked)
	if n := e.GrantRoles(t, first, extension); n != 0 || e.Holds(t, person.ID, "analytics_read") {
		t.Fatalf("after the extension ended: %d grant roles remain, holds analytics_read: %v", n, e.Holds(t, person.ID, "analytics_read"))
	}
	if err := use(ctx); err == nil {
		t.Fatal("the person still reads the table after the extension ended")
	}
}

// user returns a probe that logs in to the target as role (the pglocal cluster trusts loopback
// connections, as pg_hba with certificates or LDAP would accept the person) and reads extension_probe.
func (e *env) user(t *testing.T, role string) func(context.Context) error {
	t.Helper()
	cfg, err := pgx.ParseConfig(e.TargetURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.User = role
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return fmt.Errorf("log in: %w", err)
		}
		defer conn.Close(context.Background())
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM extension_probe").Scan(&n); err != nil {
			return fmt.Errorf("read: %w", err)
		}
		return nil
	}
}

// sampler runs a probe every interval until stopped, bounded by a minute, and keeps what failed.
type sampler struct {
	mu       sync.Mutex
	n        int
	at       []time.Time
	failures []string
	cancel   context.CancelFunc
	done     chan struct{}
}

func startSampling(t *testing.T, every time.Duration, probe func(context.Context) error) *sampler {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	s := &sampler{cancel: cancel, done: make(chan struct{})}
	t.Cleanup(func() { s.stop() })
	go func() {
		defer close(s.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			err := probe(ctx)
			now := time.Now()
			s.mu.Lock()
			if ctx.Err() == nil {
				s.n++
				s.at = append(s.at, now)
				if err != nil {
					s.failures = append(s.failures, now.Format(time.StampMilli)+": "+err.Error())
				}
			}
			s.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// since counts the samples taken after at.
func (s *sampler) since(at time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, a := range s.at {
		if a.After(at) {
			n++
		}
	}
	return n
}

type sampled struct {
	n        int
	failures []string
}

// stop ends the sampling, waits for it and returns what it found.
func (s *sampler) stop() sampled {
	s.cancel()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return sampled{n: s.n, failures: s.failures}
}
