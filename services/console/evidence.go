package console

import (
	"encoding/base64"
	"strings"
	"time"

	"github.com/grantline/grantline/pkg/events"
)

// StoredEvent is one event as the read side hands it over: stream position, signature header, the
// time the broker stored it and the body verbatim.
type StoredEvent struct {
	Seq       uint64
	StoredAt  time.Time
	Signature string
	// Body is the stored bytes; nil when the read side could only give them in base64 (not JSON).
	Body       []byte
	BodyBase64 string
}

// Verdict is the read side's verification of a request's events: verified, or the first violation,
// at Position (0-based) in the request's events.
type Verdict struct {
	Verified bool
	Kind     string
	Position int
	Detail   string
}

// EvidenceEntry is an auditor's reading of one stored event.
type EvidenceEntry struct {
	Seq      uint64
	StoredAt time.Time
	// Type, ID, Time, Actor and Source are the CloudEvent's; empty when the body does not decode.
	Type, ID, Actor, Source string
	Time                    time.Time
	// Signer is the key ID of the signature header, Algorithm its algorithm.
	Signer, Algorithm string
	// PrevHash is the event's link to the previous one; Link says what it links to.
	PrevHash string
	Link     string
	// LinkHolds reports whether PrevHash is the hash of the previous event's bytes as handed over
	// (of the request ID, for the first event).
	LinkHolds bool
	// Result is the verification result of this event: "verified", the violation found at it, or
	// "not verified" for events after a violation (verification stops at the first).
	Result string
	OK     bool
	// Problem is why it does not decode, when it does not.
	Problem string
}

// Evidence reads a request's stored events for an auditor: each event's CloudEvent attributes, its
// signer, its chain link (recomputed here from the bytes handed over, beside the read side's own
// verification) and the verification result that applies to it.
func Evidence(requestID string, stored []StoredEvent, v Verdict) []EvidenceEntry {
	out := make([]EvidenceEntry, 0, len(stored))
	prev := events.GenesisHash(requestID)
	link := "the request ID (first event)"
	for i, s := range stored {
		e := EvidenceEntry{Seq: s.Seq, StoredAt: s.StoredAt}
		e.Algorithm, e.Signer = signer(s.Signature)
		body := s.Body
		if body == nil {
			body, _ = base64.StdEncoding.DecodeString(s.BodyBase64)
		}
		if ev, err := events.Decode(body); err != nil {
			e.Problem = err.Error()
		} else {
			e.Type, e.ID, e.Actor, e.Source, e.Time, e.PrevHash = ev.Type.Name(), ev.ID, ev.Actor, ev.Source, ev.Time, ev.PrevHash
		}
		e.Link, e.LinkHolds = link, e.PrevHash != "" && e.PrevHash == prev
		prev = events.ChainHash(body)
		link = "event " + e.ID
		switch {
		case v.Verified || i < v.Position:
			e.Result, e.OK = "verified", true
		case i == v.Position:
			e.Result = v.Kind
			if v.Detail != "" {
				e.Result += ": " + v.Detail
			}
		default:
			e.Result = "not verified (after the violation above)"
		}
		out = append(out, e)
	}
	return out
}

// signer splits a Grantline-Signature header ("ed25519;<key-id>;<base64>") into its algorithm and key
// ID.
func signer(header string) (alg, keyID string) {
	parts := strings.SplitN(header, ";", 3)
	if len(parts) != 3 {
		return "", ""
	}
	return parts[0], parts[1]
}
