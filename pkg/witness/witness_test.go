package witness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/grantline/grantline/pkg/checkpoint"
	"github.com/grantline/grantline/pkg/events"
)

const origin = "grantline.test/evidence"

// log is a test log: its leaves, signed by its checkpointer.
type log struct {
	t      *testing.T
	signer note.Signer
	leaves [][]byte
}

func (l *log) grow(n int, salt string) {
	for range n {
		seq := uint64(len(l.leaves) + 1)
		l.leaves = append(l.leaves, checkpoint.LeafHash(events.Record{Seq: seq, Subject: "s", Signature: salt, Body: fmt.Appendf(nil, "%d", seq)}))
	}
}

// checkpoint signs the tree of the first size leaves.
func (l *log) checkpoint(size uint64) []byte {
	tree := checkpoint.NewTree()
	for _, h := range l.leaves[:size] {
		tree.Append(h)
	}
	msg, err := checkpoint.Sign(checkpoint.Checkpoint{Origin: origin, Size: size, Root: tree.Root(), Stream: "GRANTLINE_EVENTS",
		StreamCreated: time.Unix(1, 0), LastSeq: size, Time: time.Now()}, l.signer)
	if err != nil {
		l.t.Fatal(err)
	}
	return msg
}

// proof proves the tree of size1 leaves a prefix of the tree of size2, from this log's leaves.
func (l *log) proof(size1, size2 uint64) [][]byte {
	p, err := (&checkpoint.Span{Leaves: l.leaves[:size2]}).ConsistencyProof(size1, size2)
	if err != nil {
		l.t.Fatal(err)
	}
	return p
}

// TestWitnessRefusesForksAndShrinking: a witness countersigns a log only as it grows consistently.
// Each step runs against the state the previous ones left, as a witness sees a log over time.
func TestWitnessRefusesForksAndShrinking(t *testing.T) {
	skey, vkey, _ := checkpoint.GenerateKey("checkpointer")
	signer, _ := note.NewSigner(skey)
	wkey, wvkey, _ := checkpoint.GenerateKey("witness-1")
	wsigner, _ := note.NewSigner(wkey)
	wverifier, _ := note.NewVerifier(wvkey)
	strangerKey, _, _ := checkpoint.GenerateKey("stranger")
	stranger, _ := note.NewSigner(strangerKey)
	v, err := events.NewVerifier(events.TrustFile{Services: map[events.Service][]events.Type{},
		Checkpoints: &events.CheckpointTrust{Origin: origin, Checkpointers: []string{vkey}, Witnesses: []string{wvkey}}})
	if err != nil {
		t.Fatal(err)
	}
	trust, _ := checkpoint.NewTrust(v)
	statePath := filepath.Join(t.TempDir(), "state.json")
	start := func() *Client {
		srv, err := NewServer(trust, wsigner, statePath, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		mux := http.NewServeMux()
		srv.Routes(mux)
		ts := httptest.NewServer(mux)
		t.Cleanup(ts.Close)
		return &Client{URL: ts.URL}
	}
	client := start()

	honest := &log{t: t, signer: signer}
	honest.grow(12, "a")
	// fork shares the honest log's first 5 leaves and then differs.
	fork := &log{t: t, signer: signer, leaves: append([][]byte{}, honest.leaves[:5]...)}
	fork.grow(7, "forged")
	foreign := &log{t: t, signer: stranger, leaves: honest.leaves}

	steps := []struct {
		name     string
		old      uint64
		proof    [][]byte
		msg      []byte
		conflict uint64 // the size a ConflictError must name
		refused  int    // the status of a refusal
	}{
		{name: "the first checkpoint needs no proof", old: 0, msg: honest.checkpoint(5)},
		{name: "a consistent extension", old: 5, proof: honest.proof(5, 8), msg: honest.checkpoint(8)},
		{name: "the same checkpoint again is countersigned again", old: 8, msg: honest.checkpoint(8)},
		{name: "a fork: the same size, another root", old: 8, msg: fork.checkpoint(8), refused: http.StatusUnprocessableEntity},
		{name: "a fork: a bigger tree that does not contain the witnessed one", old: 8, proof: fork.proof(8, 10), msg: fork.checkpoint(10), refused: http.StatusUnprocessableEntity},
		{name: "shrinking: a smaller log", old: 8, msg: honest.checkpoint(6), refused: http.StatusBadRequest},
		{name: "a client that assumed an older size is told the witness's", old: 5, proof: honest.proof(5, 10), msg: honest.checkpoint(10), conflict: 8},
		{name: "a checkpoint no trusted checkpointer signed", old: 8, proof: honest.proof(8, 10), msg: foreign.checkpoint(10), refused: http.StatusForbidden},
		{name: "restarted, the witness still refuses the fork", old: 8, msg: fork.checkpoint(8), refused: http.StatusUnprocessableEntity},
		{name: "and still accepts the honest log", old: 8, proof: honest.proof(8, 12), msg: honest.checkpoint(12)},
	}
	for _, st := range steps {
		if st.name == "restarted, the witness still refuses the fork" {
			client = start()
		}
		sig, err := client.Add(context.Background(), st.old, st.proof, st.msg)
		var conflict *ConflictError
		switch {
		case st.conflict != 0:
			if !errors.As(err, &conflict) || conflict.Size != st.conflict {
				t.Fatalf("%s: %v, want a conflict at size %d", st.name, err, st.conflict)
			}
		case st.refused != 0:
			if !errors.Is(err, ErrRefused) || !containsStatus(err, st.refused) {
				t.Fatalf("%s: %v, want a refusal with status %d", st.name, err, st.refused)
			}
		default:
			if err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
			text, _, _ := cutNote(st.msg)
			if _, err := note.Open(append([]byte(text+"\n"), sig...), note.VerifierList(wverifier)); err != nil {
				t.Fatalf("%s: the cosignature does not verify: %v (%q)", st.name, err, sig)
			}
		}
	}
}

// cutNote returns the text of a signed note (with its final newline) and its signature lines.
func cutNote(msg []byte) (string, string, bool) {
	text, sigs, ok := bytes.Cut(msg, []byte("\n\n"))
	return string(text) + "\n", string(sigs), ok
}

func containsStatus(err error, status int) bool {
	return err != nil && strings.Contains(err.Error(), fmt.Sprintf("%d %s", status, http.StatusText(status)))
}

// TestDirectoryNeverReplacesAnotherCheckpoint: a directory witness keeps the first checkpoint of each
// size; the same one with more signatures replaces it, another one of that size is refused.
func TestDirectoryNeverReplacesAnotherCheckpoint(t *testing.T) {
	skey, _, _ := checkpoint.GenerateKey("checkpointer")
	signer, _ := note.NewSigner(skey)
	wkey, _, _ := checkpoint.GenerateKey("witness-1")
	wsigner, _ := note.NewSigner(wkey)
	l := &log{t: t, signer: signer}
	l.grow(4, "a")
	other := &log{t: t, signer: signer}
	other.grow(4, "b")
	dir := Dir{Path: filepath.Join(t.TempDir(), "witness")}
	msg := l.checkpoint(4)
	c := parse(t, msg)
	if err := dir.Put(c, msg); err != nil {
		t.Fatal(err)
	}
	text, _, _ := cutNote(msg)
	cosigned, _ := note.Sign(&note.Note{Text: text}, signer, wsigner)
	if err := dir.Put(c, cosigned); err != nil {
		t.Fatal(err)
	}
	otherMsg := other.checkpoint(4)
	if err := dir.Put(parse(t, otherMsg), otherMsg); err == nil {
		t.Fatal("another checkpoint of the same size replaced the first")
	}
	files, err := dir.Read()
	if err != nil || len(files) != 1 {
		t.Fatalf("files %v, %v", files, err)
	}
	if got, _ := os.ReadFile(files[0].Name); string(got) != string(cosigned) {
		t.Fatalf("the directory holds %q, want the cosigned checkpoint", got)
	}
}

func parse(t *testing.T, msg []byte) checkpoint.Checkpoint {
	t.Helper()
	text, _, _ := cutNote(msg)
	c, err := checkpoint.ParseText(text)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
