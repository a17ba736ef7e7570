package telemetry_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"

	"github.com/grantline/grantline/pkg/telemetry"
)

func TestNewLoggerWritesJSONWithService(t *testing.T) {
	var buf bytes.Buffer
	log := telemetry.NewLogger(&buf, "approvals", slog.LevelInfo)

	log.Debug("dropped below level")
	log.Info("request decided",
		slog.String(telemetry.KeyRequestID, "req-1"),
		slog.String(telemetry.KeyEventType, "access.requested"),
		slog.Any(telemetry.KeyError, errors.New("policy store unavailable")),
	)
	log.With(slog.String("component", "consumer")).Warn("redelivered")

	var lines []map[string]any
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("scan: %v", err)
	}
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2 (debug dropped): %s", len(lines), buf.String())
	}
	for i, m := range lines {
		if m["service"] != "approvals" {
			t.Errorf("line %d service = %v, want approvals", i, m["service"])
		}
	}
	first := lines[0]
	want := map[string]any{
		"level":      "INFO",
		"msg":        "request decided",
		"request_id": "req-1",
		"event_type": "access.requested",
		"error":      "policy store unavailable",
	}
	for k, v := range want {
		if first[k] != v {
			t.Errorf("%s = %v, want %v", k, first[k], v)
		}
	}
	if lines[1]["component"] != "consumer" || lines[1]["level"] != "WARN" {
		t.Errorf("second line = %v, want component=consumer level=WARN", lines[1])
	}
}
