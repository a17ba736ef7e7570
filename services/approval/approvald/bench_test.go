package approvald_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/services/approval"
	"github.com/grantline/grantline/services/approval/approvald"
	"github.com/grantline/grantline/services/approval/postgres"
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

// BenchmarkInboxProjection measures the review inbox projection filling a fresh database from a stream
// of GRANTLINE_BENCH_REQUESTS requests (default 500), each decided and then reviewed (two events the
// inbox consumes), in events per second: in batches (consumer.RunBatch, the default BatchSize), and,
// in the same run on the same stream, one delivery per transaction (BatchSize 1). batch_speedup is the
// ratio of the two.
func BenchmarkInboxProjection(b *testing.B) {
	requests := 500
	if v := os.Getenv("GRANTLINE_BENCH_REQUESTS"); v != "" {
		var err error
		if requests, err = strconv.Atoi(v); err != nil || requests < 1 {
			b.Fatalf("GRANTLINE_BENCH_REQUESTS=%q is not a number of requests", v)
		}
	}
	w := newWorld(b)
	w.stop()
	reviewer := events.Principal{ID: "bob", Groups: []string{"payments-owners"}}
	for range requests {
		id := w.paymentsAdmin(b, alice)
		digest := w.load(b, id).Request.Submitted().RequestDigest
		w.append(b, events.Approval, id, events.Draft{Payload: events.Reviewed{Reviewer: reviewer, Stage: 0,
			Decision: events.ReviewApprove, RequestDigest: digest}, Actor: reviewer.ID})
	}
	last := w.lastInboxSeq(b)
	consumed := float64(2 * requests)

	var batched, oneAtATime time.Duration
	for i := 0; b.Loop(); i++ {
		for _, run := range []struct {
			size    int
			elapsed *time.Duration
		}{{1, &oneAtATime}, {0, &batched}} {
			db := w.freshInbox(b)
			durable := fmt.Sprintf("bench-inbox-%d-%d", run.size, i)
			start := time.Now()
			stop := w.project(b, durable, run.size, postgres.NewInbox(db))
			w.projected(b, durable, db, last)
			*run.elapsed += time.Since(start)
			stop()
		}
	}
	b.ReportMetric(consumed*float64(b.N)/batched.Seconds(), "events/s")
	b.ReportMetric(consumed*float64(b.N)/oneAtATime.Seconds(), "one_at_a_time_events/s")
	b.ReportMetric(oneAtATime.Seconds()/batched.Seconds(), "batch_speedup")
}
