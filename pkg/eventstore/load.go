package eventstore

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
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
// It reads the request through the stream's per-subject index (readCut), which stays fast however
// large the stream grows. When that read is not one consistent cut of the request, or does not verify,
// Load reads it again with batched direct gets on the request's wildcard filter, and only that read's
// verdict is reported. Any replica may answer that read, and one that is catching up can be behind. For
// a reaction that must see the event it reacts to, use LoadAtLeast.
func (s *Store) Load(ctx context.Context, id string) (*Loaded, error) {
	return s.LoadAtLeast(ctx, id, 0)
}

// LoadAtLeast is Load that insists on seeing stream sequence seq (the event a reaction was delivered):
// it rereads a few times while the answering replica is behind, then returns ErrStale.
func (s *Store) LoadAtLeast(ctx context.Context, id string, seq uint64) (*Loaded, error) {
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
		if err != nil || l.LastSeq >= seq {
			return l, err
		}
	}
	return nil, fmt.Errorf("load request %s: want stream sequence %d and the leader's count: %w", id, seq, ErrStale)
}

const staleRetries = 6

func (s *Store) read(ctx context.Context, id string) (*Loaded, error) {
	if !events.ValidRequestID(id) {
		return nil, fmt.Errorf("load request %q: not a request ID", id)
	}
	recs, evs, err := s.readFast(ctx, id)
	if fastErr := err; err != nil && ctx.Err() == nil {
		// Whatever went wrong (a replica behind, an append landing between the reads, the leader
		// unreachable, a record that does not verify), the wildcard read is the one that decides.
		recs, evs, err = s.readWildcard(ctx, id)
		// A request the leader holds events of, read as having none, is one a replica behind has not
		// seen yet: reread rather than answer that a request just accepted does not exist. (A replica
		// a few events behind answers an older, consistent state, as any read may.)
		var short *cutError
		if err == nil && errors.As(fastErr, &short) && len(recs) == 0 && short.counted > 0 {
			return nil, fmt.Errorf("load request %s: the leader counts %d events, the replica that answered has %d: %w",
				id, short.counted, len(recs), ErrStale)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("load request %s: %w", id, err)
	}
	l := &Loaded{ID: id, Records: recs, Events: evs}
	if len(recs) > 0 {
		l.LastSeq = recs[len(recs)-1].Seq
	}
	if l.Request, err = events.Fold(id, evs); err != nil {
		return nil, fmt.Errorf("load request %s: %w", id, err)
	}
	return l, nil
}

// cutAttempts is how many times readFast tries for a consistent cut before leaving the load to the
// wildcard read: an append between the reads spoils one attempt, rarely two.
const cutAttempts = 2

// readFast is readCut, retried once, then verified.
func (s *Store) readFast(ctx context.Context, id string) ([]events.Record, []events.Event, error) {
	for attempt := 1; ; attempt++ {
		cut, err := s.readCut(ctx, id)
		if errors.Is(err, errNoCut) && attempt < cutAttempts {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		evs, err := s.verifyCut(id, cut)
		return cut, evs, err
	}
}

// errNoCut means the reads did not come back as one consistent cut of the request: a replica behind or
// ahead of the leader's count, or an append that landed between the reads.
var errNoCut = errors.New("the reads do not form one cut of the request")

// cutError is errNoCut with how many events the leader counted for the request.
type cutError struct{ counted uint64 }

func (e *cutError) Error() string {
	return fmt.Sprintf("%v (the leader counts %d)", errNoCut, e.counted)
}
func (e *cutError) Is(target error) bool { return target == errNoCut }

func noCut(counts map[string]uint64) error {
	var n uint64
	for _, c := range counts {
		n += c
	}
	return &cutError{counted: n}
}

// readCut reads all of request id's events as they stood at one stream sequence, without the scan that
// makes a batched direct get on the wildcard "grantline.events.<id>.>" cost the distance from the
// request's first event to the end of the stream (docs/benchmarks.md). At once, it asks the stream
// leader how many events each of the request's subjects holds, with the stream's last sequence L when
// it counted (stream info with a subject filter), and asks any replica for the last event of each
// subject (a multi-last direct get); then, for each subject holding several events, it reads the first
// n on that literal subject. The server answers all of them from its per-subject index.
//
// Replicas answer direct gets independently and may be behind or ahead of the leader, so the result is
// used only if it holds, for every subject the leader counted, exactly that many events, all at or
// below L. Then it is every event the request had at L and nothing else, and verifying it says what
// verifying the stream would. Otherwise it returns errNoCut.
func (s *Store) readCut(ctx context.Context, id string) ([]events.Record, error) {
	filter := events.RequestFilter(id)
	var lasts []events.Record
	var lastErr error
	var wg sync.WaitGroup
	wg.Go(func() { lasts, lastErr = s.reader.lastOfEach(ctx, filter) })
	counts, upTo, countErr := s.reader.counts(ctx, filter)
	wg.Wait()
	if err := errors.Join(countErr, lastErr); err != nil {
		return nil, err
	}

	var cut []events.Record
	for _, rec := range lasts {
		if counts[rec.Subject] == 1 {
			cut = append(cut, rec)
		}
	}
	var several []string
	for subject, n := range counts {
		if n > 1 {
			several = append(several, subject)
		}
	}
	reads := make([][]events.Record, len(several))
	errs := make([]error, len(several))
	for i, subject := range several {
		wg.Go(func() { reads[i], errs[i] = s.firstOf(ctx, subject, counts[subject]) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, recs := range reads {
		cut = append(cut, recs...)
	}

	slices.SortFunc(cut, func(a, b events.Record) int { return cmp.Compare(a.Seq, b.Seq) })
	seen := make(map[string]uint64, len(counts))
	for i, rec := range cut {
		if rec.Seq > upTo || (i > 0 && rec.Seq == cut[i-1].Seq) {
			return nil, noCut(counts)
		}
		seen[rec.Subject]++
	}
	if !maps.Equal(seen, counts) {
		return nil, noCut(counts)
	}
	return cut, nil
}

// firstOf reads the first n events on subject.
func (s *Store) firstOf(ctx context.Context, subject string, n uint64) ([]events.Record, error) {
	var out []events.Record
	for from := uint64(1); uint64(len(out)) < n; {
		page, more, err := s.reader.next(ctx, subject, from, int(min(n-uint64(len(out)), loadBatch)))
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if !more || len(page) == 0 {
			break
		}
		from = page[len(page)-1].Seq + 1
	}
	return out, nil
}

// verifyCut verifies cut, which holds every event of request id in stream order, as events.Chain
// would, but pays for the signature and the other checks of one event only for records this store has
// not verified before (see verifiedSet). The chain is checked on every load.
func (s *Store) verifyCut(id string, cut []events.Record) ([]events.Event, error) {
	chain := s.verifier.NewChain()
	head := events.GenesisHash(id)
	out := make([]events.Event, 0, len(cut))
	for _, rec := range cut {
		hash := events.ChainHash(rec.Body)
		key := verifiedKey(rec, hash)
		var ev events.Event
		var err error
		if s.verified.has(key) {
			// Decoded afresh so that no two loads share an event's slices.
			ev, err = events.Decode(rec.Body)
			if err == nil && ev.PrevHash != head {
				err = fmt.Errorf("event %s (stream seq %d) does not link to the one before", ev.ID, rec.Seq)
			}
		} else {
			chain.Seed(id, head)
			if ev, err = chain.Next(rec); err == nil {
				s.verified.add(key)
			}
		}
		if err == nil && ev.Subject != id {
			err = fmt.Errorf("event %s (stream seq %d) belongs to request %s", ev.ID, rec.Seq, ev.Subject)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
		head = hash
	}
	return out, nil
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
