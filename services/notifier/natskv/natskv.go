// Package natskv keeps the notifier's state in its own JetStream key-value buckets, which survive a
// restart and are shared by every replica:
//
//   - the outbox (GRANTLINE_NOTIFY_OUTBOX): each notification still to send, under
//     "<channel>.<recipient>.<key>". The bucket's stream is also the channels' work queue: one durable
//     consumer per channel reads it, so a channel that is down holds up no other and loses nothing;
//   - the sent record (GRANTLINE_NOTIFY_SENT): by notification key, "sending" while one replica holds
//     the claim (with a lease, so a replica that died mid-send does not hold it for ever), then "sent".
//     Only one claim can be created for a key, so redelivery, a restart or a second replica never
//     send a notification twice;
//   - the replay guard (GRANTLINE_NOTIFY_REPLAY): the signatures of Slack callbacks accepted within the
//     last minutes, so a captured callback cannot be acted on again.
package natskv

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json/v2"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/services/notifier"
)

// Settings size the buckets.
type Settings struct {
	// Replicas of each bucket's stream (1 in development, 3 in production).
	Replicas int
	// SentFor is how long a sent record is kept: the horizon over which a cause redelivered (a consumer
	// reset, an event replayed) is still recognised. Defaults to 30 days.
	SentFor time.Duration
	// ReplayWindow is how long an accepted Slack callback is remembered; at least Slack's own 5-minute
	// timestamp window. Defaults to 10 minutes.
	ReplayWindow time.Duration
}

// Buckets are the notifier's three buckets.
type Buckets struct {
	Outbox *Outbox
	Sent   *Sent
	Replay *Replay
}

// Open creates or updates the three buckets (the notifier's NATS user may declare its own buckets, and
// no others) and returns them.
func Open(ctx context.Context, js jetstream.JetStream, s Settings) (*Buckets, error) {
	if s.SentFor <= 0 {
		s.SentFor = 30 * 24 * time.Hour
	}
	if s.ReplayWindow <= 0 {
		s.ReplayWindow = 10 * time.Minute
	}
	replicas := max(s.Replicas, 1)
	open := func(bucket, description string, ttl time.Duration) (jetstream.KeyValue, error) {
		kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucket, Description: description,
			History: 1, TTL: ttl, Storage: jetstream.FileStorage, Replicas: replicas})
		if err != nil {
			return nil, fmt.Errorf("bucket %s: %w", bucket, err)
		}
		return kv, nil
	}
	outbox, err := open(topology.NotifyOutboxBucket, "Grantline notifier: deliveries still to send, by channel", 0)
	if err != nil {
		return nil, err
	}
	sent, err := open(topology.NotifySentBucket, "Grantline notifier: each notification claimed or sent, by key", s.SentFor)
	if err != nil {
		return nil, err
	}
	replay, err := open(topology.NotifyReplayBucket, "Grantline notifier: Slack callbacks accepted lately", s.ReplayWindow)
	if err != nil {
		return nil, err
	}
	return &Buckets{Outbox: &Outbox{kv: outbox}, Sent: &Sent{kv: sent}, Replay: &Replay{kv: replay}}, nil
}

// Outbox holds the deliveries still to send.
type Outbox struct {
	kv jetstream.KeyValue
}

// Entry is one notification waiting in the outbox.
type Entry struct {
	Notification notifier.Notification `json:"notification"`
	// NotBefore holds the entry back until then, so that a burst for one person arriving meanwhile
	// goes out as one digest.
	NotBefore time.Time `json:"not_before"`
}

// Recipient is the key token of a recipient in the outbox: their identity hashed, because key tokens
// allow fewer characters than identities.
func Recipient(n notifier.Notification) string {
	sum := sha256.Sum256([]byte(n.To.ID + "\x00" + n.Address))
	return hex.EncodeToString(sum[:])[:24]
}

// Key is where the entry of n is kept: "<channel>.<recipient>.<notification key>".
func Key(n notifier.Notification) string {
	return string(n.Channel) + "." + Recipient(n) + "." + n.Key()
}

// ChannelSubjects is the subject filter of channel c's entries on the bucket's stream.
func ChannelSubjects(c notifier.Channel) string {
	return topology.BucketKey(topology.NotifyOutboxBucket, string(c)+".>")
}

// KeyOfSubject returns the outbox key stored under a subject of the bucket's stream.
func KeyOfSubject(subject string) (string, bool) {
	return strings.CutPrefix(subject, topology.BucketKey(topology.NotifyOutboxBucket, ""))
}

// Encode is the stored form of e.
func Encode(e Entry) ([]byte, error) { return json.Marshal(e) }

// Decode reads a stored entry.
func Decode(b []byte) (Entry, error) {
	var e Entry
	if err := json.Unmarshal(b, &e); err != nil {
		return Entry{}, fmt.Errorf("outbox entry: %w", err)
	}
	return e, nil
}

// Put stores e under its key; putting the same entry again stores it again (a replanned cause), which
// the sent record then recognises.
func (o *Outbox) Put(ctx context.Context, e Entry) error {
	b, err := Encode(e)
	if err != nil {
		return err
	}
	if _, err := o.kv.Put(ctx, Key(e.Notification), b); err != nil {
		return fmt.Errorf("outbox put %s: %w", e.Notification.Key(), err)
	}
	return nil
}

// Pending is an entry with its key and revision (the order it was stored in).
type Pending struct {
	Key      string
	Revision uint64
	Entry    Entry
}

// Waiting returns the entries waiting for the recipient of n on its channel, oldest first.
func (o *Outbox) Waiting(ctx context.Context, n notifier.Notification) ([]Pending, error) {
	prefix := string(n.Channel) + "." + Recipient(n) + "."
	lister, err := o.kv.ListKeysFiltered(ctx, prefix+">")
	if err != nil {
		return nil, fmt.Errorf("outbox list: %w", err)
	}
	var out []Pending
	for key := range lister.Keys() {
		e, err := o.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // sent and removed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("outbox get %s: %w", key, err)
		}
		entry, err := Decode(e.Value())
		if err != nil {
			continue // not ours to send; its own delivery dead-letters it
		}
		out = append(out, Pending{Key: key, Revision: e.Revision(), Entry: entry})
	}
	slices.SortFunc(out, func(a, b Pending) int { return cmp.Compare(a.Revision, b.Revision) })
	return out, nil
}

// Remove deletes the entry at key once it was sent (or found sent).
func (o *Outbox) Remove(ctx context.Context, key string) error {
	if err := o.kv.Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("outbox remove %s: %w", key, err)
	}
	return nil
}

// Sent records which notifications were claimed and sent.
type Sent struct {
	kv jetstream.KeyValue
}

type record struct {
	State string    `json:"state"`
	Owner string    `json:"owner"`
	At    time.Time `json:"at"`
	Ref   string    `json:"ref,omitempty"`
}

const (
	stateSending = "sending"
	stateSent    = "sent"
)

// ClaimStatus says what became of a claim.
type ClaimStatus int

// Claim outcomes.
const (
	// Claimed: the caller holds the notification and must send it, then MarkSent or Release.
	Claimed ClaimStatus = iota
	// AlreadySent: it went out before; do not send it again.
	AlreadySent
	// Busy: another replica holds a live claim; look again later.
	Busy
)

// Claim is a held (or refused) claim on one notification.
type Claim struct {
	Key      string
	Status   ClaimStatus
	revision uint64
}

// Claim takes notification key for owner at now. A claim whose holder has not finished within lease
// is taken over: its holder is presumed dead, and the notification is sent again rather than lost.
func (s *Sent) Claim(ctx context.Context, key, owner string, now time.Time, lease time.Duration) (Claim, error) {
	value, _ := json.Marshal(record{State: stateSending, Owner: owner, At: now.UTC()})
	for range 3 {
		rev, err := s.kv.Create(ctx, key, value)
		if err == nil {
			return Claim{Key: key, Status: Claimed, revision: rev}, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return Claim{}, fmt.Errorf("claim %s: %w", key, err)
		}
		e, err := s.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // released meanwhile: create again
		}
		if err != nil {
			return Claim{}, fmt.Errorf("claim %s: %w", key, err)
		}
		var held record
		if err := json.Unmarshal(e.Value(), &held); err != nil {
			return Claim{}, fmt.Errorf("claim %s: %w", key, err)
		}
		switch {
		case held.State == stateSent:
			return Claim{Key: key, Status: AlreadySent}, nil
		case now.Sub(held.At) < lease:
			return Claim{Key: key, Status: Busy}, nil
		}
		rev, err = s.kv.Update(ctx, key, value, e.Revision())
		if err != nil {
			return Claim{Key: key, Status: Busy}, nil // someone else took it over first
		}
		return Claim{Key: key, Status: Claimed, revision: rev}, nil
	}
	return Claim{Key: key, Status: Busy}, nil
}

// MarkSent records a claimed notification as sent at now, with where the message is (ref).
func (s *Sent) MarkSent(ctx context.Context, c Claim, owner string, now time.Time, ref string) error {
	value, _ := json.Marshal(record{State: stateSent, Owner: owner, At: now.UTC(), Ref: ref})
	// Unconditional: the message went out, whatever happened to the claim meanwhile.
	if _, err := s.kv.Put(ctx, c.Key, value); err != nil {
		return fmt.Errorf("mark %s sent: %w", c.Key, err)
	}
	return nil
}

// Release gives a claim up after a failed send, so the next attempt (here or elsewhere) can claim it
// at once.
func (s *Sent) Release(ctx context.Context, c Claim) error {
	err := s.kv.Delete(ctx, c.Key, jetstream.LastRevision(c.revision))
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("release %s: %w", c.Key, err)
	}
	return nil
}

// IsSent reports whether notification key was sent.
func (s *Sent) IsSent(ctx context.Context, key string) (bool, error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up %s: %w", key, err)
	}
	var r record
	return json.Unmarshal(e.Value(), &r) == nil && r.State == stateSent, nil
}

// Ref returns where the sent message of notification key is, "" if it was not sent or has no ref.
func (s *Sent) Ref(ctx context.Context, key string) (string, error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("look up %s: %w", key, err)
	}
	var r record
	if err := json.Unmarshal(e.Value(), &r); err != nil || r.State != stateSent {
		return "", nil
	}
	return r.Ref, nil
}

// Replay remembers accepted Slack callbacks.
type Replay struct {
	kv jetstream.KeyValue
}

// First records a callback by its signature and reports whether this is the first time it is seen
// (within the bucket's window). Across replicas exactly one sees it first.
func (r *Replay) First(ctx context.Context, signature string) (bool, error) {
	sum := sha256.Sum256([]byte(signature))
	_, err := r.kv.Create(ctx, hex.EncodeToString(sum[:]), []byte("seen"))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrKeyExists):
		return false, nil
	}
	return false, fmt.Errorf("replay guard: %w", err)
}
