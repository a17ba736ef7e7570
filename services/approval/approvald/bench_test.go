package approvald_test

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/services/approval"
	"github.com/grantline/grantline/services/approval/approvald"
)

// BenchmarkReviewToApproved measures a reviewer's approval of the last open slot, from the HTTP
// request to the 201 answer with reviewed and approved stored (token verification, load, rules, one
// atomic two-event batch), beside a baseline taken in the same run on the same server: a raw
// Store.Update appending one event. It also times the review without HTTP (rules and the batch). The
// consumers run as in production (the inbox projection reacts to every approval). Reported: p50 and p99
// of each, and the ratios to the baseline.
func BenchmarkReviewToApproved(b *testing.B) {
	w := newWorld(b)
	ctx := context.Background()
	store := w.stores[events.Approval]
	rules := approvald.Rules()
	tok, err := w.issuer.Mint("bob", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	bob := events.Principal{ID: "bob", Groups: []string{"analytics-owners", "payments-owners"}}
	owners := func(n int) events.Stage {
		return events.Stage{Name: "owners", Groups: []string{"payments-owners"}, MinApprovals: n}
	}
	var baseline, direct, overHTTP []time.Duration
	for b.Loop() {
		// Baseline: one event, appended with Update, on a request that stays pending.
		id := w.submit(b, alice, "payments-admin", false)
		w.decide(b, id, time.Now().Add(time.Hour), false, owners(2))
		start := time.Now()
		if _, err := store.Update(ctx, id, func(r *events.Request) ([]events.Draft, error) {
			return []events.Draft{{Actor: "bob", Payload: events.Reviewed{Reviewer: bob, Stage: 0, Decision: events.ReviewApprove,
				RequestDigest: r.Submitted().RequestDigest}}}, nil
		}); err != nil {
			b.Fatal(err)
		}
		baseline = append(baseline, time.Since(start))

		// The review through the rules: reviewed and approved in one batch.
		id = w.submit(b, alice, "payments-admin", false)
		w.decide(b, id, time.Now().Add(time.Hour), false, owners(1))
		start = time.Now()
		l, err := store.Update(ctx, id, func(r *events.Request) ([]events.Draft, error) {
			return rules.Review(r, approval.Review{Reviewer: bob, Decision: events.ReviewApprove})
		})
		if err != nil || l.Request.Status() != events.StatusApproved {
			b.Fatalf("direct review: %v", err)
		}
		direct = append(direct, time.Since(start))

		// The review over HTTP.
		id = w.submit(b, alice, "payments-admin", false)
		w.decide(b, id, time.Now().Add(time.Hour), false, owners(1))
		req, _ := http.NewRequest("POST", w.srv.URL+"/v1/requests/"+id+"/reviews", strings.NewReader(approveBody))
		req.Header.Set("Authorization", "Bearer "+tok)
		start = time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		overHTTP = append(overHTTP, time.Since(start))
		if resp.StatusCode != http.StatusCreated || !strings.Contains(string(body), `"status":"approved"`) {
			b.Fatalf("review: %d %s", resp.StatusCode, body)
		}
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	bp50, bp99 := percentiles(baseline)
	dp50, dp99 := percentiles(direct)
	hp50, hp99 := percentiles(overHTTP)
	b.ReportMetric(ms(hp50), "p50-ms")
	b.ReportMetric(ms(hp99), "p99-ms")
	b.ReportMetric(ms(dp50), "no-http-p50-ms")
	b.ReportMetric(ms(dp99), "no-http-p99-ms")
	b.ReportMetric(ms(bp50), "baseline-p50-ms")
	b.ReportMetric(ms(bp99), "baseline-p99-ms")
	b.ReportMetric(float64(hp50)/float64(bp50), "p50-ratio")
	b.ReportMetric(float64(hp99)/float64(bp99), "p99-ratio")
	b.ReportMetric(0, "ns/op")
}

// percentiles returns the 50th and 99th percentiles (nearest rank).
func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	s := slices.Clone(d)
	slices.Sort(s)
	rank := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	return rank(0.50), rank(0.99)
}
