package integration

import (
	"encoding/json/jsontext"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/grantline/grantline/pkg/events"
)

// The NATS protocol binding of CloudEvents has two content modes. In structured mode the whole
// envelope, data included, is the message body. In binary mode the body is the data alone and each
// attribute is a header named ce-<attribute>, the data's content type either ce-datacontenttype (as
// the Go SDK writes it) or content-type (as the binding's specification names it). A message is
// binary when it has a ce-specversion header, as the SDKs decide when they read one.
const (
	attributePrefix   = "ce-"
	contentTypeHeader = "content-type"
)

// decode reads the CloudEvent of one message in either content mode, as strictly as Grantline reads
// any input: an attribute it does not know is refused, and so is one given two different values (by
// two headers whose names differ in case only, by content-type and ce-datacontenttype, or by one
// header with two values). Headers outside the binding's (Nats-Msg-Id, say) are the broker's business, not the
// event's.
func decode(header nats.Header, body []byte) (cloudEvent, error) {
	var ce cloudEvent
	if !binary(header) {
		err := events.UnmarshalStrict(body, &ce)
		return ce, err
	}
	attributes := map[string]*string{
		"specversion": &ce.SpecVersion, "id": &ce.ID, "source": &ce.Source, "type": &ce.Type, "subject": &ce.Subject,
		"time": &ce.Time, "datacontenttype": &ce.DataContentType, "dataschema": &ce.DataSchema,
		"traceparent": &ce.TraceParent, "tracestate": &ce.TraceState, "correlationid": &ce.CorrelationID,
	}
	// Every header is read, in a fixed order, even after a problem: a refusal still names the
	// CloudEvent's id, and always the same problem first.
	var err error
	seen := map[string]bool{}
	for _, key := range slices.Sorted(maps.Keys(header)) {
		values := header[key]
		name, ok := strings.CutPrefix(strings.ToLower(key), attributePrefix)
		if !ok && strings.EqualFold(key, contentTypeHeader) {
			name, ok = "datacontenttype", true
		}
		if !ok {
			continue
		}
		field, known := attributes[name]
		var problem error
		switch {
		case !known:
			problem = fmt.Errorf("unknown attribute %q (header %s)", name, key)
		case len(values) != 1:
			problem = fmt.Errorf("header %s has %d values, want one", key, len(values))
		case seen[name] && *field != values[0]:
			problem = fmt.Errorf("attribute %q is given twice, differently", name)
		case !seen[name]:
			seen[name] = true
			*field = values[0]
		}
		if err == nil {
			err = problem
		}
	}
	ce.Data = jsontext.Value(body)
	return ce, err
}

// binary reports whether a message with header is in binary content mode.
func binary(header nats.Header) bool {
	for key := range header {
		if strings.EqualFold(key, attributePrefix+"specversion") {
			return true
		}
	}
	return false
}
