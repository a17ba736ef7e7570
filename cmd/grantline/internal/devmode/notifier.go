package devmode

import (
	"net/http"
	"path/filepath"
	"strconv"

	"github.com/grantline/grantline/services/notifier/mailsink"
)

// MailPath is where the dev origin lists the mail the notifier sent, newest first.
const MailPath = "/dev/mail"

// notifierVariables starts the local mail sink the notifier mails through in dev, lists what it
// received at GET /dev/mail on mux, and returns the notifier's own variables: the directory (whose
// e-mail addresses it mails), the routing file beside the catalogue, and the sink as its SMTP relay.
// Slack is not configured in dev, so people are told by e-mail only. The sink closes with the
// environment.
func (e *Env) notifierVariables(d demo, mux *http.ServeMux) (map[string]string, error) {
	sink, err := mailsink.Start("127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	e.mail = sink
	mux.Handle("GET "+MailPath, sink.Handler())
	return map[string]string{"GRANTLINE_DIRECTORY": filepath.Join(d.dir, "directory.yaml"),
		"GRANTLINE_NOTIFICATIONS": filepath.Join(d.dir, "notifications.yaml"), "GRANTLINE_SMTP_HOST": "127.0.0.1",
		"GRANTLINE_SMTP_PORT": strconv.Itoa(sink.Addr().Port), "GRANTLINE_SMTP_FROM": "Grantline dev <grantline@localhost>"}, nil
}

// MailURL is where the mail the notifier sent is listed.
func (e *Env) MailURL() string { return e.ConsoleURL() + MailPath }
