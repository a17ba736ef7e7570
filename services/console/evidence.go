package console

import (
	"encoding/base64"
	"errors"
	"strings"
	"time"

	"github.com/grantline/grantline/pkg/events"
)

// StoredEvent is one event as the read side hands it over: stream position, NATS subject, signature
// header, the time the broker stored it and the body verbatim.
type StoredEvent struct {
	Seq       uint64
	Subject   string
	StoredAt  time.Time
	Signature string
	// Body is the stored bytes; nil when the read side could only give them in base64 (not JSON).
	Body       []byte
	BodyBase64 string
}

// Verdict is a verification of a request's events: verified, or the first violation, at Position
// (1-based, as the read side counts) in the request's events.
type Verdict struct {
	Verified bool
	Kind     string
	Position int
	Detail   string
}

// Agrees reports whether two verifications found the same: both verified, or the same kind of
// violation at the same event.
func (v Verdict) Agrees(w Verdict) bool {
	if v.Verified || w.Verified {
		return v.Verified == w.Verified
	}
	return v.Kind == w.Kind && v.Position == w.Position
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
	// Result is the console's own check of this event against the trust file: "verified", the
	// violation found at it, or "not verified" for events after a violation (the check stops at the
	// first, as the read side's does).
	Result string
	OK     bool
	// ReadSide is the read side's verdict when it names this event, else "".
	ReadSide string
	// Problem is why it does not decode, when it does not.
	Problem string
}

// Evidence reads a request's stored events for an auditor: each event's CloudEvent attributes, its
// signer, its chain link, and the result of checking it against trust here, on the bytes handed over
// (its signature, its key's right to emit its type when it was stored, its link), beside the read
// side's verdict readSide. It returns the entries and the console's own verdict. The read side also
// folds the events through the request's rules, so it may find a violation (an event the request
// could not take) that the console's check does not.
func Evidence(requestID string, stored []StoredEvent, readSide Verdict, trust *events.Verifier) ([]EvidenceEntry, Verdict) {
	out := make([]EvidenceEntry, 0, len(stored))
	prev := events.GenesisHash(requestID)
	link := "the request ID (first event)"
	chain := trust.NewChain()
	own := Verdict{Verified: true}
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
		case !own.Verified:
			e.Result = "not verified (after the violation above)"
		default:
			_, err := chain.Next(events.Record{Seq: s.Seq, Subject: s.Subject, Body: body, Signature: s.Signature, StoredAt: s.StoredAt})
			if err == nil {
				e.Result, e.OK = "verified", true
				break
			}
			own = Verdict{Kind: string(events.ViolationMalformed), Position: i + 1, Detail: err.Error()}
			if v, ok := errors.AsType[*events.Violation](err); ok {
				own.Kind, own.Detail = string(v.Kind), v.Detail
			}
			e.Result = own.Kind + ": " + own.Detail
		}
		if !readSide.Verified && readSide.Position == i+1 {
			e.ReadSide = readSide.Kind
			if readSide.Detail != "" {
				e.ReadSide += ": " + readSide.Detail
			}
		}
		out = append(out, e)
	}
	return out, own
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
