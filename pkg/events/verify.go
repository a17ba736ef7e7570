package events

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json/v2"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// TrustFile says which keys belong to which service, when each key was valid, and which event types
// each service may emit. Auditors verify a history against it; rotating a key means adding the new key
// and closing the old one's window.
type TrustFile struct {
	Services map[Service][]Type `json:"services"`
	Keys     []TrustedKey       `json:"keys"`
	// Checkpoints says who signs the evidence stream's checkpoints and who countersigns them; nil in a
	// deployment that keeps none.
	Checkpoints *CheckpointTrust `json:"checkpoints,omitempty"`
	// Exporters are the note verifier keys of whoever signs evidence packs (grantline audit export).
	Exporters []string `json:"exporters,omitempty"`
}

// CheckpointTrust names the log of the evidence stream's checkpoints and the keys that sign them.
// Keys are note verifier keys, "<name>+<hex key hash>+<base64 key>", the C2SP signed-note form, so a
// checkpoint or a cosignature can be checked with any signed-note tool.
type CheckpointTrust struct {
	// Origin is the log's name, the first line of every checkpoint.
	Origin string `json:"origin"`
	// Checkpointers sign checkpoints; a checkpoint needs a signature by one of them.
	Checkpointers []string `json:"checkpointers"`
	// Witnesses countersign checkpoints they saw grow consistently; they run outside the operator's
	// control.
	Witnesses []string `json:"witnesses,omitempty"`
}

// TrustedKey is one service's public key and its validity window. A zero NotAfter means still valid.
type TrustedKey struct {
	ID        string    `json:"id"`
	Service   Service   `json:"service"`
	PublicKey string    `json:"public_key"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after,omitzero"`
}

// NewTrustFile returns a trust file granting each service exactly its catalogue types and trusting the
// given signers' keys from notBefore on.
func NewTrustFile(notBefore time.Time, signers ...*Signer) TrustFile {
	tf := TrustFile{Services: map[Service][]Type{}}
	for _, svc := range Services {
		tf.Services[svc] = TypesOf(svc)
	}
	for _, s := range signers {
		tf.Keys = append(tf.Keys, trustedKey(s, notBefore))
	}
	return tf
}

// Marshal encodes the trust file as indented JSON.
func (tf TrustFile) Marshal() []byte {
	b, _ := json.Marshal(tf, json.Deterministic(true))
	return b
}

// Verifier checks stored events against a trust file.
type Verifier struct {
	keys        map[string]verifierKey
	allowed     map[Service][]Type
	checkpoints *CheckpointTrust
	exporters   []string
}

type verifierKey struct {
	TrustedKey
	pub ed25519.PublicKey
}

// NewVerifier validates tf and returns a verifier for it. It refuses a trust file that lets a service
// emit a type the catalogue gives to another service: separation of duties is not configurable.
func NewVerifier(tf TrustFile) (*Verifier, error) {
	v := &Verifier{keys: map[string]verifierKey{}, allowed: map[Service][]Type{}}
	for svc, types := range tf.Services {
		if _, err := ParseService(string(svc)); err != nil {
			return nil, fmt.Errorf("trust file: %w", err)
		}
		for _, t := range types {
			if owner, ok := Emitter(t); !ok || owner != svc {
				return nil, fmt.Errorf("trust file: service %s may not emit %s", svc, t)
			}
		}
		v.allowed[svc] = slices.Clone(types)
	}
	for _, k := range tf.Keys {
		pub, err := base64.StdEncoding.DecodeString(k.PublicKey)
		if err != nil || len(pub) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("trust file: key %q: public key must be 32 bytes of base64", k.ID)
		}
		if _, ok := v.allowed[k.Service]; !ok {
			return nil, fmt.Errorf("trust file: key %q belongs to service %q, which has no entry", k.ID, k.Service)
		}
		if _, dup := v.keys[k.ID]; dup {
			return nil, fmt.Errorf("trust file: key %q listed twice", k.ID)
		}
		v.keys[k.ID] = verifierKey{TrustedKey: k, pub: pub}
	}
	if c := tf.Checkpoints; c != nil {
		if c.Origin == "" || strings.ContainsAny(c.Origin, "\n") {
			return nil, errors.New("trust file: checkpoints need an origin on one line")
		}
		if len(c.Checkpointers) == 0 {
			return nil, errors.New("trust file: checkpoints need at least one checkpointer key")
		}
		for _, k := range slices.Concat(c.Checkpointers, c.Witnesses) {
			if err := checkNoteKey(k); err != nil {
				return nil, fmt.Errorf("trust file: checkpoint key %q: %w", k, err)
			}
		}
		v.checkpoints = &CheckpointTrust{Origin: c.Origin, Checkpointers: slices.Clone(c.Checkpointers), Witnesses: slices.Clone(c.Witnesses)}
	}
	for _, k := range tf.Exporters {
		if err := checkNoteKey(k); err != nil {
			return nil, fmt.Errorf("trust file: exporter key %q: %w", k, err)
		}
	}
	v.exporters = slices.Clone(tf.Exporters)
	return v, nil
}

// Checkpoints returns the trust file's checkpoint section, or nil when it has none.
func (v *Verifier) Checkpoints() *CheckpointTrust { return v.checkpoints }

// Exporters returns the note verifier keys trusted to sign evidence packs.
func (v *Verifier) Exporters() []string { return v.exporters }

// checkNoteKey checks the form of a note verifier key: a name without spaces or plus signs, eight hex
// digits, and the base64 of the Ed25519 algorithm byte (1) followed by a 32-byte public key.
func checkNoteKey(k string) error {
	parts := strings.SplitN(k, "+", 3)
	if len(parts) != 3 || parts[0] == "" || strings.ContainsAny(parts[0], " \t\n") || len(parts[1]) != 8 {
		return errors.New("not <name>+<8 hex digits>+<base64>")
	}
	if _, err := strconv.ParseUint(parts[1], 16, 32); err != nil {
		return errors.New("key hash is not 8 hex digits")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) != 1+ed25519.PublicKeySize || raw[0] != 1 {
		return errors.New("not an Ed25519 note key")
	}
	return nil
}

// ParseTrustFile strictly decodes a trust file and returns its verifier.
func ParseTrustFile(b []byte) (*Verifier, error) {
	var tf TrustFile
	if err := UnmarshalStrict(b, &tf); err != nil {
		return nil, fmt.Errorf("trust file: %w", err)
	}
	return NewVerifier(tf)
}

// LoadTrustFile reads and parses the trust file at path.
func LoadTrustFile(path string) (*Verifier, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read trust file: %w", err)
	}
	return ParseTrustFile(b)
}

// Record is one event as stored: its stream sequence and subject, the exact body bytes, the signature
// header and the time the broker stored it.
type Record struct {
	Seq       uint64
	Subject   string
	Body      []byte
	Signature string
	StoredAt  time.Time
}

// ViolationKind classifies what is wrong with a stored event.
type ViolationKind string

// Violation kinds, from the broadest to the most specific check.
const (
	ViolationMalformed        ViolationKind = "malformed"
	ViolationSubjectMismatch  ViolationKind = "subject_mismatch"
	ViolationMissingSignature ViolationKind = "missing_signature"
	ViolationUnknownKey       ViolationKind = "unknown_key"
	ViolationKeyNotValid      ViolationKind = "key_not_valid_at_time"
	ViolationBadSignature     ViolationKind = "bad_signature"
	ViolationTypeNotAllowed   ViolationKind = "type_not_allowed"
	ViolationSourceMismatch   ViolationKind = "source_mismatch"
	ViolationChainBroken      ViolationKind = "chain_broken"
	ViolationSequence         ViolationKind = "sequence_out_of_order"
)

// ErrViolation is wrapped by every *Violation.
var ErrViolation = errors.New("event verification failed")

// Violation is the first problem found in a sequence of stored events: where (position in the
// sequence, counted from 1, and stream sequence), which event, what kind and why.
type Violation struct {
	Position  int
	Seq       uint64
	RequestID string
	EventID   string
	Kind      ViolationKind
	Detail    string
}

func (v *Violation) Error() string {
	return fmt.Sprintf("event %d (stream seq %d, request %s): %s: %s", v.Position, v.Seq, v.RequestID, v.Kind, v.Detail)
}

// Unwrap makes errors.Is(err, ErrViolation) true.
func (v *Violation) Unwrap() error { return ErrViolation }

// Chain verifies a sequence of stored events in stream order, across any number of requests: each
// event's signature, that its key's service may emit its type at the time it was stored, and that its
// prevhash links to the previous event of the same request.
type Chain struct {
	v        *Verifier
	heads    map[string]string
	position int
	lastSeq  uint64
}

// NewChain starts a verification run.
func (v *Verifier) NewChain() *Chain { return &Chain{v: v, heads: map[string]string{}} }

// Seed tells the chain the hash of the last event of requestID before the range being verified, for
// verifying a range that does not start at the request's first event.
func (c *Chain) Seed(requestID, head string) { c.heads[requestID] = head }

// Next verifies rec, the next event in stream order, and returns it decoded, or the *Violation. After a
// violation the chain stays usable but its verdict on later events of the same request is unreliable.
func (c *Chain) Next(rec Record) (Event, error) {
	return c.Link(c.v.Check(rec, c.position+1))
}

// Checked is a stored event checked on its own by Verifier.Check, waiting for Chain.Link to judge it in
// stream order. Checking is the costly part (a signature, a decode) and needs nothing from the events
// before, so many can be checked at once.
type Checked struct {
	Record Record
	// Event is the decoded event, valid when Err is nil; Err is the *Violation found on its own.
	Event Event
	Err   error
	// Hash is ChainHash(Record.Body): the prevhash the request's next event must carry.
	Hash string
}

// Check verifies rec on its own as the event at position in its sequence (see Verify) and hashes it for
// the chain. It is safe to call from many goroutines at once.
func (v *Verifier) Check(rec Record, position int) Checked {
	ev, err := v.verify(rec, position, true)
	return Checked{Record: rec, Event: ev, Err: err, Hash: ChainHash(rec.Body)}
}

// Signature returns the public key and the signature rec's header names, for a caller that verifies
// many signatures at once (in a batch) before CheckSigned. ok is false when the header is missing or
// malformed or names a key the trust file lacks: Check reports those.
func (v *Verifier) Signature(rec Record) (pub ed25519.PublicKey, sig []byte, ok bool) {
	keyID, sig, err := parseSignature(rec.Signature)
	if err != nil {
		return nil, nil, false
	}
	key, ok := v.keys[keyID]
	return key.pub, sig, ok
}

// CheckSigned is Check for an event whose signature, as Signature returned it, the caller has verified
// over rec.Body already: everything else is checked as Check does.
func (v *Verifier) CheckSigned(rec Record, position int) Checked {
	ev, err := v.verify(rec, position, false)
	return Checked{Record: rec, Event: ev, Err: err, Hash: ChainHash(rec.Body)}
}

// Link judges ck, checked at the chain's next position, as the next event in stream order: its stream
// sequence, then the verdict of Check, then its prevhash against the request's head. It returns the
// decoded event or the *Violation, as Next does.
func (c *Chain) Link(ck Checked) (Event, error) {
	c.position++
	rec := ck.Record
	if c.lastSeq != 0 && rec.Seq != 0 && rec.Seq <= c.lastSeq {
		subjID, _, _ := ParseNATSSubject(rec.Subject)
		return Event{}, &Violation{Position: c.position, Seq: rec.Seq, RequestID: subjID, Kind: ViolationSequence,
			Detail: fmt.Sprintf("stream sequence %d does not follow %d", rec.Seq, c.lastSeq)}
	}
	if rec.Seq != 0 {
		c.lastSeq = rec.Seq
	}
	if ck.Err != nil {
		return Event{}, ck.Err
	}
	ev := ck.Event
	want, seen := c.heads[ev.Subject]
	if !seen {
		want = GenesisHash(ev.Subject)
	}
	if ev.PrevHash != want {
		return Event{}, &Violation{Position: c.position, Seq: rec.Seq, RequestID: ev.Subject, EventID: ev.ID, Kind: ViolationChainBroken,
			Detail: fmt.Sprintf("prevhash %s, want %s", ev.PrevHash, want)}
	}
	c.heads[ev.Subject] = ck.Hash
	return ev, nil
}

// Verify checks one stored event on its own, as the event at position in its sequence: everything
// Chain.Next checks except its link to the event before (ev.PrevHash), which the caller compares with
// the head it holds. It returns the decoded event, or the *Violation.
func (v *Verifier) Verify(rec Record, position int) (Event, error) {
	return v.verify(rec, position, true)
}

// verify is Verify, checking the signature itself only with checkSig (see CheckSigned).
func (v *Verifier) verify(rec Record, position int, checkSig bool) (Event, error) {
	fail := func(id, eventID string, kind ViolationKind, format string, args ...any) (Event, error) {
		return Event{}, &Violation{Position: position, Seq: rec.Seq, RequestID: id, EventID: eventID, Kind: kind, Detail: fmt.Sprintf(format, args...)}
	}
	subjID, subjType, subjErr := ParseNATSSubject(rec.Subject)
	// The signature is checked on the raw bytes before anything is decoded, so a tampered body is
	// reported as what it is rather than as whatever decoding error the tampering happens to cause.
	if rec.Signature == "" {
		return fail(subjID, "", ViolationMissingSignature, "no %s header", SignatureHeader)
	}
	keyID, sig, err := parseSignature(rec.Signature)
	if err != nil {
		return fail(subjID, "", ViolationBadSignature, "%v", err)
	}
	key, ok := v.keys[keyID]
	if !ok {
		return fail(subjID, "", ViolationUnknownKey, "key %q is not in the trust file", keyID)
	}
	if checkSig && !ed25519.Verify(key.pub, rec.Body, sig) {
		return fail(subjID, "", ViolationBadSignature, "signature by key %q does not match the body", keyID)
	}
	ev, err := Decode(rec.Body)
	if err != nil {
		return fail(subjID, "", ViolationMalformed, "%v", err)
	}
	if subjErr != nil {
		return fail(ev.Subject, ev.ID, ViolationSubjectMismatch, "%v", subjErr)
	}
	if subjID != ev.Subject || subjType != ev.Type {
		return fail(ev.Subject, ev.ID, ViolationSubjectMismatch, "stored under %s but the event is a %s of request %s", rec.Subject, ev.Type.Name(), ev.Subject)
	}
	at := rec.StoredAt
	if at.IsZero() {
		at = ev.Time
	}
	if at.Before(key.NotBefore) || (!key.NotAfter.IsZero() && !at.Before(key.NotAfter)) {
		return fail(ev.Subject, ev.ID, ViolationKeyNotValid, "key %q was not valid at %s", keyID, at.Format(time.RFC3339))
	}
	if !slices.Contains(v.allowed[key.Service], ev.Type) {
		return fail(ev.Subject, ev.ID, ViolationTypeNotAllowed, "key %q of service %s may not emit %s", keyID, key.Service, ev.Type.Name())
	}
	if ev.Source != key.Service.Source() {
		return fail(ev.Subject, ev.ID, ViolationSourceMismatch, "source %q, but the key belongs to %s", ev.Source, key.Service)
	}
	return ev, nil
}

// VerifyAll verifies recs in order from the start of each request and returns the decoded events, or
// the first *Violation.
func (v *Verifier) VerifyAll(recs []Record) ([]Event, error) {
	chain := v.NewChain()
	out := make([]Event, 0, len(recs))
	for _, rec := range recs {
		ev, err := chain.Next(rec)
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	return out, nil
}
