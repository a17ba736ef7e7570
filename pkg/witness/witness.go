// Package witness keeps copies of the evidence stream's checkpoints outside the operator's control.
//
// Two kinds: a directory (Dir), where the checkpointer writes every checkpoint as a file, and which
// can be a mounted bucket with retention the operator cannot lift; and an HTTP witness (Server), a
// small service with its own key and state that countersigns a checkpoint only if a consistency proof
// shows it extends the last one it countersigned. It refuses a fork (another root for a size it
// has seen, or a proof that does not hold) and a shrinking log, so once a witness has countersigned
// a checkpoint, no rewritten history can get its countersignature again.
//
// The HTTP exchange follows C2SP tlog-witness: POST /add-checkpoint with "old <size>", the
// consistency proof lines in base64, an empty line and the signed checkpoint; the answer is the
// witness's signature line (200), its current size (409, text/x.tlog.size) when the client assumed
// another one, 422 for a proof that does not hold, 403 for a checkpoint no trusted checkpointer
// signed, 400 for anything malformed or a smaller log. The cosignature is an ordinary Ed25519 note
// signature by the witness's key, not tlog-cosignature's timestamped form.
package witness

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json/v2"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/mod/sumdb/note"

	"github.com/grantline/grantline/pkg/checkpoint"
)

// AddPath is the route of the witness's one operation.
const AddPath = "/add-checkpoint"

// maxBody bounds a request: a checkpoint and a proof of at most 64 hashes are a few kilobytes.
const maxBody = 64 << 10

// state is what the witness remembers: the last checkpoint it countersigned.
type state struct {
	Size uint64 `json:"size"`
	Root []byte `json:"root"`
}

// Server is an HTTP witness for one log.
type Server struct {
	trust  *checkpoint.Trust
	signer note.Signer
	path   string
	log    *slog.Logger

	mu    sync.Mutex
	state state
}

// NewServer is a witness of the log trust describes, signing with signer and keeping its state in
// the file statePath (created at the first countersignature; read if it exists).
func NewServer(trust *checkpoint.Trust, signer note.Signer, statePath string, log *slog.Logger) (*Server, error) {
	s := &Server{trust: trust, signer: signer, path: statePath, log: log}
	b, err := os.ReadFile(statePath)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("witness state: %w", err)
	default:
		if err := json.Unmarshal(b, &s.state, json.RejectUnknownMembers(true)); err != nil {
			return nil, fmt.Errorf("witness state %s: %w", statePath, err)
		}
	}
	return s, nil
}

// Size is the size of the last checkpoint the witness countersigned.
func (s *Server) Size() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state.Size
}

// Routes registers POST /add-checkpoint on mux.
func (s *Server) Routes(mux *http.ServeMux) { mux.Handle("POST "+AddPath, s) }

// ServeHTTP handles POST /add-checkpoint (see the package comment).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		s.refuse(w, http.StatusBadRequest, "body: %v", err)
		return
	}
	old, proof, msg, err := parseAdd(body)
	if err != nil {
		s.refuse(w, http.StatusBadRequest, "%v", err)
		return
	}
	c, err := s.trust.Open(msg)
	if errors.Is(err, checkpoint.ErrUntrusted) {
		s.refuse(w, http.StatusForbidden, "%v", err)
		return
	}
	if err != nil {
		s.refuse(w, http.StatusBadRequest, "%v", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old != s.state.Size {
		w.Header().Set("Content-Type", "text/x.tlog.size")
		w.WriteHeader(http.StatusConflict)
		fmt.Fprintf(w, "%d\n", s.state.Size)
		s.log.Warn("checkpoint refused: the client assumed another size", "old", old, "size", c.Size, "witnessed", s.state.Size)
		return
	}
	if c.Size < old {
		s.refuse(w, http.StatusBadRequest, "checkpoint of size %d is smaller than %d, already witnessed: a log only grows", c.Size, old)
		return
	}
	root := s.state.Root
	if old == 0 {
		root = checkpoint.NewTree().Root()
	}
	if err := checkpoint.VerifyConsistency(old, c.Size, proof, root, c.Root); err != nil {
		s.refuse(w, http.StatusUnprocessableEntity, "checkpoint of size %d is not a consistent extension of size %d: %v", c.Size, old, err)
		return
	}
	if err := s.save(state{Size: c.Size, Root: c.Root}); err != nil {
		s.log.Error("witness state not saved", "error", err.Error())
		http.Error(w, "state not saved", http.StatusInternalServerError)
		return
	}
	sig, err := cosign(c.Text(), s.signer)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.log.Info("checkpoint countersigned", "size", c.Size, "old", old)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write(sig)
}

func (s *Server) refuse(w http.ResponseWriter, status int, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.log.Warn("checkpoint refused", "status", status, "reason", msg)
	http.Error(w, msg, status)
}

// save writes the state durably before the countersignature leaves: a witness that forgot what it
// signed after a crash could be made to sign a fork.
func (s *Server) save(st state) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := s.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.path)
	}
	if err != nil {
		return err
	}
	s.state = st
	return nil
}

// cosign returns the signature line of signer over the note text.
func cosign(text string, signer note.Signer) ([]byte, error) {
	signed, err := note.Sign(&note.Note{Text: text}, signer)
	if err != nil {
		return nil, err
	}
	return bytes.TrimPrefix(signed, []byte(text+"\n")), nil
}

// parseAdd splits an add-checkpoint body into the old size, the proof and the signed checkpoint.
func parseAdd(body []byte) (uint64, [][]byte, []byte, error) {
	head, msg, ok := bytes.Cut(body, []byte("\n\n"))
	if !ok {
		return 0, nil, nil, errors.New("no empty line before the checkpoint")
	}
	lines := strings.Split(string(head), "\n")
	sizeText, ok := strings.CutPrefix(lines[0], "old ")
	old, err := strconv.ParseUint(sizeText, 10, 64)
	if !ok || err != nil {
		return 0, nil, nil, fmt.Errorf("first line %q is not old <size>", lines[0])
	}
	var proof [][]byte
	for _, l := range lines[1:] {
		h, err := base64.StdEncoding.DecodeString(l)
		if err != nil || len(h) != 32 {
			return 0, nil, nil, fmt.Errorf("proof line %q is not a base64 hash", l)
		}
		proof = append(proof, h)
	}
	return old, proof, msg, nil
}

// addBody is the body of an add-checkpoint request.
func addBody(old uint64, proof [][]byte, msg []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "old %d\n", old)
	for _, h := range proof {
		b.WriteString(base64.StdEncoding.EncodeToString(h) + "\n")
	}
	b.WriteString("\n")
	b.Write(msg)
	return b.Bytes()
}

// ConflictError is a witness's answer that it has countersigned up to Size, not the size the client
// assumed: the client proves consistency from Size instead.
type ConflictError struct{ Size uint64 }

func (e *ConflictError) Error() string { return fmt.Sprintf("the witness is at size %d", e.Size) }

// ErrRefused is wrapped by every refusal that no retry with another proof changes: a fork, a smaller
// log, a checkpoint the witness does not trust.
var ErrRefused = errors.New("the witness refused the checkpoint")

// Client submits checkpoints to an HTTP witness at URL (its base, without /add-checkpoint).
type Client struct {
	URL  string
	HTTP *http.Client
}

// Add asks the witness to countersign msg, a signed checkpoint, proven consistent with the witness's
// old size by proof. It returns the witness's signature line(s), a *ConflictError when the witness is
// at another size, or an error wrapping ErrRefused.
func (c *Client) Add(ctx context.Context, old uint64, proof [][]byte, msg []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(c.URL, "/")+AddPath, bytes.NewReader(addBody(old, proof, msg)))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	client := c.HTTP
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("witness %s: %w", c.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("witness %s: %w", c.URL, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return body, nil
	case http.StatusConflict:
		size, err := strconv.ParseUint(strings.TrimSpace(string(body)), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("witness %s: a conflict without a size: %q", c.URL, body)
		}
		return nil, &ConflictError{Size: size}
	case http.StatusBadRequest, http.StatusForbidden, http.StatusUnprocessableEntity:
		return nil, fmt.Errorf("witness %s: %w (%s): %s", c.URL, ErrRefused, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil, fmt.Errorf("witness %s: %s: %s", c.URL, resp.Status, strings.TrimSpace(string(body)))
}

// Dir is a directory witness: every checkpoint as a file named by its size (zero-padded, so names sort
// as sizes), which another party can keep (a mounted bucket with object retention, say).
type Dir struct{ Path string }

// fileName is the file of a checkpoint of size.
func fileName(size uint64) string { return fmt.Sprintf("%020d.checkpoint", size) }

// Put writes msg, the signed checkpoint c, as its file. A file for that size with another checkpoint
// text is never replaced (that would be a fork; the error says so); the same checkpoint with more
// signatures replaces it.
func (d Dir) Put(c checkpoint.Checkpoint, msg []byte) error {
	if err := os.MkdirAll(d.Path, 0o755); err != nil {
		return fmt.Errorf("witness directory: %w", err)
	}
	path := filepath.Join(d.Path, fileName(c.Size))
	if existing, err := os.ReadFile(path); err == nil {
		text, _, _ := bytes.Cut(existing, []byte("\n\n"))
		if string(text)+"\n" != c.Text() {
			return fmt.Errorf("%s holds another checkpoint of size %d: refusing to replace it", path, c.Size)
		}
		if len(existing) >= len(msg) {
			return nil
		}
	}
	tmp, err := os.CreateTemp(d.Path, ".checkpoint-*")
	if err != nil {
		return fmt.Errorf("witness directory: %w", err)
	}
	_, err = tmp.Write(msg)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("witness directory: %w", err)
	}
	return nil
}

// Read returns every checkpoint file in the directory, sorted by size, as named by its file.
func (d Dir) Read() ([]File, error) {
	entries, err := os.ReadDir(d.Path)
	if err != nil {
		return nil, fmt.Errorf("witness directory: %w", err)
	}
	var out []File
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".checkpoint") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(d.Path, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("witness directory: %w", err)
		}
		out = append(out, File{Name: filepath.Join(d.Path, e.Name()), Note: b})
	}
	return out, nil
}

// File is one checkpoint file of a directory witness.
type File struct {
	Name string
	Note []byte
}
