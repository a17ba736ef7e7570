package events

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json/v2"
	"time"

	"github.com/oklog/ulid/v2"
)

// digestInput is what a reviewer approves: who asks, for whom, for what, why, for how long, from when,
// and which grant it extends.
// The requester's groups and the channel are context, not substance, and stay out of it.
type digestInput struct {
	Version         string         `json:"v"`
	Requester       string         `json:"requester"`
	Subject         RequestSubject `json:"subject"`
	Entitlement     string         `json:"entitlement"`
	Justification   string         `json:"justification"`
	Ticket          string         `json:"ticket"`
	DurationSeconds int64          `json:"duration_seconds"`
	StartAt         *time.Time     `json:"start_at"`
	Emergency       bool           `json:"emergency"`
	// Extends is the extended request's ID; omitted when empty, so the digests of requests that extend
	// nothing are those they always were.
	Extends string `json:"extends,omitempty"`
}

// Digest returns the request digest of s: "sha256:" and the hex SHA-256 of a fixed-order JSON encoding of
// the request's substance. Reviews carry it, so an approval cannot be carried over to a changed request.
func (s Submitted) Digest() string {
	in := digestInput{
		Version: "grantline.request.v1", Requester: s.Requester.ID, Subject: s.Subject,
		Entitlement: s.Entitlement, Justification: s.Justification, Ticket: s.Ticket,
		DurationSeconds: s.DurationSeconds, StartAt: s.StartAt, Emergency: s.Emergency,
	}
	if s.Extends != nil {
		in.Extends = s.Extends.RequestID
	}
	if in.StartAt != nil {
		utc := in.StartAt.UTC()
		in.StartAt = &utc
	}
	// Marshalling a struct of strings, numbers and a time cannot fail.
	b, _ := json.Marshal(in, json.Deterministic(true))
	return hashHex(b)
}

// ChainHash is the prevhash the event after body carries: the hex SHA-256 of the exact stored bytes.
func ChainHash(body []byte) string { return hashHex(body) }

// GenesisHash is the prevhash of a request's first event: the hash of the request ID.
func GenesisHash(requestID string) string { return hashHex([]byte(requestID)) }

func hashHex(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// FindingID is the ID under which drift that no request explains is recorded: the finding about ref on
// the target of connector. It is shaped like a request ID (a ULID, so it is a subject token of the
// evidence stream) but made from the SHA-256 of connector and ref, so the same thing found again on
// the next reconcile is the same finding; its time part means nothing.
func FindingID(connector, ref string) string {
	sum := sha256.Sum256([]byte("grantline-finding\x00" + connector + "\x00" + ref))
	return ulid.ULID(sum[:16]).String()
}
