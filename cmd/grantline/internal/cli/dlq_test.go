package cli

import (
	"context"
	"encoding/json/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/deadletter"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/pkg/topology"
)

// TestDeadLetterCommandsAgainstDev: an integration's malformed request is refused by intake and set
// aside; the operator lists it with its reason and origin, shows it, replays it (intake handles it once
// more, refuses it again and sets it aside anew, naming the replay; nothing reaches the evidence), may
// not replay it twice, and discards it with a reason. Users other than the operator are refused by the
// broker, the service whose consumer it was included.
func TestDeadLetterCommandsAgainstDev(t *testing.T) {
	env, _, _ := startDev(t)
	seeds := env.NATSKeys().Seeds
	js, closeNATS, err := connect(env.NATSURL(), brokeraccess.Operator, seeds[brokeraccess.Operator])
	if err != nil {
		t.Fatal(err)
	}
	defer closeNATS()
	ctx := context.Background()
	integration, closeIntegration, err := connect(env.NATSURL(), brokeraccess.Integration("servicenow"), seeds[brokeraccess.Integration("servicenow")])
	if err != nil {
		t.Fatal(err)
	}
	defer closeIntegration()
	if _, err := integration.Publish(ctx, topology.IntegrationRequests("servicenow"), []byte(`{"not a cloudevent"`)); err != nil {
		t.Fatal(err)
	}

	operator := []string{"--nats", env.NATSURL(), "--nkey", seeds[brokeraccess.Operator], "--actor", "dave"}
	letters := func() []deadletter.Letter {
		t.Helper()
		code, out := run(t, append([]string{"dlq", "list", "--json"}, operator...)...)
		if code != 0 {
			t.Fatalf("dlq list: exit %d: %s", code, out)
		}
		var l []deadletter.Letter
		if err := json.Unmarshal([]byte(out), &l); err != nil {
			t.Fatalf("dlq list --json: %v: %s", err, out)
		}
		return l
	}
	poll.Until(t, 20*time.Second, "the refused request dead-lettered", func() bool { return len(letters()) == 1 })
	code, out := run(t, append([]string{"dlq", "list"}, operator...)...)
	for _, want := range []string{"intake", "GRANTLINE_INTAKE#1", topology.IntegrationRequests("servicenow"), "malformed CloudEvent"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("dlq list does not show %q: exit %d: %s", want, code, out)
		}
	}
	first := strconv.FormatUint(letters()[0].Seq, 10)
	code, out = run(t, append([]string{"dlq", "show", first}, operator...)...)
	for _, want := range []string{"permanent: malformed CloudEvent", "GRANTLINE_INTAKE sequence 1", "deliveries   1", `{"not a cloudevent"`} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("dlq show does not show %q: exit %d: %s", want, code, out)
		}
	}

	evidence, err := js.Stream(ctx, topology.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	before := evidence.CachedInfo().State.Msgs
	code, out = run(t, append([]string{"dlq", "replay", first, "--note", "intake fixed"}, operator...)...)
	if code != 0 || !strings.Contains(out, `"msg":"dead letter replayed"`) || !strings.Contains(out, `"actor":"dave"`) {
		t.Fatalf("dlq replay: exit %d: %s", code, out)
	}
	poll.Until(t, 20*time.Second, "intake to handle the replay and set it aside again", func() bool {
		l := letters()
		return len(l) == 2 && l[1].ReplayOf == l[0].Seq && l[0].Replayed != nil && l[0].Replayed.Actor == "dave"
	})
	code, out = run(t, append([]string{"dlq", "replay", first}, operator...)...)
	if code == 0 || !strings.Contains(out, "already replayed") {
		t.Fatalf("a second replay: exit %d: %s", code, out)
	}
	replays, err := js.Consumer(ctx, topology.DLQStream, topology.ReplayConsumer(topology.IntakeIntegrations.Durable).Durable)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := replays.Info(ctx); err != nil || info.NumPending != 0 || info.NumAckPending != 0 || info.Delivered.Consumer != 1 {
		t.Fatalf("intake's replay consumer after two replays: %+v, %v", info, err)
	}
	if n := len(letters()); n != 2 {
		t.Fatalf("%d dead letters after the refused second replay, want 2", n)
	}
	if info, err := evidence.Info(ctx); err != nil || info.State.Msgs != before {
		t.Fatalf("the replay changed the evidence: %d events, had %d (%v)", info.State.Msgs, before, err)
	}

	for _, u := range []brokeraccess.User{brokeraccess.Auditor, brokeraccess.Intake} {
		for _, args := range [][]string{{"list"}, {"replay", first}, {"discard", first, "--reason", "not mine"}} {
			code, out = run(t, append(append([]string{"dlq"}, args...), "--nats", env.NATSURL(), "--nkey", seeds[u], "--as", string(u))...)
			if code == 0 || !strings.Contains(out, "refused user "+string(u)) {
				t.Fatalf("dlq %s as %s: exit %d: %s", args[0], u, code, out)
			}
		}
	}

	code, out = run(t, append([]string{"dlq", "discard", first, "--reason", "malformed at the source; servicenow told"}, operator...)...)
	if code != 0 || !strings.Contains(out, `"msg":"dead letter discarded"`) || !strings.Contains(out, "servicenow told") {
		t.Fatalf("dlq discard: exit %d: %s", code, out)
	}
	if code, out = run(t, append([]string{"dlq", "show", first}, operator...)...); code == 0 || !strings.Contains(out, "no such dead letter") {
		t.Fatalf("show after discard: exit %d: %s", code, out)
	}
	if l := letters(); len(l) != 1 || strconv.FormatUint(l[0].ReplayOf, 10) != first {
		t.Fatalf("after the discard: %+v", l)
	}
}
