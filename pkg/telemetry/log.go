package telemetry

import (
	"io"
	"log/slog"
)

// Attribute keys shared by every service's log lines; see the package
// documentation for the conventions around them.
const (
	// KeyService names the emitting service; NewLogger adds it to every line.
	KeyService = "service"
	// KeyRequestID identifies one access request across services.
	KeyRequestID = "request_id"
	// KeyEventType is the type of the event being handled or published.
	KeyEventType = "event_type"
	// KeyTraceID is the hex W3C trace id, as returned by TraceID.
	KeyTraceID = "trace_id"
	// KeyError holds the error of a failed unit of work.
	KeyError = "error"
)

// NewLogger returns a logger that writes one JSON object per line to w,
// dropping records below level, with every line carrying
// "service": service. It never fails; write errors on w are ignored by
// slog, as with any slog handler.
func NewLogger(w io.Writer, service string, level slog.Level) *slog.Logger {
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})
	return slog.New(h).With(slog.String(KeyService, service))
}
