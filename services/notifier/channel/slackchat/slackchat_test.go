package slackchat_test

import (
	"context"
	"strings"
	"testing"

	"github.com/slack-go/slack"

	"github.com/grantline/grantline/services/notifier"
	"github.com/grantline/grantline/services/notifier/channel"
	"github.com/grantline/grantline/services/notifier/channel/slackchat"
	"github.com/grantline/grantline/services/notifier/render"
	"github.com/grantline/grantline/services/notifier/slacktest"
)

var bob = notifier.Person{ID: "bob", Name: "Bob Owner"}

func delivery(to string, kinds ...notifier.Kind) channel.Delivery {
	d := channel.Delivery{ID: "k1", Channel: notifier.Slack, Address: to, To: bob}
	for _, k := range kinds {
		d.Notifications = append(d.Notifications, notifier.Notification{Kind: k, RequestID: "01KB0000000000000000000001",
			Channel: notifier.Slack, To: bob, Address: to,
			Facts: notifier.Facts{Requester: notifier.Person{ID: "alice"}, Entitlement: notifier.Entitlement{ID: "payments-admin"},
				Justification: "INC-7", DurationSeconds: 3600, RequestDigest: "sha256:abc"}})
	}
	return d
}

// TestPostAndUpdate: a review request reaches the stand-in for Slack's Web API as a direct message
// with Block Kit blocks and the review buttons, within Slack's limits; a digest too; and the message
// can be replaced with an outcome.
func TestPostAndUpdate(t *testing.T) {
	api := slacktest.Start(t, "xoxb-test", "U0BOB")
	s, err := slackchat.New(slackchat.Config{Token: "xoxb-test", APIURL: api.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	receipt, err := s.Send(ctx, delivery("U0BOB", notifier.ReviewRequested))
	if err != nil {
		t.Fatal(err)
	}
	posted := api.Posted()
	if len(posted) != 1 || posted[0].Text != "Review requested: alice asks for payments-admin" ||
		!strings.Contains(posted[0].BlocksJSON, render.ActionApprove) || receipt.Ref != posted[0].Channel+"/"+posted[0].TS {
		t.Fatalf("posted %+v, receipt %q", posted, receipt.Ref)
	}
	if _, err := s.Send(ctx, delivery("U0BOB", notifier.Granted, notifier.Revoked, notifier.ExpiryWarning)); err != nil {
		t.Fatal(err)
	}
	blocks := []slack.Block{slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, "Approved by bob", false, false), nil, nil)}
	if err := s.Update(ctx, receipt.Ref, "Approved by bob", blocks); err != nil {
		t.Fatal(err)
	}
	if u := api.Updated(); len(u) != 1 || u[0].Text != "Approved by bob" {
		t.Fatalf("updated %+v", u)
	}
	if v := api.Violations(); len(v) > 0 {
		t.Fatalf("requests Slack would refuse: %v", v)
	}
}

// TestFailures: a user Slack does not know is permanent, a wrong token or an outage transient.
func TestFailures(t *testing.T) {
	api := slacktest.Start(t, "xoxb-test", "U0BOB")
	ctx := context.Background()
	s, _ := slackchat.New(slackchat.Config{Token: "xoxb-test", APIURL: api.URL})
	if _, err := s.Send(ctx, delivery("U0NOBODY", notifier.Granted)); !channel.IsPermanent(err) {
		t.Errorf("an unknown user: %v, want permanent", err)
	}
	wrong, _ := slackchat.New(slackchat.Config{Token: "xoxb-wrong", APIURL: api.URL})
	if _, err := wrong.Send(ctx, delivery("U0BOB", notifier.Granted)); err == nil || channel.IsPermanent(err) {
		t.Errorf("a wrong token: %v, want transient (the configuration gets fixed; the message must wait, not vanish)", err)
	}
	api.Down(true)
	if _, err := s.Send(ctx, delivery("U0BOB", notifier.Granted)); err == nil || channel.IsPermanent(err) {
		t.Errorf("an outage: %v, want transient", err)
	}
	if n := len(api.Posted()); n != 0 {
		t.Errorf("%d posted, want none", n)
	}
}
