// Package topology names what Grantline keeps on the NATS broker: the four streams and the subjects
// they hold, each service's durable consumers, the key-value buckets and the timer kinds. Each name is
// defined here once. The services create, read and write through these names, and pkg/brokeraccess
// derives every NATS user's permissions from the same ones, so the broker grants exactly the names the
// code uses: a renamed consumer or bucket changes both at once.
//
// The subjects of the evidence itself (grantline.events.<requestID>.<type>) belong to the event
// contract and are defined in pkg/events (NATSSubject, RequestFilter, AllSubjects).
package topology

import "strings"

// The streams of DESIGN §3.2. Only the operator creates, reconfigures, purges or deletes them; every
// service checks them at start.
const (
	// EventsStream is the evidence: every request's events (events.AllSubjects), immutable.
	EventsStream = "GRANTLINE_EVENTS"
	// TimersStream holds message schedules and their fired triggers (TimerSubjects); disposable
	// mechanics, never evidence.
	TimersStream = "GRANTLINE_TIMERS"
	// IntakeStream is where integrations publish requests as CloudEvents (IntakeSubjects).
	IntakeStream = "GRANTLINE_INTAKE"
	// DLQStream holds messages set aside with the reason (DeadLetterSubjects).
	DLQStream = "GRANTLINE_DLQ"
	// CheckpointsStream holds the signed checkpoints of the evidence stream (CheckpointSubjects),
	// written by the checkpointer only; evidence about the evidence, as immutable as it.
	CheckpointsStream = "GRANTLINE_CHECKPOINTS"
)

// Streams lists the streams in the order they are provisioned.
func Streams() []string {
	return []string{EventsStream, TimersStream, IntakeStream, DLQStream, CheckpointsStream}
}

// Subjects of the streams besides the evidence.
const (
	// TimerSubjects are TimersStream's: schedules and fired timers.
	TimerSubjects = "grantline.timers.>"
	// IntakeSubjects are IntakeStream's: integrations' requests and intake's answers.
	IntakeSubjects = "grantline.intake.>"
	// DeadLetterSubjects are DLQStream's: one subject per durable consumer (DeadLetter).
	DeadLetterSubjects = "grantline.dlq.>"
	// CheckpointSubjects are CheckpointsStream's.
	CheckpointSubjects = "grantline.checkpoints.>"
	// CheckpointHeads holds one record per checkpoint: the signed tree head, the leaf hashes it added
	// and the tree's frontier (pkg/checkpoint.Record).
	CheckpointHeads = "grantline.checkpoints.heads"
	// CheckpointCosigned holds each checkpoint again once witnesses have countersigned it.
	CheckpointCosigned = "grantline.checkpoints.cosigned"
)

// Timer subjects: a schedule on grantline.timers.sched.<requestID>.<kind> makes the server publish to
// grantline.timers.fired.<requestID>.<kind> when it is due (pkg/timers).
const (
	timerSchedulePrefix = "grantline.timers.sched."
	timerFiredPrefix    = "grantline.timers.fired."
	// TimerSchedules matches every schedule.
	TimerSchedules = timerSchedulePrefix + ">"
	// TimersFired matches every fired timer. Only the server's scheduler publishes there: a client
	// that could would make a service act early.
	TimersFired = timerFiredPrefix + ">"
)

// TimerSchedule is where the schedule of timer kind for requestID is held; "*" for requestID matches
// the schedules of kind for every request.
func TimerSchedule(requestID, kind string) string {
	return timerSchedulePrefix + requestID + "." + kind
}

// TimerFired is where timer kind of requestID fires; "*" for requestID matches every fired timer of
// kind.
func TimerFired(requestID, kind string) string { return timerFiredPrefix + requestID + "." + kind }

// ParseTimerFired splits the subject of a fired timer into its request ID and kind. It returns false
// for any subject that is not grantline.timers.fired.<requestID>.<kind> with non-empty tokens.
func ParseTimerFired(subject string) (requestID, kind string, ok bool) {
	rest, ok := strings.CutPrefix(subject, timerFiredPrefix)
	if !ok {
		return "", "", false
	}
	requestID, kind, ok = strings.Cut(rest, ".")
	if !ok || requestID == "" || kind == "" || strings.Contains(kind, ".") {
		return "", "", false
	}
	return requestID, kind, true
}

// The timer kinds, each scheduled by one service.
const (
	// TimerApprovalWindow ends a request's approval window (approval).
	TimerApprovalWindow = "approval-window"
	// TimerPostReview is an emergency grant's post-review deadline (approval).
	TimerPostReview = "post-review"
	// TimerCampaign is an access review campaign's next reminder or deadline (approval), set on the
	// campaign's ID.
	TimerCampaign = "campaign"
	// TimerGrantStart wakes policy at the start of a request approved for access from a later time, to
	// check it again then (policy). Fulfilment armed it before start checks existed; the kind keeps its
	// name so that a timer armed then is checked too.
	TimerGrantStart = "grant-start"
	// TimerExpiry is the expiry of every grant due in one second (revoker): its ID is that second's
	// Unix time, and the grants are found in ExpiriesBucket.
	TimerExpiry = "expiry"
	// TimerReconcile is the next comparison of the targets with the evidence (revoker). It belongs to
	// no request: it is set on ReconcileTimerID.
	TimerReconcile = "reconcile"

	// The notifier's reminders: the warning before a grant expires, the reminder of a review that
	// still waits, the repetition of an overdue post-review, a manual task's due time.
	TimerNotifyExpiry     = "notify-expiry"
	TimerNotifyReview     = "notify-review"
	TimerNotifyPostReview = "notify-post-review"
	TimerNotifyTask       = "notify-task"
)

// ReconcileTimerID stands where a timer's request ID goes for TimerReconcile, which is about every
// target rather than one request: grantline.timers.sched.targets.reconcile. It is not a ULID, so it
// never meets a request's timers.
const ReconcileTimerID = "targets"

// TimerKinds lists every timer kind.
func TimerKinds() []string {
	return []string{TimerApprovalWindow, TimerPostReview, TimerCampaign, TimerGrantStart, TimerExpiry, TimerReconcile,
		TimerNotifyExpiry, TimerNotifyReview, TimerNotifyPostReview, TimerNotifyTask}
}

const intakePrefix = "grantline.intake."

// IntegrationRequests is where integration name publishes its requests; "*" matches every
// integration's.
func IntegrationRequests(name string) string { return intakePrefix + name + ".requests" }

// IntegrationOutcomes is where intake answers integration name; "*" matches every integration's.
func IntegrationOutcomes(name string) string { return intakePrefix + name + ".outcomes" }

// RequestingIntegration returns the integration that published on subject, which the broker lets only
// that integration publish to, and false for a subject that is not an IntegrationRequests subject.
func RequestingIntegration(subject string) (string, bool) {
	rest, ok := strings.CutPrefix(subject, intakePrefix)
	if !ok {
		return "", false
	}
	name, ok := strings.CutSuffix(rest, ".requests")
	if !ok || name == "" || strings.Contains(name, ".") {
		return "", false
	}
	return name, true
}

// IntegrationConsumer is the durable push consumer through which integration name reads its outcomes
// over JetStream: filtered to IntegrationOutcomes(name), delivering to IntegrationDeliveries(name), in
// deliver group name (IntegrationDeliverGroup). The operator provisions it (eventstore.ProvisionIntegrations);
// the integration only binds to it. An integration may create no consumer at all: NATS does not hold a
// push consumer's deliver subject to its creator's permissions, so one it created could deliver intake's
// messages onto the evidence's subjects, into GRANTLINE_EVENTS.
func IntegrationConsumer(name string) Consumer { return Consumer{IntakeStream, "outcomes-" + name} }

// IntegrationDeliverGroup is the deliver group of IntegrationConsumer(name): the replicas of the
// integration subscribe in that queue group and share its outcomes.
func IntegrationDeliverGroup(name string) string { return name }

const deliveriesPrefix = "grantline.deliveries."

// IntegrationDeliveries is where IntegrationConsumer(name) delivers; only name's NATS user may subscribe
// there. No stream's subjects match it (eventstore tests that), so a delivery is never stored again.
func IntegrationDeliveries(name string) string { return deliveriesPrefix + name + ".outcomes" }

const deadLetterPrefix = "grantline.dlq."

// DeadLetter is where the consumer durable sets aside what it cannot handle.
func DeadLetter(durable string) string { return deadLetterPrefix + durable }

// The operator's records about a dead letter, kept beside it in DLQStream.
const (
	// RecordReplay asks the dead letter's consumer to handle the original once more.
	RecordReplay = "replay"
	// RecordDiscard says who removed the dead letter, and why.
	RecordDiscard = "discarded"
)

// DeadLetterReplay is the operator's request that durable handle the message set aside as dead letter
// dlqSeq once more; "*" for dlqSeq matches every replay request for durable. Only the operator may
// publish it, and only once per dead letter.
func DeadLetterReplay(durable, dlqSeq string) string {
	return deadLetterPrefix + durable + "." + RecordReplay + "." + dlqSeq
}

// DeadLetterDiscard records why the operator discarded dead letter dlqSeq of durable, and who did.
func DeadLetterDiscard(durable, dlqSeq string) string {
	return deadLetterPrefix + durable + "." + RecordDiscard + "." + dlqSeq
}

// ParseDeadLetter splits a subject of DLQStream: a dead letter's gives its durable and an empty record;
// an operator's record's gives the durable, the record kind and the dead letter's sequence. It returns
// false for any other subject.
func ParseDeadLetter(subject string) (durable, record, dlqSeq string, ok bool) {
	rest, ok := strings.CutPrefix(subject, deadLetterPrefix)
	if !ok {
		return "", "", "", false
	}
	switch parts := strings.Split(rest, "."); {
	case len(parts) == 1 && parts[0] != "":
		return parts[0], "", "", true
	case len(parts) == 3 && parts[0] != "" && (parts[1] == RecordReplay || parts[1] == RecordDiscard) && parts[2] != "":
		return parts[0], parts[1], parts[2], true
	}
	return "", "", "", false
}

// ReplayConsumer is the durable consumer through which the replicas of durable's service receive the
// operator's replay requests for it.
func ReplayConsumer(durable string) Consumer { return Consumer{DLQStream, durable + "-replay"} }

// Consumer is a durable consumer on a stream, shared by the replicas of the service that owns it.
type Consumer struct {
	Stream, Durable string
}

// The durable consumers, by owning service.
var (
	// IntakeIntegrations receives the integrations' requests.
	IntakeIntegrations = Consumer{IntakeStream, "intake"}

	// PolicyDecisions receives every submitted request.
	PolicyDecisions = Consumer{EventsStream, "policy"}
	// PolicyReviewDebt receives the events that can end an emergency's open post-review.
	PolicyReviewDebt = Consumer{EventsStream, "policy-emergency-reviews"}
	// PolicyStartSchedules receives approvals: one of a request that asked for a later start arms its
	// start check (an allowing decision arms it where policy makes it).
	PolicyStartSchedules = Consumer{EventsStream, "policy-start-schedules"}
	// PolicyStart receives fired TimerGrantStart timers: the start checks.
	PolicyStart = Consumer{TimersStream, "policy-start"}

	// ApprovalSchedules receives the events that arm the approval window and the post-review deadline.
	ApprovalSchedules = Consumer{EventsStream, "approval-schedules"}
	// ApprovalTimers receives the approval service's fired timers.
	ApprovalTimers = Consumer{TimersStream, "approval-timers"}
	// ApprovalInbox feeds the review inbox; approval deletes it to rebuild the inbox.
	ApprovalInbox = Consumer{EventsStream, "approval-inbox"}

	// FulfilmentGrants receives the events that may lead to a grant.
	FulfilmentGrants = Consumer{EventsStream, "fulfilment"}
	// FulfilmentRevokeTasks receives the events that make a manual grant's revocation due.
	FulfilmentRevokeTasks = Consumer{EventsStream, "fulfilment-revoke-tasks"}

	// RevokerSchedules receives granted events, whose expiry it arms.
	RevokerSchedules = Consumer{EventsStream, "revoker-schedules"}
	// RevokerRevocations receives the events that make a revocation due before expiry.
	RevokerRevocations = Consumer{EventsStream, "revoker"}
	// RevokerExpiry receives fired TimerExpiry timers.
	RevokerExpiry = Consumer{TimersStream, "revoker-expiry"}
	// RevokerReconcile receives the fired TimerReconcile timer.
	RevokerReconcile = Consumer{TimersStream, "revoker-reconcile"}

	// NotifierEvents receives every event: the notifier decides whom each one tells.
	NotifierEvents = Consumer{EventsStream, "notifier"}
	// NotifierReminders receives the notifier's fired reminders (the TimerNotify kinds).
	NotifierReminders = Consumer{TimersStream, "notifier-reminders"}
	// NotifierEmail, NotifierSlack and NotifierWebhook deliver what waits in the outbox bucket, one
	// channel each, so a channel that is down holds up no other.
	NotifierEmail   = Consumer{BucketStream(NotifyOutboxBucket), "notifier-email"}
	NotifierSlack   = Consumer{BucketStream(NotifyOutboxBucket), "notifier-slack"}
	NotifierWebhook = Consumer{BucketStream(NotifyOutboxBucket), "notifier-webhook"}
)

// Durables lists every durable consumer.
func Durables() []Consumer {
	return []Consumer{
		IntakeIntegrations,
		PolicyDecisions, PolicyReviewDebt, PolicyStartSchedules, PolicyStart,
		ApprovalSchedules, ApprovalTimers, ApprovalInbox,
		FulfilmentGrants, FulfilmentRevokeTasks,
		RevokerSchedules, RevokerRevocations, RevokerExpiry, RevokerReconcile,
		NotifierEvents, NotifierReminders, NotifierEmail, NotifierSlack, NotifierWebhook,
	}
}

// The key-value buckets, each declared by the service that owns it.
const (
	// IdempotencyBucket holds intake's Idempotency-Key claims.
	IdempotencyBucket = "GRANTLINE_IDEMPOTENCY"
	// LockIdempotencyBucket holds the revoker's Idempotency-Key claims on lock creates.
	LockIdempotencyBucket = "GRANTLINE_LOCK_IDEMPOTENCY"
	// ExpiriesBucket is the revoker's index of armed expiries by the second they fall due (keys
	// <unix second>.<request id>.<sequence of granted>): the one expiry timer of a second finds its
	// grants there. Its key swept is the start-up sweep's mark.
	ExpiriesBucket = "GRANTLINE_EXPIRIES"
	// PolicyStateBucket holds the policy service's open emergency post-reviews (review debt).
	PolicyStateBucket = "GRANTLINE_POLICY_STATE"
	// CredentialsBucket holds fulfilment's encrypted issued credentials; the revoker may only discard
	// from it.
	CredentialsBucket = "GRANTLINE_CREDENTIALS"
	// TasksBucket holds fulfilment's index of open manual tasks.
	TasksBucket = "GRANTLINE_TASKS"
	// ConsoleSessionsBucket holds the web console's sign-in sessions, encrypted, so that its replicas
	// share them.
	ConsoleSessionsBucket = "GRANTLINE_CONSOLE_SESSIONS"
	// NotifyOutboxBucket holds the notifier's deliveries still to send, one key per notification under
	// its channel; the channels' consumers read its stream.
	NotifyOutboxBucket = "GRANTLINE_NOTIFY_OUTBOX"
	// NotifySentBucket records each notification the notifier claimed and sent, by its key, so that
	// none is sent twice.
	NotifySentBucket = "GRANTLINE_NOTIFY_SENT"
	// NotifyReplayBucket holds the signatures of the Slack callbacks the notifier accepted within the
	// replay window, so none is acted on twice.
	NotifyReplayBucket = "GRANTLINE_NOTIFY_REPLAY"
)

// Buckets lists every key-value bucket.
func Buckets() []string {
	return []string{IdempotencyBucket, LockIdempotencyBucket, ExpiriesBucket, PolicyStateBucket, CredentialsBucket, TasksBucket,
		NotifyOutboxBucket, NotifySentBucket, NotifyReplayBucket, ConsoleSessionsBucket}
}

// BucketStream is the stream behind bucket (the key-value convention of NATS).
func BucketStream(bucket string) string { return "KV_" + bucket }

// BucketKey is the subject of key in bucket; ">" matches every key.
func BucketKey(bucket, key string) string { return "$KV." + bucket + "." + key }
