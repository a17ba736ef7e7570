// Package email sends deliveries as multipart e-mail (plain text with an HTML alternative) over SMTP
// with github.com/wneessen/go-mail. Each message carries a Message-ID derived from the delivery, so a
// mailbox that deduplicates by Message-ID shows a message resent after a crash once.
package email

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wneessen/go-mail"

	"github.com/grantline/grantline/services/notifier/channel"
	"github.com/grantline/grantline/services/notifier/render"
)

// Config says how to reach the SMTP relay and whom mail comes from.
type Config struct {
	Host string
	Port int
	// From is the sender address, such as "Grantline <grantline@example.test>".
	From string
	// Username and Password authenticate with SMTP AUTH PLAIN when Username is set.
	Username, Password string
	// RequireTLS refuses to send without STARTTLS; otherwise TLS is used when the relay offers it.
	RequireTLS bool
	// Timeout bounds connecting and each SMTP command; defaults to 10s.
	Timeout time.Duration
	// MessageIDDomain is the right-hand side of Message-IDs; defaults to "grantline".
	MessageIDDomain string
	// Now stamps the Date header; defaults to time.Now.
	Now func() time.Time
}

// Sender sends e-mail.
type Sender struct {
	cfg Config
}

// New returns a sender for cfg. It fails without a host, a port or a From address.
func New(cfg Config) (*Sender, error) {
	if cfg.Host == "" || cfg.Port <= 0 || cfg.From == "" {
		return nil, errors.New("email: a host, a port and a From address are required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.MessageIDDomain == "" {
		cfg.MessageIDDomain = "grantline"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Sender{cfg: cfg}, nil
}

// Send renders d (a digest when it carries several notifications) and mails it to d.Address. A relay
// that refuses the recipient or the message for good (a 5xx answer) is a permanent error; anything
// else (unreachable, a 4xx answer, a timeout) is transient.
func (s *Sender) Send(ctx context.Context, d channel.Delivery) (channel.Receipt, error) {
	msg := render.Digest(d.Notifications)
	m := mail.NewMsg(mail.WithNoDefaultUserAgent())
	if err := m.From(s.cfg.From); err != nil {
		return channel.Receipt{}, channel.Permanent(fmt.Errorf("email: from %q: %w", s.cfg.From, err))
	}
	to := d.Address
	if name := d.To.Name; name != "" {
		err := m.AddToFormat(name, d.Address)
		if err != nil {
			return channel.Receipt{}, channel.Permanent(fmt.Errorf("email: to %q: %w", to, err))
		}
	} else if err := m.To(to); err != nil {
		return channel.Receipt{}, channel.Permanent(fmt.Errorf("email: to %q: %w", to, err))
	}
	m.Subject(msg.Subject)
	m.SetMessageIDWithValue(d.ID + "@" + s.cfg.MessageIDDomain)
	m.SetDateWithValue(s.cfg.Now())
	m.SetGenHeader(mail.HeaderXMailer, "Grantline notifier")
	m.SetBodyString(mail.TypeTextPlain, msg.Text)
	m.AddAlternativeString(mail.TypeTextHTML, msg.HTML)

	opts := []mail.Option{mail.WithPort(s.cfg.Port), mail.WithTimeout(s.cfg.Timeout), mail.WithTLSPolicy(mail.TLSOpportunistic)}
	if s.cfg.RequireTLS {
		opts[2] = mail.WithTLSPolicy(mail.TLSMandatory)
	}
	if s.cfg.Username != "" {
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthPlain), mail.WithUsername(s.cfg.Username), mail.WithPassword(s.cfg.Password))
	}
	client, err := mail.NewClient(s.cfg.Host, opts...)
	if err != nil {
		return channel.Receipt{}, channel.Permanent(fmt.Errorf("email: %w", err))
	}
	if err := client.DialAndSendWithContext(ctx, m); err != nil {
		return channel.Receipt{}, classify(to, err)
	}
	return channel.Receipt{}, nil
}

// classify says whether the relay refused for good: a 5xx answer (go-mail's *SendError with that
// code). A connection that failed, a 4xx answer or a timeout is transient.
func classify(to string, err error) error {
	err = fmt.Errorf("email to %s: %w", to, err)
	var se *mail.SendError
	if errors.As(err, &se) && se.ErrorCode() >= 500 && se.ErrorCode() < 600 {
		return channel.Permanent(err)
	}
	return err
}
