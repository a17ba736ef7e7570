package policyd

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/topology"
)

// Marker values: a request's emergency review is open, or settled for good; or the request was set
// aside undecided (its submitted event dead-lettered), so it owes nothing unless it is decided later.
const (
	markerOpen     = "open"
	markerSettled  = "settled"
	markerReleased = "released"
)

// reviews tracks, per requester, the emergency requests whose post-review is still owed, so the policy
// can refuse a second emergency while one is open.
//
// Why one key per request rather than one list per requester: each key holds a marker that only ever
// moves towards "settled" (a post-review, once recorded, is final; so is a request closed before it
// was granted). Opening is Create, which never overwrites anything, and settling is Put. The two
// commute, so the submitted consumer and the settling consumer need no compare-and-set loop on a
// shared list, redeliveries are harmless, and replaying the stream in any order rebuilds the same state.
// The one step back: a request whose submitted event is dead-lettered undecided has its reservation
// "released" (compare-and-set from "open" only, and only while the request is still undecided), and a
// reservation reopens a released marker, should an operator bring the request back to be decided.
// Keys are "<requester>.<request id>", the requester's ID in unpadded base64url (any ID, NATS-key safe);
// the requester's open reviews are read with one batched direct get of the last value of their keys.
//
// The bucket and the two durable consumers are one unit: to rebuild the state from the stream, delete
// all three and restart the service; both consumers replay the stream from the start.
type reviews struct {
	js      jetstream.JetStream
	kv      jetstream.KeyValue
	timeout time.Duration
}

// openReviews creates the bucket if it does not exist (replicas as given) and returns the state over it.
func openReviews(ctx context.Context, js jetstream.JetStream, replicas int) (*reviews, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: topology.PolicyStateBucket, Description: "Grantline policy: emergency requests awaiting post-review",
		History: 1, Storage: jetstream.FileStorage, Replicas: max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("policy state bucket %s: %w", topology.PolicyStateBucket, err)
	}
	return &reviews{js: js, kv: kv, timeout: 5 * time.Second}, nil
}

func requesterPrefix(requester string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(requester))
}

func reviewKey(requester, requestID string) string {
	return requesterPrefix(requester) + "." + requestID
}

// reserve marks request id of requester open before its emergency is decided, so a concurrent emergency
// of the same requester sees it. It never reopens a settled request; it does reopen a released one.
func (s *reviews) reserve(ctx context.Context, requester, id string) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	key := reviewKey(requester, id)
	_, err := s.kv.Create(ctx, key, []byte(markerOpen))
	if errors.Is(err, jetstream.ErrKeyExists) {
		err = s.swap(ctx, key, markerReleased, markerOpen)
	}
	if err != nil {
		return fmt.Errorf("mark emergency %s open: %w", id, err)
	}
	return nil
}

// release marks request id of requester released if it is open: its submitted event was set aside
// undecided, so the reservation made before deciding would otherwise stay open for ever and hold up
// every later emergency of the requester.
func (s *reviews) release(ctx context.Context, requester, id string) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.swap(ctx, reviewKey(requester, id), markerOpen, markerReleased); err != nil {
		return fmt.Errorf("release emergency %s: %w", id, err)
	}
	return nil
}

// swap replaces key's marker from with to, compare-and-set; any other marker (or none) is left as it
// is. A concurrent change makes it look again.
func (s *reviews) swap(ctx context.Context, key, from, to string) error {
	for {
		e, err := s.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if string(e.Value()) != from {
			return nil
		}
		_, err = s.kv.Update(ctx, key, []byte(to), e.Revision())
		if err == nil || !errors.Is(err, jetstream.ErrKeyExists) {
			return err
		}
	}
}

// settle marks request id of requester settled for good.
func (s *reviews) settle(ctx context.Context, requester, id string) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	key := reviewKey(requester, id)
	if e, err := s.kv.Get(ctx, key); err == nil && string(e.Value()) == markerSettled {
		return nil
	}
	if _, err := s.kv.Put(ctx, key, []byte(markerSettled)); err != nil {
		return fmt.Errorf("mark emergency %s settled: %w", id, err)
	}
	return nil
}

// open returns the requester's emergency requests still marked open, but for except, sorted. It reads
// the last value of each of the requester's keys with one batched direct get on the bucket's stream:
// policy asks this for every emergency it decides, and a watch creates and deletes a consumer on the
// server each time, two more round trips on the service's critical path (in the system benchmark,
// consumer creation and deletion took 8% of nats-server's CPU). The server answers at most 1024 keys
// that way, and markers are never deleted, so a requester past that is read with the watch.
func (s *reviews) open(ctx context.Context, requester, except string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	ids, err := s.openDirect(ctx, requester, except)
	if err != nil && ctx.Err() == nil {
		ids, err = s.openByWatch(ctx, requester, except)
	}
	if err != nil {
		return nil, fmt.Errorf("read open emergency reviews: %w", err)
	}
	slices.Sort(ids)
	return ids, nil
}

func (s *reviews) openDirect(ctx context.Context, requester, except string) ([]string, error) {
	prefix := topology.BucketKey(topology.PolicyStateBucket, requesterPrefix(requester)+".")
	msgs, err := jetstreamext.GetLastMsgsFor(ctx, s.js, topology.BucketStream(topology.PolicyStateBucket), []string{prefix + "*"})
	if err != nil {
		return nil, err
	}
	ids := []string{}
	for msg, err := range msgs {
		if errors.Is(err, jetstreamext.ErrNoMessages) {
			break
		}
		if err != nil {
			return nil, err
		}
		// The service never deletes a marker, but an operator may: a deleted key holds no review.
		if op := msg.Header.Get(kvOperationHeader); op == "DEL" || op == "PURGE" {
			continue
		}
		if id := strings.TrimPrefix(msg.Subject, prefix); string(msg.Data) == markerOpen && id != except {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

func (s *reviews) openByWatch(ctx context.Context, requester, except string) ([]string, error) {
	prefix := requesterPrefix(requester) + "."
	w, err := s.kv.Watch(ctx, prefix+"*", jetstream.IgnoreDeletes())
	if err != nil {
		return nil, err
	}
	defer func() { _ = w.Stop() }()
	ids := []string{}
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("watch closed")
			}
			if e == nil {
				// The watch has delivered every current value.
				return ids, nil
			}
			if id := strings.TrimPrefix(e.Key(), prefix); string(e.Value()) == markerOpen && id != except {
				ids = append(ids, id)
			}
		}
	}
}

// kvOperationHeader marks a key-value delete or purge in the bucket's stream.
const kvOperationHeader = "KV-Operation"

// sync brings the marker of r up to date with the request as loaded: open while an emergency decision
// awaits its post-review, settled once it never will again. An undecided request keeps whatever marker
// it was reserved with, and a request that is not an emergency has none.
func (s *reviews) sync(ctx context.Context, r *events.Request) error {
	sub := r.Submitted()
	switch {
	case !sub.Emergency || r.Status() == events.StatusSubmitted:
		return nil
	case emergencyOpen(r):
		return s.reserve(ctx, sub.Requester.ID, r.ID())
	default:
		return s.settle(ctx, sub.Requester.ID, r.ID())
	}
}

// emergencyOpen reports whether r is an emergency decision whose post-review is still owed or may still
// come: decided emergency, not post-reviewed, and not closed before anything was granted (a withdrawn or
// failed emergency owes no review).
func emergencyOpen(r *events.Request) bool {
	if r.Decision().Outcome != events.OutcomeEmergency || r.PostReview() != nil {
		return false
	}
	return !(r.Status().Terminal() && r.Grant() == nil)
}
