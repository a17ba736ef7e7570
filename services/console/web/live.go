package web

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/grantline/grantline/services/console/apiclient"
	"github.com/grantline/grantline/services/console/session"
)

// keepAliveEvery is how many quiet intervals pass before a comment keeps the stream open through
// proxies that close idle connections.
const keepAliveEvery = 15

// liveStream streams a request page's live region over Server-Sent Events as the request moves:
// every LiveInterval it asks intake for the request, as the person, and sends the region re-rendered
// ("live" events) when the request's version moved past ?version=. It sends "end" and stops once the
// request can no longer change, when the session ends or the service stops answering it, and when
// the console shuts down. The browser's EventSource reconnects by itself after a network failure.
func (c *Console) liveStream(w http.ResponseWriter, r *http.Request, s session.Session) {
	id := r.PathValue("id")
	since, _ := strconv.Atoi(r.URL.Query().Get("version"))
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no") // a buffering proxy would hold the events back
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return
	}
	client := r.Context()
	// The console's shutdown also abandons a call in flight, which could otherwise hold it.
	ctx, abandon := context.WithCancel(client)
	defer abandon()
	go func() {
		select {
		case <-c.stop:
			abandon()
		case <-ctx.Done():
		}
	}()
	r = r.WithContext(ctx)
	tick := time.NewTicker(c.cfg.LiveInterval)
	defer tick.Stop()
	quiet := 0
	for {
		select {
		case <-c.stop:
			_ = sendEvent(w, rc, "end", "")
			return
		case <-client.Done():
			return
		case <-tick.C:
		}
		if _, _, ok := c.cfg.SignIn.Current(r); !ok {
			if client.Err() == nil {
				_ = sendEvent(w, rc, "end", "")
			}
			return
		}
		call, cancel := callWithin(ctx)
		v, err := c.cfg.API.Request(call, s.Token, id)
		cancel()
		if p, refused := apiclient.AsProblem(err); refused && p.Status < 500 {
			_ = sendEvent(w, rc, "end", "")
			return
		}
		if err != nil || v.Version == since {
			// An outage is waited out like a quiet interval: the page keeps what it shows.
			if quiet++; quiet >= keepAliveEvery {
				quiet = 0
				if _, err := io.WriteString(w, ": keep-alive\n\n"); err != nil || rc.Flush() != nil {
					return
				}
			}
			continue
		}
		since, quiet = v.Version, 0
		l := c.liveOf(v, s.Subject, nil)
		var buf bytes.Buffer
		if err := c.pages["request"].ExecuteTemplate(&buf, "live", l); err != nil {
			c.cfg.Log.Error("render live region", "error", err.Error())
			return
		}
		if sendEvent(w, rc, "live", buf.String()) != nil {
			return
		}
		if l.Terminal {
			_ = sendEvent(w, rc, "end", "")
			return
		}
	}
}

// sendEvent writes one Server-Sent Event: its name, and data line by line.
func sendEvent(w io.Writer, rc *http.ResponseController, name, data string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "event: %s\n", name)
	for _, line := range strings.Split(data, "\n") {
		fmt.Fprintf(&b, "data: %s\n", strings.TrimSuffix(line, "\r"))
	}
	b.WriteString("\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	return rc.Flush()
}
