package consumer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/natstest"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/pkg/topology"
)

// TestDispose is the error table as scenarios.
func TestDispose(t *testing.T) {
	backoff := ExponentialBackoff(100*time.Millisecond, time.Second)
	boom := errors.New("target timed out")
	cases := []struct {
		name      string
		err       error
		delivered int
		want      Action
		delay     time.Duration
	}{
		{"success is acknowledged", nil, 1, Ack, 0},
		{"success on the last allowed delivery is acknowledged", nil, 5, Ack, 0},
		{"a first failure is retried after the base delay", boom, 1, Retry, 100 * time.Millisecond},
		{"a third failure waits four times as long", boom, 3, Retry, 400 * time.Millisecond},
		{"the delay is capped", boom, 4, Retry, 800 * time.Millisecond},
		{"the fifth failure is dead-lettered", boom, 5, DeadLetter, 0},
		{"a permanent error is dead-lettered at once", Permanent(boom), 1, DeadLetter, 0},
		{"a wrapped permanent error too", fmt.Errorf("handle: %w", Permanent(boom)), 1, DeadLetter, 0},
		{"the target's own retry-after wins", RetryAfter(boom, 7*time.Second), 2, Retry, 7 * time.Second},
		{"retry-after still ends in the dead-letter stream", RetryAfter(boom, 7*time.Second), 5, DeadLetter, 0},
		{"shutting down hands the message on at once", context.Canceled, 1, Retry, 0},
		{"a dependency down holds the message", Unavailable(boom), 1, Hold, 100 * time.Millisecond},
		{"a dependency down past the limit still holds it, never dead-letters it", Unavailable(boom), 9, Hold, time.Second},
		{"a wrapped dependency failure too", fmt.Errorf("apply: %w", Unavailable(boom)), 5, Hold, time.Second},
		{"a permanent error wins over an unavailable dependency", Permanent(Unavailable(boom)), 1, DeadLetter, 0},
		{"the broker not answering is a dependency down", fmt.Errorf("append: %w", nats.ErrTimeout), 7, Hold, time.Second},
		{"the stream not answering (no quorum) too", fmt.Errorf("load: %w", jetstream.ErrNoStreamResponse), 1, Hold, 100 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := Dispose(tc.err, tc.delivered, 5, backoff)
			if d.Action != tc.want || d.Delay != tc.delay {
				t.Fatalf("got %s after %s, want %s after %s", d.Action, d.Delay, tc.want, tc.delay)
			}
			if d.Action == DeadLetter && d.Reason == "" {
				t.Fatal("a dead letter needs a reason")
			}
		})
	}
}

type harness struct {
	// url is the server's, for a connection of the test's own.
	url    string
	js     jetstream.JetStream
	spec   Spec
	cancel context.CancelFunc
	done   chan error
}

// start provisions the streams, publishes n messages msg-<i> on grantline.intake.test.<i>, subjects
// without a request, and runs h over them.
func start(t *testing.T, spec Spec, n int, h Handler) *harness {
	t.Helper()
	hs := provisionIntake(t, spec, n)
	hs.run(t, h)
	return hs
}

// provisionIntake is provision of n messages msg-<i> on grantline.intake.test.<i>, for spec on them.
func provisionIntake(t *testing.T, spec Spec, n int) *harness {
	t.Helper()
	var msgs []published
	for i := range n {
		msgs = append(msgs, published{fmt.Sprintf("grantline.intake.test.%d", i), fmt.Sprintf("msg-%d", i)})
	}
	spec.Stream, spec.Durable, spec.FilterSubjects = topology.IntakeStream, "test", []string{"grantline.intake.test.>"}
	return provision(t, spec, msgs)
}

type published struct{ subject, data string }

// startOn provisions the streams, publishes msgs in order and runs h over them with spec.
func startOn(t *testing.T, spec Spec, msgs []published, h Handler) *harness {
	t.Helper()
	hs := provision(t, spec, msgs)
	hs.run(t, h)
	return hs
}

// provision starts a server with the streams and msgs published in order.
func provision(t *testing.T, spec Spec, msgs []published) *harness {
	t.Helper()
	ns := natstest.RunServer(t)
	_, js := natstest.Connect(t, ns.ClientURL())
	ctx := context.Background()
	if err := eventstore.Provision(ctx, js, eventstore.DefaultSettings); err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if _, err := js.Publish(ctx, m.subject, []byte(m.data)); err != nil {
			t.Fatal(err)
		}
	}
	return &harness{url: ns.ClientURL(), js: js, spec: spec}
}

// run starts Run of h over the harness's consumer (again, after stop); the test's end stops it.
func (h *harness) run(t *testing.T, handle Handler) {
	h.runWith(t, func(ctx context.Context, log *slog.Logger) error { return Run(ctx, h.js, h.spec, handle, log) })
}

// runBatch is run for RunBatch.
func (h *harness) runBatch(t *testing.T, handle BatchHandler) {
	h.runWith(t, func(ctx context.Context, log *slog.Logger) error { return RunBatch(ctx, h.js, h.spec, handle, log) })
}

func (h *harness) runWith(t *testing.T, run func(context.Context, *slog.Logger) error) {
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	h.cancel, h.done = cancel, done
	go func() { done <- run(runCtx, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	t.Cleanup(func() { stopRun(t, cancel, done) })
}

// stop stops the latest run and waits for Run to return.
func (h *harness) stop(t *testing.T) { stopRun(t, h.cancel, h.done) }

func stopRun(t *testing.T, cancel context.CancelFunc, done chan error) {
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		done <- nil
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

func (h *harness) dlq(t *testing.T) []*jetstream.RawStreamMsg {
	t.Helper()
	st, err := h.js.Stream(context.Background(), topology.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := st.Info(context.Background())
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		raw, err := st.GetMsg(context.Background(), seq)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, raw)
	}
	return out
}

func pending(t *testing.T, js jetstream.JetStream) (ackPending, numPending uint64) {
	t.Helper()
	return consumerPending(t, js, topology.IntakeStream)
}

func consumerPending(t *testing.T, js jetstream.JetStream, stream string) (ackPending, numPending uint64) {
	t.Helper()
	c, err := js.Consumer(context.Background(), stream, "test")
	if err != nil {
		return 1, 1
	}
	info, err := c.Info(context.Background())
	if err != nil {
		return 1, 1
	}
	return uint64(info.NumAckPending), info.NumPending
}

func TestEveryMessageHandledOnceWithConcurrency(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	var running, peak atomic.Int32
	// The first handlers hold until four run at once, which proves the concurrency; later ones pass.
	overlap := make(chan struct{})
	var overlapOnce sync.Once
	h := start(t, Spec{Concurrency: 4}, 40, func(ctx context.Context, msg jetstream.Msg) error {
		now := running.Add(1)
		defer running.Add(-1)
		for p := peak.Load(); now > p && !peak.CompareAndSwap(p, now); p = peak.Load() {
		}
		if now == 4 {
			overlapOnce.Do(func() { close(overlap) })
		}
		select {
		case <-overlap:
		case <-time.After(5 * time.Second):
		}
		mu.Lock()
		seen[string(msg.Data())]++
		mu.Unlock()
		return nil
	})
	poll.Until(t, 20*time.Second, "all 40 handled and acknowledged", func() bool {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		a, p := pending(t, h.js)
		return n == 40 && a == 0 && p == 0
	})
	for m, c := range seen {
		if c != 1 {
			t.Fatalf("%s handled %d times", m, c)
		}
	}
	if peak.Load() != 4 {
		t.Fatalf("peak concurrency %d, want 4", peak.Load())
	}
}

// TestFailingMessageIsRetriedThenSucceeds: a message that fails twice then succeeds is not
// dead-lettered; the metrics count two retries, one ack and two redeliveries, and the lag gauges read
// the server's counts.
func TestFailingMessageIsRetriedThenSucceeds(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	var calls atomic.Int32
	h := start(t, Spec{Meter: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)), Backoff: func(int) time.Duration { return 10 * time.Millisecond }}, 1, func(ctx context.Context, msg jetstream.Msg) error {
		if calls.Add(1) < 3 {
			return errors.New("target busy")
		}
		return nil
	})
	poll.Until(t, 20*time.Second, "success on the third delivery", func() bool {
		a, p := pending(t, h.js)
		return calls.Load() == 3 && a == 0 && p == 0
	})
	if got := len(h.dlq(t)); got != 0 {
		t.Fatalf("%d dead letters for a message that succeeded", got)
	}
	checkMetrics(t, reader, map[string]int64{"grantline_consumer_deliveries/retry": 2, "grantline_consumer_deliveries/ack": 1,
		"grantline_consumer_redeliveries/": 2})
}

func TestPoisonMessageIsDeadLetteredWithItsReason(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	var calls atomic.Int32
	h := start(t, Spec{Meter: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)), MaxDeliveries: 3, Backoff: func(int) time.Duration { return 10 * time.Millisecond }}, 1, func(ctx context.Context, msg jetstream.Msg) error {
		calls.Add(1)
		return errors.New("always fails")
	})
	poll.Until(t, 20*time.Second, "a dead letter", func() bool { return len(h.dlq(t)) == 1 })
	dl := h.dlq(t)[0]
	hdr := dl.Header
	if string(dl.Data) != "msg-0" || hdr[HeaderSubject][0] != "grantline.intake.test.0" || hdr[HeaderConsumer][0] != "test" || hdr[HeaderDeliveries][0] != "3" {
		t.Fatalf("dead letter %q with headers %v", dl.Data, hdr)
	}
	if reason := hdr.Get(HeaderReason); reason != "failed 3 deliveries, last: always fails" {
		t.Fatalf("reason %q", reason)
	}
	poll.Until(t, 10*time.Second, "the original to be settled", func() bool { a, p := pending(t, h.js); return a == 0 && p == 0 })
	if calls.Load() != 3 {
		t.Fatalf("handler ran %d times, want 3", calls.Load())
	}
	checkMetrics(t, reader, map[string]int64{"grantline_consumer_deliveries/retry": 2, "grantline_consumer_deliveries/dead-letter": 1,
		"grantline_consumer_redeliveries/": 2})
}

func TestPermanentErrorIsDeadLetteredAtOnce(t *testing.T) {
	var calls atomic.Int32
	h := start(t, Spec{}, 1, func(ctx context.Context, msg jetstream.Msg) error {
		calls.Add(1)
		return Permanent(errors.New("forged signature"))
	})
	poll.Until(t, 20*time.Second, "a dead letter", func() bool { return len(h.dlq(t)) == 1 })
	if calls.Load() != 1 {
		t.Fatalf("a permanent error was retried: %d calls", calls.Load())
	}
}

func TestPanickingHandlerDoesNotKillTheRunner(t *testing.T) {
	var calls atomic.Int32
	h := start(t, Spec{MaxDeliveries: 2, Backoff: func(int) time.Duration { return 10 * time.Millisecond }}, 2, func(ctx context.Context, msg jetstream.Msg) error {
		calls.Add(1)
		if string(msg.Data()) == "msg-0" {
			panic("bug")
		}
		return nil
	})
	poll.Until(t, 20*time.Second, "the panicking message dead-lettered and the other handled", func() bool {
		a, p := pending(t, h.js)
		return len(h.dlq(t)) == 1 && a == 0 && p == 0
	})
}

// TestUnavailableDependencyHoldsTheMessageInOrder: while a handler says its dependency is down, its
// message is held and tried again far past MaxDeliveries, the next message waits behind it, the stall
// is reported for readiness, and nothing is dead-lettered.
func TestUnavailableDependencyHoldsTheMessageInOrder(t *testing.T) {
	var stall Stall
	var mu sync.Mutex
	var order []string
	var downFor atomic.Int32
	downFor.Store(8)
	h := start(t, Spec{MaxDeliveries: 2, Concurrency: 1, Stall: &stall, Backoff: func(int) time.Duration { return 10 * time.Millisecond }}, 2,
		func(ctx context.Context, msg jetstream.Msg) error {
			if downFor.Add(-1) >= 0 {
				return Unavailable(errors.New("database: connection refused"))
			}
			mu.Lock()
			defer mu.Unlock()
			order = append(order, string(msg.Data()))
			return nil
		})
	poll.Until(t, 20*time.Second, "the stall to be reported", func() bool { return stall.Check(context.Background()) != nil })
	poll.Until(t, 20*time.Second, "both messages handled once the dependency is back", func() bool {
		a, p := pending(t, h.js)
		return a == 0 && p == 0
	})
	if err := stall.Check(context.Background()); err != nil {
		t.Fatalf("still stalled after recovery: %v", err)
	}
	if got := len(h.dlq(t)); got != 0 {
		t.Fatalf("%d dead letters for an outage", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff([]string{"msg-0", "msg-1"}, order); diff != "" {
		t.Fatalf("handled out of order (-want +got):\n%s", diff)
	}
}

// TestHungHandlerIsDeadLetteredAfterMaxDeliveries: a handler that never answers (a hang past
// HandleTimeout, as a crash) gets the message redelivered; past the limit the runner sets it aside
// unhandled.
func TestHungHandlerIsDeadLetteredAfterMaxDeliveries(t *testing.T) {
	release := make(chan struct{})
	var calls atomic.Int32
	h := start(t, Spec{MaxDeliveries: 2, AckWait: 300 * time.Millisecond, HandleTimeout: 300 * time.Millisecond, Concurrency: 4}, 1, func(ctx context.Context, msg jetstream.Msg) error {
		calls.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	})
	poll.Until(t, 20*time.Second, "a dead letter for the hung message", func() bool { return len(h.dlq(t)) == 1 })
	close(release)
	if got := h.dlq(t)[0].Header.Get(HeaderReason); got != "no answer after 2 deliveries (process died or handler exceeded its timeout)" {
		t.Fatalf("reason %q", got)
	}
	if calls.Load() != 2 {
		t.Fatalf("handler ran %d times, want 2", calls.Load())
	}
}

// TestSetAsideRunsBeforeEveryDeadLetter: the spec's SetAside sees each message about to be
// dead-lettered, for each reason, and no other; while it fails the message is redelivered, not set
// aside with its side effects in place.
func TestSetAsideRunsBeforeEveryDeadLetter(t *testing.T) {
	var mu sync.Mutex
	setAside := map[string]int{}
	failFirst := true
	spec := Spec{MaxDeliveries: 2, AckWait: 300 * time.Millisecond, HandleTimeout: 300 * time.Millisecond, Concurrency: 4, Backoff: func(int) time.Duration { return 10 * time.Millisecond },
		SetAside: func(ctx context.Context, msg jetstream.Msg) error {
			mu.Lock()
			defer mu.Unlock()
			setAside[string(msg.Data())]++
			if string(msg.Data()) == "msg-1" && failFirst {
				failFirst = false
				return errors.New("the undo failed once")
			}
			return nil
		}}
	release := make(chan struct{})
	h := start(t, spec, 4, func(ctx context.Context, msg jetstream.Msg) error {
		switch string(msg.Data()) {
		case "msg-0":
			return Permanent(errors.New("malformed"))
		case "msg-1":
			return errors.New("always fails")
		case "msg-2":
			select { // never answers
			case <-release:
			case <-ctx.Done():
			}
		}
		return nil
	})
	poll.Until(t, 20*time.Second, "three dead letters", func() bool { return len(h.dlq(t)) == 3 })
	close(release)
	mu.Lock()
	defer mu.Unlock()
	if setAside["msg-0"] != 1 || setAside["msg-1"] != 2 || setAside["msg-2"] != 1 || setAside["msg-3"] != 0 {
		t.Fatalf("set aside %v: want msg-0 once, msg-1 twice (its first undo failed), msg-2 once, msg-3 (handled) never", setAside)
	}
}

func TestShutdownLetsInFlightHandlersFinish(t *testing.T) {
	started, proceed := make(chan struct{}), make(chan struct{})
	var finished atomic.Bool
	h := start(t, Spec{}, 1, func(ctx context.Context, msg jetstream.Msg) error {
		close(started)
		<-proceed // work still in progress when shutdown begins
		finished.Store(true)
		return nil
	})
	<-started
	h.cancel()
	select {
	case <-h.done:
		t.Fatal("Run returned while a handler was still working")
	case <-time.After(100 * time.Millisecond):
	}
	close(proceed)
	h.stop(t)
	if !finished.Load() {
		t.Fatal("Run returned before the in-flight handler finished")
	}
	if a, p := pending(t, h.js); a != 0 || p != 0 {
		t.Fatalf("the in-flight message was not acknowledged (%d ack pending, %d pending)", a, p)
	}
}

// TestDeadLetterDropsServerHeaders: stored events carry Nats-Expected-Stream and fired timers carry
// the scheduler's headers; copied into the dead-letter stream they would be refused, and the poison
// message would be redelivered for ever instead of set aside.
func TestDeadLetterDropsServerHeaders(t *testing.T) {
	ns := natstest.RunServer(t)
	_, js := natstest.Connect(t, ns.ClientURL())
	ctx := context.Background()
	if err := eventstore.Provision(ctx, js, eventstore.DefaultSettings); err != nil {
		t.Fatal(err)
	}
	m := nats.NewMsg("grantline.intake.test.0")
	m.Data = []byte("poison")
	m.Header.Set("Grantline-Signature", "kept")
	if _, err := js.PublishMsg(ctx, m, jetstream.WithExpectStream(topology.IntakeStream), jetstream.WithMsgID("m-1")); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- Run(runCtx, js, Spec{Stream: topology.IntakeStream, Durable: "test", FilterSubjects: []string{"grantline.intake.test.>"}},
			func(context.Context, jetstream.Msg) error { return Permanent(errors.New("poison")) }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	t.Cleanup(func() { cancel(); <-done })
	h := &harness{js: js}
	poll.Until(t, 20*time.Second, "the poison message in the dead-letter stream", func() bool { return len(h.dlq(t)) == 1 })
	hdr := h.dlq(t)[0].Header
	if hdr.Get("Grantline-Signature") != "kept" || hdr.Get("Nats-Expected-Stream") != "" {
		t.Fatalf("dead-letter headers %v", hdr)
	}
}

// checkMetrics compares what reader collected with the deliveries by outcome and redeliveries wanted,
// and checks the lag gauges read zero once everything is handled.
func checkMetrics(t *testing.T, reader *sdkmetric.ManualReader, want map[string]int64) {
	t.Helper()
	counts, gauges := map[string]int64{}, map[string]int64{}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch data := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range data.DataPoints {
					outcome, _ := dp.Attributes.Value("outcome")
					counts[m.Name+"/"+outcome.AsString()] += dp.Value
				}
			case metricdata.Gauge[int64]:
				for _, dp := range data.DataPoints {
					if durable, _ := dp.Attributes.Value("durable"); durable.AsString() == "test" {
						gauges[m.Name] = dp.Value
					}
				}
			}
		}
	}
	for k, v := range want {
		if counts[k] != v {
			t.Errorf("%s = %d, want %d (all: %v)", k, counts[k], v, counts)
		}
	}
	for _, name := range []string{"grantline_consumer_pending", "grantline_consumer_ack_pending"} {
		if v, ok := gauges[name]; !ok || v != 0 {
			t.Errorf("%s = %d (observed: %v), want 0 once everything is handled", name, v, ok)
		}
	}
}
