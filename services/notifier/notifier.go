// Package notifier holds the notifier's rules: from an event of the evidence stream (or a reminder
// coming due), the catalogue, the directory and the routing file, what to tell whom, through which
// channels, and which reminders to arm. The rules are pure: they read the request folded before and
// after the event and return notifications; rendering, sending and remembering what was sent belong
// to the adapters.
//
// The notifier holds no authority (DESIGN §2): it never appends an event. Approving from Slack goes
// through the approval service's own API with the person's identity (package slackapi).
//
// Each notification is one message to one recipient through one channel, caused by one event or one
// reminder occurrence: Key names it, and the delivery side sends each key once.
package notifier

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"time"

	"github.com/grantline/grantline/pkg/events"
)

// Channel is a way of telling someone.
type Channel string

// The channels.
const (
	Email   Channel = "email"
	Slack   Channel = "slack"
	Webhook Channel = "webhook"
)

// Channels lists every channel.
var Channels = []Channel{Email, Slack, Webhook}

// Kind says what a notification tells.
type Kind string

// The kinds of notification.
const (
	// ReviewRequested: a stage you can review awaits you (also when an earlier stage is satisfied).
	ReviewRequested Kind = "review_requested"
	// ReviewReminder: it still awaits you.
	ReviewReminder Kind = "review_reminder"
	// AwaitingApproval: policy wants approvals before your request can be granted.
	AwaitingApproval Kind = "awaiting_approval"
	// Denied: policy refused your request, with its reasons (also when it checked a request for a
	// later start again at that start, and no longer allowed it).
	Denied Kind = "denied"
	// Approved: every stage approved your request.
	Approved Kind = "approved"
	// Rejected: a reviewer rejected it, or nobody approved it in time.
	Rejected Kind = "rejected"
	// Granted: the access is on the target, until its expiry.
	Granted Kind = "granted"
	// FulfilmentFailed: the access could not be granted.
	FulfilmentFailed Kind = "fulfilment_failed"
	// ExpiryWarning: your access ends soon.
	ExpiryWarning Kind = "expiry_warning"
	// Revoked: the access ended, with the reason and what the target shows now.
	Revoked Kind = "revoked"
	// PostReviewDue: an emergency grant awaits your post-review.
	PostReviewDue Kind = "post_review_due"
	// PostReviewOverdue: nobody post-reviewed it in time (also to the escalation groups).
	PostReviewOverdue Kind = "post_review_overdue"
	// TaskOpened: a manual fulfilment task awaits your group.
	TaskOpened Kind = "task_opened"
	// TaskOverdue: the task passed its due time (also to the escalation groups).
	TaskOverdue Kind = "task_overdue"
	// RevocationFailed: access that must end is still on the target.
	RevocationFailed Kind = "revocation_failed"
	// DriftDetected: a target differs from the evidence: access back after its revocation (revoked
	// again), a live grant's access missing, or access no request explains (also to the escalation
	// groups).
	DriftDetected Kind = "drift_detected"
	// CertificationRequested: an access review asks you, an owner of the grants under review (or a
	// member of its escalation groups once escalated), to keep or revoke each by its deadline.
	CertificationRequested Kind = "certification_requested"
	// CertificationReminder: grants you own still await your answer in the review.
	CertificationReminder Kind = "certification_reminder"
)

// Kinds lists every kind, in lifecycle order.
var Kinds = []Kind{ReviewRequested, ReviewReminder, AwaitingApproval, Denied, Approved, Rejected, Granted, FulfilmentFailed,
	ExpiryWarning, Revoked, PostReviewDue, PostReviewOverdue, TaskOpened, TaskOverdue, RevocationFailed, DriftDetected,
	CertificationRequested, CertificationReminder}

// Person is someone the directory knows, with the addresses the notifier can reach them at.
type Person struct {
	// ID is the immutable subject, as events carry it.
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
	// Email is empty for a person without a mailbox.
	Email string `json:"email,omitempty"`
}

// Directory answers who someone is and who belongs to a group.
type Directory interface {
	// Person returns the person with this subject, or false.
	Person(id string) (Person, bool)
	// Members returns the people in group, in a stable order.
	Members(group string) []Person
}

// Entitlement is what the notifier reads of a catalogue entry.
type Entitlement struct {
	ID          string   `json:"id"`
	Description string   `json:"description,omitempty"`
	System      string   `json:"system,omitempty"`
	Resource    string   `json:"resource,omitempty"`
	OwnerGroups []string `json:"owner_groups,omitempty"`
}

// Catalogue answers what an entitlement is.
type Catalogue interface {
	// Entitlement returns the entry named id, or false.
	Entitlement(id string) (Entitlement, bool)
}

// Routing is the routing file: through which channels people are told, who is escalated to, which
// webhooks hear what, and when reminders come.
type Routing struct {
	// Default channels, for people that neither their own entry nor a group's names.
	Default []Channel
	// People are per-person entries, by subject.
	People map[string]PersonRoute
	// Groups are per-group channels, for people reached as members of that group.
	Groups map[string][]Channel
	// Webhooks hear the kinds they name (every kind when none is named).
	Webhooks []WebhookRoute
	Timing   Timing
	// Escalation names the groups told when something is overdue.
	Escalation Escalation
}

// PersonRoute is one person's entry.
type PersonRoute struct {
	// Channels, if set, override the group's and the default channels.
	Channels []Channel
	// Slack is the person's Slack user ID (U…): their direct messages, and how a Slack callback is
	// mapped back to them.
	Slack string
}

// WebhookRoute is one outbound webhook and the kinds it hears.
type WebhookRoute struct {
	Name  string
	Kinds []Kind
}

// Timing says when reminders come. A zero duration turns that reminder off.
type Timing struct {
	// ExpiryWarning is how long before expiry the holder is warned.
	ExpiryWarning time.Duration
	// ReviewReminder is how often reviewers of a waiting stage are reminded.
	ReviewReminder time.Duration
	// OverdueRepeat is how often overdue post-reviews and manual tasks are repeated.
	OverdueRepeat time.Duration
}

// Escalation names the groups told when something is overdue, besides the people it awaits, and when
// a target drifted from the evidence.
type Escalation struct {
	PostReview       []string
	ManualTask       []string
	RevocationFailed []string
	Drift            []string
}

// PersonBySlack returns the subject of the person whose Slack user ID is slackID, or false.
func (r Routing) PersonBySlack(slackID string) (string, bool) {
	if slackID == "" {
		return "", false
	}
	for id, p := range r.People {
		if p.Slack == slackID {
			return id, true
		}
	}
	return "", false
}

// Notification is one message to one recipient through one channel.
type Notification struct {
	// Cause is what caused it: the event ID, or the reminder occurrence ("reminder:<kind>:<request>:<unix>").
	Cause     string  `json:"cause"`
	Kind      Kind    `json:"kind"`
	RequestID string  `json:"request_id"`
	Channel   Channel `json:"channel"`
	// To is the person told, or for a webhook its name.
	To Person `json:"to"`
	// Address is where the channel delivers: the e-mail address, the Slack user ID, the webhook name.
	Address string `json:"address"`
	// Escalated says the recipient is told as a member of an escalation group.
	Escalated bool  `json:"escalated,omitempty"`
	Facts     Facts `json:"facts"`
}

// Key names the notification for exactly-once delivery: the cause, the recipient and the channel.
// Redelivering the cause, restarting, or a second replica produce the same key.
func (n Notification) Key() string {
	h := sha256.New()
	for _, part := range []string{n.Cause, n.To.ID, string(n.Channel), n.Address} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:40]
}

// Facts are what a message says about the request.
type Facts struct {
	Requester     Person                `json:"requester"`
	Subject       events.RequestSubject `json:"subject"`
	Entitlement   Entitlement           `json:"entitlement"`
	Justification string                `json:"justification,omitempty"`
	Ticket        string                `json:"ticket,omitempty"`
	// DurationSeconds is the requested duration, or the effective one once policy decided.
	DurationSeconds int64 `json:"duration_seconds"`
	Emergency       bool  `json:"emergency,omitempty"`
	// PolicyReasons and PolicyRevision are what policy said.
	PolicyReasons  []string `json:"policy_reasons,omitempty"`
	PolicyRevision string   `json:"policy_revision,omitempty"`
	// Stage is the stage a review is asked for; StageGroups its groups.
	Stage       string   `json:"stage,omitempty"`
	StageGroups []string `json:"stage_groups,omitempty"`
	// Deadline is what the message is due by: the approval window, the post-review deadline, a task's
	// due time.
	Deadline *time.Time `json:"deadline,omitempty"`
	// RequestDigest is the version of the request shown, which a review from the message binds to.
	RequestDigest string   `json:"request_digest,omitempty"`
	Approvers     []string `json:"approvers,omitempty"`
	RejectedBy    string   `json:"rejected_by,omitempty"`
	// Reason is a rejection's or a revocation's reason, or the kind of drift.
	Reason string `json:"reason,omitempty"`
	// Target names the access on a target that drift is about ("postgres: role grantline_…").
	Target    string           `json:"target,omitempty"`
	ExpiresAt *time.Time       `json:"expires_at,omitempty"`
	Observed  *events.Observed `json:"observed,omitempty"`
	// Error, Attempts and OverdueSince describe a failed fulfilment or revocation.
	Error        string     `json:"error,omitempty"`
	Attempts     int        `json:"attempts,omitempty"`
	OverdueSince *time.Time `json:"overdue_since,omitempty"`
	TaskID       string     `json:"task_id,omitempty"`
	Instructions string     `json:"instructions,omitempty"`
	// Told lists who else this cause told (for a webhook, everyone it told).
	Told []string `json:"told,omitempty"`
	// Campaign is the access review's name, for a certification; Grants how many grants await an
	// answer in it (then RequestID is the campaign's ID).
	Campaign string `json:"campaign,omitempty"`
	Grants   int    `json:"grants,omitempty"`
}

// Reminder is a kind of reminder the notifier arms for a request.
type Reminder string

// The reminders.
const (
	// RemindExpiry warns the holder before their access ends.
	RemindExpiry Reminder = "expiry"
	// RemindReview reminds reviewers of a stage that still waits.
	RemindReview Reminder = "review"
	// RemindPostReview repeats an overdue post-review.
	RemindPostReview Reminder = "post-review"
	// RemindTask tells that a manual task is due, and repeats it while it stays open.
	RemindTask Reminder = "task"
)

// Reminders lists every reminder.
var Reminders = []Reminder{RemindExpiry, RemindReview, RemindPostReview, RemindTask}

// Timer is a reminder to arm: at At, Remind runs for the request. One timer per reminder and request
// is armed at a time; arming it again moves it.
type Timer struct {
	Reminder Reminder  `json:"reminder"`
	At       time.Time `json:"at"`
	// TaskID names the task a RemindTask is about.
	TaskID string `json:"task_id,omitempty"`
	// ExpiresAt names the grant a RemindExpiry is about.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// Cause is the cause of the notifications this timer's occurrence sends: unique per request,
// reminder and time, so a redelivered fire sends nothing twice and the next occurrence sends again.
func (t Timer) Cause(requestID string) string {
	return "reminder:" + string(t.Reminder) + ":" + requestID + ":" + t.At.UTC().Format(time.RFC3339)
}

// Plan is what one event or reminder leads to.
type Plan struct {
	Notifications []Notification
	Timers        []Timer
}

// Rules decide notifications.
type Rules struct {
	Directory Directory
	Catalogue Catalogue
	Routing   Routing
}

// audience is who a message goes to: the people, each reached through a group (or directly), and
// whether they are told as an escalation.
type audience struct {
	rules Rules
	seen  map[string]bool
	to    []recipient
}

type recipient struct {
	person    Person
	via       string
	escalated bool
}

func (r Rules) audience() *audience { return &audience{rules: r, seen: map[string]bool{}} }

// person adds someone told directly; unknown people are skipped (the directory is the only source of
// addresses).
func (a *audience) person(id string) {
	if p, ok := a.rules.Directory.Person(id); ok && !a.seen[p.ID] {
		a.seen[p.ID] = true
		a.to = append(a.to, recipient{person: p})
	}
}

// groups adds the members of groups except those in skip.
func (a *audience) groups(groups []string, escalated bool, skip func(id string) bool) {
	for _, g := range groups {
		for _, p := range a.rules.Directory.Members(g) {
			if a.seen[p.ID] || (skip != nil && skip(p.ID)) {
				continue
			}
			a.seen[p.ID] = true
			a.to = append(a.to, recipient{person: p, via: g, escalated: escalated})
		}
	}
}

// channels are the channels to tell p through, having reached them through group via: their own
// entry, else the group's, else the default; only channels they have an address on.
func (r Rules) channels(p Person, via string) []Notification {
	chans := r.Routing.Default
	if gc, ok := r.Routing.Groups[via]; ok && via != "" {
		chans = gc
	}
	route, hasRoute := r.Routing.People[p.ID]
	if hasRoute && len(route.Channels) > 0 {
		chans = route.Channels
	}
	var out []Notification
	for _, c := range chans {
		var addr string
		switch c {
		case Email:
			addr = p.Email
		case Slack:
			addr = route.Slack
		}
		if addr != "" {
			out = append(out, Notification{Channel: c, To: p, Address: addr})
		}
	}
	return out
}

// tell turns an audience into notifications of kind caused by cause, plus the webhooks that hear kind.
func (r Rules) tell(plan *Plan, a *audience, cause, requestID string, kind Kind, facts Facts) {
	var told []string
	for _, rc := range a.to {
		told = append(told, rc.person.ID)
		for _, n := range r.channels(rc.person, rc.via) {
			n.Cause, n.Kind, n.RequestID, n.Escalated, n.Facts = cause, kind, requestID, rc.escalated, facts
			plan.Notifications = append(plan.Notifications, n)
		}
	}
	for _, w := range r.Routing.Webhooks {
		if len(w.Kinds) > 0 && !slices.Contains(w.Kinds, kind) {
			continue
		}
		f := facts
		f.Told = told
		plan.Notifications = append(plan.Notifications, Notification{Cause: cause, Kind: kind, RequestID: requestID,
			Channel: Webhook, To: Person{ID: "webhook:" + w.Name}, Address: w.Name, Facts: f})
	}
}

// facts are the facts every message about req carries.
func (r Rules) facts(req *events.Request) Facts {
	s := req.Submitted()
	requester, ok := r.Directory.Person(s.Requester.ID)
	if !ok {
		requester = Person{ID: s.Requester.ID}
	}
	ent, ok := r.Catalogue.Entitlement(s.Entitlement)
	if !ok {
		ent = Entitlement{ID: s.Entitlement}
	}
	d := req.Decision()
	duration := s.DurationSeconds
	if d.EffectiveDurationSeconds > 0 {
		duration = d.EffectiveDurationSeconds
	}
	return Facts{Requester: requester, Subject: s.Subject, Entitlement: ent, Justification: s.Justification, Ticket: s.Ticket,
		DurationSeconds: duration, Emergency: s.Emergency, PolicyReasons: d.Reasons, PolicyRevision: d.PolicyRevision,
		RequestDigest: s.RequestDigest}
}

// holders are the requester and, for a non-human subject, its owning team.
func (r Rules) holders(req *events.Request) *audience {
	a := r.audience()
	s := req.Submitted()
	a.person(s.Requester.ID)
	if s.Subject.Kind != events.SubjectHuman && s.Subject.Owner != "" {
		a.groups([]string{s.Subject.Owner}, false, nil)
	}
	return a
}

// cannotReview says who is not asked to review req: the requester, the subject, and whoever reviewed
// it already. The approval service decides for real; this only spares people a message they could not
// act on.
func cannotReview(req *events.Request) func(id string) bool {
	s := req.Submitted()
	return func(id string) bool {
		if id == s.Requester.ID || id == s.Subject.ID {
			return true
		}
		return slices.ContainsFunc(req.Reviews(), func(rv events.Reviewed) bool { return rv.Reviewer.ID == id })
	}
}

// askReviews tells the reviewers of stages (of req, after the event) that a review awaits them.
func (r Rules) askReviews(plan *Plan, req *events.Request, stages []int, cause string, kind Kind) {
	d := req.Decision()
	for _, i := range stages {
		st := d.Stages[i]
		a := r.audience()
		a.groups(st.Groups, false, cannotReview(req))
		f := r.facts(req)
		f.Stage, f.StageGroups, f.Deadline = st.Name, st.Groups, d.ApprovalDeadline
		r.tell(plan, a, cause, req.ID(), kind, f)
	}
}

// Plan decides what ev leads to. before is the request folded up to the event, after with it (the
// event store's fold, so after accepted ev). Events that tell nobody plan nothing.
func (r Rules) Plan(ev events.Event, before, after *events.Request) Plan {
	var plan Plan
	cause, id := ev.ID, after.ID()
	f := r.facts(after)
	switch p := ev.Payload.(type) {
	case events.PolicyDecided:
		switch p.Outcome {
		case events.OutcomeDeny:
			r.tell(&plan, r.holders(after), cause, id, Denied, f)
		case events.OutcomeApprovalRequired:
			r.askReviews(&plan, after, after.OpenStages(), cause, ReviewRequested)
			f.Deadline = p.ApprovalDeadline
			var groups []string
			for _, st := range p.Stages {
				groups = append(groups, st.Groups...)
			}
			f.StageGroups = slices.Compact(groups)
			r.tell(&plan, r.holders(after), cause, id, AwaitingApproval, f)
			r.armReviewReminder(&plan, after, ev.Time)
		}

	case events.StartChecked:
		// Checked again at the requested start and no longer allowed: denied, with the check's reasons.
		if !p.Allowed {
			f.PolicyReasons, f.PolicyRevision = p.Reasons, p.PolicyRevision
			r.tell(&plan, r.holders(after), cause, id, Denied, f)
		}

	case events.Reviewed:
		// A stage satisfied opens the next one (ordered stages): its reviewers are asked now.
		var opened []int
		for _, i := range after.OpenStages() {
			if !slices.Contains(before.OpenStages(), i) {
				opened = append(opened, i)
			}
		}
		if after.Status() == events.StatusPendingApproval {
			r.askReviews(&plan, after, opened, cause, ReviewRequested)
		}

	case events.Approved:
		f.Approvers = p.Approvers
		r.tell(&plan, r.holders(after), cause, id, Approved, f)

	case events.Rejected:
		f.RejectedBy, f.Reason = p.RejectedBy, p.Reason
		r.tell(&plan, r.holders(after), cause, id, Rejected, f)

	case events.Granted:
		expires := p.ExpiresAt
		f.ExpiresAt, f.Observed = &expires, &p.Observed
		r.tell(&plan, r.holders(after), cause, id, Granted, f)
		if w := r.Routing.Timing.ExpiryWarning; w > 0 && p.ExpiresAt.Add(-w).After(ev.Time) {
			plan.Timers = append(plan.Timers, Timer{Reminder: RemindExpiry, At: p.ExpiresAt.Add(-w), ExpiresAt: &expires})
		}
		if pr := after.Decision().PostReview; after.Decision().Outcome == events.OutcomeEmergency && pr != nil {
			a := r.audience()
			a.groups(pr.Groups, false, cannotReview(after))
			pf := f
			deadline := pr.Deadline
			pf.Deadline = &deadline
			r.tell(&plan, a, cause, id, PostReviewDue, pf)
		}

	case events.FulfilmentFailed:
		// Recorded only when fulfilment stops trying: the request has failed, whatever the class.
		f.Error, f.Attempts = p.ErrorClass+": "+p.Message, p.Attempts
		r.tell(&plan, r.holders(after), cause, id, FulfilmentFailed, f)

	case events.Revoked:
		f.Reason, f.Observed = string(p.Reason), &p.Observed
		if g := after.Grant(); g != nil {
			expires := g.ExpiresAt
			f.ExpiresAt = &expires
		}
		r.tell(&plan, r.holders(after), cause, id, Revoked, f)

	case events.PostReviewOverdue:
		r.postReviewOverdue(&plan, after, cause, p.Deadline)
		if every := r.Routing.Timing.OverdueRepeat; every > 0 {
			plan.Timers = append(plan.Timers, Timer{Reminder: RemindPostReview, At: ev.Time.Add(every)})
		}

	case events.TaskOpened:
		a := r.audience()
		a.groups(p.FulfillerGroups, false, nil)
		due := p.DueAt
		f.TaskID, f.Instructions, f.Deadline = p.TaskID, p.Instructions, &due
		r.tell(&plan, a, cause, id, TaskOpened, f)
		plan.Timers = append(plan.Timers, Timer{Reminder: RemindTask, At: p.DueAt, TaskID: p.TaskID})

	case events.RevocationFailed:
		a := r.audience()
		a.groups(f.Entitlement.OwnerGroups, false, nil)
		a.groups(r.Routing.Escalation.RevocationFailed, true, nil)
		since := p.OverdueSince
		f.Error, f.Attempts, f.OverdueSince, f.Reason = p.ErrorClass+": "+p.Message, p.Attempts, &since, string(after.RevocationDue())
		r.tell(&plan, a, cause, id, RevocationFailed, f)

	case events.DriftDetected:
		// The entitlement's owners answer for its access (a finding has no entitlement: the escalation
		// groups only); the holder hears that access they were granted is gone.
		a := r.audience()
		if p.Kind == events.DriftMissing {
			a = r.holders(after)
		}
		a.groups(f.Entitlement.OwnerGroups, false, nil)
		a.groups(r.Routing.Escalation.Drift, true, nil)
		f.Reason, f.Target, f.Observed = string(p.Kind), p.Connector+": "+p.TargetRef, &p.Observed
		r.tell(&plan, a, cause, id, DriftDetected, f)
	}
	return plan
}

// postReviewOverdue tells the post-review groups and the escalation groups that an emergency grant
// was not post-reviewed by deadline.
func (r Rules) postReviewOverdue(plan *Plan, req *events.Request, cause string, deadline time.Time) {
	a := r.audience()
	a.groups(req.Decision().PostReview.Groups, false, cannotReview(req))
	a.groups(r.Routing.Escalation.PostReview, true, cannotReview(req))
	f := r.facts(req)
	f.Deadline = &deadline
	r.tell(plan, a, cause, req.ID(), PostReviewOverdue, f)
}

// armReviewReminder arms the next review reminder after from, if it comes before the approval window
// ends.
func (r Rules) armReviewReminder(plan *Plan, req *events.Request, from time.Time) {
	every := r.Routing.Timing.ReviewReminder
	deadline := req.Decision().ApprovalDeadline
	if every <= 0 || (deadline != nil && !from.Add(every).Before(*deadline)) {
		return
	}
	plan.Timers = append(plan.Timers, Timer{Reminder: RemindReview, At: from.Add(every)})
}

// Remind decides what timer t, coming due, leads to for req as it is now: the reminder if what it is
// about still stands, and the next occurrence where reminders repeat. A reminder whose subject has
// moved on (the request was decided, the grant revoked, the task done) plans nothing.
func (r Rules) Remind(t Timer, req *events.Request) Plan {
	var plan Plan
	if req.Status() == events.StatusNone {
		return plan
	}
	cause, id := t.Cause(req.ID()), req.ID()
	f := r.facts(req)
	switch t.Reminder {
	case RemindExpiry:
		g := req.Grant()
		if req.Status() != events.StatusGranted || req.RevocationDue() != "" || g == nil ||
			t.ExpiresAt == nil || !g.ExpiresAt.Equal(*t.ExpiresAt) {
			return plan
		}
		expires := g.ExpiresAt
		f.ExpiresAt = &expires
		r.tell(&plan, r.holders(req), cause, id, ExpiryWarning, f)

	case RemindReview:
		if req.Status() != events.StatusPendingApproval {
			return plan
		}
		r.askReviews(&plan, req, req.OpenStages(), cause, ReviewReminder)
		r.armReviewReminder(&plan, req, t.At)

	case RemindPostReview:
		if !req.PostReviewOpen() {
			return plan
		}
		r.postReviewOverdue(&plan, req, cause, req.Decision().PostReview.Deadline)
		if every := r.Routing.Timing.OverdueRepeat; every > 0 {
			plan.Timers = append(plan.Timers, Timer{Reminder: RemindPostReview, At: t.At.Add(every)})
		}

	case RemindTask:
		task, open := openTask(req, t.TaskID)
		if !open {
			return plan
		}
		a := r.audience()
		a.groups(task.FulfillerGroups, false, nil)
		a.groups(r.Routing.Escalation.ManualTask, true, nil)
		due := task.DueAt
		f.TaskID, f.Instructions, f.Deadline = task.TaskID, task.Instructions, &due
		r.tell(&plan, a, cause, id, TaskOverdue, f)
		if every := r.Routing.Timing.OverdueRepeat; every > 0 {
			plan.Timers = append(plan.Timers, Timer{Reminder: RemindTask, At: t.At.Add(every), TaskID: t.TaskID})
		}
	}
	return plan
}

// openTask returns task id of req and whether it still awaits someone: a grant task until the grant,
// a revoke task until the revocation.
func openTask(req *events.Request, id string) (events.TaskOpened, bool) {
	i := slices.IndexFunc(req.Tasks(), func(t events.TaskOpened) bool { return t.TaskID == id })
	if i < 0 {
		return events.TaskOpened{}, false
	}
	task := req.Tasks()[i]
	switch task.Purpose {
	case events.TaskGrant:
		return task, req.Status() == events.StatusApproved
	case events.TaskRevoke:
		return task, req.Status() == events.StatusGranted && req.RevocationDue() != ""
	}
	return task, false
}
