package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/poll"
)

// BenchmarkRevokeEveryGrantOfOnePerson: offboarding a person with 200 active grants on the demo
// PostgreSQL target, through grantline dev, as `grantline revoke --user` does it. Each iteration
// first grants alice 200 analytics-read requests (not timed), waits for the read side to list them,
// then times carol (security) revoking all of them: the whole run, and for each grant the time from
// the start until the request shows it revoked, as observed at the target (p50, p99).
//
//	GOTOOLCHAIN=go1.27.3 go test -run '^$' -bench RevokeEveryGrantOfOnePerson -benchtime 1x ./internal/cli
func BenchmarkRevokeEveryGrantOfOnePerson(b *testing.B) {
	const n = 200
	_, _, api := startDev(b)
	alice := apiFlags{server: api[1], as: "alice", dataDir: api[3]}
	carol := apiFlags{server: api[1], as: "carol", dataDir: api[3]}
	ctx := context.Background()
	var perGrant []time.Duration
	var total time.Duration
	for b.Loop() {
		b.StopTimer()
		submitErrs := make([]error, n)
		forEach(n, func(i int) {
			body := map[string]string{"entitlement": "analytics-read", "duration": "1h", "justification": fmt.Sprintf("offboarding benchmark grant %d", i)}
			submitErrs[i] = alice.call(ctx, "POST", "/v1/requests", body, nil)
		})
		if err := errors.Join(submitErrs...); err != nil {
			b.Fatal(err)
		}
		filter := url.Values{"active": {"true"}, "holder": {"alice"}}
		var grants []activeGrant
		poll.Until(b, 5*time.Minute, fmt.Sprintf("%d active grants of alice on the read side", n), func() bool {
			var err error
			grants, err = listActiveGrants(ctx, &carol, filter)
			return err == nil && len(grants) == n
		})
		b.StartTimer()
		start := time.Now()
		outcomes := revokeEach(ctx, &carol, io.Discard, grants, "left the company", start.Add(2*time.Minute))
		total += time.Since(start)
		for _, o := range outcomes {
			if o.refused != nil || o.status != "revoked" || o.present {
				b.Fatalf("grant %s: refused %v, status %s, still present %v", o.grant.RequestID, o.refused, o.status, o.present)
			}
			perGrant = append(perGrant, o.finished)
		}
		b.StopTimer()
		poll.Until(b, time.Minute, "the read side to see alice's grants ended", func() bool {
			grants, err := listActiveGrants(ctx, &carol, filter)
			return err == nil && len(grants) == 0
		})
		b.StartTimer()
	}
	slices.Sort(perGrant)
	at := func(q float64) float64 {
		return float64(perGrant[int(q*float64(len(perGrant)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/person")
	b.ReportMetric(at(0.50), "p50_ms/grant")
	b.ReportMetric(at(0.99), "p99_ms/grant")
	b.ReportMetric(float64(n*b.N)/total.Seconds(), "grants/s")
	b.ReportMetric(0, "ns/op")
}
