// Package eventstore is the one correct way to read and append a request's events on NATS JetStream:
// load from the stream's per-subject index without creating a consumer, append with a compare-and-set
// on the request's whole subject space and a deterministic message ID, several events as one atomic
// batch, every event signed and chained, and every load verified.
package eventstore

import (
	"context"
	"encoding/json/v2"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/telemetry"
	"github.com/grantline/grantline/pkg/topology"
)

// ErrConflict means another writer appended to the request since it was loaded: reload and decide again.
var ErrConflict = errors.New("request changed concurrently")

// ErrDuplicate means the message IDs were already stored: the append happened before.
var ErrDuplicate = errors.New("events already appended")

// Store reads and appends request streams, signing as one service and verifying against a trust file.
type Store struct {
	js          jetstream.JetStream
	signer      *events.Signer
	verifier    *events.Verifier
	now         func() time.Time
	maxAttempts int
	timeout     time.Duration
	reader      reader
	verified    *verifiedSet
	cache       *requestCache
}

// Config is what a Store needs.
type Config struct {
	// Signer signs what this service appends; its service is the source of every event.
	Signer *events.Signer
	// Verifier checks every loaded event against the trust file.
	Verifier *events.Verifier
	// Durability proves the servers fsync every write; Open refuses to start without it.
	Durability SyncProbe
	// Now is the clock; defaults to time.Now.
	Now func() time.Time
	// MaxAttempts bounds Update's load-decide-append loop under contention; defaults to 8.
	MaxAttempts int
	// RequestTimeout bounds each round trip to NATS, whatever the caller's deadline: a reply lost with a
	// node that died must not hold a handler for the rest of its context. Defaults to 5s.
	RequestTimeout time.Duration
	// CacheBytes bounds the memory of the requests the store keeps verified for reactions (see
	// AtDelivery); defaults to DefaultCacheBytes.
	CacheBytes int
}

// Open checks that the streams exist and the evidence stream is hardened, that the servers fsync every
// write, and returns a Store.
func Open(ctx context.Context, js jetstream.JetStream, cfg Config) (*Store, error) {
	if cfg.Signer == nil || cfg.Verifier == nil {
		return nil, errors.New("event store needs a signer and a verifier")
	}
	if err := Check(ctx, js); err != nil {
		return nil, err
	}
	if err := CheckDurability(ctx, cfg.Durability); err != nil {
		return nil, err
	}
	return newStore(js, cfg)
}

// ErrReadOnly is what Append returns on a store opened with OpenReader.
var ErrReadOnly = errors.New("event store opened read-only")

// OpenReader is Open for a service that only reads the evidence and holds no signing key (the
// notifier): its Store loads and verifies like any other, and Append returns ErrReadOnly. It checks
// the streams but not the servers' durability, which only a writer depends on.
func OpenReader(ctx context.Context, js jetstream.JetStream, verifier *events.Verifier) (*Store, error) {
	if verifier == nil {
		return nil, errors.New("event store needs a verifier")
	}
	if err := Check(ctx, js); err != nil {
		return nil, err
	}
	return newStore(js, Config{Verifier: verifier})
}

// newStore is Open without the checks.
func newStore(js jetstream.JetStream, cfg Config) (*Store, error) {
	s := &Store{js: js, signer: cfg.Signer, verifier: cfg.Verifier, now: cfg.Now, maxAttempts: cfg.MaxAttempts,
		timeout: cfg.RequestTimeout, verified: newVerifiedSet()}
	if cfg.CacheBytes <= 0 {
		cfg.CacheBytes = DefaultCacheBytes
	}
	s.cache = newRequestCache(cfg.CacheBytes)
	if s.now == nil {
		s.now = time.Now
	}
	if s.maxAttempts <= 0 {
		s.maxAttempts = 8
	}
	if s.timeout <= 0 {
		s.timeout = 5 * time.Second
	}
	r, err := newStreamReader(js, s.timeout)
	if err != nil {
		return nil, fmt.Errorf("open event store: %w", err)
	}
	s.reader = r
	return s, nil
}

// Loaded is a request as read from the stream: its verified records, their decoded events, the folded
// aggregate, and the stream sequence of its last event (0 for a request with no events), which the next
// append expects.
type Loaded struct {
	ID      string
	Records []events.Record
	Events  []events.Event
	Request *events.Request
	LastSeq uint64
}

// head is the prevhash the next event must carry.
func (l *Loaded) head() string {
	if len(l.Records) == 0 {
		return events.GenesisHash(l.ID)
	}
	return events.ChainHash(l.Records[len(l.Records)-1].Body)
}

// leaderLastSeq asks the stream leader (not any replica) for the sequence of request id's last event,
// 0 if it has none. It costs a round trip to the leader, so it is only asked when a decision on a
// possibly stale load went wrong.
func (s *Store) leaderLastSeq(ctx context.Context, id string) (uint64, error) {
	seq, err := s.leaderLastOf(ctx, events.RequestFilter(id))
	if err != nil {
		return 0, fmt.Errorf("ask the stream leader about request %s: %w", id, err)
	}
	return seq, nil
}

// LastSeq is the stream sequence of the last event stored, as the stream leader knows it (0 for none):
// every event whose append was acknowledged before the call is at or below it. It is one stream info
// request, which the leader answers from counters it keeps, so its cost does not grow with the stream
// (unlike a last_by_subj read of a wildcard subject, which visits every matching subject).
func (s *Store) LastSeq(ctx context.Context) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	st, err := s.js.Stream(ctx, topology.EventsStream)
	if err != nil {
		return 0, fmt.Errorf("ask the stream leader for the last sequence: %w", err)
	}
	return st.CachedInfo().State.LastSeq, nil
}

// leaderLastOf asks the stream leader for the sequence of the last event on subject filter, 0 if none.
func (s *Store) leaderLastOf(ctx context.Context, filter string) (uint64, error) {
	req, _ := json.Marshal(map[string]string{"last_by_subj": filter})
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	prefix := s.js.Options().APIPrefix
	if prefix == "" {
		prefix = jetstream.DefaultAPIPrefix
	}
	msg, err := s.js.Conn().RequestWithContext(ctx, prefix+"STREAM.MSG.GET."+topology.EventsStream, req)
	if err != nil {
		return 0, err
	}
	var resp struct {
		Message *struct {
			Seq uint64 `json:"seq"`
		} `json:"message"`
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return 0, err
	}
	switch {
	case resp.Error != nil && resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
		return 0, nil
	case resp.Error != nil:
		return 0, resp.Error
	case resp.Message == nil:
		return 0, errors.New("empty answer")
	}
	return resp.Message.Seq, nil
}

// Append seals drafts as the next events of cur (signed, chained, with deterministic message IDs) and
// stores them only if nothing was appended since cur was loaded: the compare-and-set covers the
// request's whole subject space, so no event of any type can slip in between. Several drafts go in one
// atomic batch. The aggregate must accept every draft first, so an illegal event never reaches the
// stream. It returns the request with the new events, ErrConflict when someone else appended first, or
// ErrDuplicate when these message IDs were already stored.
func (s *Store) Append(ctx context.Context, cur *Loaded, drafts ...events.Draft) (*Loaded, error) {
	if len(drafts) == 0 {
		return cur, nil
	}
	if s.signer == nil {
		return nil, ErrReadOnly
	}
	// The drafts carry this span as their traceparent, so the reactions to them continue its trace.
	ctx, span := telemetry.Tracer("pkg/eventstore").Start(ctx, "append "+drafts[0].Payload.EventType().Name(),
		trace.WithSpanKind(trace.SpanKindProducer))
	defer span.End()
	if span.IsRecording() {
		types := make([]string, len(drafts))
		for i, d := range drafts {
			types[i] = d.Payload.EventType().Name()
		}
		span.SetAttributes(attribute.String(telemetry.KeyRequestID, cur.ID), attribute.StringSlice("grantline.event_types", types),
			attribute.String("grantline.service", string(s.signer.Service())))
	}
	next, err := s.append(ctx, cur, drafts)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	return next, err
}

// append is Append inside its span.
func (s *Store) append(ctx context.Context, cur *Loaded, drafts []events.Draft) (*Loaded, error) {
	msgs, sealed, now, err := s.seal(ctx, cur, drafts)
	if err != nil {
		return nil, fmt.Errorf("append to request %s: %w", cur.ID, err)
	}
	req, err := events.Fold(cur.ID, append(append([]events.Event{}, cur.Events...), sealed...))
	if err != nil {
		return nil, fmt.Errorf("append to request %s: %w", cur.ID, err)
	}
	next, err := s.store(ctx, cur, msgs, sealed, now)
	if err != nil {
		return nil, fmt.Errorf("append to request %s: %w", cur.ID, err)
	}
	next.Request = req
	s.cache.put(next)
	return next, nil
}

// seal signs and chains drafts as the next events after cur, with their deterministic message IDs.
func (s *Store) seal(ctx context.Context, cur *Loaded, drafts []events.Draft) ([]*nats.Msg, []events.Event, time.Time, error) {
	prev := cur.head()
	now := s.now()
	var msgs []*nats.Msg
	var sealed []events.Event
	for i, d := range drafts {
		if d.TraceParent == "" {
			d.TraceParent = traceParent(ctx)
		}
		env, body, err := d.Seal(cur.ID, s.signer.Service(), now, prev)
		if err != nil {
			return nil, nil, now, err
		}
		msg := nats.NewMsg(events.NATSSubject(cur.ID, env.Type))
		msg.Data = body
		msg.Header.Set(events.SignatureHeader, s.signer.Sign(body))
		msg.Header.Set(jetstream.MsgIDHeader, s.msgID(cur.ID, d, env, i))
		if env.TraceParent != "" {
			msg.Header.Set("traceparent", env.TraceParent)
		}
		msgs = append(msgs, msg)
		sealed = append(sealed, events.Event{Envelope: env, Payload: d.Payload})
		prev = events.ChainHash(body)
	}
	return msgs, sealed, now, nil
}

// store publishes the sealed msgs after cur (see publish) and returns what was loaded with them added,
// without its aggregate.
func (s *Store) store(ctx context.Context, cur *Loaded, msgs []*nats.Msg, sealed []events.Event, now time.Time) (*Loaded, error) {
	lastSeq, err := s.publish(ctx, cur, msgs)
	if err != nil {
		return nil, err
	}
	next := &Loaded{ID: cur.ID, Records: cur.Records, Events: append(append([]events.Event{}, cur.Events...), sealed...), LastSeq: lastSeq}
	first := lastSeq - uint64(len(msgs)) + 1
	for i, msg := range msgs {
		next.Records = append(next.Records, events.Record{Seq: first + uint64(i), Subject: msg.Subject, Body: msg.Data,
			Signature: msg.Header.Get(events.SignatureHeader), StoredAt: now})
	}
	return next, nil
}

// traceParent is the W3C traceparent of the span in ctx, or "" outside a trace.
func traceParent(ctx context.Context) string {
	h := nats.Header{}
	telemetry.Inject(ctx, h)
	return h.Get("traceparent")
}

// msgID is the deduplication key of draft i: the draft's own, or "<service>:<request>:<causation>"
// (":<n>" for the n-th event of a batch after the first), or else the event ID. The request ID is part
// of it because a causation need only be unique within its request: a command's idempotency key is
// unique per requester, not across them.
func (s *Store) msgID(id string, d events.Draft, env events.Envelope, i int) string {
	suffix := ""
	if i > 0 {
		suffix = ":" + strconv.Itoa(i+1)
	}
	switch {
	case d.MsgID != "":
		return d.MsgID + suffix
	case d.CausationID != "":
		return string(s.signer.Service()) + ":" + id + ":" + d.CausationID + suffix
	}
	return env.ID
}

// publish stores msgs with the compare-and-set on cur's filter and returns the last stream sequence.
func (s *Store) publish(ctx context.Context, cur *Loaded, msgs []*nats.Msg) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	filter := events.RequestFilter(cur.ID)
	if len(msgs) == 1 {
		ack, err := s.js.PublishMsg(ctx, msgs[0], jetstream.WithExpectStream(topology.EventsStream),
			jetstream.WithExpectLastSequenceForSubject(cur.LastSeq, filter))
		if err != nil {
			return 0, classify(err)
		}
		if ack.Duplicate {
			return 0, ErrDuplicate
		}
		return ack.Sequence, nil
	}
	// Only the first message of an atomic batch may carry the expectation; the batch commits whole or
	// not at all, so the check covers all of it.
	msgs[0].Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(cur.LastSeq, 10))
	msgs[0].Header.Set(jetstream.ExpectedLastSubjSeqSubjHeader, filter)
	msgs[0].Header.Set(jetstream.ExpectedStreamHeader, topology.EventsStream)
	ack, err := jetstreamext.PublishMsgBatch(ctx, s.js, msgs)
	if err != nil {
		return 0, classify(err)
	}
	return ack.Sequence, nil
}

// classify maps the server's answers to the store's sentinels.
func classify(err error) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case jetstream.JSErrCodeStreamWrongLastSequence, jetstream.JSErrCodeStreamWrongLastSequenceConstant:
			return fmt.Errorf("%w: %v", ErrConflict, err)
		case errCodeBatchDuplicate:
			return fmt.Errorf("%w: %v", ErrDuplicate, err)
		}
	}
	return err
}

// errCodeBatchDuplicate is the server's JSAtomicPublishContainsDuplicateMessageErr; nats.go has no name
// for it.
const errCodeBatchDuplicate jetstream.ErrorCode = 10201

// Decide returns the events to append to the request as it is now, or none. Returning an error stops
// Update with that error; it is not retried.
type Decide func(r *events.Request) ([]events.Draft, error)

// Updated is a request after an Update: as it stands after the append, and the events Update appended
// (in order; none when the decision added nothing the request did not already hold). Callers learn
// whether they appended from Appended, never by comparing versions or times.
type Updated struct {
	*Loaded
	Appended []events.Event
}

// Update is load → decide → append for one request, retried from a fresh load when another writer got
// there first, at most MaxAttempts times. Drafts the request already holds (same type and causation)
// are dropped, so a redelivered reaction appends nothing; if nothing is left, Update returns the request
// unchanged and appends nothing.
//
// When the decision fails, or the aggregate refuses it, Update first asks the stream leader whether the
// load was stale; only a decision on current state is final.
func (s *Store) Update(ctx context.Context, id string, decide Decide) (*Updated, error) {
	return s.update(ctx, id, 0, nil, decide)
}

// UpdateFrom is Update for a reaction to the event at stream sequence seen: the decision is taken on a
// request that includes it, the one the store holds if it holds it that far (see LoadAtLeast).
func (s *Store) UpdateFrom(ctx context.Context, id string, seen uint64, decide Decide) (*Updated, error) {
	return s.update(ctx, id, seen, nil, decide)
}

// React is Update for a reaction to delivered event d: the first decision is taken on the request as
// of d (AtDelivery), which usually costs no read at all; a conflict reloads.
func (s *Store) React(ctx context.Context, d Delivery, decide Decide) (*Updated, error) {
	cur, err := s.AtDelivery(ctx, d)
	if err != nil {
		return nil, err
	}
	return s.update(ctx, d.RequestID, d.Seq, cur, decide)
}

// Create is Update for a request ID the caller has just minted: the first decision is taken on the
// request with no events, without a read. Should the ID hold events after all (a retried command whose
// first attempt landed), the compare-and-set refuses the append and Create goes on as Update does, from
// a load.
func (s *Store) Create(ctx context.Context, id string, decide Decide) (*Updated, error) {
	if !events.ValidRequestID(id) {
		return nil, fmt.Errorf("create request %q: not a request ID", id)
	}
	return s.update(ctx, id, 0, &Loaded{ID: id, Request: events.NewRequest(id)}, decide)
}

// update decides on cur (if given, else on a load of at least seen), appends, and on a conflict or a
// doubtful refusal reloads from the stream and decides again.
func (s *Store) update(ctx context.Context, id string, seen uint64, cur *Loaded, decide Decide) (*Updated, error) {
	var lastErr error
	for attempt := range s.maxAttempts {
		if attempt > 0 {
			if err := backoff(ctx, attempt); err != nil {
				return nil, err
			}
		}
		var err error
		switch {
		case cur != nil:
		case attempt == 0:
			cur, err = s.LoadAtLeast(ctx, id, seen)
		default:
			// What the store holds is what the last attempt decided on: read the stream.
			cur, err = s.reload(ctx, id, seen)
		}
		if err != nil {
			return nil, err
		}
		drafts, err := decide(cur.Request)
		if err == nil {
			drafts = notYetApplied(cur.Request, drafts)
			if len(drafts) == 0 {
				return &Updated{Loaded: cur}, nil
			}
			var next *Loaded
			if next, err = s.Append(ctx, cur, drafts...); err == nil {
				return &Updated{Loaded: next, Appended: next.Events[len(cur.Events):]}, nil
			}
		}
		decidedOn := cur.LastSeq
		cur = nil
		switch {
		case errors.Is(err, ErrConflict), errors.Is(err, ErrDuplicate) && allCaused(drafts):
			// Someone else appended first, or an earlier attempt landed but its ack was lost (then the
			// reload finds it and drops the drafts). The load came from a replica that may be behind
			// and may stay behind for a while: decide again on one that has what the leader has, so a
			// lagging replica costs a reread, not every attempt.
			lastErr = err
			if leader, lerr := s.leaderLastSeq(ctx, id); lerr == nil {
				seen = max(seen, leader)
			}
		default:
			leader, lerr := s.leaderLastSeq(ctx, id)
			if lerr != nil {
				// Without the leader's word the decision may rest on a stale read: report it as
				// transient so the caller retries, never as a final refusal.
				return nil, fmt.Errorf("%w: %v (and the leader could not confirm: %v)", ErrStale, err, lerr)
			}
			if leader <= decidedOn {
				return nil, err
			}
			// The decision was taken on a replica that was behind: decide again on what the leader has.
			// Should the attempts run out, the outcome is "stale", never the refusal of stale state.
			seen = leader
			lastErr = fmt.Errorf("%w: decided on a replica behind the leader: %v", ErrStale, err)
		}
	}
	return nil, fmt.Errorf("update request %s: gave up after %d attempts: %w", id, s.maxAttempts, lastErr)
}

func allCaused(drafts []events.Draft) bool {
	for _, d := range drafts {
		if d.CausationID == "" {
			return false
		}
	}
	return true
}

func notYetApplied(r *events.Request, drafts []events.Draft) []events.Draft {
	var out []events.Draft
	for _, d := range drafts {
		if !r.HasCaused(d.Payload.EventType(), d.CausationID) {
			out = append(out, d)
		}
	}
	return out
}

// backoff waits a few jittered milliseconds, longer with each attempt, so contending writers spread out.
func backoff(ctx context.Context, attempt int) error {
	d := time.Duration(rand.IntN(1<<min(attempt, 6))+1) * time.Millisecond
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
