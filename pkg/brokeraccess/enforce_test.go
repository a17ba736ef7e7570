package brokeraccess_test

import (
	"context"
	"encoding/json/v2"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

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
		topology.IntegrationOutcomes("servicenow"): true,
		topology.IntegrationOutcomes("hr-feed"):    false,
		events.AllSubjects:                         false,
		"_INBOX.>":                                 false,
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

// TestAnIntegrationFollowsOnlyItsOwnOutcomes: servicenow may look the intake stream up and create (and
// delete) consumers of it filtered to its own outcomes, as its SDK's JetStream binding does; hr-feed's
// outcomes, the whole stream and intake's durable consumer are refused to it.
func TestAnIntegrationFollowsOnlyItsOwnOutcomes(t *testing.T) {
	b := startBroker(t)
	c := b.connect(t, brokeraccess.Integration("servicenow"))
	if refused, err := c.do(t, "$JS.API.STREAM.INFO."+topology.IntakeStream, func(ctx context.Context) error {
		_, err := c.js.Stream(ctx, topology.IntakeStream)
		return err
	}); refused || err != nil {
		t.Fatalf("servicenow looking up the intake stream: refused %v (%v)", refused, err)
	}
	for _, tc := range []struct {
		what, name, filter string
		allowed            bool
	}{
		{"its own outcomes", "mine", topology.IntegrationOutcomes("servicenow"), true},
		{"hr-feed's outcomes", "theirs", topology.IntegrationOutcomes("hr-feed"), false},
		{"the whole stream", "all", topology.IntakeSubjects, false},
		{"intake's consumer re-filtered", topology.IntakeIntegrations.Durable, topology.IntegrationOutcomes("servicenow"), false},
	} {
		subject := "$JS.API.CONSUMER.CREATE." + topology.IntakeStream + "." + tc.name + "." + tc.filter
		refused, err := c.do(t, subject, func(ctx context.Context) error {
			_, err := c.js.CreateOrUpdateConsumer(ctx, topology.IntakeStream, jetstream.ConsumerConfig{Name: tc.name, FilterSubject: tc.filter,
				DeliverPolicy: jetstream.DeliverNewPolicy, InactiveThreshold: time.Minute})
			return err
		})
		if refused == tc.allowed || tc.allowed && err != nil {
			t.Errorf("servicenow following %s: refused %v (%v), want allowed %v", tc.what, refused, err, tc.allowed)
		}
	}
	for name, allowed := range map[string]bool{"mine": true, topology.IntakeIntegrations.Durable: false} {
		subject := "$JS.API.CONSUMER.DELETE." + topology.IntakeStream + "." + name
		refused, err := c.do(t, subject, func(ctx context.Context) error { return c.js.DeleteConsumer(ctx, topology.IntakeStream, name) })
		if refused == allowed || allowed && err != nil {
			t.Errorf("servicenow deleting consumer %s: refused %v (%v), want allowed %v", name, refused, err, allowed)
		}
	}
}
