package topology_test

import (
	"testing"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/topology"
)

// TestNamesAreTheDeployedOnes: every name is part of a running deployment's state (its streams,
// consumers and buckets exist on the broker under these names, with their positions and contents), so
// renaming one here would strand that state rather than move it. Each row is the name DESIGN §3 gives.
func TestNamesAreTheDeployedOnes(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{topology.EventsStream, "GRANTLINE_EVENTS"},
		{topology.TimersStream, "GRANTLINE_TIMERS"},
		{topology.IntakeStream, "GRANTLINE_INTAKE"},
		{topology.DLQStream, "GRANTLINE_DLQ"},
		{topology.CheckpointsStream, "GRANTLINE_CHECKPOINTS"},
		{topology.CheckpointHeads, "grantline.checkpoints.heads"},
		{topology.CheckpointCosigned, "grantline.checkpoints.cosigned"},
		{events.AllSubjects, "grantline.events.>"},
		{topology.TimerSubjects, "grantline.timers.>"},
		{topology.IntakeSubjects, "grantline.intake.>"},
		{topology.DeadLetterSubjects, "grantline.dlq.>"},
		{topology.TimerSchedule("r1", topology.TimerExpiry), "grantline.timers.sched.r1.expiry"},
		{topology.TimerFired("*", topology.TimerGrantStart), "grantline.timers.fired.*.grant-start"},
		{topology.TimerSchedules, "grantline.timers.sched.>"},
		{topology.TimersFired, "grantline.timers.fired.>"},
		{topology.TimerApprovalWindow, "approval-window"},
		{topology.TimerPostReview, "post-review"},
		{topology.IntegrationRequests("servicenow"), "grantline.intake.servicenow.requests"},
		{topology.IntegrationOutcomes("*"), "grantline.intake.*.outcomes"},
		{topology.DeadLetter("policy"), "grantline.dlq.policy"},
		{topology.DeadLetterReplay("policy", "7"), "grantline.dlq.policy.replay.7"},
		{topology.DeadLetterDiscard("policy", "7"), "grantline.dlq.policy.discarded.7"},
		{topology.ReplayConsumer("revoker").Stream + "/" + topology.ReplayConsumer("revoker").Durable, "GRANTLINE_DLQ/revoker-replay"},
		{topology.IntakeIntegrations.Stream + "/" + topology.IntakeIntegrations.Durable, "GRANTLINE_INTAKE/intake"},
		{topology.PolicyDecisions.Durable, "policy"},
		{topology.PolicyReviewDebt.Durable, "policy-emergency-reviews"},
		{topology.ApprovalSchedules.Durable, "approval-schedules"},
		{topology.ApprovalTimers.Stream + "/" + topology.ApprovalTimers.Durable, "GRANTLINE_TIMERS/approval-timers"},
		{topology.ApprovalInbox.Durable, "approval-inbox"},
		{topology.FulfilmentGrants.Durable, "fulfilment"},
		{topology.PolicyStart.Stream + "/" + topology.PolicyStart.Durable, "GRANTLINE_TIMERS/policy-start"},
		{topology.FulfilmentRevokeTasks.Durable, "fulfilment-revoke-tasks"},
		{topology.RevokerSchedules.Durable, "revoker-schedules"},
		{topology.RevokerRevocations.Durable, "revoker"},
		{topology.RevokerExpiry.Stream + "/" + topology.RevokerExpiry.Durable, "GRANTLINE_TIMERS/revoker-expiry"},
		{topology.IdempotencyBucket, "GRANTLINE_IDEMPOTENCY"},
		{topology.LockIdempotencyBucket, "GRANTLINE_LOCK_IDEMPOTENCY"},
		{topology.PolicyStateBucket, "GRANTLINE_POLICY_STATE"},
		{topology.CredentialsBucket, "GRANTLINE_CREDENTIALS"},
		{topology.TasksBucket, "GRANTLINE_TASKS"},
		{topology.ConsoleSessionsBucket, "GRANTLINE_CONSOLE_SESSIONS"},
		{topology.BucketStream(topology.TasksBucket), "KV_GRANTLINE_TASKS"},
		{topology.NotifierEvents.Stream + "/" + topology.NotifierEvents.Durable, "GRANTLINE_EVENTS/notifier"},
		{topology.NotifierReminders.Stream + "/" + topology.NotifierReminders.Durable, "GRANTLINE_TIMERS/notifier-reminders"},
		{topology.NotifierEmail.Stream + "/" + topology.NotifierEmail.Durable, "KV_GRANTLINE_NOTIFY_OUTBOX/notifier-email"},
		{topology.NotifierSlack.Durable, "notifier-slack"},
		{topology.NotifierWebhook.Durable, "notifier-webhook"},
		{topology.NotifySentBucket, "GRANTLINE_NOTIFY_SENT"},
		{topology.NotifyReplayBucket, "GRANTLINE_NOTIFY_REPLAY"},
		{topology.TimerNotifyExpiry, "notify-expiry"},
		{topology.TimerNotifyReview, "notify-review"},
		{topology.TimerNotifyPostReview, "notify-post-review"},
		{topology.TimerNotifyTask, "notify-task"},
		{topology.BucketKey(topology.CredentialsBucket, ">"), "$KV.GRANTLINE_CREDENTIALS.>"},
	} {
		if tc.got != tc.want {
			t.Errorf("%q, want %q", tc.got, tc.want)
		}
	}
}

func TestParseTimerFired(t *testing.T) {
	for _, tc := range []struct {
		subject, id, kind string
		ok                bool
	}{
		{topology.TimerFired("r1", topology.TimerExpiry), "r1", "expiry", true},
		{topology.TimerSchedule("r1", topology.TimerExpiry), "", "", false},
		{"grantline.timers.fired.r1", "", "", false},
		{"grantline.timers.fired.r1.a.b", "", "", false},
		{"grantline.timers.fired..expiry", "", "", false},
		{"grantline.timers.fired.r1.", "", "", false},
	} {
		id, kind, ok := topology.ParseTimerFired(tc.subject)
		if id != tc.id || kind != tc.kind || ok != tc.ok {
			t.Errorf("ParseTimerFired(%q) = %q, %q, %v; want %q, %q, %v", tc.subject, id, kind, ok, tc.id, tc.kind, tc.ok)
		}
	}
}

func TestRequestingIntegration(t *testing.T) {
	for _, tc := range []struct {
		subject, name string
		ok            bool
	}{
		{topology.IntegrationRequests("servicenow"), "servicenow", true},
		{topology.IntegrationOutcomes("servicenow"), "", false},
		{"grantline.intake..requests", "", false},
		{"grantline.intake.a.b.requests", "", false},
		{"grantline.events.servicenow.requests", "", false},
	} {
		name, ok := topology.RequestingIntegration(tc.subject)
		if name != tc.name || ok != tc.ok {
			t.Errorf("RequestingIntegration(%q) = %q, %v; want %q, %v", tc.subject, name, ok, tc.name, tc.ok)
		}
	}
}

func TestParseDeadLetter(t *testing.T) {
	for _, tc := range []struct {
		subject, durable, record, seq string
		ok                            bool
	}{
		{topology.DeadLetter("policy"), "policy", "", "", true},
		{topology.DeadLetterReplay("revoker", "12"), "revoker", topology.RecordReplay, "12", true},
		{topology.DeadLetterDiscard("intake", "3"), "intake", topology.RecordDiscard, "3", true},
		{"grantline.dlq.", "", "", "", false},
		{"grantline.dlq.policy.replay", "", "", "", false},
		{"grantline.dlq.policy.renamed.3", "", "", "", false},
		{"grantline.events.x.submitted", "", "", "", false},
	} {
		durable, record, seq, ok := topology.ParseDeadLetter(tc.subject)
		if durable != tc.durable || record != tc.record || seq != tc.seq || ok != tc.ok {
			t.Errorf("%s: got (%q, %q, %q, %v)", tc.subject, durable, record, seq, ok)
		}
	}
}
