package checkpointer_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/grantline/grantline/pkg/audit"
	"github.com/grantline/grantline/pkg/checkpoint"
	"github.com/grantline/grantline/pkg/events"
)

// TestProofBundle: grantline audit prove's bundle verifies offline with the trust file alone, and
// every alteration of it fails.
func TestProofBundle(t *testing.T) {
	w := singleNode(t)
	js := w.js
	w.requestsOf(0, 5)
	w.runCheckpointer(js, 4)
	w.awaitCheckpoint()
	id := w.requests[2]
	b, err := audit.Prove(context.Background(), js, w.verifier, id)
	if err != nil {
		t.Fatal(err)
	}
	r, err := audit.VerifyProof(b, w.verifier, 1)
	if err != nil {
		t.Fatal(err)
	}
	if r.Events != 3 || r.Status != events.StatusGranted || r.LogSize != 15 || len(r.Witnesses) != 1 || r.Positions[0] != 7 {
		t.Fatalf("what the bundle proves: %+v", r)
	}
	if _, err := audit.VerifyProof(b, w.verifier, 2); !errors.Is(err, audit.ErrProof) {
		t.Fatalf("two witnesses required, one cosigned: %v", err)
	}

	if _, err := audit.Prove(context.Background(), js, w.verifier, w.request("late")); !errors.Is(err, audit.ErrNotCheckpointed) {
		t.Fatalf("a request newer than the latest checkpoint: %v", err)
	}

	impostorKey, _, _ := checkpoint.GenerateKey("checkpointer-test")
	impostor, _ := note.NewSigner(impostorKey)
	for _, tc := range []struct {
		name   string
		tamper func(b *audit.ProofBundle)
	}{
		{"a byte of an event changed", func(b *audit.ProofBundle) {
			b.Events[1].Body = bytes.Replace(b.Events[1].Body, []byte("low risk"), []byte("low rusk"), 1)
		}},
		{"an event claimed at another position", func(b *audit.ProofBundle) { b.Events[2].LeafIndex++ }},
		{"a proof hash changed", func(b *audit.ProofBundle) { b.Events[0].Inclusion[0][0] ^= 1 }},
		{"another request's event put in", func(b *audit.ProofBundle) {
			other, _ := audit.Prove(context.Background(), js, w.verifier, w.requests[3])
			b.Events[2] = other.Events[2]
		}},
		{"the stream sequence of an event changed", func(b *audit.ProofBundle) { b.Events[0].Seq++ }},
		{"a checkpoint signed by a key the trust file does not hold", func(b *audit.ProofBundle) {
			s, _ := checkpoint.ParseText(b.Checkpoint[:bytes.Index([]byte(b.Checkpoint), []byte("\n\n"))+1])
			msg, _ := checkpoint.Sign(s, impostor)
			b.Checkpoint = string(msg)
		}},
		{"the checkpoint's size edited", func(b *audit.ProofBundle) {
			lines := strings.SplitN(b.Checkpoint, "\n", 3)
			lines[1] += "0"
			b.Checkpoint = strings.Join(lines, "\n")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fresh, err := audit.Prove(context.Background(), js, w.verifier, id)
			if err != nil {
				t.Fatal(err)
			}
			tc.tamper(fresh)
			if _, err := audit.VerifyProof(fresh, w.verifier, 0); !errors.Is(err, audit.ErrProof) {
				t.Fatalf("the altered bundle: %v", err)
			}
		})
	}
}
