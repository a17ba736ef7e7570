package brokeraccess

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/topology"
)

// Report is what Probe found: for each user probed, how many operations it attempted and how many of
// them the broker refused, and every attempt whose outcome differs from what DESIGN §3.3 allows.
type Report struct {
	// Users are the users probed, in matrix order.
	Users []User
	// Attempts and Refused count, per user, the operations tried and those the broker refused.
	Attempts map[User]int
	Refused  map[User]int
	// Unexpected describes each attempt the broker allowed that it should refuse, or the reverse. An
	// empty list means the broker enforces the separation of duties for everything probed.
	Unexpected []string
}

// String is the report as a table, one row per user, followed by the unexpected outcomes.
func (r Report) String() string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "USER\tATTEMPTS\tREFUSED\tALLOWED")
	for _, u := range r.Users {
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\n", u, r.Attempts[u], r.Refused[u], r.Attempts[u]-r.Refused[u])
	}
	_ = w.Flush()
	if len(r.Unexpected) == 0 {
		b.WriteString("every outcome as expected\n")
	}
	for _, u := range r.Unexpected {
		b.WriteString("UNEXPECTED: " + u + "\n")
	}
	return b.String()
}

// Probe connects to the broker at url (comma-separated for a cluster) as each user in creds (user →
// NKey seed file) and tries, as that user, what separation of duties forbids or allows: appending each
// event type, deleting, purging, reconfiguring or creating each stream and deleting messages from it,
// reading the evidence, pulling from and deleting every durable consumer, reading and writing every
// key-value bucket, scheduling every timer kind and faking a fired timer, publishing every
// integration's requests and intake's outcomes, creating consumers that would deliver them into the
// evidence, binding to and acknowledging for each integration's consumer, re-filtering and
// acknowledging for every durable consumer, dead-lettering, and subscribing to the
// evidence, to every inbox and to its own.
//
// Every attempt is harmless even where the broker wrongly allows it: writes carry an expected-stream
// header no stream has, so JetStream stores nothing; destructive API requests carry a body the server
// rejects before acting; nothing waits for a reply. The broker's verdict is its "Permissions Violation"
// error, which arrives before the answer to the flush that follows each attempt.
//
// It returns an error only when it cannot probe (a user outside the matrix, a seed file, a connection);
// what the broker allowed or refused is in the Report.
func Probe(ctx context.Context, url string, creds map[User]string) (Report, error) {
	var integrations []string
	for u := range creds {
		if _, known := AccessOf(u); !known && u != Operator {
			return Report{}, fmt.Errorf("brokeraccess: no user %q in the matrix", u)
		}
		if name, ok := u.IntegrationName(); ok {
			integrations = append(integrations, name)
		}
	}
	slices.Sort(integrations)
	r := Report{Attempts: map[User]int{}, Refused: map[User]int{}}
	for _, u := range Users(integrations) {
		seed, ok := creds[u]
		if !ok {
			continue
		}
		r.Users = append(r.Users, u)
		if err := probeUser(ctx, url, u, seed, integrations, &r); err != nil {
			return r, err
		}
	}
	return r, nil
}

// attempt is one operation and whether DESIGN §3.3 lets its user do it.
type attempt struct {
	what      string
	subject   string
	subscribe bool
	header    nats.Header
	body      string
	allowed   bool
}

// noStream is the expected stream of every probing write: no stream has that name, so a write the
// broker lets through is refused by JetStream and stores nothing.
const noStream = "GRANTLINE_BROKERACCESS_PROBE"

func probeUser(ctx context.Context, url string, u User, seedFile string, integrations []string, r *Report) error {
	opts, err := ClientOptions(u, seedFile)
	if err != nil {
		return err
	}
	// A violation is reported through the error handler as well; the probe reads LastError instead,
	// which the client sets before it handles the flush's answer.
	opts = append(opts, nats.Name("grantline-brokeraccess-probe-"+string(u)), nats.NoReconnect(),
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return fmt.Errorf("probe as %s: connect: %w", u, err)
	}
	defer nc.Close()
	for _, a := range attempts(u, integrations) {
		if err := ctx.Err(); err != nil {
			return err
		}
		refused, err := try(ctx, nc, a)
		if err != nil {
			return fmt.Errorf("probe as %s: %s: %w", u, a.what, err)
		}
		r.Attempts[u]++
		if refused {
			r.Refused[u]++
		}
		switch {
		case refused && a.allowed:
			r.Unexpected = append(r.Unexpected, fmt.Sprintf("%s may %s (%s) but the broker refused it", u, a.what, a.subject))
		case !refused && !a.allowed:
			r.Unexpected = append(r.Unexpected, fmt.Sprintf("%s must not %s (%s) but the broker allowed it", u, a.what, a.subject))
		}
	}
	return nil
}

// try makes one attempt and reports whether the broker refused it. The server answers a publish or
// subscription it refuses with -ERR before it answers the PING of the flush, so once the flush returns,
// the connection's last error names the subject if, and only if, the attempt was refused.
func try(ctx context.Context, nc *nats.Conn, a attempt) (bool, error) {
	var sub *nats.Subscription
	var err error
	if a.subscribe {
		sub, err = nc.SubscribeSync(a.subject)
	} else {
		err = nc.PublishMsg(&nats.Msg{Subject: a.subject, Header: a.header, Data: []byte(a.body)})
	}
	if err != nil {
		return false, err
	}
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := nc.FlushWithContext(fctx); err != nil {
		return false, err
	}
	if sub != nil {
		_ = sub.Unsubscribe()
	}
	verb := "Publish to"
	if a.subscribe {
		verb = "Subscription to"
	}
	last := nc.LastError()
	return errors.Is(last, nats.ErrPermissionViolation) && strings.Contains(last.Error(), fmt.Sprintf("%s %q", verb, a.subject)), nil
}

// attempts lists what u tries, each subject once (a repeated subject could not be told apart in the
// connection's last error), with what DESIGN §3.3 expects: the operator may do anything; a service
// appends only the types it emits, schedules only its own timers and uses only its own consumers and
// buckets; nobody else deletes, purges or reconfigures a stream.
func attempts(u User, integrations []string) []attempt {
	op := u == Operator
	a, _ := AccessOf(u)
	svc, notService := events.ParseService(string(u))
	probeWrite := nats.Header{"Nats-Expected-Stream": []string{noStream}}
	var out []attempt
	write := func(what, subject string, allowed bool) {
		out = append(out, attempt{what: what, subject: subject, header: probeWrite, body: "{}", allowed: op || allowed})
	}
	api := func(what, subject, body string, allowed bool) {
		out = append(out, attempt{what: what, subject: subject, body: body, allowed: op || allowed})
	}
	subscribe := func(what, subject string, allowed bool) {
		out = append(out, attempt{what: what, subject: subject, subscribe: true, allowed: op || allowed})
	}

	for _, t := range events.AllTypes {
		emitter, _ := events.Emitter(t)
		write("append "+t.Name(), events.NATSSubject(events.NewID(), t), notService == nil && emitter == svc)
	}
	for _, s := range topology.Streams() {
		// Each body is one the server rejects before it acts, should the broker let it through.
		api("delete stream "+s, jsAPI+"STREAM.DELETE."+s, `{"probe":true}`, false)
		api("purge stream "+s, jsAPI+"STREAM.PURGE."+s, `{"seq":1,"keep":1}`, false)
		api("reconfigure stream "+s, jsAPI+"STREAM.UPDATE."+s, "not a stream configuration", false)
		api("create stream "+s, jsAPI+"STREAM.CREATE."+s, "not a stream configuration", false)
		api("delete a message of "+s, jsAPI+"STREAM.MSG.DELETE."+s, "not a delete request", false)
		api("read the state of "+s, jsAPI+"STREAM.INFO."+s, "", a.JetStream || slices.ContainsFunc(a.Binds, func(c topology.Consumer) bool { return c.Stream == s }))
	}
	api("find streams by subject", jsAPI+"STREAM.NAMES", `{"subject":"`+topology.IntakeSubjects+`"}`, false)
	api("follow the whole intake stream", jsAPI+"CONSUMER.CREATE."+topology.IntakeStream+".probe", "not a consumer configuration", false)
	api("follow every intake subject", jsAPI+"CONSUMER.CREATE."+topology.IntakeStream+".probe."+topology.IntakeSubjects, "not a consumer configuration", false)
	api("delete an ephemeral consumer of "+topology.IntakeStream, jsAPI+"CONSUMER.DELETE."+topology.IntakeStream+".probe", `{"probe":true}`, false)
	api("read events directly", jsAPI+"DIRECT.GET."+topology.EventsStream, `{"last_by_subj":"`+events.RequestFilter("probe")+`"}`,
		slices.Contains(a.Reads, topology.EventsStream))
	for _, c := range topology.Durables() {
		own := slices.Contains(a.Consumers, c)
		api("pull from "+c.Durable, jsAPI+"CONSUMER.MSG.NEXT."+c.Stream+"."+c.Durable, `{"batch":1}`, own)
		api("delete consumer "+c.Durable, jsAPI+"CONSUMER.DELETE."+c.Stream+"."+c.Durable, `{"probe":true}`, own)
		// A create is also an update: onto an integration's outcomes, a durable would stop doing its work.
		api("re-filter consumer "+c.Durable, jsAPI+"CONSUMER.CREATE."+c.Stream+"."+c.Durable+"."+topology.IntegrationOutcomes("probe"),
			"not a consumer configuration", own)
		// An acknowledgement of a sequence never delivered changes nothing, should the broker let it through.
		write("acknowledge for "+c.Durable, "$JS.ACK."+c.Stream+"."+c.Durable+".1.999999999.999999999.0.0", own)
	}
	for _, b := range topology.Buckets() {
		own := slices.Contains(a.Buckets, b)
		api("read bucket "+b, jsAPI+"DIRECT.GET."+topology.BucketStream(b), `{"last_by_subj":"`+topology.BucketKey(b, "probe")+`"}`, own)
		write("write bucket "+b, topology.BucketKey(b, "probe"), own || slices.Contains(a.Discards, b))
	}
	for _, kind := range topology.TimerKinds() {
		write("schedule a "+kind+" timer", topology.TimerSchedule(events.NewID(), kind), slices.Contains(a.Timers, kind))
		write("fake a fired "+kind+" timer", topology.TimerFired(events.NewID(), kind), false)
	}
	for _, name := range integrations {
		write("submit as integration "+name, topology.IntegrationRequests(name), u == Integration(name))
		write("answer integration "+name, topology.IntegrationOutcomes(name), u == Intake)
		subscribe("read integration "+name+"'s outcomes", topology.IntegrationOutcomes(name), u == Integration(name))
		// Only the operator creates consumers for integrations: a push consumer's deliver subject is not
		// held to its creator's permissions, so this one would write name's outcomes into the evidence.
		// The body's ack policy is one the server cannot read, so it creates nothing if let through.
		intoEvidence := `{"stream_name":"` + topology.IntakeStream + `","config":{"deliver_subject":"` +
			events.NATSSubject(events.NewID(), events.TypeSubmitted) + `","filter_subject":"` + topology.IntegrationOutcomes(name) + `","ack_policy":"probe"}}`
		api("follow integration "+name+"'s outcomes into the evidence", jsAPI+"CONSUMER.CREATE."+topology.IntakeStream+".probe."+topology.IntegrationOutcomes(name),
			intoEvidence, false)
		c := topology.IntegrationConsumer(name)
		mine := slices.Contains(a.Binds, c)
		api("re-deliver "+c.Durable+" into the evidence", jsAPI+"CONSUMER.CREATE."+c.Stream+"."+c.Durable+"."+topology.IntegrationOutcomes(name), intoEvidence, false)
		api("re-deliver "+c.Durable+" by the older API", jsAPI+"CONSUMER.DURABLE.CREATE."+c.Stream+"."+c.Durable, intoEvidence, false)
		api("delete consumer "+c.Durable, jsAPI+"CONSUMER.DELETE."+c.Stream+"."+c.Durable, `{"probe":true}`, false)
		api("pull from "+c.Durable, jsAPI+"CONSUMER.MSG.NEXT."+c.Stream+"."+c.Durable, `{"batch":1}`, false)
		api("bind to "+c.Durable, jsAPI+"CONSUMER.INFO."+c.Stream+"."+c.Durable, "", mine)
		subscribe("receive "+c.Durable+"'s deliveries", topology.IntegrationDeliveries(name), mine)
		write("acknowledge for "+c.Durable, "$JS.ACK."+c.Stream+"."+c.Durable+".1.999999999.999999999.0.0", mine)
	}
	for _, c := range topology.Durables() {
		own := slices.Contains(a.Consumers, c)
		write("dead-letter as "+c.Durable, topology.DeadLetter(c.Durable), own)
		write("ask "+c.Durable+" for a replay", topology.DeadLetterReplay(c.Durable, "1"), false)
		replays := topology.ReplayConsumer(c.Durable)
		api("pull replays of "+c.Durable, jsAPI+"CONSUMER.MSG.NEXT."+replays.Stream+"."+replays.Durable, `{"batch":1}`, own)
	}
	subscribe("subscribe to the evidence", events.AllSubjects, false)
	subscribe("subscribe to every inbox", "_INBOX.>", false)
	subscribe("subscribe to its own inbox", InboxPrefix(u)+".>", true)
	return out
}
