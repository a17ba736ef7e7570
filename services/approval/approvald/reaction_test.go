package approvald_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/consumer"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/natstest"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/services/approval"
)

var owners = events.Stage{Name: "owners", Groups: []string{"payments-owners"}, MinApprovals: 1}

// TestApprovalWindowTimesOut: the window policy set runs on a JetStream schedule; when it passes on a
// request nobody reviewed, the request is rejected for timeout, once.
func TestApprovalWindowTimesOut(t *testing.T) {
	w := newWorld(t)
	id := w.submit(t, alice, "payments-admin", false)
	w.decide(t, id, time.Now().Add(time.Second), false, owners)

	poll.Until(t, 8*time.Second, "the request to be rejected for timeout", func() bool {
		return w.load(t, id).Request.Status() == events.StatusRejected
	})
	l := w.load(t, id)
	last := l.Events[len(l.Events)-1]
	if r := l.Request.Rejection(); r.Reason != events.RejectedTimeout || last.CausationID != approval.TimeoutCause(id) || last.Actor != "service:approval" {
		t.Fatalf("rejection %+v caused by %q, actor %q", r, last.CausationID, last.Actor)
	}
	if !last.Time.After(*l.Request.Decision().ApprovalDeadline) {
		t.Fatalf("rejected at %s, before the deadline %s", last.Time, l.Request.Decision().ApprovalDeadline)
	}
	// A review after the window closed is too late.
	if status, body := w.call(t, "POST", "/v1/requests/"+id+"/reviews", "bob", approveBody); status != 409 || problem(t, body) != "not-pending" {
		t.Fatalf("review after the timeout: %d %s", status, body)
	}
}

// TestStaleWindowIsANoOp: a request approved before its window ends is left alone when the timer fires.
func TestStaleWindowIsANoOp(t *testing.T) {
	w := newWorld(t)
	id := w.submit(t, alice, "payments-admin", false)
	w.decide(t, id, time.Now().Add(1500*time.Millisecond), false, owners)
	w.armed(t, id, topology.TimerApprovalWindow)
	if status, body := w.call(t, "POST", "/v1/requests/"+id+"/reviews", "bob", approveBody); status != 201 {
		t.Fatalf("bob: %d %s", status, body)
	}
	st, _ := w.js.Stream(context.Background(), topology.TimersStream)
	poll.Until(t, 8*time.Second, "the window timer to fire and be handled", func() bool {
		_, err := st.GetLastMsgForSubject(context.Background(), topology.TimerFired(id, topology.TimerApprovalWindow))
		return err == nil && w.settled(t, topology.ApprovalTimers.Stream, topology.ApprovalTimers.Durable)
	})
	if l := w.load(t, id); l.Request.Status() != events.StatusApproved || len(l.Events) != 4 {
		t.Fatalf("status %s with %d events after a stale timer", l.Request.Status(), len(l.Events))
	}
}

// TestEmergencyPostReview: an emergency grant owes a review by security; ratified, flagged (which asks
// for revocation) or overdue when nobody reviews it in time.
func TestEmergencyPostReview(t *testing.T) {
	w := newWorld(t)

	t.Run("ratified", func(t *testing.T) {
		id := w.emergency(t, time.Now().Add(time.Hour))
		poll.Until(t, 10*time.Second, "carol's inbox to show the post-review", func() bool {
			it, ok := has(w.inbox(t, "carol"), id)
			return ok && it.Kind == approval.AwaitsPostReview && it.Emergency
		})
		path := "/v1/requests/" + id + "/post-review"
		for _, s := range []struct {
			user, body, problem string
			status              int
		}{
			{"alice", `{"outcome":"ratified"}`, "separation-of-duties", 403},
			// bob owns the entitlement, so he sees the request and is told why he may not; dave may not
			// see it, so for him it does not exist.
			{"bob", `{"outcome":"ratified"}`, "not-a-reviewer", 403},
			{"dave", `{"outcome":"ratified"}`, "not-found", 404},
			{"carol", `{"outcome":"flagged"}`, "invalid-review", 422},
			{"carol", `{"outcome":"ratified","reason":"INC-7 confirmed"}`, "", 201},
			{"carol", `{"outcome":"ratified"}`, "not-pending", 409},
		} {
			status, body := w.call(t, "POST", path, s.user, s.body)
			if status != s.status || (s.problem != "" && problem(t, body) != s.problem) {
				t.Fatalf("%s posts %s: %d %s, want %d %s", s.user, s.body, status, body, s.status, s.problem)
			}
		}
		r := w.load(t, id).Request
		if pr := r.PostReview(); pr == nil || pr.Outcome != events.PostReviewRatified || pr.Reviewer.ID != "carol" || r.RevocationDue() != "" {
			t.Fatalf("post-review %+v, revocation due %q", pr, r.RevocationDue())
		}
		poll.Until(t, 10*time.Second, "the post-review to leave carol's inbox", func() bool {
			_, ok := has(w.inbox(t, "carol"), id)
			return !ok
		})
	})

	t.Run("flagged", func(t *testing.T) {
		id := w.emergency(t, time.Now().Add(time.Hour))
		status, body := w.call(t, "POST", "/v1/requests/"+id+"/post-review", "carol", `{"outcome":"flagged","reason":"no incident matches"}`)
		if status != 201 || !strings.Contains(string(body), `"revocation_due":"review_failed"`) {
			t.Fatalf("flag: %d %s", status, body)
		}
		if r := w.load(t, id).Request; r.RevocationDue() != events.RevokeReviewFailed {
			t.Fatalf("revocation due %q after a flag, want review_failed", r.RevocationDue())
		}
	})

	t.Run("overdue", func(t *testing.T) {
		id := w.emergency(t, time.Now().Add(time.Second))
		poll.Until(t, 8*time.Second, "post_review_overdue", func() bool { return w.load(t, id).Request.PostReviewOverdue() })
		if n := w.count(t, id, events.TypePostReviewOverdue); n != 1 {
			t.Fatalf("%d overdue events", n)
		}
		poll.Until(t, 10*time.Second, "carol's inbox to mark the post-review overdue", func() bool {
			it, ok := has(w.inbox(t, "carol"), id)
			return ok && it.Overdue
		})
		// Late is better than never: the review may still be done.
		if status, body := w.call(t, "POST", "/v1/requests/"+id+"/post-review", "carol", `{"outcome":"ratified"}`); status != 201 {
			t.Fatalf("late post-review: %d %s", status, body)
		}
	})

	// The deadline is armed with the decision; when it passes before the grant is made, the grant is
	// overdue from the moment it is made.
	t.Run("overdue before the grant", func(t *testing.T) {
		id := w.emergencyDecided(t, time.Now().Add(time.Second))
		w.armed(t, id, topology.TimerPostReview)
		st, err := w.js.Stream(context.Background(), topology.TimersStream)
		if err != nil {
			t.Fatal(err)
		}
		poll.Until(t, 8*time.Second, "the post-review deadline to fire", func() bool {
			_, err := st.GetLastMsgForSubject(context.Background(), topology.TimerFired(id, topology.TimerPostReview))
			return err == nil
		})
		if w.load(t, id).Request.PostReviewOverdue() {
			t.Fatal("an emergency not granted yet is marked overdue")
		}
		w.grant(t, id)
		poll.Until(t, 3*approval.GrantWait, "post_review_overdue after the late grant", func() bool { return w.load(t, id).Request.PostReviewOverdue() })
		if n := w.count(t, id, events.TypePostReviewOverdue); n != 1 {
			t.Fatalf("%d overdue events", n)
		}
	})
}

// TestForgedEventsAreRefused publishes reviewed and approved events signed with another service's key
// straight into the stream. The store refuses to load the request (type_not_allowed), and no reaction
// of the approval service acts on it: the inbox and the approval window's timer dead-letter, a
// reviewer's attempt fails, and nothing is appended on top of the forgery.
func TestForgedEventsAreRefused(t *testing.T) {
	cases := []struct {
		name    string
		signer  events.Service
		payload func(digest string) events.Payload
	}{
		{"an approval signed with intake's key", events.Intake, func(string) events.Payload {
			return events.Approved{Approvers: []string{"mallory"}}
		}},
		{"a review signed with policy's key", events.Policy, func(digest string) events.Payload {
			return events.Reviewed{Reviewer: events.Principal{ID: "bob", Groups: []string{"payments-owners"}}, Stage: 0,
				Decision: events.ReviewApprove, RequestDigest: digest}
		}},
		{"an approval signed with fulfilment's key", events.Fulfilment, func(string) events.Payload {
			return events.Approved{Approvers: []string{"bob"}}
		}},
	}
	w := newWorld(t)
	ctx := context.Background()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := w.submit(t, alice, "payments-admin", false)
			// The window ends soon, so the timer fires on the forged request too.
			w.decide(t, id, time.Now().Add(time.Second), false, events.Stage{Name: "owners", Groups: []string{"payments-owners"}, MinApprovals: 2})
			w.armed(t, id, topology.TimerApprovalWindow)
			digest := w.load(t, id).Request.Submitted().RequestDigest
			w.forge(t, id, tc.signer, tc.payload(digest), "bob")

			_, err := w.stores[events.Approval].Load(ctx, id)
			var v *events.Violation
			if !errors.As(err, &v) || v.Kind != events.ViolationTypeNotAllowed || v.Position != 3 {
				t.Fatalf("Load = %v, want type_not_allowed at position 3", err)
			}
			poll.Until(t, 10*time.Second, "the inbox and the timer to dead-letter", func() bool {
				return deadLettered(t, w.js, topology.ApprovalInbox.Durable, id) && deadLettered(t, w.js, topology.ApprovalTimers.Durable, id)
			})
			// A reviewer's attempt fails rather than appending on top of the forgery.
			if status, _ := w.call(t, "POST", "/v1/requests/"+id+"/reviews", "frank", approveBody); status != 500 {
				t.Fatalf("review on a forged request: %d, want 500", status)
			}
			if n := natstest.Stored(t, w.js, topology.EventsStream, events.RequestFilter(id)); n != 3 {
				t.Fatalf("%d events stored for the request, want the two real ones and the forgery", n)
			}
		})
	}
}

// armed waits until the approval service has scheduled timer kind for request id.
func (w *world) armed(t testing.TB, id, kind string) {
	t.Helper()
	st, err := w.js.Stream(context.Background(), topology.TimersStream)
	if err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 5*time.Second, "the "+kind+" timer to be armed", func() bool {
		_, err := st.GetLastMsgForSubject(context.Background(), topology.TimerSchedule(id, kind))
		return err == nil
	})
}

// deadLettered reports whether durable dead-lettered a message about request id, citing
// type_not_allowed.
func deadLettered(t testing.TB, js jetstream.JetStream, durable, id string) bool {
	t.Helper()
	ctx := context.Background()
	st, err := js.Stream(ctx, topology.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for s := info.State.FirstSeq; s <= info.State.LastSeq && s > 0; s++ {
		m, err := st.GetMsg(ctx, s)
		if err != nil || m.Subject != topology.DeadLetter(durable) {
			continue
		}
		if strings.Contains(m.Header.Get(consumer.HeaderReason), string(events.ViolationTypeNotAllowed)) &&
			strings.Contains(m.Header.Get(consumer.HeaderSubject), id) {
			return true
		}
	}
	return false
}
