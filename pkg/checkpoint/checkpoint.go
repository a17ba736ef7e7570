// Package checkpoint makes the evidence stream a verifiable log: every stored event is a leaf of an RFC
// 6962/9162 Merkle tree in stream order, and a checkpoint is a signed tree head (the C2SP
// tlog-checkpoint form in a C2SP signed note) that witnesses outside the operator's control
// countersign once they have seen the tree only grow. Against checkpoints, a cut tail, a missing,
// changed or reordered event and a recreated stream all show, at the position where the stream
// departs from what was signed; an offline bundle proves that a request's events are in the log.
//
// The tree hashing is github.com/transparency-dev/merkle's; the notes are golang.org/x/mod's.
package checkpoint

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/grantline/grantline/pkg/events"
)

// leafDomain starts every leaf, so a leaf of this log can never be mistaken for data of another kind.
const leafDomain = "grantline-evidence-leaf/v1\x00"

// LeafHash is the RFC 6962 leaf hash of a stored event. The leaf holds the event's stream sequence,
// subject, signature header and body, each length-prefixed: a reordered event changes the sequences,
// a re-signed one its signature, a moved one its subject, so none of them can stand in for the event
// that was checkpointed.
func LeafHash(rec events.Record) []byte {
	b := make([]byte, 0, len(leafDomain)+8+12+len(rec.Subject)+len(rec.Signature)+len(rec.Body))
	b = append(b, leafDomain...)
	b = binary.BigEndian.AppendUint64(b, rec.Seq)
	for _, part := range []string{rec.Subject, rec.Signature} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(part)))
		b = append(b, part...)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(rec.Body)))
	b = append(b, rec.Body...)
	return rfc6962.DefaultHasher.HashLeaf(b)
}

// Checkpoint is a tree head of the evidence stream: the first Size stored events hash to Root. The
// stream lines say which stream it was (its name and the time the broker created it, which a
// recreated stream cannot keep) and the stream sequence of the last leaf.
type Checkpoint struct {
	Origin        string
	Size          uint64
	Root          []byte
	Stream        string
	StreamCreated time.Time
	LastSeq       uint64
	// Time is when the checkpointer signed it.
	Time time.Time
}

// Text is the checkpoint's note text: origin, size and base64 root hash on the first three lines
// (C2SP tlog-checkpoint), then the extension lines "stream <name> <created> <last seq>" and
// "time <RFC 3339>".
func (c Checkpoint) Text() string {
	return fmt.Sprintf("%s\n%d\n%s\nstream %s %s %d\ntime %s\n", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Root),
		c.Stream, c.StreamCreated.UTC().Format(time.RFC3339Nano), c.LastSeq, c.Time.UTC().Format(time.RFC3339Nano))
}

// ErrMalformed is wrapped by every error about text that is not a checkpoint of this form.
var ErrMalformed = errors.New("malformed checkpoint")

// ParseText reads a checkpoint's note text (see Text).
func ParseText(text string) (Checkpoint, error) {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	bad := func(format string, args ...any) (Checkpoint, error) {
		return Checkpoint{}, fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
	}
	if len(lines) != 5 || !strings.HasSuffix(text, "\n") {
		return bad("want 5 lines, got %d", len(lines))
	}
	var c Checkpoint
	var err error
	c.Origin = lines[0]
	if c.Size, err = strconv.ParseUint(lines[1], 10, 64); err != nil || strconv.FormatUint(c.Size, 10) != lines[1] {
		return bad("size %q", lines[1])
	}
	if c.Root, err = base64.StdEncoding.DecodeString(lines[2]); err != nil || len(c.Root) != rfc6962.DefaultHasher.Size() {
		return bad("root hash %q", lines[2])
	}
	stream := strings.Fields(lines[3])
	if len(stream) != 4 || stream[0] != "stream" {
		return bad("stream line %q", lines[3])
	}
	c.Stream = stream[1]
	if c.StreamCreated, err = time.Parse(time.RFC3339Nano, stream[2]); err != nil {
		return bad("stream creation time %q", stream[2])
	}
	if c.LastSeq, err = strconv.ParseUint(stream[3], 10, 64); err != nil {
		return bad("last sequence %q", stream[3])
	}
	at, ok := strings.CutPrefix(lines[4], "time ")
	if c.Time, err = time.Parse(time.RFC3339Nano, at); !ok || err != nil {
		return bad("time line %q", lines[4])
	}
	return c, nil
}

// Sign returns c as a signed note, signed by s.
func Sign(c Checkpoint, s note.Signer) ([]byte, error) {
	msg, err := note.Sign(&note.Note{Text: c.Text()}, s)
	if err != nil {
		return nil, fmt.Errorf("sign checkpoint: %w", err)
	}
	return msg, nil
}

// Signed is a checkpoint whose signature by a trusted checkpointer has been verified, with the names
// of the trusted witnesses whose cosignatures verified too.
type Signed struct {
	Checkpoint
	// Note is the signed note as received, every signature included.
	Note []byte
	// Signer is the name of the checkpointer key that signed it.
	Signer string
	// Witnesses are the names of the trusted witnesses that cosigned it, sorted.
	Witnesses []string
}

// Trust verifies checkpoints against a trust file's checkpoint section.
type Trust struct {
	origin        string
	checkpointers map[string]bool
	witnesses     map[string]bool
	verifiers     note.Verifiers
}

// ErrNoCheckpoints means the trust file has no checkpoint section.
var ErrNoCheckpoints = errors.New("the trust file names no checkpointer (its checkpoints section is missing)")

// NewTrust builds a Trust from the trust file's checkpoint section, or returns ErrNoCheckpoints.
func NewTrust(v *events.Verifier) (*Trust, error) {
	ct := v.Checkpoints()
	if ct == nil {
		return nil, ErrNoCheckpoints
	}
	t := &Trust{origin: ct.Origin, checkpointers: map[string]bool{}, witnesses: map[string]bool{}}
	var list []note.Verifier
	for i, k := range append(append([]string{}, ct.Checkpointers...), ct.Witnesses...) {
		nv, err := note.NewVerifier(k)
		if err != nil {
			return nil, fmt.Errorf("trust file: checkpoint key %q: %w", k, err)
		}
		if i < len(ct.Checkpointers) {
			t.checkpointers[nv.Name()] = true
		} else {
			t.witnesses[nv.Name()] = true
		}
		list = append(list, nv)
	}
	t.verifiers = note.VerifierList(list...)
	return t, nil
}

// Origin is the log's name every checkpoint must carry.
func (t *Trust) Origin() string { return t.origin }

// Verifiers are every trusted key, checkpointers' and witnesses'.
func (t *Trust) Verifiers() note.Verifiers { return t.verifiers }

// ErrUntrusted is wrapped when a checkpoint is not signed by a trusted checkpointer for this log.
var ErrUntrusted = errors.New("checkpoint not signed by a trusted checkpointer")

// Open verifies msg, a signed checkpoint: a valid signature by a trusted checkpointer over a
// well-formed checkpoint of this log. Signatures by unknown keys are ignored; a trusted witness's
// cosignature is listed in Witnesses. The errors wrap ErrUntrusted or ErrMalformed.
func (t *Trust) Open(msg []byte) (*Signed, error) {
	n, err := note.Open(msg, t.verifiers)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUntrusted, err)
	}
	s := &Signed{Note: bytes.Clone(msg)}
	for _, sig := range n.Sigs {
		switch {
		case t.checkpointers[sig.Name] && s.Signer == "":
			s.Signer = sig.Name
		case t.witnesses[sig.Name]:
			s.Witnesses = append(s.Witnesses, sig.Name)
		}
	}
	if s.Signer == "" {
		return nil, fmt.Errorf("%w: only witnesses signed it", ErrUntrusted)
	}
	if s.Checkpoint, err = ParseText(n.Text); err != nil {
		return nil, err
	}
	if s.Origin != t.origin {
		return nil, fmt.Errorf("%w: origin %q, the trust file's is %q", ErrUntrusted, s.Origin, t.origin)
	}
	return s, nil
}

// Record is one message of the checkpoint stream (topology.CheckpointHeads): a signed checkpoint, the
// hashes of the leaves it added to the previous one, in order, and the tree's frontier at its size
// (the compact range [0, size)). The leaves let a verifier name the exact position where a stream
// departs from what was checkpointed; the frontier lets the checkpointer resume without rereading
// the stream. Neither is trusted: each must hash to the signed root (see Log.Add).
type Record struct {
	Checkpoint []byte   `json:"checkpoint"`
	Leaves     [][]byte `json:"leaves"`
	Frontier   [][]byte `json:"frontier"`
}

// Keys: checkpointers and witnesses sign with note signer keys. GenerateKey returns a new pair for
// name: the signer key ("PRIVATE+KEY+…", keep it secret) and the verifier key for the trust file.
func GenerateKey(name string) (signerKey, verifierKey string, err error) {
	return note.GenerateKey(rand.Reader, name)
}

// VerifierKey derives the verifier key (for the trust file) of a note signer key.
func VerifierKey(signerKey string) (string, error) {
	parts := strings.SplitN(strings.TrimSpace(signerKey), "+", 5)
	if len(parts) != 5 || parts[0] != "PRIVATE" || parts[1] != "KEY" {
		return "", errors.New("not a note signer key (PRIVATE+KEY+<name>+<hash>+<key>)")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return "", errors.New("not an Ed25519 note signer key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	return note.NewEd25519VerifierKey(parts[2], pub)
}

// LoadSigner reads a note signer key file (one line, "PRIVATE+KEY+<name>+<hash>+<base64>").
func LoadSigner(path string) (note.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read signer key: %w", err)
	}
	s, err := note.NewSigner(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("signer key %s: %w", path, err)
	}
	return s, nil
}
