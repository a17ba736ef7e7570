package pipeline_test

import (
	"context"
	"encoding/json/v2"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/grantline/grantline/pkg/consumer"
	"github.com/grantline/grantline/pkg/deadletter"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/services/notifier/notifiertest"
	"github.com/grantline/grantline/services/notifier/render"
)

// settled reports whether every notifier consumer has delivered and settled everything.
func (w *world) settled(t *testing.T) bool {
	t.Helper()
	for _, c := range []topology.Consumer{topology.NotifierEvents, topology.NotifierEmail, topology.NotifierSlack, topology.NotifierWebhook} {
		cons, err := w.js.Consumer(context.Background(), c.Stream, c.Durable)
		if err != nil {
			return false
		}
		info, err := cons.Info(context.Background())
		if err != nil || info.NumPending > 0 || info.NumAckPending > 0 {
			return false
		}
	}
	return true
}

// slackTold counts, per Slack user, how often each request was named in the messages posted to them.
func (w *world) slackTold(t *testing.T) map[string]map[string]int {
	t.Helper()
	out := map[string]map[string]int{}
	for _, m := range w.slack.Posted() {
		user := "U" + strings.TrimPrefix(m.Channel, "D")
		if out[user] == nil {
			out[user] = map[string]int{}
		}
		var walk func(v any)
		walk = func(v any) {
			switch v := v.(type) {
			case map[string]any:
				for _, x := range v {
					walk(x)
				}
			case []any:
				for _, x := range v {
					walk(x)
				}
			case string:
				if id, ok := strings.CutPrefix(v, "*Request*\n"); ok {
					out[user][id]++
				}
			}
		}
		for _, b := range m.Blocks {
			walk(b)
		}
	}
	return out
}

// TestPeopleAreToldAlongTheLifecycle: a payments-admin request asks its owners (bob on Slack with the
// review buttons and by e-mail, frank by e-mail) and tells alice it awaits approval; the owners'
// approval asks security (carol, on Slack and by e-mail); the approval and the grant reach alice, and
// the grant the SIEM webhook. Each person hears each thing once.
func TestPeopleAreToldAlongTheLifecycle(t *testing.T) {
	w := newWorld(t)
	w.run(t, "replica-a")
	id, digest := w.paymentsAdmin(t)
	poll.Until(t, 20*time.Second, "the owners asked and alice told", func() bool {
		told := w.told()
		return told["bob@example.test"][id] == 1 && told["frank@example.test"][id] == 1 && told["alice@example.test"][id] == 1 &&
			w.slackTold(t)["U0BOB"][id] == 1
	})
	posted := w.slack.Posted()
	if !strings.Contains(posted[0].BlocksJSON, render.ActionApprove) || !strings.Contains(posted[0].BlocksJSON, digest) {
		t.Errorf("bob's Slack message offers no review of this version: %s", posted[0].BlocksJSON)
	}

	bobReview := events.Reviewed{Reviewer: notifiertest.Bob, Stage: 0, Decision: events.ReviewApprove, RequestDigest: digest}
	w.Append(t, events.Approval, id, events.Draft{Payload: bobReview, Actor: "bob"})
	poll.Until(t, 20*time.Second, "security asked", func() bool {
		return w.told()["carol@example.test"][id] == 1 && w.slackTold(t)["U0CAROL"][id] == 1
	})

	w.Append(t, events.Approval, id,
		events.Draft{Payload: events.Reviewed{Reviewer: notifiertest.Carol, Stage: 1, Decision: events.ReviewApprove, RequestDigest: digest}, Actor: "carol"},
		events.Draft{Payload: events.Approved{Approvers: []string{"bob", "carol"}}})
	w.Append(t, events.Fulfilment, id, events.Draft{Payload: events.Granted{Connector: "postgres", TargetRef: "payments/admin",
		Observed: events.Observed{Present: true}, ExpiresAt: time.Now().Add(50 * time.Minute), Fulfiller: "service:fulfilment"}})
	poll.Until(t, 20*time.Second, "alice told of the approval and the grant, the SIEM of the grant", func() bool {
		return w.told()["alice@example.test"][id] == 3 && len(w.hooks.received()) == 1 && w.settled(t)
	})

	want := map[string]map[string]int{"alice@example.test": {id: 3}, "bob@example.test": {id: 1}, "frank@example.test": {id: 1},
		"carol@example.test": {id: 1}}
	if diff := cmp.Diff(want, w.told()); diff != "" {
		t.Errorf("e-mail (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]map[string]int{"U0BOB": {id: 1}, "U0CAROL": {id: 1}}, w.slackTold(t)); diff != "" {
		t.Errorf("Slack (-want +got):\n%s", diff)
	}
	if v := w.slack.Violations(); len(v) > 0 {
		t.Errorf("requests Slack would refuse: %v", v)
	}
}

// TestAChannelDownHoldsUpNoOtherAndLosesNothing: while the mail relay refuses everything, Slack
// messages still go out; once it is back, every e-mail follows, once.
func TestAChannelDownHoldsUpNoOtherAndLosesNothing(t *testing.T) {
	w := newWorld(t)
	w.mail.Refuse(true)
	w.run(t, "replica-a")
	id, _ := w.paymentsAdmin(t)
	poll.Until(t, 20*time.Second, "bob's Slack message while the mail relay is down", func() bool {
		return w.slackTold(t)["U0BOB"][id] == 1
	})
	if n := len(w.mail.Mail()); n != 0 {
		t.Fatalf("%d e-mails got through a relay that refuses everything", n)
	}
	w.mail.Refuse(false)
	poll.Until(t, 30*time.Second, "the e-mails once the relay is back", func() bool {
		told := w.told()
		return told["bob@example.test"][id] == 1 && told["frank@example.test"][id] == 1 && told["alice@example.test"][id] == 1 && w.settled(t)
	})
	if diff := cmp.Diff(map[string]map[string]int{"alice@example.test": {id: 1}, "bob@example.test": {id: 1}, "frank@example.test": {id: 1}},
		w.told()); diff != "" {
		t.Errorf("e-mail (-want +got):\n%s", diff)
	}
}

// TestABurstForOnePersonIsOneDigest: six requests in a row ask bob six times; he gets fewer e-mails
// than that, which name every request once.
func TestABurstForOnePersonIsOneDigest(t *testing.T) {
	w := newWorld(t)
	w.hold = 2 * time.Second
	w.run(t, "replica-a")
	var ids []string
	for range 6 {
		id, _ := w.paymentsAdmin(t)
		ids = append(ids, id)
	}
	poll.Until(t, 30*time.Second, "bob told of all six", func() bool {
		return len(w.told()["bob@example.test"]) == 6 && w.settled(t)
	})
	bobs := 0
	for _, m := range w.mail.Mail() {
		if m.To[0] == "bob@example.test" {
			bobs++
		}
	}
	if bobs >= 6 {
		t.Errorf("bob got %d e-mails for six requests: nothing was coalesced", bobs)
	}
	for _, id := range ids {
		if n := w.told()["bob@example.test"][id]; n != 1 {
			t.Errorf("request %s named %d times to bob", id, n)
		}
	}
	t.Logf("six review requests reached bob in %d e-mails", bobs)
}

// TestKillingTheNotifierMidBurstLosesAndDuplicatesNothing: a burst of requests is being told when a
// notifier process is killed, the way a crash would (what it holds in flight is abandoned unsettled);
// in the end every person has been told of every request exactly once, by e-mail and on Slack, as the
// mail sink and the Slack stand-in count what they received.
func TestKillingTheNotifierMidBurstLosesAndDuplicatesNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		// start starts the replicas; afterKill what takes over once the first one is killed.
		start, afterKill []string
	}{
		{"one of two replicas is killed and a third takes its place", []string{"replica-a", "replica-b"}, []string{"replica-c"}},
		{"the only replica is killed and the notifier restarts", []string{"replica-a"}, []string{"replica-a-restarted"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			// A short window keeps many small deliveries in flight when the replica dies.
			w.hold = 20 * time.Millisecond
			kill := w.run(t, tc.start[0])
			for _, owner := range tc.start[1:] {
				w.run(t, owner)
			}
			const n = 24
			var ids []string
			for i := range n {
				id, _ := w.paymentsAdmin(t)
				ids = append(ids, id)
				if i == n/3 {
					poll.Until(t, 20*time.Second, "the first e-mails", func() bool { return len(w.mail.Mail()) > 0 })
					kill()
					for _, owner := range tc.afterKill {
						w.run(t, owner)
					}
				}
			}
			poll.Until(t, 90*time.Second, fmt.Sprintf("everyone told of all %d requests", n), func() bool {
				told := w.told()
				return len(told["alice@example.test"]) == n && len(told["bob@example.test"]) == n && len(told["frank@example.test"]) == n &&
					len(w.slackTold(t)["U0BOB"]) == n && w.settled(t)
			})
			want := map[string]int{}
			for _, id := range ids {
				want[id] = 1
			}
			told := w.told()
			for _, mailbox := range []string{"alice@example.test", "bob@example.test", "frank@example.test"} {
				if diff := cmp.Diff(want, told[mailbox]); diff != "" {
					t.Errorf("%s (-want +got):\n%s", mailbox, diff)
				}
			}
			if diff := cmp.Diff(want, w.slackTold(t)["U0BOB"]); diff != "" {
				t.Errorf("bob on Slack (-want +got):\n%s", diff)
			}
			b, _ := json.Marshal(map[string]int{"e-mails": len(w.mail.Mail()), "slack messages": len(w.slack.Posted())})
			t.Logf("%d requests told in %s", n, b)
		})
	}
}

// TestTheHolderIsWarnedBeforeExpiry: a grant arms its expiry warning as a JetStream schedule; when it
// fires, the holder is told their access ends soon, once.
func TestTheHolderIsWarnedBeforeExpiry(t *testing.T) {
	w := newWorld(t)
	w.run(t, "replica-a")
	// The routing file warns 15 minutes ahead: this grant's warning is due two seconds from now.
	id := w.granted(t, time.Now().Add(15*time.Minute+2*time.Second))
	poll.Until(t, 30*time.Second, "the expiry warning", func() bool {
		for _, m := range w.mail.Mail() {
			if strings.HasPrefix(m.Subject, "Your access to analytics-read ends at") {
				return w.settled(t)
			}
		}
		return false
	})
	if n := w.told()["alice@example.test"][id]; n != 2 {
		t.Errorf("alice was told %d things about her grant, want 2 (granted, then the warning)", n)
	}
}

// TestARefusedMailboxIsDeadLetteredAndHoldsUpNobody: the relay refuses frank's mailbox for good; his
// notification is set aside in GRANTLINE_DLQ with the reason, and everyone else is told.
func TestARefusedMailboxIsDeadLetteredAndHoldsUpNobody(t *testing.T) {
	w := newWorld(t)
	w.mail.RefuseRecipient("frank@example.test")
	w.run(t, "replica-a")
	id, _ := w.paymentsAdmin(t)
	dlq, err := w.JS.Stream(context.Background(), topology.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	var reason string
	var letter uint64
	poll.Until(t, 20*time.Second, "frank's notification dead-lettered, bob and alice told", func() bool {
		m, err := dlq.GetLastMsgForSubject(context.Background(), topology.DeadLetter(topology.NotifierEmail.Durable))
		if err != nil {
			return false
		}
		reason, letter = m.Header.Get(consumer.HeaderReason), m.Sequence
		told := w.told()
		return told["bob@example.test"][id] == 1 && told["alice@example.test"][id] == 1 && w.settled(t)
	})
	if !strings.Contains(reason, "550") {
		t.Errorf("dead-letter reason %q does not give the relay's answer", reason)
	}
	if n := len(w.told()["frank@example.test"]); n != 0 {
		t.Errorf("frank's refused mailbox received %d", n)
	}

	// A delivery set aside leaves the outbox, so there is no original left to replay: the operator is
	// told so rather than left waiting for a mail that cannot come.
	if _, err := deadletter.Replay(context.Background(), w.JS, letter, "dave", "mailbox restored"); !errors.Is(err, deadletter.ErrOriginalGone) {
		t.Fatalf("replay of a channel's dead letter: %v, want ErrOriginalGone", err)
	}
}

// TestAWebhookTargetDownHoldsUpNoOther: while the audit webhook answers 503 the SIEM still gets the
// grant; the audit target is retried (its breaker shields it from a call per retry) and gets it once
// it is back.
func TestAWebhookTargetDownHoldsUpNoOther(t *testing.T) {
	w := newWorld(t)
	w.audit.setDown(true)
	w.run(t, "replica-a")
	w.granted(t, time.Now().Add(time.Hour))
	poll.Until(t, 20*time.Second, "the SIEM told while the audit target's breaker opens", func() bool {
		return len(w.hooks.received()) == 1 && strings.Contains(w.logs.String(), `msg="circuit breaker" replica=replica-a target=webhook:audit from=closed to=open`)
	})
	if strings.Contains(w.logs.String(), "target=webhook:siem from=closed to=open") {
		t.Error("the SIEM's breaker opened for the audit target's failures")
	}
	w.audit.setDown(false)
	poll.Until(t, 30*time.Second, "the audit target told once it is back", func() bool {
		return len(w.audit.received()) == 1 && w.settled(t)
	})
	if n := len(w.hooks.received()); n != 1 {
		t.Errorf("the SIEM received %d, want 1", n)
	}
}

// TestAnEventItCannotVerifyIsSetAsideAndReplayedOnce: an event forged into the evidence stream fails
// verification, so the notifier's planner sets it aside; the operator's replay hands the original to
// the planner again, which sets it aside anew as the replay's own dead letter, once however often the
// replay is asked for.
func TestAnEventItCannotVerifyIsSetAsideAndReplayedOnce(t *testing.T) {
	w := newWorld(t)
	w.run(t, "replica-a")
	ctx := context.Background()
	if _, err := w.JS.Publish(ctx, events.NATSSubject(events.NewID(), events.TypeSubmitted), []byte(`{"forged":true}`)); err != nil {
		t.Fatal(err)
	}
	letters := func() []deadletter.Letter {
		l, err := deadletter.List(ctx, w.JS)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	poll.Until(t, 20*time.Second, "the forged event set aside", func() bool { return len(letters()) == 1 })
	first := letters()[0]
	if first.Consumer != topology.NotifierEvents.Durable || first.Stream != topology.EventsStream {
		t.Fatalf("dead letter %+v", first)
	}
	if _, err := deadletter.Replay(ctx, w.JS, first.Seq, "dave", "trust file fixed"); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 20*time.Second, "the replay set aside anew", func() bool {
		l := letters()
		return len(l) == 2 && l[1].ReplayOf == first.Seq && l[1].StreamSeq == first.StreamSeq && w.settled(t)
	})
	if _, err := deadletter.Replay(ctx, w.JS, first.Seq, "dave", "again"); !errors.Is(err, deadletter.ErrAlreadyReplayed) {
		t.Fatalf("a second replay: %v", err)
	}
	replays, err := w.JS.Consumer(ctx, topology.DLQStream, topology.ReplayConsumer(topology.NotifierEvents.Durable).Durable)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := replays.Info(ctx); err != nil || info.Delivered.Consumer != 1 || info.NumAckPending != 0 || len(letters()) != 2 {
		t.Fatalf("after two replays: %+v, %v, %d dead letters", info, err, len(letters()))
	}
}
