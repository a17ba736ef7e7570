// Package mailsink is a local SMTP server that keeps what it receives instead of delivering it, for
// development (`grantline dev` points the notifier at it and lists the mail at GET /dev/mail) and for
// tests, which read back exactly what a real relay would have been handed. It is built on
// github.com/emersion/go-smtp; each message is parsed as a mail client would (headers, the plain-text
// and HTML parts of a multipart/alternative body).
//
// A sink can be told to refuse mail for a while (Refuse), as a relay that is down answers 421, and to
// refuse some recipients for good (RefuseRecipient), as a relay answers 550 for a mailbox that does
// not exist.
package mailsink

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/mail"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/grantline/grantline/pkg/httpjson"
)

// Mail is one received message.
type Mail struct {
	// To are the envelope recipients.
	To        []string  `json:"to"`
	From      string    `json:"from"`
	Subject   string    `json:"subject"`
	Text      string    `json:"text"`
	HTML      string    `json:"html,omitempty"`
	MessageID string    `json:"message_id"`
	Received  time.Time `json:"received"`
}

// Sink is a running mail sink.
type Sink struct {
	srv *smtp.Server
	ln  net.Listener

	mu        sync.Mutex
	mail      []Mail
	refusing  bool
	refusedTo map[string]bool
	done      chan struct{}
}

// Start listens on addr ("127.0.0.1:0" for any free port) and serves SMTP until Close.
func Start(addr string) (*Sink, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("mail sink: %w", err)
	}
	s := &Sink{ln: ln, refusedTo: map[string]bool{}, done: make(chan struct{})}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &session{sink: s}, nil }))
	s.srv.Domain = "mailsink.local"
	s.srv.AllowInsecureAuth = true
	s.srv.MaxMessageBytes = 1 << 20
	s.srv.ReadTimeout = 30 * time.Second
	s.srv.WriteTimeout = 30 * time.Second
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

// Addr is where the sink listens.
func (s *Sink) Addr() *net.TCPAddr { return s.ln.Addr().(*net.TCPAddr) }

// Close stops the server and waits for it. It may be called more than once.
func (s *Sink) Close() error {
	err := s.srv.Close()
	// The server knows its listener only once Serve has started: closing it here too stops a sink
	// closed right after Start.
	if cerr := s.ln.Close(); err == nil && !errors.Is(cerr, net.ErrClosed) {
		err = cerr
	}
	<-s.done
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

// Refuse makes the sink answer every message with 421 (service not available, try again later) while
// on is true, as a relay that is down.
func (s *Sink) Refuse(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refusing = on
}

// RefuseRecipient makes the sink answer 550 (no such mailbox) for addr, for good.
func (s *Sink) RefuseRecipient(addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refusedTo[strings.ToLower(addr)] = true
}

// Mail returns what was received, newest first.
func (s *Sink) Mail() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.mail)
	slices.Reverse(out)
	return out
}

// Handler serves the received mail as JSON, newest first: {"mail": [{"to", "subject", "text", …}]}.
func (s *Sink) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		httpjson.Write(w, http.StatusOK, struct {
			Mail []Mail `json:"mail"`
		}{append([]Mail{}, s.Mail()...)})
	})
}

type session struct {
	sink *Sink
	from string
	to   []string
}

var errUnavailable = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Service not available, try again later"}

func (se *session) Mail(from string, _ *smtp.MailOptions) error {
	se.sink.mu.Lock()
	defer se.sink.mu.Unlock()
	if se.sink.refusing {
		return errUnavailable
	}
	se.from = from
	return nil
}

func (se *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	se.sink.mu.Lock()
	defer se.sink.mu.Unlock()
	if se.sink.refusedTo[strings.ToLower(to)] {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such mailbox"}
	}
	se.to = append(se.to, to)
	return nil
}

func (se *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m, err := parse(raw)
	if err != nil {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Unreadable message: " + err.Error()}
	}
	m.To, m.From = slices.Clone(se.to), se.from
	se.sink.mu.Lock()
	defer se.sink.mu.Unlock()
	if se.sink.refusing {
		return errUnavailable
	}
	// Stamped under the lock, so the order kept (and listed newest first) is the order of the stamps
	// even when several sessions deliver at once.
	m.Received = time.Now().UTC()
	se.sink.mail = append(se.sink.mail, m)
	return nil
}

func (se *session) Reset()        { se.from, se.to = "", nil }
func (se *session) Logout() error { return nil }

// parse reads a message the way a mail client shows it: the subject decoded, and the text/plain and
// text/html parts of the body, decoded from their transfer encoding.
func parse(raw []byte) (Mail, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return Mail{}, err
	}
	var m Mail
	dec := new(mime.WordDecoder)
	if m.Subject, err = dec.DecodeHeader(msg.Header.Get("Subject")); err != nil {
		return Mail{}, fmt.Errorf("subject: %w", err)
	}
	m.MessageID = strings.Trim(msg.Header.Get("Message-Id"), "<>")
	err = readPart(&m, msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body)
	return m, err
}

func readPart(m *Mail, contentType, encoding string, body io.Reader) error {
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return fmt.Errorf("content type %q: %w", contentType, err)
	}
	if strings.HasPrefix(mediaType, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			// NextRawPart leaves the transfer encoding to decode below, for every part alike.
			p, err := mr.NextRawPart()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			if err := readPart(m, p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p); err != nil {
				return err
			}
		}
	}
	switch strings.ToLower(encoding) {
	case "quoted-printable":
		body = quotedprintable.NewReader(body)
	case "base64":
		body = base64.NewDecoder(base64.StdEncoding, body)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return fmt.Errorf("%s part: %w", mediaType, err)
	}
	switch mediaType {
	case "text/plain":
		m.Text = string(b)
	case "text/html":
		m.HTML = string(b)
	}
	return nil
}
