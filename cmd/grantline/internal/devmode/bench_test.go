package devmode

import (
	"context"
	"encoding/json/v2"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/pgtest"
	"github.com/grantline/grantline/pkg/topology"
)

// BenchmarkSubmitToDecision submits analytics-read requests over HTTP at a fixed rate to grantline dev
// (all services in one process, NATS fsyncing every write) and measures submit → policy_decided, seen
// by a consumer of the evidence stream. The baseline, measured in the same run on the same server, is a
// raw JetStream publish of one event-sized message and its delivery to a consumer: the floor under any
// reaction.
//
//	go test -run '^$' -bench SubmitToDecision -benchtime 400x ./cmd/grantline/internal/devmode
func BenchmarkSubmitToDecision(b *testing.B) {
	const rate = 50 // requests per second, well under what one replica carries
	e, err := Start(context.Background(), Config{DataDir: b.TempDir(), HTTPAddr: "127.0.0.1:0", NATSPort: -1, Examples: "../../../../examples",
		DatabaseURL: pgtest.New(b)},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close(context.Background())
	// The operator may publish the raw baseline's messages, which no service may.
	_, js := connectAs(b, e, brokeraccess.Operator)

	baseline := rawRoundTrips(b, js, 200)

	var mu sync.Mutex
	sentAt := map[string]time.Time{}
	var latencies []time.Duration
	decided := make(chan struct{}, 1<<16)
	cons, err := js.OrderedConsumer(context.Background(), topology.EventsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.NATSSubject("*", events.TypePolicyDecided)}, DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		b.Fatal(err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		id, _, _ := events.ParseNATSSubject(m.Subject())
		mu.Lock()
		if t, ok := sentAt[id]; ok {
			latencies = append(latencies, time.Since(t))
		}
		mu.Unlock()
		decided <- struct{}{}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Stop()

	token, _ := e.Token("alice")
	body := `{"entitlement":"analytics-read","duration":"1h","justification":"benchmark request %d"}`
	tick := time.NewTicker(time.Second / rate)
	defer tick.Stop()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		<-tick.C
		start := time.Now()
		req, _ := http.NewRequest("POST", "http://"+e.HTTPAddr()+"/v1/requests", strings.NewReader(fmt.Sprintf(body, i)))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		var created struct {
			ID string `json:"id"`
		}
		if err := decodeJSON(resp, &created); err != nil {
			b.Fatal(err)
		}
		mu.Lock()
		sentAt[created.ID] = start
		mu.Unlock()
	}
	b.StopTimer()
	deadline := time.After(30 * time.Second)
	for {
		mu.Lock()
		n := len(latencies)
		mu.Unlock()
		if n >= len(sentAt) {
			break
		}
		select {
		case <-decided:
		case <-deadline:
			b.Fatalf("only %d of %d requests decided", n, len(sentAt))
		}
	}
	p50, p99 := percentiles(latencies)
	b50, b99 := percentiles(baseline)
	b.ReportMetric(float64(p50.Microseconds())/1000, "decision_p50_ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "decision_p99_ms")
	b.ReportMetric(float64(b50.Microseconds())/1000, "raw_roundtrip_p50_ms")
	b.ReportMetric(float64(p50)/float64(b50), "p50_ratio_to_raw")
	b.ReportMetric(float64(p99)/float64(b99), "p99_ratio_to_raw")
	b.ReportMetric(0, "ns/op")
}

// rawRoundTrips publishes n event-sized messages one at a time and measures publish → delivery.
func rawRoundTrips(b *testing.B, js jetstream.JetStream, n int) []time.Duration {
	ctx := context.Background()
	cons, err := js.OrderedConsumer(ctx, topology.EventsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"grantline.events.*.rawbench"}, DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		b.Fatal(err)
	}
	got := make(chan struct{}, 1)
	cc, err := cons.Consume(func(jetstream.Msg) { got <- struct{}{} })
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Stop()
	payload := []byte(strings.Repeat("x", 900))
	out := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		if _, err := js.Publish(ctx, "grantline.events."+events.NewID()+".rawbench", payload); err != nil {
			b.Fatal(err)
		}
		<-got
		out = append(out, time.Since(start))
	}
	return out
}

func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2], s[min(len(s)-1, len(s)*99/100)]
}

func decodeJSON(resp *http.Response, v any) error {
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, b)
	}
	return json.Unmarshal(b, v)
}
