package cli

import (
	"context"
	"encoding/json/v2"
	"io"
	"net"
	"net/http"
	"net/smtp"
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/poll"
)

// TestMailSinkCommand: grantline dev mailsink keeps what it receives over SMTP and lists it at
// /dev/mail, and stops when its context ends.
func TestMailSinkCommand(t *testing.T) {
	smtpAddr, httpAddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- Execute(ctx, []string{"dev", "mailsink", "--smtp", smtpAddr, "--http", httpAddr}, io.Discard, io.Discard)
	}()
	t.Cleanup(func() { cancel(); <-done })

	msg := "To: bob@example.test\r\nSubject: Review requested\r\nContent-Type: text/plain\r\n\r\nRequest: R1\r\n"
	poll.Until(t, 10*time.Second, "the sink to take the mail", func() bool {
		return smtp.SendMail(smtpAddr, nil, "grantline@example.test", []string{"bob@example.test"}, []byte(msg)) == nil
	})
	var listed struct {
		Mail []struct {
			To      []string `json:"to"`
			Subject string   `json:"subject"`
			Text    string   `json:"text"`
		} `json:"mail"`
	}
	resp, err := http.Get("http://" + httpAddr + "/dev/mail")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.UnmarshalRead(resp.Body, &listed); err != nil {
		t.Fatal(err)
	}
	if len(listed.Mail) != 1 || listed.Mail[0].To[0] != "bob@example.test" || listed.Mail[0].Subject != "Review requested" ||
		!strings.Contains(listed.Mail[0].Text, "Request: R1") {
		t.Fatalf("listed %+v", listed.Mail)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit code %d after stop", code)
		}
		done <- code
	case <-time.After(10 * time.Second):
		t.Fatal("the mail sink did not stop")
	}
}

// freeAddr is a loopback address with a port nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
