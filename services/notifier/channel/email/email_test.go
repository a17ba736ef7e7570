package email_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/services/notifier"
	"github.com/grantline/grantline/services/notifier/channel"
	"github.com/grantline/grantline/services/notifier/channel/email"
	"github.com/grantline/grantline/services/notifier/mailsink"
)

func startSink(t *testing.T) *mailsink.Sink {
	t.Helper()
	sink, err := mailsink.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sink.Close() })
	return sink
}

func sender(t *testing.T, port int) *email.Sender {
	t.Helper()
	s, err := email.New(email.Config{Host: "127.0.0.1", Port: port, From: "Grantline <grantline@example.test>", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var bob = notifier.Person{ID: "bob", Name: "Bob Owner", Email: "bob@example.test"}

func delivery(kinds ...notifier.Kind) channel.Delivery {
	d := channel.Delivery{ID: "k1", Channel: notifier.Email, Address: bob.Email, To: bob}
	for _, k := range kinds {
		d.Notifications = append(d.Notifications, notifier.Notification{Kind: k, RequestID: "01KB0000000000000000000001",
			Channel: notifier.Email, To: bob, Address: bob.Email,
			Facts: notifier.Facts{Requester: notifier.Person{ID: "alice"}, Entitlement: notifier.Entitlement{ID: "payments-admin"},
				Justification: "INC-7: ünïcode & <markup>", DurationSeconds: 3600}})
	}
	return d
}

// TestSend: a real SMTP server receives one multipart message per delivery, to the person, with the
// rendered subject, a plain-text part, an HTML part and a Message-ID naming the delivery.
func TestSend(t *testing.T) {
	sink := startSink(t)
	s := sender(t, sink.Addr().Port)
	if _, err := s.Send(context.Background(), delivery(notifier.ReviewRequested)); err != nil {
		t.Fatal(err)
	}
	got := sink.Mail()
	if len(got) != 1 {
		t.Fatalf("%d messages received, want 1", len(got))
	}
	m := got[0]
	switch {
	case len(m.To) != 1 || m.To[0] != "bob@example.test":
		t.Errorf("to %v", m.To)
	case m.From != "grantline@example.test":
		t.Errorf("from %q", m.From)
	case m.Subject != "Review requested: alice asks for payments-admin":
		t.Errorf("subject %q", m.Subject)
	case !strings.Contains(m.Text, "Why: INC-7: ünïcode & <markup>"):
		t.Errorf("text part:\n%s", m.Text)
	case !strings.Contains(m.HTML, "INC-7: ünïcode &amp; &lt;markup&gt;"):
		t.Errorf("HTML part:\n%s", m.HTML)
	case m.MessageID != "k1@grantline":
		t.Errorf("message ID %q", m.MessageID)
	}

	if _, err := s.Send(context.Background(), delivery(notifier.Granted, notifier.Revoked)); err != nil {
		t.Fatal(err)
	}
	if digest := sink.Mail()[0]; digest.Subject != "2 updates on access requests" || !strings.Contains(digest.Text, "Access ended:") {
		t.Errorf("digest: %q\n%s", digest.Subject, digest.Text)
	}
}

// TestFailures: a mailbox the relay refuses is permanent; a relay that is down, or answers "try again
// later", is transient.
func TestFailures(t *testing.T) {
	sink := startSink(t)
	s := sender(t, sink.Addr().Port)
	ctx := context.Background()

	sink.RefuseRecipient(bob.Email)
	if _, err := s.Send(ctx, delivery(notifier.Granted)); !channel.IsPermanent(err) {
		t.Errorf("a refused mailbox: %v, want a permanent error", err)
	}

	other := startSink(t)
	other.Refuse(true)
	if _, err := sender(t, other.Addr().Port).Send(ctx, delivery(notifier.Granted)); err == nil || channel.IsPermanent(err) {
		t.Errorf("a relay answering 421: %v, want a transient error", err)
	}

	down := startSink(t)
	port := down.Addr().Port
	_ = down.Close()
	if _, err := sender(t, port).Send(ctx, delivery(notifier.Granted)); err == nil || channel.IsPermanent(err) {
		t.Errorf("a relay that is down: %v, want a transient error", err)
	}
	if n := len(sink.Mail()) + len(other.Mail()); n != 0 {
		t.Errorf("%d messages received, want none", n)
	}
}
