package eventstore

import (
	"context"
	"encoding/json/v2"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/topology"
)

// reader is where loads get stored events. The store's is streamReader; tests put a replica that
// answers inconsistently in front of it.
type reader interface {
	// lastOfEach returns the last event of each subject matching filter.
	lastOfEach(ctx context.Context, filter string) ([]events.Record, error)
	// next returns up to n events matching filter from stream sequence from on, in stream order, and
	// whether more follow.
	next(ctx context.Context, filter string, from uint64, n int) (recs []events.Record, more bool, err error)
}

// streamReader reads the evidence stream with direct gets (answered by any replica). Every direct get replies on one long-lived subscription under
// a token of its own: jetstreamext.GetBatch subscribes a new inbox for each call, which cost about half
// of a small load (docs/benchmarks.md), and it ends a reply that times out as if it were complete.
type streamReader struct {
	nc        *nats.Conn
	apiPrefix string
	inbox     string
	timeout   time.Duration

	mu      sync.Mutex
	tokens  uint64
	waiting map[string]chan *nats.Msg
}

// newStreamReader subscribes the reply inbox; it lives as long as the connection.
func newStreamReader(js jetstream.JetStream, timeout time.Duration) (*streamReader, error) {
	nc := js.Conn()
	r := &streamReader{nc: nc, apiPrefix: js.Options().APIPrefix, inbox: nc.NewInbox() + ".", timeout: timeout,
		waiting: map[string]chan *nats.Msg{}}
	if r.apiPrefix == "" {
		r.apiPrefix = jetstream.DefaultAPIPrefix
	}
	if _, err := nc.Subscribe(r.inbox+"*", r.dispatch); err != nil {
		return nil, fmt.Errorf("subscribe for direct-get replies: %w", err)
	}
	return r, nil
}

// dispatch hands a reply to the read waiting for its token. It never blocks: each read's buffer holds
// its whole reply, and anything beyond that (or for a read that gave up) is dropped, so one read can
// never stall the others.
func (r *streamReader) dispatch(msg *nats.Msg) {
	r.mu.Lock()
	ch := r.waiting[msg.Subject[len(r.inbox):]]
	r.mu.Unlock()
	select {
	case ch <- msg:
	default:
	}
}

// Headers of direct-get replies that nats.go has no name for.
const (
	numPendingHeader = "Nats-Num-Pending"
	statusHeader     = "Status"
)

// directGet sends req to the stream's direct-get endpoint and collects the stored messages of the
// reply, at most n, up to its end-of-batch marker. A reply that does not arrive whole within the
// timeout is an error, never a shorter answer. It returns how many more messages match, as the
// marker says.
func (r *streamReader) directGet(ctx context.Context, req any, n int) (recs []events.Record, pending uint64, err error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, 0, err
	}
	replies := make(chan *nats.Msg, n+1)
	r.mu.Lock()
	r.tokens++
	token := strconv.FormatUint(r.tokens, 36)
	r.waiting[token] = replies
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.waiting, token)
		r.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if err := r.nc.PublishRequest(r.apiPrefix+"DIRECT.GET."+topology.EventsStream, r.inbox+token, body); err != nil {
		return nil, 0, fmt.Errorf("direct get: %w", err)
	}
	for {
		var msg *nats.Msg
		select {
		case msg = <-replies:
		case <-ctx.Done():
			return nil, 0, fmt.Errorf("direct get: %d messages, then %w", len(recs), ctx.Err())
		}
		// The server stamps every stored message it returns with its sequence; a status never has one.
		// Telling them apart by the Status header alone would let a stored message that carries one
		// end the read early.
		if msg.Header.Get(jetstream.SequenceHeader) == "" {
			switch status := msg.Header.Get(statusHeader); status {
			case "204": // end of batch
				pending, _ = strconv.ParseUint(msg.Header.Get(numPendingHeader), 10, 64)
				return recs, pending, nil
			case "404": // nothing matches
				return nil, 0, nil
			default:
				return nil, 0, fmt.Errorf("direct get: status %q %s", status, msg.Header.Get("Description"))
			}
		}
		rec, err := storedRecord(msg)
		if err != nil {
			return nil, 0, err
		}
		recs = append(recs, rec)
	}
}

// storedRecord is a direct-get reply as the verifier sees a stored event.
func storedRecord(msg *nats.Msg) (events.Record, error) {
	seq, err := strconv.ParseUint(msg.Header.Get(jetstream.SequenceHeader), 10, 64)
	if err != nil {
		return events.Record{}, fmt.Errorf("direct get: stream sequence: %w", err)
	}
	at, err := time.Parse(time.RFC3339Nano, msg.Header.Get(jetstream.TimeStampHeaer))
	if err != nil {
		return events.Record{}, fmt.Errorf("direct get: time stored: %w", err)
	}
	return events.Record{Seq: seq, Subject: msg.Header.Get(jetstream.SubjectHeader), Body: msg.Data,
		Signature: msg.Header.Get(events.SignatureHeader), StoredAt: at}, nil
}

func (r *streamReader) next(ctx context.Context, filter string, from uint64, n int) ([]events.Record, bool, error) {
	req := struct {
		Seq     uint64 `json:"seq"`
		NextFor string `json:"next_by_subj"`
		Batch   int    `json:"batch"`
	}{from, filter, n}
	recs, pending, err := r.directGet(ctx, req, n)
	return recs, pending > 0, err
}

func (r *streamReader) lastOfEach(ctx context.Context, filter string) ([]events.Record, error) {
	req := struct {
		MultiLastFor []string `json:"multi_last"`
		Batch        int      `json:"batch"`
	}{[]string{filter}, loadBatch}
	recs, _, err := r.directGet(ctx, req, loadBatch)
	return recs, err
}
