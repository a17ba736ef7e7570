// Package telemetry holds the logging, trace-propagation and metric conventions that
// every Grantline service shares.
//
// # Logging
//
// Services log JSON through log/slog, built with [NewLogger] so that every
// line carries the emitting service's name under the key "service". That key
// is what lets the dev mode, which runs all five services in one process and
// one output stream, be filtered per service.
//
// Conventions:
//
//   - One line per unit of work, written at the edge: the NATS consumer
//     callback or the HTTP handler that finished the work logs its outcome
//     once. Inner layers return wrapped errors instead of logging them, so a
//     failure is reported exactly once and with its full context.
//   - Attribute keys are fixed, so that log queries work across services:
//     [KeyRequestID] ("request_id"), [KeyEventType] ("event_type"),
//     [KeyTraceID] ("trace_id", from [TraceID]) and [KeyError] ("error").
//     Pass errors as slog.Any(KeyError, err); the JSON handler renders them
//     with err.Error().
//   - Never log secrets: no credentials, tokens, connection strings with
//     passwords, NATS user JWTs or seeds, nor whole request or event payloads
//     that may contain them. Log identifiers, not contents.
//
// # Trace propagation over NATS
//
// Trace context travels in NATS message headers using the W3C Trace Context
// and Baggage formats. NATS headers are case-sensitive, unlike HTTP headers,
// so the keys are written and read exactly as the W3C specification spells
// them: "traceparent", "tracestate" and "baggage", all lower case. That is why
// this package has its own [HeaderCarrier] over nats.Header instead of
// propagation.HeaderCarrier, which goes through http.Header and would
// canonicalise the key to "Traceparent", a key that no other W3C
// implementation reading NATS headers would find.
//
// [Inject] and [Extract] use the global OpenTelemetry propagator, which is a
// no-op until [InstallPropagator] has been called once at process start.
package telemetry
