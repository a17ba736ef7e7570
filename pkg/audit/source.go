package audit

import (
	"bufio"
	"context"
	"encoding/json/jsontext"
	"encoding/json/v2"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/topology"
)

// Range selects stream sequences [From, To]; zero values mean the first and the last.
type Range struct {
	From, To uint64
	// Subject narrows the read, such as events.RequestFilter(id) for one request.
	Subject string
}

// ReadStream calls fn with each stored event of GRANTLINE_EVENTS in r, in stream order. It reads up to
// the stream's last sequence at the moment it starts, so a live stream gives a consistent snapshot.
// An ordered consumer is used: it holds no server state beyond the read.
func ReadStream(ctx context.Context, js jetstream.JetStream, r Range, fn func(events.Record) error) error {
	st, err := js.Stream(ctx, topology.EventsStream)
	if err != nil {
		return fmt.Errorf("open the evidence stream: %w", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return err
	}
	last := info.State.LastSeq
	if r.To != 0 && r.To < last {
		last = r.To
	}
	from := max(r.From, 1)
	if info.State.Msgs == 0 || from > last {
		return nil
	}
	filter := r.Subject
	if filter == "" {
		filter = events.AllSubjects
	}
	cons, err := js.OrderedConsumer(ctx, topology.EventsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter}, DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from,
	})
	if err != nil {
		return fmt.Errorf("read the evidence stream: %w", err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(500))
	if err != nil {
		return err
	}
	defer it.Stop()
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return err
		}
		meta, err := msg.Metadata()
		if err != nil {
			return err
		}
		if meta.Sequence.Stream > last {
			return nil
		}
		if err := fn(events.Record{Seq: meta.Sequence.Stream, Subject: msg.Subject(), Body: msg.Data(),
			Signature: msg.Headers().Get(events.SignatureHeader), StoredAt: meta.Timestamp}); err != nil {
			return err
		}
		// Without a filter the read ends at the leader's last sequence. NumPending is not trusted for
		// that: the ordered consumer may sit on a replica still catching up (after a node restart),
		// which counts nothing pending while the leader holds more. With a filter the last matching
		// sequence is unknown, and NumPending is what there is.
		if meta.Sequence.Stream >= last || (r.Subject != "" && meta.NumPending == 0) {
			return nil
		}
	}
}

// ExportedEvent is one line of an export's events.jsonl: the stored event with its stream position,
// its signature, and its body verbatim (the bytes the signature covers).
type ExportedEvent struct {
	Seq       uint64         `json:"seq"`
	Subject   string         `json:"subject"`
	StoredAt  time.Time      `json:"stored_at"`
	Signature string         `json:"signature"`
	Body      jsontext.Value `json:"body"`
}

// ReadExport calls fn with each event of an events.jsonl export, in file order.
func ReadExport(r io.Reader, fn func(events.Record) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), events.MaxEventSize*4)
	line := 0
	for sc.Scan() {
		line++
		var e ExportedEvent
		if err := json.Unmarshal(sc.Bytes(), &e, json.RejectUnknownMembers(true)); err != nil {
			return fmt.Errorf("events.jsonl line %d: %w", line, err)
		}
		if err := fn(events.Record{Seq: e.Seq, Subject: e.Subject, Body: e.Body, Signature: e.Signature, StoredAt: e.StoredAt}); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("events.jsonl line %d is longer than any event may be", line+1)
		}
		return err
	}
	return nil
}
