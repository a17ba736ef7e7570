package timers_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/natstest"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/pkg/timers"
	"github.com/grantline/grantline/pkg/topology"
)

// timersStream starts a JetStream server with Grantline's streams and returns the timers stream.
func timersStream(t *testing.T) (jetstream.JetStream, jetstream.Stream) {
	t.Helper()
	ctx := context.Background()
	ns := natstest.RunServer(t)
	_, js := natstest.Connect(t, ns.ClientURL())
	if err := eventstore.Provision(ctx, js, eventstore.DefaultSettings); err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, topology.TimersStream)
	if err != nil {
		t.Fatal(err)
	}
	return js, st
}

// count is how many messages the stream holds on subject.
func count(t *testing.T, st jetstream.Stream, subject string) uint64 {
	t.Helper()
	info, err := st.Info(context.Background(), jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects[subject]
}

// waitFired waits until the timer kind of id has fired once, and returns the fired message.
func waitFired(t *testing.T, st jetstream.Stream, id, kind string, within time.Duration) *jetstream.RawStreamMsg {
	t.Helper()
	poll.Until(t, within, "the "+kind+" timer to fire", func() bool { return count(t, st, topology.TimerFired(id, kind)) > 0 })
	m, err := st.GetLastMsgForSubject(context.Background(), topology.TimerFired(id, kind))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestTimerFiresOnceAtItsTime(t *testing.T) {
	t.Parallel()
	js, st := timersStream(t)
	ctx := context.Background()
	id := events.NewID()
	at := time.Now().Add(time.Second)
	if err := timers.Schedule(ctx, js, id, "expiry", at, []byte(`{"grant":3}`)); err != nil {
		t.Fatal(err)
	}
	if n := count(t, st, topology.TimerSchedule(id, "expiry")); n != 1 {
		t.Fatalf("%d schedule messages held, want 1", n)
	}
	fired := waitFired(t, st, id, "expiry", 5*time.Second)
	if ttl := fired.Header.Get("Nats-TTL"); ttl == "" {
		t.Fatal("the fired trigger carries no TTL: the timers stream would keep it for ever")
	}
	if fired.Time.Before(at) {
		t.Fatalf("fired at %s, before its time %s", fired.Time, at)
	}
	if string(fired.Data) != `{"grant":3}` || fired.Header.Get(jetstream.SchedulerHeader) != topology.TimerSchedule(id, "expiry") {
		t.Fatalf("fired %q with headers %v", fired.Data, fired.Header)
	}
	// Once: the schedule is purged as it fires, so nothing is left to fire again. A later sentinel
	// timer firing bounds the wait for a second copy that must not come.
	if err := timers.Schedule(ctx, js, id, "sentinel", time.Now().Add(time.Second), nil); err != nil {
		t.Fatal(err)
	}
	waitFired(t, st, id, "sentinel", 5*time.Second)
	if n := count(t, st, topology.TimerFired(id, "expiry")); n != 1 {
		t.Fatalf("the timer fired %d times, want once", n)
	}
	if n := count(t, st, topology.TimerSchedule(id, "expiry")); n != 0 {
		t.Fatalf("%d schedule messages left after firing", n)
	}
}

func TestPastDueTimerFiresAtOnce(t *testing.T) {
	t.Parallel()
	js, st := timersStream(t)
	id := events.NewID()
	// A timer whose time passed while nobody was running (a restart after downtime) still fires.
	start := time.Now()
	if err := timers.Schedule(context.Background(), js, id, "approval-window", start.Add(-time.Hour), nil); err != nil {
		t.Fatal(err)
	}
	fired := waitFired(t, st, id, "approval-window", 3*time.Second)
	if string(fired.Data) != "{}" {
		t.Fatalf("payload %q, want {}", fired.Data)
	}
}

func TestReschedulingReplaces(t *testing.T) {
	t.Parallel()
	js, st := timersStream(t)
	ctx := context.Background()
	id := events.NewID()

	// Brought forward: an hour away, then a second away; it fires once, at the new time.
	if err := timers.Schedule(ctx, js, id, "expiry", time.Now().Add(time.Hour), []byte(`{"v":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := timers.Schedule(ctx, js, id, "expiry", time.Now().Add(time.Second), []byte(`{"v":2}`)); err != nil {
		t.Fatal(err)
	}
	// The same call again (a redelivered reaction) stores nothing new.
	soon := time.Now().Add(2 * time.Second)
	if err := timers.Schedule(ctx, js, id, "window", soon, nil); err != nil {
		t.Fatal(err)
	}
	if err := timers.Schedule(ctx, js, id, "window", soon, nil); err != nil {
		t.Fatal(err)
	}
	if n := count(t, st, topology.TimerSchedule(id, "expiry")); n != 1 {
		t.Fatalf("%d schedules held for one timer, want 1 (the later replaces the earlier)", n)
	}
	fired := waitFired(t, st, id, "expiry", 5*time.Second)
	if string(fired.Data) != `{"v":2}` {
		t.Fatalf("fired %q, want the replacing schedule's payload", fired.Data)
	}

	// Put off: a second away, then an hour away; it must not fire at the old time. The window timer
	// (two seconds) firing bounds the wait.
	if err := timers.Schedule(ctx, js, id, "later", time.Now().Add(time.Second), nil); err != nil {
		t.Fatal(err)
	}
	if err := timers.Schedule(ctx, js, id, "later", time.Now().Add(time.Hour), nil); err != nil {
		t.Fatal(err)
	}
	waitFired(t, st, id, "window", 5*time.Second)
	if n := count(t, st, topology.TimerFired(id, "window")); n != 1 {
		t.Fatalf("a repeated schedule fired %d times, want once", n)
	}
	if n := count(t, st, topology.TimerFired(id, "later")); n != 0 {
		t.Fatal("a timer put off by an hour fired at its old time")
	}
	if n := count(t, st, topology.TimerSchedule(id, "later")); n != 1 {
		t.Fatalf("%d schedules held for the put-off timer, want 1", n)
	}
}

func TestScheduleRefusesWhatEscapesItsSubject(t *testing.T) {
	t.Parallel()
	js, _ := timersStream(t)
	ctx := context.Background()
	cases := []struct {
		name, id, kind string
		payload        []byte
	}{
		{"a wildcard request ID", "*", "expiry", nil},
		{"a request ID with a dot", "a.b", "expiry", nil},
		{"an empty kind", events.NewID(), "", nil},
		{"a kind with a wildcard", events.NewID(), ">", nil},
		{"a payload that is not JSON", events.NewID(), "expiry", []byte("not json")},
	}
	for _, tc := range cases {
		if err := timers.Schedule(ctx, js, tc.id, tc.kind, time.Now(), tc.payload); !errors.Is(err, timers.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", tc.name, err)
		}
	}
}

type msg struct{ subject, data string }

func (m msg) Subject() string { return m.subject }
func (m msg) Data() []byte    { return []byte(m.data) }

func TestParseFired(t *testing.T) {
	id := events.NewID()
	gotID, kind, payload, err := timers.ParseFired(msg{topology.TimerFired(id, "post-review"), `{"a":1}`})
	if err != nil || gotID != id || kind != "post-review" || string(payload) != `{"a":1}` {
		t.Fatalf("ParseFired = %q %q %q %v", gotID, kind, payload, err)
	}
	for _, subject := range []string{topology.TimerSchedule(id, "expiry"), topology.TimerFired(id, "a.b"), topology.TimerFired(id, "*"),
		topology.TimerFired("*", "expiry"), events.NATSSubject(id, events.TypeGranted)} {
		if _, _, _, err := timers.ParseFired(msg{subject, "{}"}); !errors.Is(err, timers.ErrInvalid) {
			t.Errorf("ParseFired(%s) = %v, want ErrInvalid", subject, err)
		}
	}
}

// TestArmedTimerCarriesItsCause arms a timer the way reactions do and reads the fired copy back: the
// reaction to it learns the request, the kind and the event that armed it, and nothing else passes.
func TestArmedTimerCarriesItsCause(t *testing.T) {
	t.Parallel()
	js, st := timersStream(t)
	armed := timers.Armed{RequestID: events.NewID(), Kind: "approval-window", AfterSeq: 42}
	if err := timers.Arm(context.Background(), js, armed, time.Now()); err != nil {
		t.Fatal(err)
	}
	fired := waitFired(t, st, armed.RequestID, armed.Kind, 5*time.Second)
	got, err := timers.ParseArmed(msg{fired.Subject, string(fired.Data)})
	if err != nil || got != armed {
		t.Fatalf("ParseArmed = %+v, %v; want %+v", got, err, armed)
	}
	for name, payload := range map[string]string{
		"an unknown member":    `{"after_seq":42,"grant":3}`,
		"not a sequence":       `{"after_seq":"42"}`,
		"trailing data":        `{"after_seq":42} {}`,
		"another timer's body": `{"reminder":"review"}`,
	} {
		if _, err := timers.ParseArmed(msg{fired.Subject, payload}); !errors.Is(err, timers.ErrInvalid) {
			t.Errorf("%s: ParseArmed = %v, want ErrInvalid", name, err)
		}
	}
}

// TestWakeFiresAgainAfterItFired: a shared timer woken for a second that already fired fires again
// (Schedule would take that for a repeat); woken twice before it fires, it fires once.
func TestWakeFiresAgainAfterItFired(t *testing.T) {
	t.Parallel()
	js, st := timersStream(t)
	ctx := context.Background()
	at := time.Now().Add(time.Second)
	fired := topology.TimerFired("1700000000", "expiry")
	for range 2 {
		if err := timers.Wake(ctx, js, "1700000000", "expiry", at); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(t, st, topology.TimerSchedule("1700000000", "expiry")); n != 1 {
		t.Fatalf("%d schedules held after waking twice, want 1", n)
	}
	poll.Until(t, 5*time.Second, "the first fire", func() bool { return count(t, st, fired) == 1 })
	if err := timers.Wake(ctx, js, "1700000000", "expiry", at); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 5*time.Second, "the second fire", func() bool { return count(t, st, fired) == 2 })
}
