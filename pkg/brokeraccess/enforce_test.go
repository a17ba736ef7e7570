package brokeraccess_test

import (
	"context"
	"encoding/json/v2"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/topology"
)

// TestOnlyTheEmitterAppendsEachType: every user but the operator tries to append every event type of
// the catalogue with a JetStream publish; the broker refuses all but the types the user's service emits
// (none for the read side, the auditor and the integrations), and those are stored.
func TestOnlyTheEmitterAppendsEachType(t *testing.T) {
	b := startBroker(t)
	for _, u := range brokeraccess.Users(integrations) {
		if u == brokeraccess.Operator {
			continue
		}
		t.Run(string(u), func(t *testing.T) {
			c := b.connect(t, u)
			for _, typ := range events.AllTypes {
				subject := events.NATSSubject(events.NewID(), typ)
				refused, err := c.do(t, subject, func(ctx context.Context) error {
					_, err := c.js.Publish(ctx, subject, []byte("{}"))
					return err
				})
				emitter, _ := events.Emitter(typ)
				mine := string(emitter) == string(u)
				switch {
				case mine && (refused || err != nil):
					t.Errorf("%s could not append its own %s: refused %v, %v", u, typ.Name(), refused, err)
				case !mine && !refused:
					t.Errorf("%s appended %s, which only %s emits (%v)", u, typ.Name(), emitter, err)
				}
			}
		})
	}
}

// TestNobodyButTheOperatorChangesTheEvidence: every other user sends real requests to delete, purge,
// reconfigure (deny_delete off) and recreate GRANTLINE_EVENTS and to delete one of its messages; the
// broker refuses each, and the stream is unchanged afterwards.
func TestNobodyButTheOperatorChangesTheEvidence(t *testing.T) {
	b := startBroker(t)
	ctx := context.Background()
	op := b.connect(t, brokeraccess.Operator)
	ack, err := op.js.Publish(ctx, events.NATSSubject(events.NewID(), events.TypeSubmitted), []byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	evidence, err := op.js.Stream(ctx, topology.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	before := evidence.CachedInfo()
	loosened := before.Config
	loosened.DenyDelete, loosened.DenyPurge = false, false
	api := "$JS.API.STREAM."
	for _, u := range brokeraccess.Users(integrations) {
		if u == brokeraccess.Operator {
			continue
		}
		c := b.connect(t, u)
		request := func(subject string, body []byte) (string, func(context.Context) error) {
			return subject, func(ctx context.Context) error {
				_, err := c.nc.RequestWithContext(ctx, subject, body)
				return err
			}
		}
		msgDelete, _ := json.Marshal(map[string]any{"seq": ack.Sequence, "no_erase": true})
		for _, a := range []struct {
			what    string
			subject string
			call    func(context.Context) error
		}{
			{"delete the stream", api + "DELETE." + topology.EventsStream, func(ctx context.Context) error {
				return c.js.DeleteStream(ctx, topology.EventsStream)
			}},
			{"reconfigure it with deletes allowed", api + "UPDATE." + topology.EventsStream, func(ctx context.Context) error {
				_, err := c.js.UpdateStream(ctx, loosened)
				return err
			}},
			{"create it anew", api + "CREATE." + topology.EventsStream, func(ctx context.Context) error {
				_, err := c.js.CreateStream(ctx, loosened)
				return err
			}},
		} {
			if refused, err := c.do(t, a.subject, a.call); !refused {
				t.Errorf("%s could %s (%v)", u, a.what, err)
			}
		}
		for what, body := range map[string][]byte{"purge it": []byte("{}"), "delete a message": msgDelete} {
			subject, call := request(api+"PURGE."+topology.EventsStream, body)
			if what == "delete a message" {
				subject, call = request(api+"MSG.DELETE."+topology.EventsStream, body)
			}
			if refused, err := c.do(t, subject, call); !refused {
				t.Errorf("%s could %s (%v)", u, what, err)
			}
		}
	}
	after, err := op.js.Stream(ctx, topology.EventsStream)
	if err != nil {
		t.Fatalf("the evidence stream after the attempts: %v", err)
	}
	got := after.CachedInfo()
	if !got.Config.DenyDelete || !got.Config.DenyPurge || got.State.Msgs != before.State.Msgs || got.Created != before.Created {
		t.Fatalf("the evidence stream changed: deny_delete %v, deny_purge %v, %d messages (was %d), created %s (was %s)",
			got.Config.DenyDelete, got.Config.DenyPurge, got.State.Msgs, before.State.Msgs, got.Created, before.Created)
	}
}

// TestTheOperatorMaintainsStreams: the operator creates, reconfigures and purges a throwaway stream,
// deletes one of its messages and deletes it.
func TestTheOperatorMaintainsStreams(t *testing.T) {
	b := startBroker(t)
	ctx := context.Background()
	op := b.connect(t, brokeraccess.Operator)
	cfg := jetstream.StreamConfig{Name: "THROWAWAY", Subjects: []string{"throwaway.>"}, Storage: jetstream.MemoryStorage}
	st, err := op.js.CreateStream(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := op.js.Publish(ctx, fmt.Sprintf("throwaway.%d", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	cfg.Description = "reconfigured"
	if _, err := op.js.UpdateStream(ctx, cfg); err != nil {
		t.Fatalf("update: %v", err)
	}
	if err := st.DeleteMsg(ctx, 1); err != nil {
		t.Fatalf("delete a message: %v", err)
	}
	if err := st.Purge(ctx); err != nil {
		t.Fatalf("purge: %v", err)
	}
	if err := op.js.DeleteStream(ctx, cfg.Name); err != nil {
		t.Fatalf("delete: %v", err)
	}
}

// TestTheAuditorReadsAndWritesNothing: the auditor reads the evidence (stream info, a direct get, an
// ordered consumer) and every write it tries is refused.
func TestTheAuditorReadsAndWritesNothing(t *testing.T) {
	b := startBroker(t)
	ctx := context.Background()
	op := b.connect(t, brokeraccess.Operator)
	id := events.NewID()
	if _, err := op.js.Publish(ctx, events.NATSSubject(id, events.TypeSubmitted), []byte(`{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	a := b.connect(t, brokeraccess.Auditor)
	st, err := a.js.Stream(ctx, topology.EventsStream)
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	msg, err := st.GetLastMsgForSubject(ctx, events.RequestFilter(id))
	if err != nil {
		t.Fatalf("direct get: %v", err)
	}
	if string(msg.Data) != `{"n":1}` {
		t.Fatalf("direct get returned %q", msg.Data)
	}
	cons, err := a.js.OrderedConsumer(ctx, topology.EventsStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{events.AllSubjects}})
	if err != nil {
		t.Fatalf("ordered consumer: %v", err)
	}
	if m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second)); err != nil || m.Subject() != events.NATSSubject(id, events.TypeSubmitted) {
		t.Fatalf("replay through an ordered consumer: %v", err)
	}
	for _, subject := range []string{topology.IntegrationRequests("servicenow"), topology.DeadLetter("auditor"),
		topology.TimerSchedule(id, topology.TimerExpiry), topology.BucketKey(topology.CredentialsBucket, "x")} {
		if refused, err := a.do(t, subject, func(ctx context.Context) error { _, err := a.js.Publish(ctx, subject, []byte("{}")); return err }); !refused {
			t.Errorf("the auditor published to %s (%v)", subject, err)
		}
	}
	credentials := "$JS.API.DIRECT.GET." + topology.BucketStream(topology.CredentialsBucket)
	if refused, err := a.do(t, credentials, func(ctx context.Context) error {
		_, err := a.nc.RequestWithContext(ctx, credentials, []byte(`{"last_by_subj":"`+topology.BucketKey(topology.CredentialsBucket, "x")+`"}`))
		return err
	}); !refused {
		t.Errorf("the auditor read the credentials bucket (%v)", err)
	}
}

// TestServicesUseOnlyTheirOwnConsumers: each service creates its durable consumers; another service can
// neither read their state nor pull from them, while the services that scan the stream with ordered
// consumers may.
func TestServicesUseOnlyTheirOwnConsumers(t *testing.T) {
	b := startBroker(t)
	ctx := context.Background()
	clients := map[brokeraccess.User]*client{}
	var all []topology.Consumer
	for _, svc := range events.Services {
		u := brokeraccess.User(svc)
		clients[u] = b.connect(t, u)
		a, _ := brokeraccess.AccessOf(u)
		for _, c := range a.Consumers {
			if _, err := clients[u].js.CreateOrUpdateConsumer(ctx, c.Stream, jetstream.ConsumerConfig{Durable: c.Durable,
				FilterSubjects: []string{"grantline.>"}, AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
				t.Fatalf("%s creating its consumer %s: %v", u, c.Durable, err)
			}
			all = append(all, c)
		}
	}
	for u, c := range clients {
		a, _ := brokeraccess.AccessOf(u)
		for _, other := range all {
			subject := "$JS.API.CONSUMER.INFO." + other.Stream + "." + other.Durable
			refused, err := c.do(t, subject, func(ctx context.Context) error { _, err := c.js.Consumer(ctx, other.Stream, other.Durable); return err })
			if mine := slices.Contains(a.Consumers, other); mine == refused {
				t.Errorf("%s reading consumer %s: refused %v (%v), want refused %v", u, other.Durable, refused, err, !mine)
			}
		}
	}
	q := b.connect(t, brokeraccess.Query)
	if _, err := q.js.OrderedConsumer(ctx, topology.EventsStream, jetstream.OrderedConsumerConfig{}); err != nil {
		t.Fatalf("the read side's ordered consumer: %v", err)
	}
}

// TestAnIntegrationSubmitsOnlyAsItself: servicenow publishes requests on its own subject and reads its
// own outcomes; hr-feed's subjects and the evidence are refused to it.
func TestAnIntegrationSubmitsOnlyAsItself(t *testing.T) {
	b := startBroker(t)
	c := b.connect(t, brokeraccess.Integration("servicenow"))
	for subject, allowed := range map[string]bool{
		topology.IntegrationRequests("servicenow"): true,
		topology.IntegrationRequests("hr-feed"):    false,
		topology.IntegrationOutcomes("servicenow"): false,
	} {
		refused, err := c.do(t, subject, func(ctx context.Context) error { _, err := c.js.Publish(ctx, subject, []byte("{}")); return err })
		if refused == allowed || allowed && err != nil {
			t.Errorf("servicenow publishing to %s: refused %v (%v), want allowed %v", subject, refused, err, allowed)
		}
	}
	for subject, allowed := range map[string]bool{
		topology.IntegrationOutcomes("servicenow"):   true,
		topology.IntegrationOutcomes("hr-feed"):      false,
		topology.IntegrationDeliveries("servicenow"): true,
		topology.IntegrationDeliveries("hr-feed"):    false,
		events.AllSubjects:                           false,
		"_INBOX.>":                                   false,
	} {
		sub, err := c.nc.SubscribeSync(subject)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.nc.Flush(); err != nil {
			t.Fatal(err)
		}
		_ = sub.Unsubscribe()
		// The server refuses a subscription before it answers the flush's ping, and the client records
		// the refusal as its last error before it handles that answer.
		last := c.nc.LastError()
		refused := last != nil && strings.Contains(last.Error(), fmt.Sprintf("Subscription to %q", subject))
		if refused == allowed {
			t.Errorf("servicenow subscribing to %s: refused %v, want allowed %v", subject, refused, allowed)
		}
	}
}

// TestAnIntegrationOnlyBindsToItsOwnConsumer: servicenow binds to the consumer the operator provisioned
// for it as its CloudEvents SDK does (nats.Bind with the older JetStream API), receives its outcomes and
// acknowledges them. It creates no consumer, even one filtered to its own outcomes: not one delivering
// them into the evidence, by either create API, nor its own consumer re-delivered there; it deletes
// nothing, and cannot bind to hr-feed's consumer or acknowledge for it. The evidence stays empty.
func TestAnIntegrationOnlyBindsToItsOwnConsumer(t *testing.T) {
	b := startBroker(t)
	ctx := context.Background()
	op := b.connect(t, brokeraccess.Operator)
	c := b.connect(t, brokeraccess.Integration("servicenow"))
	mine, theirs := topology.IntegrationConsumer("servicenow"), topology.IntegrationConsumer("hr-feed")
	legacy, err := c.nc.JetStream(nats.MaxWait(2 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	sub, err := legacy.QueueSubscribeSync(topology.IntegrationOutcomes("servicenow"), topology.IntegrationDeliverGroup("servicenow"),
		nats.Bind(mine.Stream, mine.Durable), nats.ManualAck())
	if err != nil {
		t.Fatalf("servicenow binding to %s: %v", mine.Durable, err)
	}
	if _, err := op.js.Publish(ctx, topology.IntegrationOutcomes("servicenow"), []byte("accepted")); err != nil {
		t.Fatal(err)
	}
	m, err := sub.NextMsg(10 * time.Second)
	if err != nil || string(m.Data) != "accepted" {
		t.Fatalf("servicenow's outcome: %v %v", m, err)
	}
	if err := m.AckSync(); err != nil {
		t.Fatalf("servicenow acknowledging its outcome: %v", err)
	}

	intoEvidence := jetstream.ConsumerConfig{FilterSubject: topology.IntegrationOutcomes("servicenow"),
		DeliverSubject: events.NATSSubject(events.NewID(), events.TypeSubmitted), AckPolicy: jetstream.AckNonePolicy}
	sneaky := intoEvidence
	sneaky.Durable = "sneaky"
	redirected := intoEvidence
	redirected.Durable, redirected.DeliverGroup = mine.Durable, topology.IntegrationDeliverGroup("servicenow")
	redirected.AckPolicy = jetstream.AckExplicitPolicy // an update may change the deliver subject, not the ack policy
	legacyBody := []byte(`{"stream_name":"` + mine.Stream + `","config":{"durable_name":"sneaky","deliver_subject":"` + intoEvidence.DeliverSubject +
		`","filter_subject":"` + intoEvidence.FilterSubject + `","ack_policy":"none"}}`)
	for _, tc := range []struct {
		what, subject string
		call          func(context.Context) error
	}{
		{"create a consumer delivering its outcomes into the evidence",
			"$JS.API.CONSUMER.CREATE." + mine.Stream + ".sneaky." + sneaky.FilterSubject,
			func(ctx context.Context) error {
				_, err := c.js.CreatePushConsumer(ctx, mine.Stream, sneaky)
				return err
			}},
		{"re-deliver its own consumer into the evidence",
			"$JS.API.CONSUMER.CREATE." + mine.Stream + "." + mine.Durable + "." + redirected.FilterSubject,
			func(ctx context.Context) error {
				_, err := c.js.CreateOrUpdatePushConsumer(ctx, mine.Stream, redirected)
				return err
			}},
		{"create a durable delivering into the evidence by the older API",
			"$JS.API.CONSUMER.DURABLE.CREATE." + mine.Stream + ".sneaky",
			func(ctx context.Context) error {
				_, err := c.nc.RequestWithContext(ctx, "$JS.API.CONSUMER.DURABLE.CREATE."+mine.Stream+".sneaky", legacyBody)
				return err
			}},
		{"delete its own consumer", "$JS.API.CONSUMER.DELETE." + mine.Stream + "." + mine.Durable,
			func(ctx context.Context) error { return c.js.DeleteConsumer(ctx, mine.Stream, mine.Durable) }},
		{"bind to hr-feed's consumer", "$JS.API.CONSUMER.INFO." + theirs.Stream + "." + theirs.Durable,
			func(context.Context) error {
				_, err := legacy.QueueSubscribeSync(topology.IntegrationOutcomes("hr-feed"), topology.IntegrationDeliverGroup("hr-feed"),
					nats.Bind(theirs.Stream, theirs.Durable))
				return err
			}},
		{"acknowledge for hr-feed's consumer", "$JS.ACK." + theirs.Stream + "." + theirs.Durable + ".1.1.1.0.0",
			func(ctx context.Context) error {
				_, err := c.nc.RequestWithContext(ctx, "$JS.ACK."+theirs.Stream+"."+theirs.Durable+".1.1.1.0.0", nil)
				return err
			}},
	} {
		if refused, err := c.do(t, tc.subject, tc.call); !refused || err == nil {
			t.Errorf("servicenow may not %s: refused %v (%v)", tc.what, refused, err)
		}
	}
	evidence, err := op.js.Stream(ctx, topology.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := evidence.Info(ctx); err != nil || info.State.Msgs != 0 {
		t.Fatalf("the evidence after servicenow's attempts: %d messages (%v)", info.State.Msgs, err)
	}
	got, err := op.js.PushConsumer(ctx, mine.Stream, mine.Durable)
	if err != nil || got.CachedInfo().Config.DeliverSubject != topology.IntegrationDeliveries("servicenow") {
		t.Fatalf("servicenow's consumer after its attempts: %v", err)
	}
}
