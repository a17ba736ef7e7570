// Package brokeraccess makes the NATS broker enforce separation of duties (DESIGN §3.3): each service's
// NATS user may publish only its own event types, read what it consumes and use only its own consumers'
// API subjects; nobody but the operator may delete, purge or reconfigure streams.
//
// The matrix is code. What each user's code does on the broker (Access: the event types it appends, its
// durable consumers, its key-value buckets, its timers) is written here once, from the catalogue's
// emitters in pkg/events and from names the services define; pkg cannot import the services, so each
// service module has a test asserting that its real names are the ones listed here. Permissions derives
// the NATS subjects from Access; the same permissions are rendered for the embedded server
// (NkeyUsers) and as a nats-server configuration fragment (AuthConfig). Users authenticate with NKeys:
// the server knows public keys only.
//
// Replies go to per-user inboxes (_INBOX.<user>.>, see ClientOptions) rather than the default _INBOX.>:
// a user allowed to subscribe to _INBOX.> could read every reply on the broker, events and secrets
// fetched by other services included.
package brokeraccess

import (
	"slices"
	"strings"

	"github.com/grantline/grantline/pkg/events"
)

// User is a NATS user of a Grantline deployment.
type User string

// The users besides the integrations: the five event-emitting services, the read side, the auditor and
// the operator.
const (
	Intake     = User(events.Intake)
	Policy     = User(events.Policy)
	Approval   = User(events.Approval)
	Fulfilment = User(events.Fulfilment)
	Revoker    = User(events.Revoker)
	// Query is the read side: it reads the evidence and writes nothing to the broker.
	Query User = "query"
	// Auditor verifies, exports and replays the evidence: read-only.
	Auditor User = "auditor"
	// Operator provisions and maintains the streams; the only user that may delete, purge or
	// reconfigure them.
	Operator User = "operator"
)

// integrationPrefix starts the user name of each integration.
const integrationPrefix = "integration-"

// Integration is the user of the integration called name (examples/integrations.yaml): it may publish
// requests on grantline.intake.<name>.requests and read its outcomes, nothing else. The subject it may
// publish to is what identifies it to intake.
func Integration(name string) User { return User(integrationPrefix + name) }

// IntegrationName returns the integration behind u, or false if u is not an integration's user.
func (u User) IntegrationName() (string, bool) {
	return strings.CutPrefix(string(u), integrationPrefix)
}

// Users lists every user of a deployment with these integrations: the services in pipeline order, the
// read side, the auditor, the operator, then one user per integration.
func Users(integrations []string) []User {
	users := []User{Intake, Policy, Approval, Fulfilment, Revoker, Query, Auditor, Operator}
	for _, name := range integrations {
		users = append(users, Integration(name))
	}
	return users
}

// The streams of DESIGN §3.2 (eventstore.EventsStream and the others; a test keeps them equal).
const (
	EventsStream = "GRANTLINE_EVENTS"
	TimersStream = "GRANTLINE_TIMERS"
	IntakeStream = "GRANTLINE_INTAKE"
	DLQStream    = "GRANTLINE_DLQ"
)

// Streams are the four streams every service checks at start. None of them is created, updated,
// purged or deleted by anyone but the operator.
var Streams = []string{EventsStream, TimersStream, IntakeStream, DLQStream}

// Key-value buckets of the services (a test in each service module keeps them equal to its own).
const (
	IdempotencyBucket = "GRANTLINE_IDEMPOTENCY"
	PolicyStateBucket = "GRANTLINE_POLICY_STATE"
	CredentialsBucket = "GRANTLINE_CREDENTIALS"
	TasksBucket       = "GRANTLINE_TASKS"
)

// Consumer is a durable consumer on a stream.
type Consumer struct {
	Stream, Durable string
}

// Access is what one user's code does on the broker; Permissions derives the NATS subjects from it.
type Access struct {
	// Types are the event types the user appends to grantline.events.<id>.<type>.
	Types []events.Type
	// Consumers are the durable consumers the user creates, pulls from and acknowledges; a user with
	// consumers also dead-letters to grantline.dlq.>.
	Consumers []Consumer
	// Scans are streams the user reads with ordered consumers, which keep no durable state; they may
	// never reach another user's durable consumer.
	Scans []string
	// Reads are streams the user reads message by message (direct gets, and gets from the leader).
	Reads []string
	// Buckets are key-value buckets the user declares at start (creating or updating their stream) and
	// reads and writes.
	Buckets []string
	// Discards are buckets another user declares that this one may only bind to and write into (the
	// revoker discards a revoked grant's unretrieved credential; it never reads one).
	Discards []string
	// Timers are the timer kinds the user schedules (grantline.timers.sched.<id>.<kind>).
	Timers []string
	// Publish and Subscribe are further subjects: intake's answers to integrations, an integration's
	// requests and outcomes.
	Publish, Subscribe []string
	// JetStream says whether the user talks to the JetStream API at all (integrations only publish).
	JetStream bool
}

// timerKinds are the kinds each service schedules (a test in each service module keeps them equal).
const (
	approvalWindowTimer = "approval-window"
	postReviewTimer     = "post-review"
	grantStartTimer     = "grant-start"
	expiryTimer         = "expiry"
)

// IntegrationRequests is where integration name publishes its requests; IntegrationOutcomes is where
// intake answers it.
func IntegrationRequests(name string) string { return "grantline.intake." + name + ".requests" }

// IntegrationOutcomes is where intake answers integration name.
func IntegrationOutcomes(name string) string { return "grantline.intake." + name + ".outcomes" }

// access is the matrix: every fixed user's Access. Integrations are derived from their name.
var access = map[User]Access{
	Intake: {
		JetStream: true, Types: events.TypesOf(events.Intake), Reads: []string{EventsStream},
		Consumers: []Consumer{{IntakeStream, "intake"}},
		Buckets:   []string{IdempotencyBucket},
		Publish:   []string{IntegrationOutcomes("*")},
	},
	Policy: {
		JetStream: true, Types: events.TypesOf(events.Policy), Reads: []string{EventsStream},
		Consumers: []Consumer{{EventsStream, "policy"}, {EventsStream, "policy-emergency-reviews"}},
		Buckets:   []string{PolicyStateBucket},
	},
	Approval: {
		JetStream: true, Types: events.TypesOf(events.Approval), Reads: []string{EventsStream},
		Consumers: []Consumer{{EventsStream, "approval-schedules"}, {TimersStream, "approval-timers"}, {EventsStream, "approval-inbox"}},
		Timers:    []string{approvalWindowTimer, postReviewTimer},
	},
	Fulfilment: {
		JetStream: true, Types: events.TypesOf(events.Fulfilment), Reads: []string{EventsStream}, Scans: []string{EventsStream},
		Consumers: []Consumer{{EventsStream, "fulfilment"}, {TimersStream, "fulfilment-start"}, {EventsStream, "fulfilment-revoke-tasks"}},
		Buckets:   []string{CredentialsBucket, TasksBucket},
		Timers:    []string{grantStartTimer},
	},
	Revoker: {
		JetStream: true, Types: events.TypesOf(events.Revoker), Reads: []string{EventsStream, TimersStream}, Scans: []string{EventsStream},
		Consumers: []Consumer{{EventsStream, "revoker-schedules"}, {EventsStream, "revoker"}, {TimersStream, "revoker-expiry"}},
		Discards:  []string{CredentialsBucket},
		Timers:    []string{expiryTimer},
	},
	Query:   {JetStream: true, Reads: []string{EventsStream}, Scans: []string{EventsStream}},
	Auditor: {JetStream: true, Reads: []string{EventsStream}, Scans: []string{EventsStream}},
}

// AccessOf returns what user u does on the broker, and false for a user outside the matrix. The
// operator has no Access: it may do anything.
func AccessOf(u User) (Access, bool) {
	if name, ok := u.IntegrationName(); ok && name != "" && !strings.ContainsAny(name, ".*> ") {
		return Access{Publish: []string{IntegrationRequests(name)}, Subscribe: []string{IntegrationOutcomes(name)}}, true
	}
	a, ok := access[u]
	return a, ok
}

// durables lists every durable consumer in the matrix.
func durables() []Consumer {
	var all []Consumer
	for _, u := range Users(nil) {
		all = append(all, access[u].Consumers...)
	}
	return all
}

// timerKinds lists every timer kind some user schedules.
func timerKinds() []string {
	var all []string
	for _, u := range Users(nil) {
		all = append(all, access[u].Timers...)
	}
	return all
}

// buckets lists every bucket some user declares.
func buckets() []string {
	var all []string
	for _, u := range Users(nil) {
		all = append(all, access[u].Buckets...)
	}
	slices.Sort(all)
	return slices.Compact(all)
}
