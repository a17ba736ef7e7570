package e2e

import (
	"context"
	"encoding/json/v2"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/grantline/grantline/e2e/internal/cluster"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/services/notifier/mailsink"
	"github.com/grantline/grantline/services/notifier/render"
	"github.com/grantline/grantline/services/notifier/slacktest"
)

// slackSigningSecret is the Slack app's signing secret the notifier verifies callbacks with.
const slackSigningSecret = "e2e-slack-app-signing-secret"

// TestPeopleAreToldAndApproveFromSlack: the notifier's container runs beside the deployment, mailing
// through a mail sink and posting to a stand-in for Slack's Web API, both in this process. alice asks
// for payments-admin for 20 seconds: its owners are told (bob on Slack with the review buttons and by
// e-mail, frank by e-mail); bob presses Approve in Slack, and the signed callback becomes bob's review
// through the approval service, recorded as his and as carried by the notifier; security (carol) is
// told and approves over the API; alice is told her access was granted and, when it expires, that it
// ended. Everyone hears each thing once.
func TestPeopleAreToldAndApproveFromSlack(t *testing.T) {
	logsOnFailure(t)
	sink, err := mailsink.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sink.Close() })
	slack := slacktest.Start(t, "xoxb-e2e", "U0BOB", "U0CAROL", "U0FRANK")
	if err := deployment.StartNotifier(t.Context(), cluster.Notifier{SMTPPort: sink.Addr().Port, SlackAPIURL: slack.URL,
		SlackToken: "xoxb-e2e", SigningSecret: slackSigningSecret}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := deployment.Stop(context.Background(), "notifier"); err != nil {
			t.Errorf("stop the notifier: %v", err)
		}
	})

	alice, carol := as(t, "alice"), as(t, "carol")
	id := alice.submit(`{"entitlement":"payments-admin","duration":"20s","justification":"INC-77 settlement stuck","ticket":"INC-77"}`)
	alice.await(id, events.StatusPendingApproval, stepTimeout)
	var asked slacktest.Message
	poll.Until(t, stepTimeout, "the owners told of "+id, func() bool {
		var ok bool
		asked, ok = slackMessage(slack.Posted(), "D0BOB", id)
		told := mailed(sink, id)
		return ok && has(told["bob@example.test"], "Review requested") && has(told["frank@example.test"], "Review requested") &&
			has(told["alice@example.test"], "awaits approval")
	})

	body, err := slacktest.Press("U0BOB", asked, id, render.ActionApprove)
	if err != nil {
		t.Fatal(err)
	}
	signed := slacktest.Sign(slackSigningSecret, body, time.Now())
	status, answer := pressed(t, body, signed)
	if status != http.StatusOK || answer["outcome"] != "approved" || answer["reviewer"] != "bob" {
		t.Fatalf("bob's Approve in Slack: %d %v", status, answer)
	}
	rv := payload[events.Reviewed](t, expectTypes(t, id, "submitted", "policy_decided", "reviewed"))
	if rv.Reviewer.ID != "bob" || rv.Stage != 0 || rv.Decision != events.ReviewApprove || rv.Via != "grantline-notifier" {
		t.Fatalf("reviewed %+v, want bob's approval of the owners' stage, carried by grantline-notifier", rv)
	}
	if updated := slack.Updated(); len(updated) != 1 || !strings.HasPrefix(updated[0].Text, "Approved by bob") {
		t.Fatalf("bob's Slack message was updated to %+v", updated)
	}
	status, answer = pressed(t, body, signed)
	if status != http.StatusConflict {
		t.Fatalf("the same signed callback again: %d %v, want 409", status, answer)
	}

	poll.Until(t, stepTimeout, "security told", func() bool {
		_, onSlack := slackMessage(slack.Posted(), "D0CAROL", id)
		return onSlack && has(mailed(sink, id)["carol@example.test"], "Review requested")
	})
	carol.expect(http.StatusCreated, http.MethodPost, "approval", "/v1/requests/"+id+"/reviews", `{"decision":"approve"}`, nil)
	alice.await(id, events.StatusGranted, stepTimeout)
	poll.Until(t, stepTimeout, "alice told of the grant", func() bool {
		return has(mailed(sink, id)["alice@example.test"], "Granted: payments-admin")
	})
	alice.await(id, events.StatusRevoked, expiryTimeout)
	poll.Until(t, stepTimeout, "alice told her access ended", func() bool {
		return has(mailed(sink, id)["alice@example.test"], "Access ended: payments-admin") && notifierSettled(t)
	})

	want := map[string]int{"alice@example.test": 4, "bob@example.test": 1, "frank@example.test": 1, "carol@example.test": 1}
	got := map[string]int{}
	for mailbox, titles := range mailed(sink, id) {
		got[mailbox] = len(titles)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("notifications by e-mail per mailbox (-want +got):\n%s\n%v", diff, mailed(sink, id))
	}
	if v := slack.Violations(); len(v) > 0 {
		t.Errorf("requests Slack would refuse: %v", v)
	}
}

// mailed lists, per mailbox, the title of each notification about request id it received: a message
// carries one or, as a digest, several, each a section that starts with its title and names its request
// on a "Request: <id>" line.
func mailed(sink *mailsink.Sink, id string) map[string][]string {
	out := map[string][]string{}
	for _, m := range sink.Mail() {
		for section := range strings.SplitSeq(strings.ReplaceAll(m.Text, "\r\n", "\n"), "\n----\n") {
			title, _, _ := strings.Cut(strings.TrimLeft(section, "\n"), "\n")
			if !slices.Contains(strings.Split(section, "\n"), "Request: "+id) {
				continue
			}
			for _, to := range m.To {
				out[to] = append(out[to], title)
			}
		}
	}
	return out
}

// has reports whether one of titles contains s.
func has(titles []string, s string) bool {
	return slices.ContainsFunc(titles, func(title string) bool { return strings.Contains(title, s) })
}

// slackMessage finds the message posted to channel (a person's direct messages) about request id.
func slackMessage(posted []slacktest.Message, channel, id string) (slacktest.Message, bool) {
	for _, m := range posted {
		if m.Channel == channel && strings.Contains(m.BlocksJSON, id) {
			return m, true
		}
	}
	return slacktest.Message{}, false
}

// pressed sends a Slack interaction callback to the notifier and returns the status and the answer.
func pressed(t *testing.T, body string, h http.Header) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, deployment.URL("notifier")+"/v1/slack/interactions",
		strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.UnmarshalRead(resp.Body, &out); err != nil {
		t.Fatalf("the notifier's answer (%s): %v", resp.Status, err)
	}
	return resp.StatusCode, out
}

// notifierSettled reports whether the notifier has planned every event and delivered every e-mail.
func notifierSettled(t *testing.T) bool {
	t.Helper()
	for _, c := range []topology.Consumer{topology.NotifierEvents, topology.NotifierEmail} {
		cons, err := deployment.JetStream().Consumer(t.Context(), c.Stream, c.Durable)
		if err != nil {
			return false
		}
		info, err := cons.Info(t.Context())
		if err != nil || info.NumPending > 0 || info.NumAckPending > 0 {
			return false
		}
	}
	return true
}
