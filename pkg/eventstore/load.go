package eventstore

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/grantline/grantline/pkg/events"
)

// loadBatch is how many events one direct-get reply carries at most; a request has tens of events.
const loadBatch = 256

// ErrStale means the replica that answered a load has not caught up with events the caller knows of;
// a retry (or redelivery) will find them.
var ErrStale = errors.New("stream replica behind")

// Load reads request id, verifies every event (signature, allowed type, chain) and folds them. A
// request with no events loads as empty. A verification failure returns the *events.Violation; an
// event the aggregate refuses returns the *events.RefusedError: both mean the stream is not what
// Grantline wrote.
//
// It reads the request through the stream's per-subject index (readChained), which stays fast however
// large the stream grows, and usually in one round trip. When that read does not verify as one unbroken
// chain, Load reads the request again with batched direct gets on its wildcard filter, and only that
// read's verdict is reported. Any replica may answer, and one that is catching up can be behind: the
// result is always a complete, verified prefix of the request, perhaps not its latest. Appends are
// guarded by the compare-and-set, not by the load; a reaction that must see the event it reacts to
// uses LoadAtLeast.
//
// The one answer the chain cannot vouch for is "no events": a request read as empty is reread while
// the stream leader holds events of it, then ErrStale, so a request just accepted is never reported
// as unknown.
func (s *Store) Load(ctx context.Context, id string) (*Loaded, error) {
	return s.LoadAtLeast(ctx, id, 0)
}

// LoadAtLeast is Load that insists on seeing stream sequence seq (the event a reaction was delivered):
// it rereads a few times while the answering replica is behind, then returns ErrStale. When seq is not
// 0 and the store holds the request verified at seq or later (see requestCache), that is returned
// without a read: as any load, it may be behind the stream, and the compare-and-set on append is what
// keeps a decision from landing on a stale prefix.
func (s *Store) LoadAtLeast(ctx context.Context, id string, seq uint64) (*Loaded, error) {
	if seq > 0 {
		if l, _ := s.cache.get(id); l != nil && l.LastSeq >= seq {
			return l, nil
		}
	}
	return s.reload(ctx, id, seq)
}

// reload is LoadAtLeast from the stream, whatever the store holds; what it reads, it remembers.
func (s *Store) reload(ctx context.Context, id string, seq uint64) (*Loaded, error) {
	for attempt := range staleRetries {
		if attempt > 0 {
			if err := backoff(ctx, attempt+2); err != nil {
				return nil, err
			}
		}
		l, err := s.read(ctx, id)
		if errors.Is(err, ErrStale) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if l.LastSeq >= seq {
			s.cache.put(l)
			return l, nil
		}
	}
	return nil, fmt.Errorf("load request %s: want stream sequence %d: %w", id, seq, ErrStale)
}

const staleRetries = 6

func (s *Store) read(ctx context.Context, id string) (*Loaded, error) {
	l, err := s.readVerified(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("load request %s: %w", id, err)
	}
	if len(l.Events) > 0 && !l.Events[0].Type.Request() {
		return nil, fmt.Errorf("load request %s: %w", id, ErrNotARequest)
	}
	if l.Request, err = events.Fold(id, l.Events); err != nil {
		return nil, fmt.Errorf("load request %s: %w", id, err)
	}
	return l, nil
}

// readVerified reads the verified, chained events of id (a request's or a lock's) without folding them.
func (s *Store) readVerified(ctx context.Context, id string) (*Loaded, error) {
	if !events.ValidRequestID(id) {
		return nil, fmt.Errorf("%q is not an ID of the evidence", id)
	}
	recs, evs, err := s.readChained(ctx, id)
	if err != nil && ctx.Err() == nil {
		// Whatever went wrong (replicas at different points answering the two reads, a record that
		// does not verify, a chain that does not close), the wildcard read is the one that decides.
		recs, evs, err = s.readWildcard(ctx, id)
	}
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		// A replica that has not seen the request yet answers like one for a request that does not
		// exist. Only the leader tells them apart; without its word, the empty answer stands.
		if leader, err := s.leaderLastSeq(ctx, id); err == nil && leader > 0 {
			return nil, fmt.Errorf("the leader holds events up to stream sequence %d, the replica that answered none: %w",
				leader, ErrStale)
		}
	}
	l := &Loaded{ID: id, Records: recs, Events: evs}
	if len(recs) > 0 {
		l.LastSeq = recs[len(recs)-1].Seq
	}
	return l, nil
}

// readChained reads all of request id's events without the scan that makes a batched direct get on the
// wildcard "grantline.events.<id>.>" cost the distance from the request's first event to the end of the
// stream (docs/benchmarks.md). It asks one replica for the last event of each of the request's subjects
// (a multi-last direct get). Every event carries the hash of the one before it (prevhash, from the
// request ID's genesis hash), so if those events, in stream order, link up from the genesis, they are
// every event of the request up to the last of them: nothing can be missing in between, and the chain
// itself is the proof, whichever replica answered and however far behind it was. A request whose
// events each have a type of their own (the common case) loads in this one round trip.
//
// Where the chain breaks, the missing events are earlier events of the subjects whose last event comes
// at or after the break (a type that occurs several times, such as reviewed): it reads those subjects
// whole, on their literal subjects, at once, and verifies the union as one chain. Replicas answer
// direct gets independently, so the second read may come from a replica at another point; a union that
// does not link up is returned as an error, and read then leaves the verdict to readWildcard.
func (s *Store) readChained(ctx context.Context, id string) ([]events.Record, []events.Event, error) {
	cut, err := s.reader.lastOfEach(ctx, events.RequestFilter(id))
	if err != nil {
		return nil, nil, err
	}
	slices.SortFunc(cut, func(a, b events.Record) int { return cmp.Compare(a.Seq, b.Seq) })
	evs, err := s.verifyCut(id, cut)
	var gap *unlinkedError
	if !errors.As(err, &gap) {
		return cut, evs, err
	}
	after := cut[gap.index:]
	reads := make([][]events.Record, len(after))
	errs := make([]error, len(after))
	var wg sync.WaitGroup
	for i, rec := range after {
		wg.Go(func() { reads[i], errs[i] = s.wholeSubject(ctx, rec.Subject) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	// The last events stay in: a subject read from a replica behind the first must not shorten the
	// request silently.
	union := slices.Clone(cut)
	for _, recs := range reads {
		union = append(union, recs...)
	}
	slices.SortFunc(union, func(a, b events.Record) int { return cmp.Compare(a.Seq, b.Seq) })
	union = slices.CompactFunc(union, func(a, b events.Record) bool { return a.Seq == b.Seq })
	evs, err = s.verifyCut(id, union)
	return union, evs, err
}

// wholeSubject reads every event stored on subject.
func (s *Store) wholeSubject(ctx context.Context, subject string) ([]events.Record, error) {
	var out []events.Record
	for from := uint64(1); ; {
		page, more, err := s.reader.next(ctx, subject, from, loadBatch)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if !more || len(page) == 0 {
			return out, nil
		}
		from = page[len(page)-1].Seq + 1
	}
}

// unlinkedError is a record of a read that does not link to the record before it (or, first, to the
// request's genesis hash): either events are missing in between, or the stream is not what Grantline
// wrote.
type unlinkedError struct {
	index int
	seq   uint64
	id    string
}

func (e *unlinkedError) Error() string {
	return fmt.Sprintf("event %s (stream seq %d) does not link to the one before it", e.id, e.seq)
}

// verifyCut verifies cut, records of request id in stream order from its first event, as events.Chain
// would, but pays for the signature and the other checks of one event only for records this store has
// not verified before (see verifiedSet). The chain is checked on every load; a break is returned as an
// *unlinkedError.
func (s *Store) verifyCut(id string, cut []events.Record) ([]events.Event, error) {
	head := events.GenesisHash(id)
	out := make([]events.Event, 0, len(cut))
	for i, rec := range cut {
		ev, hash, err := s.verify(rec, i+1)
		if err == nil && ev.Subject != id {
			err = fmt.Errorf("event %s (stream seq %d) belongs to request %s", ev.ID, rec.Seq, ev.Subject)
		}
		if err != nil {
			return nil, err
		}
		if ev.PrevHash != head {
			return nil, &unlinkedError{index: i, seq: rec.Seq, id: ev.ID}
		}
		out = append(out, ev)
		head = hash
	}
	return out, nil
}

// verify checks rec on its own (events.Verifier.Verify, as the event at position) unless this store has
// verified that very record before (see verifiedSet); then it only decodes it, afresh, so that no two
// reads share an event's slices. It returns the event and the chain hash of its body.
func (s *Store) verify(rec events.Record, position int) (events.Event, string, error) {
	hash := events.ChainHash(rec.Body)
	key := verifiedKey(rec, hash)
	if s.verified.has(key) {
		ev, err := events.Decode(rec.Body)
		return ev, hash, err
	}
	ev, err := s.verifier.Verify(rec, position)
	if err == nil {
		s.verified.add(key)
	}
	return ev, hash, err
}

// readWildcard reads request id with batched direct gets on its wildcard filter and verifies every
// event in full. One replica answers each reply from one view of the stream, so the result needs no
// cross-checking, but the server finds the events by scanning the stream from the request's first
// event to its end: on a large stream this costs milliseconds.
func (s *Store) readWildcard(ctx context.Context, id string) ([]events.Record, []events.Event, error) {
	chain := s.verifier.NewChain()
	filter := events.RequestFilter(id)
	var recs []events.Record
	var evs []events.Event
	for from := uint64(1); ; {
		page, more, err := s.reader.next(ctx, filter, from, loadBatch)
		if err != nil {
			return nil, nil, err
		}
		for _, rec := range page {
			ev, err := chain.Next(rec)
			if err != nil {
				return nil, nil, err
			}
			recs, evs = append(recs, rec), append(evs, ev)
		}
		if !more || len(page) == 0 {
			return recs, evs, nil
		}
		from = page[len(page)-1].Seq + 1
	}
}

// verifiedSet remembers the records a store has verified in full. Its key is a digest of everything
// the checks of one event read (subject, body, signature header, time stored); those checks are a pure
// function of them and of the trust file, which a store never changes. A record altered in any way
// has another key and is verified again. It keeps two generations of at most verifiedGeneration keys
// and drops the older when the newer fills, so it stays under a few megabytes.
type verifiedSet struct {
	mu       sync.Mutex
	new, old map[[sha256.Size]byte]struct{}
}

const verifiedGeneration = 1 << 14

func newVerifiedSet() *verifiedSet {
	return &verifiedSet{new: map[[sha256.Size]byte]struct{}{}, old: map[[sha256.Size]byte]struct{}{}}
}

func verifiedKey(rec events.Record, bodyHash string) [sha256.Size]byte {
	var b []byte
	for _, field := range []string{rec.Subject, rec.Signature, rec.StoredAt.Format(time.RFC3339Nano), bodyHash} {
		b = binary.AppendUvarint(b, uint64(len(field)))
		b = append(b, field...)
	}
	return sha256.Sum256(b)
}

func (v *verifiedSet) has(key [sha256.Size]byte) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.new[key]; ok {
		return true
	}
	if _, ok := v.old[key]; ok {
		v.put(key)
		return true
	}
	return false
}

func (v *verifiedSet) add(key [sha256.Size]byte) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.put(key)
}

func (v *verifiedSet) put(key [sha256.Size]byte) {
	if len(v.new) >= verifiedGeneration {
		v.old, v.new = v.new, make(map[[sha256.Size]byte]struct{}, verifiedGeneration)
	}
	v.new[key] = struct{}{}
}
