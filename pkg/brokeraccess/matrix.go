// Package brokeraccess makes the NATS broker enforce separation of duties (DESIGN §3.3): each service's
// NATS user may publish only its own event types, read what it consumes and use only its own consumers'
// API subjects; nobody but the operator may delete, purge or reconfigure streams.
//
// The matrix is code. What each user's code does on the broker (Access: the event types it appends, its
// durable consumers, its key-value buckets, its timers) is written here once, from the catalogue's
// emitters in pkg/events and from the names in pkg/topology, which the services use too: the broker
// grants the very names the code uses. Permissions derives the NATS subjects from Access; the same
// permissions are rendered for the embedded server (NkeyUsers) and as a nats-server configuration
// fragment (AuthConfig). Users authenticate with NKeys: the server knows public keys only.
//
// Replies go to per-user inboxes (_INBOX.<user>.>, see ClientOptions) rather than the default _INBOX.>:
// a user allowed to subscribe to _INBOX.> could read every reply on the broker, events and secrets
// fetched by other services included.
package brokeraccess

import (
	"strings"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/topology"
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
	// Notifier tells people: it reads the evidence, keeps its outbox and records in its own buckets,
	// schedules its own reminders, and appends nothing.
	Notifier User = "notifier"
	// Query is the read side: it reads the evidence and writes nothing to the broker.
	Query User = "query"
	// Console is the web console: it keeps its sessions in its own bucket and may publish no event,
	// nor read any: it shows people what the services' HTTP APIs answer them.
	Console User = "console"
	// Checkpointer reads the evidence and writes its signed checkpoints, nothing else.
	Checkpointer User = "checkpointer"
	// Auditor verifies, exports and replays the evidence: read-only.
	Auditor User = "auditor"
	// Operator provisions and maintains the streams; the only user that may delete, purge or
	// reconfigure them.
	Operator User = "operator"
)

// integrationPrefix starts the user name of each integration.
const integrationPrefix = "integration-"

// Integration is the user of the integration called name (examples/integrations.yaml): it may publish
// requests on grantline.intake.<name>.requests and read its outcomes, over core NATS or through the
// consumer the operator provisions for it (topology.IntegrationConsumer, Access.Binds), nothing else. The subject it may publish
// to is what identifies it to intake.
func Integration(name string) User { return User(integrationPrefix + name) }

// IntegrationName returns the integration behind u, or false if u is not an integration's user.
func (u User) IntegrationName() (string, bool) {
	return strings.CutPrefix(string(u), integrationPrefix)
}

// Users lists every user of a deployment with these integrations: the services in pipeline order, the
// notifier, the read side, the console, the checkpointer, the auditor, the operator, then one user per
// integration.
func Users(integrations []string) []User {
	users := []User{Intake, Policy, Approval, Fulfilment, Revoker, Notifier, Query, Console, Checkpointer, Auditor, Operator}
	for _, name := range integrations {
		users = append(users, Integration(name))
	}
	return users
}

// Access is what one user's code does on the broker; Permissions derives the NATS subjects from it.
type Access struct {
	// Types are the event types the user appends to grantline.events.<id>.<type>.
	Types []events.Type
	// Consumers are the durable consumers the user creates, pulls from and acknowledges. For each, the
	// user also dead-letters to grantline.dlq.<durable>, consumes the operator's replays of those
	// dead letters (topology.ReplayConsumer) and reads messages of the consumer's stream.
	Consumers []topology.Consumer
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
	// requests and outcomes, and its consumer's deliveries.
	Publish, Subscribe []string
	// Binds are durable push consumers the operator provisions for the user, which it only binds to:
	// it may read the consumer's stream's and the consumer's information, receive on its deliver
	// subject (in Subscribe) and acknowledge its deliveries. It may create, update or delete no consumer:
	// NATS does not hold a push consumer's deliver subject to its creator's permissions, so a consumer an
	// integration created could deliver intake's messages into the evidence stream. An integration's
	// CloudEvents SDK binds so with its JetStream binding (nats.Bind).
	Binds []topology.Consumer
	// JetStream says whether the user talks to the JetStream API at large (an integration reaches only
	// what Binds grants it).
	JetStream bool
}

// access is the matrix: every fixed user's Access. Integrations are derived from their name.
var access = map[User]Access{
	Intake: {
		JetStream: true, Types: events.TypesOf(events.Intake), Reads: []string{topology.EventsStream},
		Consumers: []topology.Consumer{topology.IntakeIntegrations},
		Buckets:   []string{topology.IdempotencyBucket},
		Publish:   []string{topology.IntegrationOutcomes("*")},
	},
	Policy: {
		// Scans: the lock index reads the lock subjects at start, then follows the evidence stream.
		JetStream: true, Types: events.TypesOf(events.Policy), Reads: []string{topology.EventsStream}, Scans: []string{topology.EventsStream},
		Consumers: []topology.Consumer{topology.PolicyDecisions, topology.PolicyReviewDebt, topology.PolicyStartSchedules, topology.PolicyStart},
		Buckets:   []string{topology.PolicyStateBucket},
		Timers:    []string{topology.TimerGrantStart},
	},
	Approval: {
		// Scans: an access review lists the live grants and the campaigns opened.
		JetStream: true, Types: events.TypesOf(events.Approval), Reads: []string{topology.EventsStream}, Scans: []string{topology.EventsStream},
		Consumers: []topology.Consumer{topology.ApprovalSchedules, topology.ApprovalTimers, topology.ApprovalInbox},
		Timers:    []string{topology.TimerApprovalWindow, topology.TimerPostReview, topology.TimerCampaign},
	},
	Fulfilment: {
		JetStream: true, Types: events.TypesOf(events.Fulfilment), Reads: []string{topology.EventsStream}, Scans: []string{topology.EventsStream},
		Consumers: []topology.Consumer{topology.FulfilmentGrants, topology.FulfilmentRevokeTasks},
		Buckets:   []string{topology.CredentialsBucket, topology.TasksBucket},
	},
	Revoker: {
		JetStream: true, Types: events.TypesOf(events.Revoker), Reads: []string{topology.EventsStream, topology.TimersStream}, Scans: []string{topology.EventsStream},
		Consumers: []topology.Consumer{topology.RevokerSchedules, topology.RevokerRevocations, topology.RevokerExpiry, topology.RevokerReconcile},
		Buckets:   []string{topology.LockIdempotencyBucket, topology.ExpiriesBucket},
		Discards:  []string{topology.CredentialsBucket},
		Timers:    []string{topology.TimerExpiry, topology.TimerReconcile},
	},
	Notifier: {
		JetStream: true, Reads: []string{topology.EventsStream},
		Consumers: []topology.Consumer{topology.NotifierEvents, topology.NotifierReminders,
			topology.NotifierEmail, topology.NotifierSlack, topology.NotifierWebhook},
		Buckets: []string{topology.NotifyOutboxBucket, topology.NotifySentBucket, topology.NotifyReplayBucket},
		Timers:  []string{topology.TimerNotifyExpiry, topology.TimerNotifyReview, topology.TimerNotifyPostReview, topology.TimerNotifyTask},
	},
	Query:   {JetStream: true, Reads: []string{topology.EventsStream}, Scans: []string{topology.EventsStream}},
	Console: {JetStream: true, Buckets: []string{topology.ConsoleSessionsBucket}},
	Checkpointer: {
		JetStream: true, Reads: []string{topology.EventsStream, topology.CheckpointsStream},
		Scans:   []string{topology.EventsStream, topology.CheckpointsStream},
		Publish: []string{topology.CheckpointHeads, topology.CheckpointCosigned},
	},
	Auditor: {
		JetStream: true, Reads: []string{topology.EventsStream, topology.CheckpointsStream},
		Scans: []string{topology.EventsStream, topology.CheckpointsStream},
	},
}

// AccessOf returns what user u does on the broker, and false for a user outside the matrix. The
// operator has no Access: it may do anything.
func AccessOf(u User) (Access, bool) {
	if name, ok := u.IntegrationName(); ok && name != "" && !strings.ContainsAny(name, ".*> ") {
		return Access{Publish: []string{topology.IntegrationRequests(name)},
			Subscribe: []string{topology.IntegrationOutcomes(name), topology.IntegrationDeliveries(name)},
			Binds:     []topology.Consumer{topology.IntegrationConsumer(name)}}, true
	}
	a, ok := access[u]
	return a, ok
}
