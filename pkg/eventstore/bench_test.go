package eventstore

// Benchmarks of the event store against raw JetStream (DESIGN §8). The machine they run on is shared and
// noisy, so every benchmark measures its own baseline (a raw JetStream operation on the same server, in
// the same process) and reports its figures as ratios to it as well as absolute. Every server fsyncs
// each write (natsembed's default, sync_interval: always) except the rows named lazyfsync_reference,
// which exist only to show what that durability costs. docs/benchmarks.md records a run.
//
//	go test -run '^$' -bench . -benchtime=5s -count=3 ./eventstore/
//
// GRANTLINE_BENCH_EVENTS (default 1000000) sets how many events BenchmarkLoad puts in the stream;
// GRANTLINE_BENCH_POPULATE=fsync populates it on a server that fsyncs every write instead of the
// default lazy-fsync populate (the measurement itself always runs on a server that fsyncs).

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/natsembed"
	"github.com/grantline/grantline/pkg/topology"
)

const (
	// rawBodySize is the size of a raw benchmark message, close to a signed Grantline event.
	rawBodySize = 600
	// asyncWindow bounds the async publishes in flight.
	asyncWindow = 256
	// baselineOps is how many raw operations a benchmark's own baseline measures.
	baselineOps = 2000
	// manyApprovals keeps a request pending however many reviews it gets.
	manyApprovals = 1 << 30
)

func TestMain(m *testing.M) {
	code := m.Run()
	removePopulated()
	os.Exit(code)
}

// benchNode is one embedded server and a client connection to it.
type benchNode struct {
	ns   *server.Server
	nc   *nats.Conn
	js   jetstream.JetStream
	once sync.Once
}

// startNode starts a node on dir (fsync on every write unless lazy), connects to it, checks that the
// server really runs with the fsync setting the caller asked for, and stops it when the benchmark ends.
func startNode(b testing.TB, dir string, lazy bool) *benchNode {
	b.Helper()
	ns, err := natsembed.Start(natsembed.Options{Dir: dir, Port: -1, LazySync: lazy})
	if err != nil {
		b.Fatalf("start nats: %v", err)
	}
	n := &benchNode{ns: ns}
	b.Cleanup(n.stop)
	n.nc, err = nats.Connect(ns.ClientURL(), nats.Timeout(5*time.Second))
	if err != nil {
		b.Fatalf("connect: %v", err)
	}
	if n.js, err = jetstream.New(n.nc, jetstream.WithDefaultTimeout(10*time.Second)); err != nil {
		b.Fatalf("jetstream: %v", err)
	}
	syncAlways, err := EmbeddedProbe(ns)(context.Background())
	if err != nil || syncAlways == lazy {
		b.Fatalf("server sync_always=%v (err %v), want %v", syncAlways, err, !lazy)
	}
	return n
}

// stop closes the connection and shuts the server down; it may be called more than once.
func (n *benchNode) stop() {
	n.once.Do(func() {
		n.nc.Close()
		n.ns.Shutdown()
		n.ns.WaitForShutdown()
	})
}

// benchWorld is newWorld for benchmarks: the streams provisioned with DefaultSettings and a store per
// service. probe is normally EmbeddedProbe of the node.
func benchWorld(b testing.TB, js jetstream.JetStream, probe SyncProbe) (*world, *events.Verifier) {
	b.Helper()
	ctx := context.Background()
	if err := Provision(ctx, js, DefaultSettings); err != nil {
		b.Fatalf("provision: %v", err)
	}
	w := &world{js: js, signers: map[events.Service]*events.Signer{}, stores: map[events.Service]*Store{}}
	var all []*events.Signer
	for _, svc := range events.Services {
		s, err := events.GenerateSigner(svc, string(svc)+"-bench")
		if err != nil {
			b.Fatal(err)
		}
		w.signers[svc] = s
		all = append(all, s)
	}
	verifier, err := events.NewVerifier(events.NewTrustFile(time.Now().Add(-time.Hour), all...))
	if err != nil {
		b.Fatal(err)
	}
	for _, svc := range events.Services {
		st, err := Open(ctx, js, Config{Signer: w.signers[svc], Verifier: verifier, Durability: probe})
		if err != nil {
			b.Fatalf("open store for %s: %v", svc, err)
		}
		w.stores[svc] = st
	}
	return w, verifier
}

// benchPending is pendingRequest for benchmarks: a submitted request awaiting approvals.
func (w *world) benchPending(b testing.TB, approvals int) string {
	b.Helper()
	ctx := context.Background()
	id := events.NewID()
	if _, err := w.stores[events.Intake].Update(ctx, id, func(*events.Request) ([]events.Draft, error) {
		return []events.Draft{{Payload: submitted("alice"), Actor: "alice", CausationID: "cmd-" + id}}, nil
	}); err != nil {
		b.Fatalf("submit: %v", err)
	}
	deadline := time.Now().Add(time.Hour)
	if _, err := w.stores[events.Policy].Update(ctx, id, func(*events.Request) ([]events.Draft, error) {
		return []events.Draft{{Payload: events.PolicyDecided{
			Outcome: events.OutcomeApprovalRequired, Reasons: []string{"bench"}, EffectiveDurationSeconds: 3600,
			Stages:           []events.Stage{{Name: "owners", Groups: []string{"reviewers"}, MinApprovals: approvals}},
			ApprovalDeadline: &deadline, PolicyRevision: "sha256:bench", InputDigest: "sha256:bench",
		}, CausationID: "decide-" + id}}, nil
	}); err != nil {
		b.Fatalf("decide: %v", err)
	}
	return id
}

func (w *world) benchPool(b testing.TB, n int) []string {
	b.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = w.benchPending(b, manyApprovals)
	}
	return ids
}

// reviewers hands out reviewer names unique in the process, so every review has its own message ID.
var reviewers atomic.Int64

func nextReviewer() string { return "reviewer-" + strconv.FormatInt(reviewers.Add(1), 10) }

var rawBody = func() []byte {
	body := make([]byte, rawBodySize)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	return body
}()

// rawMsg is a ~600-byte message on a request subject of its own, as a raw publish baseline.
func rawMsg() *nats.Msg {
	msg := nats.NewMsg(events.NATSSubject(events.NewID(), events.TypeSubmitted))
	msg.Data = rawBody
	return msg
}

// rawRun is a measured run of raw operations.
type rawRun struct {
	ops     int
	elapsed time.Duration
	lat     []time.Duration
}

func (r rawRun) rate() float64 { return float64(r.ops) / r.elapsed.Seconds() }

// rawSyncPublish publishes n messages one at a time, each waiting for its ack: the baseline of every
// benchmark that writes.
func rawSyncPublish(b testing.TB, js jetstream.JetStream, n int) rawRun {
	b.Helper()
	ctx := context.Background()
	r := rawRun{ops: n, lat: make([]time.Duration, 0, n)}
	start := time.Now()
	for range n {
		t0 := time.Now()
		if _, err := js.PublishMsg(ctx, rawMsg()); err != nil {
			b.Fatalf("raw publish: %v", err)
		}
		r.lat = append(r.lat, time.Since(t0))
	}
	r.elapsed = time.Since(start)
	return r
}

// window keeps at most size async publishes in flight.
type window struct {
	js      jetstream.JetStream
	size    int
	pending []jetstream.PubAckFuture
	err     error
}

func (w *window) publish(msg *nats.Msg) {
	if len(w.pending) >= w.size {
		w.await(w.pending[0])
		w.pending = w.pending[1:]
	}
	f, err := w.js.PublishMsgAsync(msg)
	if err != nil {
		w.err = cmpErr(w.err, err)
		return
	}
	w.pending = append(w.pending, f)
}

func (w *window) await(f jetstream.PubAckFuture) {
	select {
	case <-f.Ok():
	case err := <-f.Err():
		w.err = cmpErr(w.err, err)
	case <-time.After(30 * time.Second):
		w.err = cmpErr(w.err, errors.New("no ack within 30s"))
	}
}

// drain waits for every publish in flight and returns the first error seen.
func (w *window) drain() error {
	for _, f := range w.pending {
		w.await(f)
	}
	w.pending = w.pending[:0]
	return w.err
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// pct returns the p-th quantile (0 < p ≤ 1) of d, nearest rank.
func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(float64(len(s))*p+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

// reportLatency reports the p50 and p99 of lat in microseconds, the unit names prefixed.
func reportLatency(b *testing.B, prefix string, lat []time.Duration) {
	b.ReportMetric(us(pct(lat, 0.50)), prefix+"p50_us")
	b.ReportMetric(us(pct(lat, 0.99)), prefix+"p99_us")
}

// reportBaseline reports the raw sync publish baseline and the ratio of rate to it.
func reportBaseline(b *testing.B, unit string, rate float64, base rawRun) {
	b.ReportMetric(rate, unit)
	b.ReportMetric(base.rate(), "raw_sync_msgs/s")
	b.ReportMetric(rate/base.rate(), "ratio_to_raw_sync")
}

// BenchmarkPublishRaw is the ceiling: raw JetStream publishes of ~600-byte messages to the evidence
// stream, each on its own request subject, one at a time (sync) or with 256 in flight (async). Each row
// first measures 2000 sync publishes on a fresh fsync server as its baseline, so the sync row's ratio
// shows the run-to-run noise. The lazyfsync_reference rows publish to a server that does not fsync
// each write: they are a reference for the cost of durability, never a target.
func BenchmarkPublishRaw(b *testing.B) {
	for _, c := range []struct {
		name  string
		lazy  bool
		async bool
	}{
		{"fsync_sync", false, false},
		{"fsync_async256", false, true},
		{"lazyfsync_reference_sync", true, false},
		{"lazyfsync_reference_async256", true, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			base := startNode(b, b.TempDir(), false)
			if err := Provision(ctx, base.js, DefaultSettings); err != nil {
				b.Fatal(err)
			}
			baseline := rawSyncPublish(b, base.js, baselineOps)
			node := base
			if c.lazy {
				base.stop()
				node = startNode(b, b.TempDir(), true)
				if err := Provision(ctx, node.js, DefaultSettings); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(rawBodySize)
			if !c.async {
				lat := make([]time.Duration, 0, 1<<16)
				for b.Loop() {
					t0 := time.Now()
					if _, err := node.js.PublishMsg(ctx, rawMsg()); err != nil {
						b.Fatal(err)
					}
					lat = append(lat, time.Since(t0))
				}
				reportLatency(b, "", lat)
			} else {
				w := &window{js: node.js, size: asyncWindow}
				for b.Loop() {
					w.publish(rawMsg())
				}
				// The acks still in flight belong to the measurement.
				b.StartTimer()
				err := w.drain()
				b.StopTimer()
				if err != nil {
					b.Fatal(err)
				}
			}
			reportBaseline(b, "msgs/s", float64(b.N)/b.Elapsed().Seconds(), baseline)
		})
	}
}

// reviewsPerRequest is how many reviews the write benchmarks append to one request before moving on to
// a fresh one (created with the timer stopped), so every load and fold is of a request of 2 to 10
// events, as in production, rather than of one that grows with the benchmark.
const reviewsPerRequest = 8

// BenchmarkAppend is Store.Append of one signed reviewed event per op, without the load: each op
// appends to the next of 50 pending requests in turn, with the Loaded the previous append returned
// (sign, chain, fold, publish with the compare-and-set and a message ID). Its baseline is 2000 raw sync
// publishes on the same server just before.
func BenchmarkAppend(b *testing.B) {
	ctx := context.Background()
	node := startNode(b, b.TempDir(), false)
	w, _ := benchWorld(b, node.js, EmbeddedProbe(node.ns))
	baseline := rawSyncPublish(b, node.js, baselineOps)
	st := w.stores[events.Approval]
	const pool = 50
	fresh := func() []*Loaded {
		var curs []*Loaded
		for _, id := range w.benchPool(b, pool) {
			l, err := st.Load(ctx, id)
			if err != nil {
				b.Fatal(err)
			}
			curs = append(curs, l)
		}
		return curs
	}
	curs := fresh()
	digest := curs[0].Request.Submitted().RequestDigest
	lat := make([]time.Duration, 0, 1<<16)
	var bodyBytes int
	i := 0
	for b.Loop() {
		if i > 0 && i%(pool*reviewsPerRequest) == 0 {
			b.StopTimer()
			curs = fresh()
			b.StartTimer()
		}
		k := i % pool
		draft := reviewBy(nextReviewer(), digest)
		t0 := time.Now()
		next, err := st.Append(ctx, curs[k], draft)
		lat = append(lat, time.Since(t0))
		if err != nil {
			b.Fatal(err)
		}
		curs[k] = next
		bodyBytes += len(next.Records[len(next.Records)-1].Body)
		i++
	}
	reportBaseline(b, "appends/s", float64(b.N)/b.Elapsed().Seconds(), baseline)
	reportLatency(b, "", lat)
	b.ReportMetric(float64(bodyBytes)/float64(b.N), "event_body_bytes")
}

// BenchmarkUpdate is Store.Update, the load → decide → append-with-CAS loop, each op adding one review
// by a new reviewer: one writer, four writers each on requests of their own, and four writers all on
// the same request. Each request takes 8 reviews (20 in the contended case) before the writers move on
// to fresh ones, created with the timer stopped. Conflicts are counted from the decisions taken: every
// decision after the first in one Update followed a conflict. Its baseline is 2000 raw sync publishes
// on the same server just before.
func BenchmarkUpdate(b *testing.B) {
	for _, c := range []struct {
		name    string
		writers int
		shared  bool
	}{
		{"writers=1", 1, false},
		{"writers=4_distinct", 4, false},
		{"writers=4_one_request", 4, true},
	} {
		b.Run(c.name, func(b *testing.B) { benchUpdate(b, c.writers, c.shared) })
	}
}

func benchUpdate(b *testing.B, writers int, shared bool) {
	ctx := context.Background()
	node := startNode(b, b.TempDir(), false)
	w, _ := benchWorld(b, node.js, EmbeddedProbe(node.ns))
	baseline := rawSyncPublish(b, node.js, baselineOps)
	st := w.stores[events.Approval]

	// Each writer cycles through its own pool; in the shared case every writer's pool is the same one
	// request. An epoch gives every request of the pools its reviews, then the pools are replaced.
	perWriter, epoch := 25, writers*25*reviewsPerRequest
	if shared {
		perWriter, epoch = 1, 20
	}
	pools := make([][]string, writers)
	fresh := func() {
		var one []string
		for wr := range pools {
			if !shared || one == nil {
				one = w.benchPool(b, perWriter)
			}
			pools[wr] = one
		}
	}
	fresh()

	var decisions, ok, gaveUp, loaded atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	var firstErr error
	ops := make(chan struct{})
	var inflight, workers sync.WaitGroup
	for wr := range writers {
		workers.Go(func() {
			var mine []time.Duration
			j := 0
			for range ops {
				id := pools[wr][j%perWriter]
				j++
				reviewer := nextReviewer()
				t0 := time.Now()
				next, err := st.Update(ctx, id, func(r *events.Request) ([]events.Draft, error) {
					decisions.Add(1)
					return []events.Draft{reviewBy(reviewer, r.Submitted().RequestDigest)}, nil
				})
				mine = append(mine, time.Since(t0))
				switch {
				case err == nil:
					ok.Add(1)
					loaded.Add(int64(len(next.Events) - 1))
				case errors.Is(err, ErrConflict):
					gaveUp.Add(1)
				default:
					mu.Lock()
					firstErr = cmpErr(firstErr, err)
					mu.Unlock()
				}
				inflight.Done()
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	i := 0
	for b.Loop() {
		if i > 0 && i%epoch == 0 {
			b.StopTimer()
			inflight.Wait()
			fresh()
			b.StartTimer()
		}
		inflight.Add(1)
		ops <- struct{}{}
		i++
	}
	// The updates still running belong to the measurement.
	b.StartTimer()
	close(ops)
	workers.Wait()
	b.StopTimer()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	reportBaseline(b, "updates/s", float64(ok.Load())/b.Elapsed().Seconds(), baseline)
	reportLatency(b, "", lat)
	if n := ok.Load(); n > 0 {
		b.ReportMetric(float64(decisions.Load()-n)/float64(n), "conflicts/update")
		b.ReportMetric(float64(loaded.Load())/float64(n), "events_per_load")
	}
	b.ReportMetric(float64(gaveUp.Load()), "gave_up")
}

// populated is the evidence stream BenchmarkLoad reads, built once per process and removed by TestMain.
var populated struct {
	sync.Mutex
	key      string
	dir      string
	ids      []string
	verifier *events.Verifier
	signer   *events.Signer
}

func removePopulated() {
	populated.Lock()
	defer populated.Unlock()
	if populated.dir != "" {
		os.RemoveAll(populated.dir)
		populated.dir = ""
	}
}

// loadFixture returns the populated stream for total events, populating it on first use in the process.
func loadFixture(b *testing.B, total int, lazy bool) (dir string, ids []string, verifier *events.Verifier, signer *events.Signer) {
	populated.Lock()
	defer populated.Unlock()
	key := fmt.Sprintf("%d/%v", total, lazy)
	if populated.key != key {
		if populated.dir != "" {
			os.RemoveAll(populated.dir)
			populated.dir, populated.key = "", ""
		}
		dir, err := os.MkdirTemp("", "grantline-bench-load-")
		if err != nil {
			b.Fatal(err)
		}
		populated.dir = dir
		populated.ids, populated.verifier, populated.signer = populate(b, dir, total, lazy)
		populated.key = key
	}
	return populated.dir, populated.ids, populated.verifier, populated.signer
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// fillerTypes is the life of a filler request, so filler subjects look like real traffic.
var fillerTypes = []events.Type{events.TypeSubmitted, events.TypePolicyDecided, events.TypeReviewed,
	events.TypeReviewed, events.TypeApproved, events.TypeGranted}

// filler publishes raw ~600-byte events of other requests: 1000 requests in flight at a time, each
// getting the six events of a normal life before a new one takes its place. Loads only read their own
// request's subjects, so these need no signature.
type filler struct {
	w     *window
	live  []string
	turn  []int
	i     int
	sent  int
	start time.Time
}

func (f *filler) publish(b testing.TB, n int) {
	for range n {
		k := f.i % len(f.live)
		f.i++
		if f.live[k] == "" || f.turn[k] == len(fillerTypes) {
			f.live[k], f.turn[k] = events.NewID(), 0
		}
		msg := nats.NewMsg(events.NATSSubject(f.live[k], fillerTypes[f.turn[k]]))
		msg.Data = rawBody
		f.turn[k]++
		f.w.publish(msg)
		f.sent++
		if f.sent%250_000 == 0 {
			b.Logf("populate: %d filler events in %s (%.0f/s)", f.sent, time.Since(f.start).Round(time.Second),
				float64(f.sent)/time.Since(f.start).Seconds())
		}
	}
	if err := f.w.drain(); err != nil {
		b.Fatalf("filler publish: %v", err)
	}
}

// populate builds a stream of total events: real requests (six signed events each: submitted,
// policy_decided, four reviews) whose events are spread over the whole stream, one phase of all of them
// between each seventh of the filler. With lazy, the populate server skips the fsync per write to save
// minutes; the store then has to be told the server is durable (the probe would refuse), which is
// acceptable only because nothing is measured on that server.
func populate(b *testing.B, dir string, total int, lazy bool) (ids []string, verifier *events.Verifier, signer *events.Signer) {
	ctx := context.Background()
	node := startNode(b, dir, lazy)
	defer node.stop()
	probe := EmbeddedProbe(node.ns)
	if lazy {
		probe = func(context.Context) (bool, error) { return true, nil } // populate only; see above
	}
	w, verifier := benchWorld(b, node.js, probe)
	const phases = 6
	deadline := time.Now().Add(time.Hour)
	nreal := min(1000, max(10, total/100))
	fill := total - nreal*phases
	if fill < 0 {
		b.Fatalf("GRANTLINE_BENCH_EVENTS=%d is too small", total)
	}
	ids = make([]string, nreal)
	curs := make([]*Loaded, nreal)
	for i := range ids {
		ids[i] = events.NewID()
	}
	f := &filler{w: &window{js: node.js, size: 1024}, live: make([]string, 1000), turn: make([]int, 1000), start: time.Now()}
	giveUp := time.Now().Add(10 * time.Minute)
	for phase := range phases {
		f.publish(b, fill/(phases+1))
		svc := events.Approval
		switch phase {
		case 0:
			svc = events.Intake
		case 1:
			svc = events.Policy
		}
		// Each request is appended to from the Loaded its previous append returned: reloading it would
		// cost a load per event, and loads are what this benchmark measures.
		for i, id := range ids {
			var d events.Draft
			switch phase {
			case 0:
				curs[i] = &Loaded{ID: id}
				d = events.Draft{Payload: submitted("alice"), Actor: "alice", CausationID: "cmd-" + id}
			case 1:
				d = events.Draft{Payload: events.PolicyDecided{
					Outcome: events.OutcomeApprovalRequired, Reasons: []string{"bench"}, EffectiveDurationSeconds: 3600,
					Stages:           []events.Stage{{Name: "owners", Groups: []string{"reviewers"}, MinApprovals: manyApprovals}},
					ApprovalDeadline: &deadline, PolicyRevision: "sha256:bench", InputDigest: "sha256:bench",
				}, CausationID: "decide-" + id}
			default:
				// Each person reviews a request once.
				d = reviewBy(nextReviewer(), curs[i].Request.Submitted().RequestDigest)
			}
			next, err := w.stores[svc].Append(ctx, curs[i], d)
			if err != nil {
				b.Fatalf("populate request %s phase %d: %v", id, phase, err)
			}
			curs[i] = next
		}
		if time.Now().After(giveUp) {
			b.Fatalf("populate took over 10 minutes; use the lazy-fsync populate")
		}
	}
	f.publish(b, fill-f.sent)
	info, err := node.js.Stream(ctx, topology.EventsStream)
	if err != nil {
		b.Fatal(err)
	}
	if got := info.CachedInfo().State.Msgs; got != uint64(total) {
		b.Fatalf("populated %d events, want %d", got, total)
	}
	b.Logf("populate: %d events (%d real requests × %d) in %s, %d MB, fsync on every write: %v",
		total, nreal, phases, time.Since(f.start).Round(time.Second), info.CachedInfo().State.Bytes>>20, !lazy)
	return ids, verifier, w.signers[events.Approval]
}

// rawLoad reads the events on filter with jetstreamext.GetBatch, the batched direct get Store.Load used
// before the cut read, without verifying, decoding or folding them, and returns how many it read.
func rawLoad(ctx context.Context, js jetstream.JetStream, filter string) (int, error) {
	n, from := 0, uint64(1)
	for {
		batch, err := jetstreamext.GetBatch(ctx, js, topology.EventsStream, loadBatch,
			jetstreamext.GetBatchSeq(from), jetstreamext.GetBatchSubject(filter))
		if err != nil {
			return n, err
		}
		more := false
		for msg, err := range batch {
			if errors.Is(err, jetstreamext.ErrNoMessages) {
				return n, nil
			}
			if err != nil {
				return n, err
			}
			n++
			from = msg.Sequence + 1
			more = msg.Header.Get("Nats-Num-Pending") != "0"
		}
		if !more {
			return n, nil
		}
	}
}

// BenchmarkLoad is Store.Load (the chained read through the per-subject index, verification, fold) of a random one of 1000 requests of six events each (submitted, policy_decided, four reviews),
// whose events are spread over a stream holding GRANTLINE_BENCH_EVENTS events in all. The stream is
// populated once per process, the server restarted on it with fsync on every write, every request read
// once (the cold first touch, reported apart), and then, on the same server, the baselines are
// measured: a single direct get of a request's last event (Stream.GetLastMsgForSubject); Load as it was
// before the cut read (the wildcard batched get with every event verified in full, which Load still
// falls back to), reported as wildcard_load and as the speedup ratios; Load by a store that has
// verified nothing yet (cold_verify); and the raw reads Load is made of (multi_last, then, since four
// reviews share a subject, literal_subject), with the per-subject counts Load asked the leader for
// before issue 21 (subject_counts) for comparison.
func BenchmarkLoad(b *testing.B) {
	ctx := context.Background()
	total := envInt("GRANTLINE_BENCH_EVENTS", 1_000_000)
	lazy := os.Getenv("GRANTLINE_BENCH_POPULATE") != "fsync"
	dir, ids, verifier, signer := loadFixture(b, total, lazy)

	t0 := time.Now()
	node := startNode(b, dir, false)
	st, err := Open(ctx, node.js, Config{Signer: signer, Verifier: verifier, Durability: EmbeddedProbe(node.ns)})
	if err != nil {
		b.Fatal(err)
	}
	stream, err := node.js.Stream(ctx, topology.EventsStream)
	if err != nil {
		b.Fatal(err)
	}
	state := stream.CachedInfo().State
	if state.Msgs != uint64(total) || !stream.CachedInfo().Config.AllowDirect {
		b.Fatalf("stream holds %d events (want %d), direct gets %v", state.Msgs, total, stream.CachedInfo().Config.AllowDirect)
	}
	b.Logf("load: server with fsync on every write restarted on %d events (%d MB, %d subjects) in %s",
		state.Msgs, state.Bytes>>20, state.NumSubjects, time.Since(t0).Round(time.Millisecond))

	// timed runs op on up to n requests, stopping after limit: the slow baselines stay bounded in time.
	timed := func(n int, limit time.Duration, pick func(int) string, op func(string) error) []time.Duration {
		lat := make([]time.Duration, 0, n)
		stop := time.Now().Add(limit)
		for i := 0; i < n && (i < 50 || time.Now().Before(stop)); i++ {
			id := pick(i)
			t0 := time.Now()
			if err := op(id); err != nil {
				b.Fatalf("%s: %v", id, err)
			}
			lat = append(lat, time.Since(t0))
		}
		return lat
	}
	rng := rand.New(rand.NewPCG(1, 2))
	random := func(int) string { return ids[rng.IntN(len(ids))] }
	reads := func(want int, filter func(string) string) func(string) error {
		return func(id string) error {
			n, err := rawLoad(ctx, node.js, filter(id))
			if err == nil && n != want {
				err = fmt.Errorf("read %d events, want %d", n, want)
			}
			return err
		}
	}
	const limit = 10 * time.Second
	cold := timed(len(ids), limit, func(i int) string { return ids[i] }, reads(6, events.RequestFilter))
	direct := timed(baselineOps, limit, random, func(id string) error {
		_, err := stream.GetLastMsgForSubject(ctx, events.RequestFilter(id))
		return err
	})
	raw := timed(baselineOps, limit, random, reads(6, events.RequestFilter))
	wildcard := timed(baselineOps, limit, random, func(id string) error {
		_, evs, err := st.readWildcard(ctx, id)
		if err == nil && len(evs) != 6 {
			err = fmt.Errorf("loaded %d events, want 6", len(evs))
		}
		if err == nil {
			_, err = events.Fold(id, evs)
		}
		return err
	})
	coldVerify := timed(baselineOps, limit, random, func(id string) error {
		st.verified = newVerifiedSet()
		l, err := st.Load(ctx, id)
		if err == nil && len(l.Events) != 6 {
			err = fmt.Errorf("loaded %d events, want 6", len(l.Events))
		}
		return err
	})
	st.verified = newVerifiedSet()
	// The same batched direct get on one literal subject (the request's four reviews) instead of the
	// request's wildcard: what a load would cost if a request's events shared one subject.
	literal := timed(baselineOps, limit, random, reads(4, func(id string) string { return events.NATSSubject(id, events.TypeReviewed) }))
	multiLast := timed(baselineOps, limit, random, func(id string) error {
		it, err := jetstreamext.GetLastMsgsFor(ctx, node.js, topology.EventsStream, []string{events.RequestFilter(id)})
		if err != nil {
			return err
		}
		n := 0
		for _, err := range it {
			if err != nil {
				return err
			}
			n++
		}
		if n != 3 {
			return fmt.Errorf("multi-last gave %d subjects, want 3", n)
		}
		return nil
	})
	counts := timed(baselineOps, limit, random, func(id string) error {
		info, err := stream.Info(ctx, jetstream.WithSubjectFilter(events.RequestFilter(id)))
		if err != nil {
			return err
		}
		if len(info.State.Subjects) != 3 {
			return fmt.Errorf("subject counts for %d subjects, want 3", len(info.State.Subjects))
		}
		return nil
	})

	lat := make([]time.Duration, 0, 1<<16)
	for b.Loop() {
		id := ids[rng.IntN(len(ids))]
		t0 := time.Now()
		l, err := st.Load(ctx, id)
		lat = append(lat, time.Since(t0))
		if err != nil {
			b.Fatal(err)
		}
		if len(l.Events) != 6 {
			b.Fatalf("loaded %d events of %s, want 6", len(l.Events), id)
		}
	}
	rate := float64(b.N) / b.Elapsed().Seconds()
	p50, p99 := pct(lat, 0.5), pct(lat, 0.99)
	dp50, dp99 := pct(direct, 0.5), pct(direct, 0.99)
	b.ReportMetric(rate, "loads/s")
	b.ReportMetric(us(p50), "p50_us")
	b.ReportMetric(us(p99), "p99_us")
	b.ReportMetric(us(dp50), "direct_get_p50_us")
	b.ReportMetric(us(dp99), "direct_get_p99_us")
	b.ReportMetric(float64(len(direct))/sumDur(direct).Seconds(), "direct_gets/s")
	b.ReportMetric(float64(p50)/float64(dp50), "p50_ratio_to_direct_get")
	b.ReportMetric(float64(p99)/float64(dp99), "p99_ratio_to_direct_get")
	b.ReportMetric(rate/(float64(len(direct))/sumDur(direct).Seconds()), "rate_ratio_to_direct_get")
	reportLatency(b, "wildcard_load_", wildcard)
	b.ReportMetric(float64(pct(wildcard, 0.5))/float64(p50), "p50_speedup_over_wildcard_load")
	b.ReportMetric(float64(pct(wildcard, 0.99))/float64(p99), "p99_speedup_over_wildcard_load")
	reportLatency(b, "cold_verify_", coldVerify)
	reportLatency(b, "raw_batch_get_", raw)
	reportLatency(b, "cold_first_touch_raw_batch_get_", cold)
	reportLatency(b, "literal_subject_batch_get_", literal)
	reportLatency(b, "multi_last_", multiLast)
	reportLatency(b, "subject_counts_", counts)
	b.ReportMetric(float64(state.Msgs), "stream_events")
}

func sumDur(d []time.Duration) time.Duration {
	var s time.Duration
	for _, x := range d {
		s += x
	}
	return s
}

// BenchmarkLoadSmallStream takes Store.Load apart where the stream is small (a few thousand events, as
// in BenchmarkUpdate): Load of a random one of 50 requests of six events, beside baselines measured on
// the same server just before: a single direct get of a request's last event, the batched direct get
// Load did before the cut read (jetstreamext.GetBatch, which subscribes a new inbox per call) without
// verification, the same batched get answered on one long-lived subscription, and the verification of
// six stored events alone (no I/O).
func BenchmarkLoadSmallStream(b *testing.B) {
	ctx := context.Background()
	node := startNode(b, b.TempDir(), false)
	w, verifier := benchWorld(b, node.js, EmbeddedProbe(node.ns))
	st := w.stores[events.Approval]
	ids := w.benchPool(b, 50)
	for _, id := range ids {
		for range 4 {
			if _, err := st.Update(ctx, id, func(r *events.Request) ([]events.Draft, error) {
				return []events.Draft{reviewBy(nextReviewer(), r.Submitted().RequestDigest)}, nil
			}); err != nil {
				b.Fatal(err)
			}
		}
	}
	stream, err := node.js.Stream(ctx, topology.EventsStream)
	if err != nil {
		b.Fatal(err)
	}
	sample, err := st.Load(ctx, ids[0])
	if err != nil || len(sample.Records) != 6 {
		b.Fatalf("load %s: %v", ids[0], err)
	}
	inbox := node.nc.NewRespInbox()
	sub, err := node.nc.SubscribeSync(inbox)
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Unsubscribe()

	rng := rand.New(rand.NewPCG(3, 4))
	timed := func(op func(id string) error) []time.Duration {
		lat := make([]time.Duration, 0, baselineOps)
		for range baselineOps {
			id := ids[rng.IntN(len(ids))]
			t0 := time.Now()
			if err := op(id); err != nil {
				b.Fatalf("%s: %v", id, err)
			}
			lat = append(lat, time.Since(t0))
		}
		return lat
	}
	direct := timed(func(id string) error {
		_, err := stream.GetLastMsgForSubject(ctx, events.RequestFilter(id))
		return err
	})
	batch := timed(func(id string) error {
		n, err := rawLoad(ctx, node.js, events.RequestFilter(id))
		if err == nil && n != 6 {
			err = fmt.Errorf("read %d events, want 6", n)
		}
		return err
	})
	persistent := timed(func(id string) error {
		req := fmt.Appendf(nil, `{"seq":1,"next_by_subj":%q,"batch":%d}`, events.RequestFilter(id), loadBatch)
		if err := node.nc.PublishRequest("$JS.API.DIRECT.GET."+topology.EventsStream, inbox, req); err != nil {
			return err
		}
		for n := 0; ; n++ {
			msg, err := sub.NextMsg(5 * time.Second)
			if err != nil {
				return err
			}
			if len(msg.Data) == 0 && msg.Header.Get("Status") != "" {
				if n != 6 {
					return fmt.Errorf("read %d events, want 6", n)
				}
				return nil
			}
		}
	})
	verify := timed(func(string) error {
		_, err := verifier.VerifyAll(sample.Records)
		return err
	})

	lat := make([]time.Duration, 0, 1<<16)
	for b.Loop() {
		id := ids[rng.IntN(len(ids))]
		t0 := time.Now()
		l, err := st.Load(ctx, id)
		lat = append(lat, time.Since(t0))
		if err != nil {
			b.Fatal(err)
		}
		if len(l.Events) != 6 {
			b.Fatalf("loaded %d events of %s, want 6", len(l.Events), id)
		}
	}
	p50, dp50 := pct(lat, 0.5), pct(direct, 0.5)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "loads/s")
	reportLatency(b, "", lat)
	reportLatency(b, "direct_get_", direct)
	b.ReportMetric(float64(p50)/float64(dp50), "p50_ratio_to_direct_get")
	b.ReportMetric(float64(pct(lat, 0.99))/float64(pct(direct, 0.99)), "p99_ratio_to_direct_get")
	reportLatency(b, "getbatch_", batch)
	b.ReportMetric(float64(pct(batch, 0.5))/float64(dp50), "getbatch_p50_ratio_to_direct_get")
	reportLatency(b, "one_sub_batch_get_", persistent)
	b.ReportMetric(float64(pct(persistent, 0.5))/float64(dp50), "one_sub_batch_get_p50_ratio_to_direct_get")
	b.ReportMetric(us(pct(verify, 0.5)), "verify6_p50_us")
	b.ReportMetric(float64(pct(verify, 0.5))/float64(dp50), "verify6_p50_ratio_to_direct_get")
	b.ReportMetric(float64(stream.CachedInfo().State.Msgs), "stream_events")
}

// BenchmarkLoadHistory measures Store.Load on a history written by `grantline bench history` (its
// store directory in GRANTLINE_BENCH_HISTORY; skipped without it): random requests among all the
// history holds, each loaded and verified by a store that has verified nothing of it before, beside a
// single direct get of a random request's last event on the same server, just before. The server
// fsyncs every write, as in production; the benchmark writes nothing.
func BenchmarkLoadHistory(b *testing.B) {
	history := os.Getenv("GRANTLINE_BENCH_HISTORY")
	if history == "" {
		b.Skip("GRANTLINE_BENCH_HISTORY names no store written by grantline bench history")
	}
	ctx := context.Background()
	verifier, err := events.LoadTrustFile(filepath.Join(history, "keys", "trust.json"))
	if err != nil {
		b.Fatal(err)
	}
	// Loads sign nothing; the store only needs a signer to open.
	signer, err := events.GenerateSigner(events.Revoker, "bench-load-history")
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	node := startNode(b, filepath.Join(history, "nats"), false)
	st, err := Open(ctx, node.js, Config{Signer: signer, Verifier: verifier, Durability: EmbeddedProbe(node.ns)})
	if err != nil {
		b.Fatal(err)
	}
	stream, err := node.js.Stream(ctx, topology.EventsStream)
	if err != nil {
		b.Fatal(err)
	}
	state := stream.CachedInfo().State
	b.Logf("load: server restarted on a history of %d events (%d MB, %d subjects) in %s",
		state.Msgs, state.Bytes>>20, state.NumSubjects, time.Since(t0).Round(time.Millisecond))

	// A random request: the one whose event is at a random sequence (a request with more events is a
	// little likelier, as it is likelier to be acted on).
	rng := rand.New(rand.NewPCG(3, 4))
	random := func() string {
		for {
			msg, err := stream.GetMsg(ctx, state.FirstSeq+rng.Uint64N(state.LastSeq-state.FirstSeq+1))
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue
			}
			if err != nil {
				b.Fatal(err)
			}
			id, _, err := events.ParseNATSSubject(msg.Subject)
			if err != nil {
				b.Fatal(err)
			}
			return id
		}
	}
	picks := make([]string, 0, 1<<14)
	for range cap(picks) {
		picks = append(picks, random())
	}
	var direct []time.Duration
	for _, id := range picks[:baselineOps] {
		t0 := time.Now()
		if _, err := stream.GetLastMsgForSubject(ctx, events.RequestFilter(id)); err != nil {
			b.Fatal(err)
		}
		direct = append(direct, time.Since(t0))
	}

	lat := make([]time.Duration, 0, len(picks))
	loaded := 0
	for b.Loop() {
		id := picks[len(lat)%len(picks)]
		st.verified = newVerifiedSet()
		t0 := time.Now()
		l, err := st.Load(ctx, id)
		lat = append(lat, time.Since(t0))
		if err != nil {
			b.Fatalf("load %s: %v", id, err)
		}
		loaded += len(l.Events)
	}
	rate := float64(b.N) / b.Elapsed().Seconds()
	p50, p99 := pct(lat, 0.5), pct(lat, 0.99)
	dp50, dp99 := pct(direct, 0.5), pct(direct, 0.99)
	b.ReportMetric(rate, "loads/s")
	b.ReportMetric(us(p50), "p50_us")
	b.ReportMetric(us(p99), "p99_us")
	b.ReportMetric(us(pct(lat, 1)), "max_us")
	b.ReportMetric(us(dp50), "direct_get_p50_us")
	b.ReportMetric(us(dp99), "direct_get_p99_us")
	b.ReportMetric(float64(p50)/float64(dp50), "p50_ratio_to_direct_get")
	b.ReportMetric(float64(p99)/float64(dp99), "p99_ratio_to_direct_get")
	b.ReportMetric(float64(loaded)/float64(b.N), "events/load")
	b.ReportMetric(float64(state.Msgs), "stream_events")
	b.ReportMetric(float64(state.NumSubjects), "stream_subjects")
}
