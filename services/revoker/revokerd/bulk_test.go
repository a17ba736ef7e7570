package revokerd_test

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/pkg/targettest"
	"github.com/grantline/grantline/pkg/topology"
)

// each runs fn(i) for i in [0, n) on workers goroutines and waits.
func each(n, workers int, fn func(i int)) {
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				fn(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// counter returns a function counting the messages of stream on subjects matching filter, read from
// an idle consumer's pending count (cheap at any size, unlike listing the subjects).
func counter(t testing.TB, js jetstream.JetStream, stream, filter string) func() uint64 {
	t.Helper()
	ctx := context.Background()
	cons, err := js.CreateConsumer(ctx, stream, jetstream.ConsumerConfig{FilterSubject: filter, AckPolicy: jetstream.AckNonePolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy, InactiveThreshold: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = js.DeleteConsumer(context.Background(), stream, cons.CachedInfo().Name) })
	return func() uint64 {
		info, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.NumPending
	}
}

// Test200GrantsExpireWhileTheRevokerIsDown: 200 grants expire over 1 to 5 seconds; the revoker arms
// them all (a key each, one timer per second), is stopped before the first expiry and started again
// after the last. Every grant is
// revoked, on the target too, and the lag is reported.
func Test200GrantsExpireWhileTheRevokerIsDown(t *testing.T) {
	const n = 200
	e := newEnv(t)
	people := make([]events.Principal, 20)
	for i := range people {
		people[i] = someone("engineers")
	}

	// Untimed: the requests, allowed for a minute, and the grants on the target; the test records them
	// itself so that it chooses expires_at.
	ids := make([]string, n)
	observed := make([]events.Observed, n)
	began := time.Now()
	each(n, 8, func(i int) {
		ids[i] = e.Approved(t, targettest.Request{Requester: people[i%len(people)], Entitlement: "analytics-read", Duration: time.Minute})
		observed[i], _ = e.grantOnTarget(t, ids[i], began.Add(time.Minute))
	})
	if t.Failed() {
		t.FailNow()
	}
	// Recording n grants costs about a third of what the setup did (one append against two, and no
	// target); twice that, plus a second, is the margin before the first expiry.
	margin := time.Since(began)*2/3 + time.Second
	first := time.Now().Add(margin + time.Second)
	expiresAt := func(i int) time.Time { return first.Add(time.Duration(i) * 4 * time.Second / (n - 1)) }
	each(n, 8, func(i int) { e.recordGrant(t, ids[i], observed[i], expiresAt(i), "") })
	armed := counter(t, e.JS, topology.BucketStream(topology.ExpiriesBucket), topology.BucketKey(topology.ExpiriesBucket, "*.>"))
	revocations := counter(t, e.JS, topology.EventsStream, events.NATSSubject("*", events.TypeRevoked))
	poll.Until(t, time.Until(first), "the revoker to arm every expiry", func() bool { return armed() == n })
	e.stopRevoker()
	if time.Now().After(first) {
		t.Fatalf("the revoker stopped after the first expiry; the setup took longer than its margin of %s", margin)
	}

	// One timer per second with grants due, each fired while the revoker is down.
	seconds := map[int64]bool{}
	for i := range n {
		seconds[expiresAt(i).Add(time.Second-1).Truncate(time.Second).Unix()] = true
	}
	timers, err := e.JS.Stream(context.Background(), topology.TimersStream)
	if err != nil {
		t.Fatal(err)
	}
	last := expiresAt(n - 1)
	poll.Until(t, time.Until(last)+20*time.Second, "every second's timer to fire while the revoker is down", func() bool {
		for sec := range seconds {
			if _, err := timers.GetLastMsgForSubject(context.Background(), topology.TimerFired(strconv.FormatInt(sec, 10), topology.TimerExpiry)); err != nil {
				return false
			}
		}
		return true
	})
	if c := revocations(); c != 0 {
		t.Fatalf("%d revocations while the revoker was down", c)
	}

	restarted := time.Now()
	e.startRevoker(t)
	poll.Until(t, 2*time.Minute, "every grant to be revoked", func() bool { return revocations() == n })
	caughtUp := time.Since(restarted)

	var lags, sinceRestart []time.Duration
	for i, id := range ids {
		l := e.Load(t, id)
		r := l.Request
		if r.Revoked() == nil || r.Revoked().Reason != events.RevokeExpired || r.Revoked().Observed.Present {
			t.Fatalf("grant %d: %s, revoked %+v", i, r.Status(), r.Revoked())
		}
		at := l.Events[len(l.Events)-1].Time
		lags = append(lags, at.Sub(r.Grant().ExpiresAt))
		sinceRestart = append(sinceRestart, at.Sub(restarted))
	}
	if left := e.GrantRoles(t, ids...); left != 0 {
		t.Fatalf("%d grants still on the target", left)
	}
	slices.Sort(lags)
	slices.Sort(sinceRestart)
	t.Logf("%d grants revoked; the revoker caught up %s after its restart", n, caughtUp.Round(time.Millisecond))
	t.Logf("lag after expires_at (includes the downtime): p50 %s p99 %s max %s",
		targettest.Percentile(lags, .5).Round(time.Millisecond), targettest.Percentile(lags, .99).Round(time.Millisecond), lags[n-1].Round(time.Millisecond))
	t.Logf("revoked after the restart: p50 %s p99 %s max %s",
		targettest.Percentile(sinceRestart, .5).Round(time.Millisecond), targettest.Percentile(sinceRestart, .99).Round(time.Millisecond), sinceRestart[n-1].Round(time.Millisecond))
}
