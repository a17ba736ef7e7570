package events

import (
	"crypto/rand"
	"encoding/json/jsontext"
	"encoding/json/v2"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
)

// SpecVersion is the CloudEvents version of the envelope.
const SpecVersion = "1.0"

// MaxEventSize bounds the encoded size of one event. A request's data is small; anything larger is
// refused before decoding so a hostile body cannot cost memory or time.
const MaxEventSize = 64 << 10

// Envelope is a CloudEvents 1.0 event in structured JSON mode, with Grantline's extensions. The stored
// bytes of the whole envelope are what the signature covers and what the next event's PrevHash hashes.
type Envelope struct {
	SpecVersion     string    `json:"specversion"`
	ID              string    `json:"id"`
	Source          string    `json:"source"`
	Type            Type      `json:"type"`
	Subject         string    `json:"subject"`
	Time            time.Time `json:"time"`
	DataContentType string    `json:"datacontenttype"`
	DataSchema      string    `json:"dataschema"`
	// Actor is who caused the event: a person's immutable IdP subject, or a service ("service:policy").
	Actor         string `json:"actor"`
	CausationID   string `json:"causationid,omitempty"`
	CorrelationID string `json:"correlationid,omitempty"`
	TraceParent   string `json:"traceparent,omitempty"`
	// PrevHash chains the request's events: see ChainHash.
	PrevHash string         `json:"prevhash"`
	Data     jsontext.Value `json:"data"`
}

// Event is a decoded envelope together with its typed payload.
type Event struct {
	Envelope
	Payload Payload
}

// ErrMalformed is wrapped by every decoding error: the input is not a valid v1 event.
var ErrMalformed = errors.New("malformed event")

// NewID returns a new event or request ID: a ULID, sortable by time and free of dots (it is a NATS
// subject token).
func NewID() string { return ulid.MustNew(ulid.Now(), rand.Reader).String() }

// ValidRequestID reports whether id can name a request: a ULID in canonical form. It is used as a NATS
// subject token, so anything looser could escape the request's subject space.
func ValidRequestID(id string) bool {
	if len(id) != ulid.EncodedSize {
		return false
	}
	parsed, err := ulid.ParseStrict(id)
	return err == nil && parsed.String() == id
}

// Decode strictly decodes one stored event: unknown, duplicate or case-variant members, trailing data,
// invalid UTF-8, oversize input, unknown types and missing attributes are all errors wrapping
// ErrMalformed. The payload is decoded into the catalogue type named by the envelope.
func Decode(body []byte) (Event, error) {
	if len(body) > MaxEventSize {
		return Event{}, fmt.Errorf("%w: %d bytes exceeds the %d byte limit", ErrMalformed, len(body), MaxEventSize)
	}
	var env Envelope
	if err := UnmarshalStrict(body, &env); err != nil {
		return Event{}, fmt.Errorf("%w: envelope: %v", ErrMalformed, err)
	}
	if err := env.validate(); err != nil {
		return Event{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	ptr, _ := newPayload(env.Type)
	if err := UnmarshalStrict(env.Data, ptr); err != nil {
		return Event{}, fmt.Errorf("%w: data of %s: %v", ErrMalformed, env.Type.Name(), err)
	}
	payload := reflect.ValueOf(ptr).Elem().Interface().(Payload)
	return Event{Envelope: env, Payload: payload}, nil
}

// UnmarshalStrict decodes JSON the way every Grantline edge must: unknown members are refused on top of
// encoding/json/v2's defaults, which already refuse duplicate and case-variant names, trailing data and
// invalid UTF-8.
func UnmarshalStrict(data []byte, v any) error {
	return json.Unmarshal(data, v, json.RejectUnknownMembers(true))
}

func (e *Envelope) validate() error {
	var missing []string
	for name, value := range map[string]string{
		"specversion": e.SpecVersion, "id": e.ID, "source": e.Source, "type": string(e.Type),
		"subject": e.Subject, "datacontenttype": e.DataContentType, "actor": e.Actor, "prevhash": e.PrevHash,
	} {
		if value == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("missing attributes %s", strings.Join(missing, ", "))
	}
	switch {
	case e.SpecVersion != SpecVersion:
		return fmt.Errorf("specversion %q, want %q", e.SpecVersion, SpecVersion)
	case !e.Type.Known():
		return fmt.Errorf("unknown event type %q", e.Type)
	case e.DataContentType != "application/json":
		return fmt.Errorf("datacontenttype %q, want application/json", e.DataContentType)
	case e.DataSchema != SchemaURI(e.Type):
		return fmt.Errorf("dataschema %q does not match type %s", e.DataSchema, e.Type.Name())
	case !ValidRequestID(e.Subject):
		return fmt.Errorf("subject %q is not a request ID", e.Subject)
	case e.Time.IsZero():
		return errors.New("missing time")
	case len(e.Data) == 0:
		return errors.New("missing data")
	}
	return nil
}

// Draft is an event a decision wants to append, before the event store gives it an ID, a time, a
// chain link and a signature.
type Draft struct {
	Payload Payload
	// Actor is who caused it; defaults to the appending service.
	Actor string
	// CausationID is the ID of the event or command this reacts to. Reactions use it for idempotency:
	// a request that already holds an event of this type with this causation is not appended again.
	CausationID   string
	CorrelationID string
	TraceParent   string
	// MsgID is the deterministic NATS message ID (deduplication). Empty means "<service>:<causation>"
	// for a reaction, or the event ID when there is no causation.
	MsgID string
}

// Seal turns a draft into a complete envelope for request id, emitted by svc at time now and chained to
// prevHash, and returns it with its encoded body.
func (d Draft) Seal(id string, svc Service, now time.Time, prevHash string) (Envelope, []byte, error) {
	data, err := json.Marshal(d.Payload)
	if err != nil {
		return Envelope{}, nil, fmt.Errorf("encode %s data: %w", d.Payload.EventType().Name(), err)
	}
	actor := d.Actor
	if actor == "" {
		actor = "service:" + string(svc)
	}
	env := Envelope{
		SpecVersion: SpecVersion, ID: NewID(), Source: svc.Source(), Type: d.Payload.EventType(),
		Subject: id, Time: now.UTC(), DataContentType: "application/json", DataSchema: SchemaURI(d.Payload.EventType()),
		Actor: actor, CausationID: d.CausationID, CorrelationID: d.CorrelationID, TraceParent: d.TraceParent,
		PrevHash: prevHash, Data: data,
	}
	body, err := json.Marshal(env)
	if err != nil {
		return Envelope{}, nil, fmt.Errorf("encode envelope: %w", err)
	}
	if len(body) > MaxEventSize {
		return Envelope{}, nil, fmt.Errorf("%s event is %d bytes, over the %d byte limit", env.Type.Name(), len(body), MaxEventSize)
	}
	return env, body, nil
}

// subjectPrefix starts the subject of every event.
const subjectPrefix = "grantline.events."

// AllSubjects matches every event of every request: the subjects of the evidence stream.
const AllSubjects = subjectPrefix + ">"

// NATSSubject is the subject an event of type t for request id is stored under; "*" for id matches
// every event of type t.
func NATSSubject(id string, t Type) string { return subjectPrefix + id + "." + t.Name() }

// RequestFilter is the wildcard subject holding all of request id's events; every append carries it as
// its compare-and-set filter.
func RequestFilter(id string) string { return subjectPrefix + id + ".>" }

// ParseNATSSubject splits "grantline.events.<id>.<name>" into the request ID and the event type.
func ParseNATSSubject(subject string) (id string, t Type, err error) {
	rest, ok := strings.CutPrefix(subject, subjectPrefix)
	id, name, cut := strings.Cut(rest, ".")
	if !ok || !cut || strings.Contains(name, ".") {
		return "", "", fmt.Errorf("subject %q is not grantline.events.<id>.<type>", subject)
	}
	t, ok = ParseTypeName(name)
	if !ok {
		return "", "", fmt.Errorf("subject %q names unknown event type %q", subject, name)
	}
	return id, t, nil
}
