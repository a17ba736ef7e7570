package integration

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	jetstreamce "github.com/cloudevents/sdk-go/protocol/nats_jetstream/v2"
	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
)

// TestDecodeReadsWhatTheSDKWritesInEitherMode: a CloudEvent with every attribute intake knows, written
// by the SDK's NATS binding writer in binary mode (its default) and in structured mode, decodes to the
// same attributes and data.
func TestDecodeReadsWhatTheSDKWritesInEitherMode(t *testing.T) {
	ev := cloudevents.NewEvent()
	ev.SetID("ce-7")
	ev.SetSource("https://servicenow.example/requests")
	ev.SetType(TypeRequest)
	ev.SetSubject("RITM0042")
	ev.SetTime(time.Date(2026, 12, 6, 12, 0, 0, 123456789, time.UTC))
	ev.SetDataSchema("https://grantline.example/schemas/request.json")
	ev.SetExtension("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	ev.SetExtension("tracestate", "vendor=1")
	ev.SetExtension("correlationid", "batch-9")
	if err := ev.SetData(cloudevents.ApplicationJSON, request("alice", "engineers")); err != nil {
		t.Fatal(err)
	}
	want := cloudEvent{SpecVersion: "1.0", ID: "ce-7", Source: "https://servicenow.example/requests", Type: TypeRequest,
		Subject: "RITM0042", Time: "2026-12-06T12:00:00.123456789Z", DataContentType: "application/json",
		DataSchema: "https://grantline.example/schemas/request.json", TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		TraceState: "vendor=1", CorrelationID: "batch-9"}
	for _, mode := range []struct {
		name   string
		ctx    context.Context
		binary bool
	}{
		{"binary", context.Background(), true},
		{"structured", binding.WithForceStructured(context.Background()), false},
	} {
		var body bytes.Buffer
		header, err := jetstreamce.WriteMsg(mode.ctx, binding.ToMessage(&ev), &body)
		if err != nil {
			t.Fatal(err)
		}
		if binary(header) != mode.binary {
			t.Fatalf("%s: the SDK wrote headers %v", mode.name, header)
		}
		got, err := decode(header, body.Bytes())
		if err != nil {
			t.Fatalf("%s: %v", mode.name, err)
		}
		if string(got.Data) != string(ev.Data()) {
			t.Errorf("%s: data %s, want %s", mode.name, got.Data, ev.Data())
		}
		got.Data = nil
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%s: attributes (-want +got):\n%s", mode.name, d)
		}
	}
}

// TestDecodeInBinaryMode: the header names of other SDKs and of the binding's specification are read
// too; an attribute intake does not know, or one given two different values, is refused, as an unknown
// member of a structured CloudEvent is.
func TestDecodeInBinaryMode(t *testing.T) {
	base := func() nats.Header {
		return nats.Header{"ce-specversion": {"1.0"}, "ce-id": {"ce-1"}, "ce-source": {"/s"}, "ce-type": {TypeRequest}}
	}
	with := func(k string, v ...string) nats.Header { h := base(); h[k] = v; return h }
	for _, tc := range []struct {
		name    string
		header  nats.Header
		body    string
		refused string // empty: decoded
		check   func(cloudEvent) bool
	}{
		{name: "content-type names the data's type", header: with("content-type", "application/json; charset=utf-8"),
			check: func(ce cloudEvent) bool { return ce.DataContentType == "application/json; charset=utf-8" }},
		{name: "header names in any case", header: nats.Header{"Ce-Specversion": {"1.0"}, "CE-ID": {"ce-1"}, "Ce-Source": {"/s"}, "ce-type": {TypeRequest}},
			check: func(ce cloudEvent) bool { return ce.ID == "ce-1" && ce.Source == "/s" && ce.SpecVersion == "1.0" }},
		{name: "the broker's headers are not the event's", header: with("Nats-Msg-Id", "m-1"),
			check: func(ce cloudEvent) bool { return ce.ID == "ce-1" }},
		{name: "the same value twice", header: with("content-type", "application/json"),
			check: func(ce cloudEvent) bool { return ce.DataContentType == "application/json" }},
		{name: "an unknown attribute", header: with("ce-approved", "true"), refused: `unknown attribute "approved"`},
		{name: "two values", header: with("ce-id", "ce-1", "ce-2"), refused: "has 2 values"},
		{name: "two content types", header: func() nats.Header {
			h := with("content-type", "application/json")
			h["ce-datacontenttype"] = []string{"text/plain"}
			return h
		}(), refused: `"datacontenttype" is given twice`},
		{name: "one attribute in two cases", header: with("CE-ID", "ce-2"), refused: `"id" is given twice`},
	} {
		body := tc.body
		if body == "" {
			body = `{"entitlement":"analytics-read"}`
		}
		ce, err := decode(tc.header, []byte(body))
		switch {
		case tc.refused != "" && (err == nil || !strings.Contains(err.Error(), tc.refused)):
			t.Errorf("%s: %v, want it refused with %q", tc.name, err, tc.refused)
		case tc.refused != "" && ce.ID == "" && len(tc.header["ce-id"]) == 1:
			t.Errorf("%s: refused without the CloudEvent's id, which its answer names", tc.name)
		case tc.refused == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.refused == "" && (!tc.check(ce) || string(ce.Data) != body):
			t.Errorf("%s: decoded %+v", tc.name, ce)
		}
	}
}
