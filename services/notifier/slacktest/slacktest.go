// Package slacktest stands in for Slack's Web API in tests: an HTTP server answering chat.postMessage
// and chat.update as Slack documents them (form-encoded, authenticated by the bot token, a channel and
// a text or blocks, Block Kit limits), keeping what it was sent. A request Slack would refuse gets
// Slack's error answer and is recorded as a violation, which tests check is empty.
package slacktest

import (
	"encoding/json/v2"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Message is a message Slack was asked to post or to update to.
type Message struct {
	Channel string
	TS      string
	Text    string
	// Blocks are the Block Kit blocks, decoded.
	Blocks []map[string]any
	// BlocksJSON is the blocks as sent.
	BlocksJSON string
}

// Server is the stand-in.
type Server struct {
	// URL is the Web API's base URL, ending in "/api/", for the Slack client's APIURL.
	URL   string
	token string

	mu         sync.Mutex
	posted     []Message
	updated    []Message
	violations []string
	users      map[string]bool
	down       bool
	seq        int
}

// Start runs a stand-in that accepts token and knows users (Slack user IDs); a post to anyone else is
// answered channel_not_found. It stops when the test ends.
func Start(t testing.TB, token string, users ...string) *Server {
	t.Helper()
	s := &Server{token: token, users: map[string]bool{}}
	for _, u := range users {
		s.users[u] = true
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/chat.postMessage", s.postMessage)
	mux.HandleFunc("/api/chat.update", s.update)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	s.URL = srv.URL + "/api/"
	return s
}

// Down makes the stand-in answer every call with 503, as Slack does during an outage.
func (s *Server) Down(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = on
}

// Posted returns the messages posted, oldest first.
func (s *Server) Posted() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.posted)
}

// Updated returns the updates, oldest first.
func (s *Server) Updated() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.updated)
}

// Violations lists the requests Slack would have refused, and why.
func (s *Server) Violations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.violations)
}

// read checks what every Web API call must be and returns the message it carries, or answers with
// Slack's error and returns false.
func (s *Server) read(w http.ResponseWriter, r *http.Request, method string) (Message, bool) {
	s.mu.Lock()
	down := s.down
	s.mu.Unlock()
	if down {
		http.Error(w, "service unavailable", http.StatusServiceUnavailable)
		return Message{}, false
	}
	fail := func(code, why string) (Message, bool) {
		s.mu.Lock()
		s.violations = append(s.violations, method+": "+why)
		s.mu.Unlock()
		answer(w, map[string]any{"ok": false, "error": code})
		return Message{}, false
	}
	if r.Method != http.MethodPost {
		return fail("invalid_request", "method "+r.Method+", want POST")
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		return fail("invalid_form_data", "content type "+ct)
	}
	if err := r.ParseForm(); err != nil {
		return fail("invalid_form_data", err.Error())
	}
	token := r.PostForm.Get("token")
	if bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		token = bearer
	}
	if token != s.token {
		return fail("invalid_auth", "token "+token)
	}
	m := Message{Channel: r.PostForm.Get("channel"), TS: r.PostForm.Get("ts"), Text: r.PostForm.Get("text"), BlocksJSON: r.PostForm.Get("blocks")}
	if m.Channel == "" {
		return fail("channel_not_found", "no channel")
	}
	if m.Text == "" && m.BlocksJSON == "" {
		return fail("no_text", "neither text nor blocks")
	}
	if m.BlocksJSON != "" {
		if err := json.Unmarshal([]byte(m.BlocksJSON), &m.Blocks); err != nil {
			return fail("invalid_blocks_format", "blocks are not a JSON array: "+err.Error())
		}
		if why := checkBlocks(m.Blocks); why != "" {
			return fail("invalid_blocks", why)
		}
	}
	return m, true
}

func (s *Server) postMessage(w http.ResponseWriter, r *http.Request) {
	m, ok := s.read(w, r, "chat.postMessage")
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.users[m.Channel] {
		answer(w, map[string]any{"ok": false, "error": "channel_not_found"})
		return
	}
	s.seq++
	// A direct message to a user is posted in the DM channel Slack opens with them.
	m.Channel = "D" + strings.TrimPrefix(m.Channel, "U")
	m.TS = fmt.Sprintf("%d.%06d", time.Now().Unix(), s.seq)
	s.posted = append(s.posted, m)
	answer(w, map[string]any{"ok": true, "channel": m.Channel, "ts": m.TS})
}

func (s *Server) update(w http.ResponseWriter, r *http.Request) {
	m, ok := s.read(w, r, "chat.update")
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !slices.ContainsFunc(s.posted, func(p Message) bool { return p.Channel == m.Channel && p.TS == m.TS }) {
		s.violations = append(s.violations, "chat.update: no message "+m.Channel+"/"+m.TS)
		answer(w, map[string]any{"ok": false, "error": "message_not_found"})
		return
	}
	s.updated = append(s.updated, m)
	answer(w, map[string]any{"ok": true, "channel": m.Channel, "ts": m.TS, "text": m.Text})
}

// checkBlocks applies Block Kit's documented limits: at most 50 blocks; a known block type; a section
// with text or fields, at most 10 fields, texts of at most 3000 characters (2000 for a field); a
// header of plain text up to 150; buttons with an action ID up to 255 and a value up to 2000.
func checkBlocks(blocks []map[string]any) string {
	if len(blocks) > 50 {
		return fmt.Sprintf("%d blocks, at most 50", len(blocks))
	}
	textOf := func(v any) (string, string) {
		o, _ := v.(map[string]any)
		s, _ := o["text"].(string)
		typ, _ := o["type"].(string)
		return s, typ
	}
	for i, b := range blocks {
		switch b["type"] {
		case "section":
			text, _ := textOf(b["text"])
			fields, _ := b["fields"].([]any)
			if text == "" && len(fields) == 0 {
				return fmt.Sprintf("block %d: a section needs text or fields", i)
			}
			if len(text) > 3000 || len(fields) > 10 {
				return fmt.Sprintf("block %d: section text over 3000 characters or more than 10 fields", i)
			}
			for _, f := range fields {
				if s, _ := textOf(f); len(s) > 2000 {
					return fmt.Sprintf("block %d: a field over 2000 characters", i)
				}
			}
		case "header":
			if text, typ := textOf(b["text"]); typ != "plain_text" || len(text) > 150 {
				return fmt.Sprintf("block %d: a header takes plain text up to 150 characters", i)
			}
		case "actions":
			elements, _ := b["elements"].([]any)
			if len(elements) == 0 || len(elements) > 25 {
				return fmt.Sprintf("block %d: actions need 1 to 25 elements", i)
			}
			for _, e := range elements {
				o, _ := e.(map[string]any)
				id, _ := o["action_id"].(string)
				value, _ := o["value"].(string)
				if o["type"] != "button" || id == "" || len(id) > 255 || len(value) > 2000 {
					return fmt.Sprintf("block %d: a button needs an action_id up to 255 and a value up to 2000 characters", i)
				}
			}
		case "context", "divider":
		default:
			return fmt.Sprintf("block %d: unknown type %v", i, b["type"])
		}
	}
	return ""
}

func answer(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.MarshalWrite(w, v)
}
