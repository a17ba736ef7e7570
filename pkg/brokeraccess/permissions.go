package brokeraccess

import (
	"fmt"
	"slices"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/topology"
)

// Subjects are the subjects one direction (publish or subscribe) allows and denies. A subject is
// permitted when it matches Allow and no Deny; the server checks deny last, so a deny always wins.
type Subjects struct {
	Allow, Deny []string
}

// Permissions are a user's NATS permissions.
type Permissions struct {
	Publish, Subscribe Subjects
}

// InboxPrefix is where user u receives replies: its connections use it (ClientOptions) and it is the
// only reply subject space its permissions let it subscribe to.
func InboxPrefix(u User) string { return "_INBOX." + string(u) }

const jsAPI = "$JS.API."

// PermissionsOf derives user u's permissions from its Access. The operator may publish and subscribe to
// everything. It returns false for a user outside the matrix.
func PermissionsOf(u User) (Permissions, bool) {
	if u == Operator {
		return Permissions{Publish: Subjects{Allow: []string{">"}}, Subscribe: Subjects{Allow: []string{">"}}}, true
	}
	a, ok := AccessOf(u)
	if !ok {
		return Permissions{}, false
	}
	var p Permissions
	pub := func(s ...string) { p.Publish.Allow = append(p.Publish.Allow, s...) }
	if a.JetStream {
		pub(jsAPI + "INFO")
		for _, s := range topology.Streams() {
			pub(jsAPI + "STREAM.INFO." + s)
		}
	}
	for _, t := range a.Types {
		pub(events.NATSSubject("*", t))
	}
	reads := slices.Clone(a.Reads)
	for _, c := range a.Consumers {
		pub(consumerAPI(c.Stream, c.Durable)...)
		pub("$JS.ACK." + c.Stream + "." + c.Durable + ".>")
		// A consumer sets aside only its own dead letters, and receives the operator's replays of them
		// through its replay consumer, reading each original from its stream; only the operator may
		// ask for a replay (topology.DeadLetterReplay).
		pub(topology.DeadLetter(c.Durable))
		replays := topology.ReplayConsumer(c.Durable)
		pub(consumerAPI(replays.Stream, replays.Durable)...)
		pub("$JS.ACK." + replays.Stream + "." + replays.Durable + ".>")
		if !slices.Contains(reads, c.Stream) {
			reads = append(reads, c.Stream)
		}
	}
	for _, s := range a.Scans {
		// Ordered consumers get generated names, so the grant is a wildcard; the deny list below keeps
		// it off every durable consumer that is not the user's own.
		pub(consumerAPI(s, "*")...)
	}
	for _, s := range reads {
		pub(streamReads(s)...)
	}
	for _, b := range a.Buckets {
		kv := topology.BucketStream(b)
		pub(jsAPI+"STREAM.INFO."+kv, jsAPI+"STREAM.CREATE."+kv, jsAPI+"STREAM.UPDATE."+kv, topology.BucketKey(b, ">"))
		pub(streamReads(kv)...)
		// Watchers and key listings are ordered push consumers: the consumer API on the bucket's own
		// stream, and flow-control replies.
		pub(consumerAPI(kv, "*")...)
		pub("$JS.FC."+kv+".>", "$JS.ACK."+kv+".>")
	}
	for _, b := range a.Discards {
		pub(jsAPI+"STREAM.INFO."+topology.BucketStream(b), topology.BucketKey(b, ">"))
	}
	for _, kind := range a.Timers {
		pub(topology.TimerSchedule("*", kind))
	}
	for _, c := range a.Binds {
		// What binding to a provisioned push consumer takes: the stream's information (the SDK reads it
		// before it publishes or subscribes), the consumer's, and acknowledgements of its deliveries.
		pub(jsAPI+"STREAM.INFO."+c.Stream, jsAPI+"CONSUMER.INFO."+c.Stream+"."+c.Durable, "$JS.ACK."+c.Stream+"."+c.Durable+".>")
	}
	pub(a.Publish...)
	p.Subscribe.Allow = append(append(p.Subscribe.Allow, a.Subscribe...), InboxPrefix(u)+".>")
	p.Publish.Deny = denied(a)
	return p, true
}

// consumerAPI is the JetStream API of durable consumer name on stream (or of every consumer, for
// name "*"): create (with or without a filter subject in the request subject), the older durable
// create, info, delete and pull.
func consumerAPI(stream, name string) []string {
	c := jsAPI + "CONSUMER."
	return []string{
		c + "CREATE." + stream + "." + name, c + "CREATE." + stream + "." + name + ".>",
		c + "DURABLE.CREATE." + stream + "." + name,
		c + "INFO." + stream + "." + name, c + "DELETE." + stream + "." + name,
		c + "MSG.NEXT." + stream + "." + name,
	}
}

// streamReads are the message reads on a stream: direct gets (any replica; batched, or by last subject) and
// the leader's message get, which the event store asks when a direct get may be stale.
func streamReads(stream string) []string {
	return []string{jsAPI + "DIRECT.GET." + stream, jsAPI + "DIRECT.GET." + stream + ".>", jsAPI + "STREAM.MSG.GET." + stream}
}

// denied is what every user but the operator is refused explicitly, whatever its allow list says:
// deleting, purging and reconfiguring streams, deleting messages, the event types and timers of
// other services, and other users' durable consumers.
func denied(a Access) []string {
	d := []string{
		jsAPI + "STREAM.DELETE.>", jsAPI + "STREAM.PURGE.>", jsAPI + "STREAM.MSG.DELETE.>",
	}
	if len(a.Buckets) == 0 {
		d = append(d, jsAPI+"STREAM.CREATE.>", jsAPI+"STREAM.UPDATE.>")
	} else {
		// A service declares its own buckets at start; every other stream stays out of its reach.
		others := topology.Streams()
		for _, b := range topology.Buckets() {
			if !slices.Contains(a.Buckets, b) {
				others = append(others, topology.BucketStream(b))
			}
		}
		for _, s := range others {
			d = append(d, jsAPI+"STREAM.CREATE."+s, jsAPI+"STREAM.UPDATE."+s)
		}
	}
	if len(a.Types) == 0 {
		d = append(d, events.AllSubjects)
	}
	for _, t := range events.AllTypes {
		if len(a.Types) > 0 && !slices.Contains(a.Types, t) {
			d = append(d, events.NATSSubject("*", t))
		}
	}
	// Fired timers are published by the server's scheduler, never by a client: a forged fire would make
	// a service act early (the revoker, say).
	d = append(d, topology.TimersFired)
	if len(a.Timers) == 0 {
		d = append(d, topology.TimerSchedules)
	}
	for _, kind := range topology.TimerKinds() {
		if len(a.Timers) > 0 && !slices.Contains(a.Timers, kind) {
			d = append(d, topology.TimerSchedule("*", kind))
		}
	}
	if len(a.Scans) > 0 {
		own := map[topology.Consumer]bool{}
		for _, c := range a.Consumers {
			own[c] = true
		}
		for _, c := range topology.Durables() {
			if !own[c] && slices.Contains(a.Scans, c.Stream) {
				d = append(d, consumerAPI(c.Stream, c.Durable)...)
			}
		}
	}
	return d
}

// Matrix is the permissions of every user of a deployment, in Users order.
type Matrix struct {
	Users       []User
	Permissions map[User]Permissions
}

// NewMatrix returns the permissions of every user of a deployment with these integrations. It fails
// for an integration name that cannot be a subject token.
func NewMatrix(integrations []string) (Matrix, error) {
	m := Matrix{Users: Users(integrations), Permissions: map[User]Permissions{}}
	for _, u := range m.Users {
		p, ok := PermissionsOf(u)
		if !ok {
			return Matrix{}, fmt.Errorf("brokeraccess: %q is not a valid user (an integration name must be one subject token)", u)
		}
		m.Permissions[u] = p
	}
	return m, nil
}
