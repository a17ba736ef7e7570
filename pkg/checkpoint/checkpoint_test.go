package checkpoint

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/grantline/grantline/pkg/events"
)

func leaves(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = LeafHash(events.Record{Seq: uint64(i + 1), Subject: "s", Signature: "sig", Body: fmt.Appendf(nil, "event %d", i)})
	}
	return out
}

func treeOf(hashes [][]byte) *Tree {
	t := NewTree()
	for _, h := range hashes {
		t.Append(h)
	}
	return t
}

// TestProofsFromSpans: inclusion proofs from a span holding every leaf, and consistency proofs from
// the span a checkpointer holds between two checkpoints (the frontier at the first and the leaves
// after it), verify against the roots for every pair of sizes up to 40.
func TestProofsFromSpans(t *testing.T) {
	all := leaves(40)
	for size2 := uint64(1); size2 <= 40; size2++ {
		root2 := treeOf(all[:size2]).Root()
		full := &Span{Leaves: all[:size2]}
		for i := uint64(0); i < size2; i++ {
			p, err := full.InclusionProof(i, size2)
			if err != nil {
				t.Fatalf("inclusion of %d in %d: %v", i, size2, err)
			}
			if err := VerifyInclusion(i, size2, all[i], p, root2); err != nil {
				t.Fatalf("inclusion of %d in %d does not verify: %v", i, size2, err)
			}
		}
		for size1 := uint64(0); size1 <= size2; size1++ {
			before := treeOf(all[:size1])
			span := &Span{Base: size1, Frontier: before.Frontier(), Leaves: all[size1:size2]}
			p, err := span.ConsistencyProof(size1, size2)
			if err != nil {
				t.Fatalf("consistency %d→%d: %v", size1, size2, err)
			}
			if err := VerifyConsistency(size1, size2, p, before.Root(), root2); err != nil {
				t.Fatalf("consistency %d→%d does not verify: %v", size1, size2, err)
			}
		}
	}
}

func TestCheckpointNote(t *testing.T) {
	skey, vkey, err := GenerateKey("checkpointer-test")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	if derived, err := VerifierKey(skey); err != nil || derived != vkey {
		t.Fatalf("the verifier key derived from the signer key: %q, %v; want %q", derived, err, vkey)
	}
	wkey, wvkey, _ := GenerateKey("witness-test")
	witness, _ := note.NewSigner(wkey)
	otherKey, _, _ := GenerateKey("checkpointer-test")
	impostor, _ := note.NewSigner(otherKey)
	trustFile := events.TrustFile{Services: map[events.Service][]events.Type{},
		Checkpoints: &events.CheckpointTrust{Origin: "grantline.test/evidence", Checkpointers: []string{vkey}, Witnesses: []string{wvkey}}}
	v, err := events.NewVerifier(trustFile)
	if err != nil {
		t.Fatal(err)
	}
	trust, err := NewTrust(v)
	if err != nil {
		t.Fatal(err)
	}
	c := Checkpoint{Origin: "grantline.test/evidence", Size: 3, Root: treeOf(leaves(3)).Root(), Stream: "GRANTLINE_EVENTS",
		StreamCreated: time.Date(2026, 12, 1, 10, 0, 0, 123, time.UTC), LastSeq: 3, Time: time.Date(2026, 12, 1, 11, 0, 0, 0, time.UTC)}
	msg, err := Sign(c, signer)
	if err != nil {
		t.Fatal(err)
	}
	got, err := trust.Open(msg)
	if err != nil {
		t.Fatal(err)
	}
	if got.Text() != c.Text() || !bytes.Equal(got.Root, c.Root) || got.Signer != "checkpointer-test" || len(got.Witnesses) != 0 {
		t.Fatalf("opened %+v, want %+v", got.Checkpoint, c)
	}
	n, _ := note.Open(msg, trust.Verifiers())
	cosigned, _ := note.Sign(n, witness)
	if got, err := trust.Open(cosigned); err != nil || len(got.Witnesses) != 1 || got.Witnesses[0] != "witness-test" {
		t.Fatalf("cosigned: %+v, %v", got, err)
	}
	forged, _ := Sign(c, impostor)
	if _, err := trust.Open(forged); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("a checkpoint signed by a key of the same name but not the trusted one: %v", err)
	}
	other := c
	other.Origin = "elsewhere/log"
	msg, _ = Sign(other, signer)
	if _, err := trust.Open(msg); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("a checkpoint of another log: %v", err)
	}
}

// BenchmarkLeaf: what checkpointing costs per event in CPU, the NATS reads aside: hashing a stored
// event of about 1 KiB into its leaf and appending it to the tree. Its same-run baseline is a bare
// SHA-256 over the same bytes (subject, signature and body), which no leaf hash can undercut. Each op
// times 1,000 leaves, then 1,000 bare hashes, so that the machine's noise falls on both alike.
func BenchmarkLeaf(b *testing.B) {
	const chunk = 1000
	rec := events.Record{Seq: 1, Subject: "grantline.events.01KABCDEFGHJKMNPQRSTVWXYZ01.policy_decided",
		Signature: "ed25519;policy-1;" + string(bytes.Repeat([]byte("A"), 88)), Body: bytes.Repeat([]byte("x"), 1024)}
	raw := slices.Concat([]byte(rec.Subject), []byte(rec.Signature), rec.Body)
	tree := NewTree()
	var leaf, bare time.Duration
	for b.Loop() {
		start := time.Now()
		for range chunk {
			rec.Seq++
			tree.Append(LeafHash(rec))
		}
		leaf += time.Since(start)
		start = time.Now()
		for range chunk {
			sum := sha256.Sum256(raw)
			raw[0] = sum[0] // as the sequence changes each leaf's bytes, and so that the hash is used
		}
		bare += time.Since(start)
	}
	n := float64(b.N * chunk)
	b.ReportMetric(float64(leaf.Nanoseconds())/n, "ns/event")
	b.ReportMetric(float64(bare.Nanoseconds())/n, "bare_sha256_ns")
	b.ReportMetric(float64(leaf)/float64(bare), "time_ratio_to_bare_sha256")
}
