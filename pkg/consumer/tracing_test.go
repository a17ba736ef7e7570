package consumer

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/otlptest"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/pkg/topology"
)

// TestEachDeliveryIsASpanInTheMessagesTrace: every delivery of a message that carries a traceparent
// is a consumer span in that trace, below the span that stored it; a delivery that is retried is marked
// failed with its disposition, the one that succeeds is not.
func TestEachDeliveryIsASpanInTheMessagesTrace(t *testing.T) {
	receiver := otlptest.Tracing(t)
	spec := Spec{Stream: topology.IntakeStream, Durable: "test", FilterSubjects: []string{"grantline.intake.traced.>"},
		Backoff: func(int) time.Duration { return 10 * time.Millisecond }}
	h := provision(t, spec, nil)
	const traceID, storedBy = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	msg := nats.NewMsg("grantline.intake.traced.1")
	msg.Header.Set("traceparent", "00-"+traceID+"-"+storedBy+"-01")
	if _, err := h.js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	h.run(t, func(ctx context.Context, _ jetstream.Msg) error {
		if calls.Add(1) == 1 {
			return errors.New("target busy")
		}
		return nil
	})
	poll.Until(t, 20*time.Second, "success on the second delivery", func() bool {
		a, p := pending(t, h.js)
		return calls.Load() == 2 && a == 0 && p == 0
	})
	h.stop(t)
	received := receiver.Stop(t)

	type delivery struct {
		trace, parent, disposition string
		failed                     bool
	}
	var got []delivery
	for _, s := range received {
		if s.Name == "test process" {
			got = append(got, delivery{s.TraceID, s.ParentID, s.Attributes["grantline.disposition"], s.Failed})
		}
	}
	want := []delivery{{traceID, storedBy, Retry.String(), true}, {traceID, storedBy, Ack.String(), false}}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(delivery{})); diff != "" {
		t.Errorf("delivery spans (-want +got):\n%s", diff)
	}
}
