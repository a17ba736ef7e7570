package eventstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/topology"
)

// StreamSettings are the deployment-dependent parts of the stream configuration.
type StreamSettings struct {
	// Replicas is 1 in development and 3 (or 5) in production.
	Replicas int
	// EventsMaxBytes caps the evidence stream; when full it refuses writes (Discard: New) rather than
	// dropping old evidence.
	EventsMaxBytes int64
}

// DefaultSettings suit one node in development.
var DefaultSettings = StreamSettings{Replicas: 1, EventsMaxBytes: 8 << 30}

// duplicateWindow is how long the server remembers message IDs. Beyond it, causation IDs in the
// request's own events keep reactions idempotent; the IDs are held in server memory, so keep it modest.
const duplicateWindow = 10 * time.Minute

// StreamConfigs returns the configuration of the four streams.
func StreamConfigs(s StreamSettings) []jetstream.StreamConfig {
	replicas := max(s.Replicas, 1)
	return []jetstream.StreamConfig{
		{
			Name: topology.EventsStream, Subjects: []string{events.AllSubjects}, Storage: jetstream.FileStorage,
			Replicas: replicas, Retention: jetstream.LimitsPolicy, Discard: jetstream.DiscardNew,
			MaxBytes: s.EventsMaxBytes, MaxMsgs: -1, MaxAge: 0, Duplicates: duplicateWindow,
			DenyDelete: true, DenyPurge: true, AllowRollup: false, AllowDirect: true, AllowAtomicPublish: true,
			Description: "Grantline evidence: every request's events, immutable",
		},
		{
			// Schedules force AllowRollup on and DenyPurge off, which is why they cannot live in the
			// evidence stream; a schedule's target must be in its own stream.
			Name: topology.TimersStream, Subjects: []string{topology.TimerSubjects}, Storage: jetstream.FileStorage,
			Replicas: replicas, Retention: jetstream.LimitsPolicy, AllowMsgSchedules: true, AllowMsgTTL: true,
			AllowRollup: true, Duplicates: duplicateWindow,
			Description: "Grantline timers: message schedules and fired triggers",
		},
		{
			Name: topology.IntakeStream, Subjects: []string{topology.IntakeSubjects}, Storage: jetstream.FileStorage,
			Replicas: replicas, Retention: jetstream.LimitsPolicy, MaxAge: 30 * 24 * time.Hour, Duplicates: duplicateWindow,
			Description: "Grantline intake: requests from integrations as CloudEvents",
		},
		{
			Name: topology.DLQStream, Subjects: []string{topology.DeadLetterSubjects}, Storage: jetstream.FileStorage,
			Replicas: replicas, Retention: jetstream.LimitsPolicy, MaxAge: 90 * 24 * time.Hour, Duplicates: duplicateWindow,
			Description: "Grantline dead letters: messages set aside with the reason",
		},
	}
}

// Provision creates the streams, or brings the disposable ones up to date. It runs with operator
// rights (the dev command, a deployment job); services only Check. It never loosens an existing
// evidence stream: if that is misconfigured it returns the *MisconfiguredError and changes nothing.
func Provision(ctx context.Context, js jetstream.JetStream, s StreamSettings) error {
	for _, cfg := range StreamConfigs(s) {
		existing, err := js.Stream(ctx, cfg.Name)
		switch {
		case errors.Is(err, jetstream.ErrStreamNotFound):
			if _, err := js.CreateStream(ctx, cfg); err != nil {
				return fmt.Errorf("create stream %s: %w", cfg.Name, err)
			}
		case err != nil:
			return fmt.Errorf("look up stream %s: %w", cfg.Name, err)
		case cfg.Name == topology.EventsStream:
			if problems := evidenceProblems(existing.CachedInfo().Config); len(problems) > 0 {
				return &MisconfiguredError{Stream: cfg.Name, Problems: problems}
			}
		default:
			if _, err := js.UpdateStream(ctx, cfg); err != nil {
				return fmt.Errorf("update stream %s: %w", cfg.Name, err)
			}
		}
	}
	return nil
}

// ErrMisconfigured is wrapped by *MisconfiguredError.
var ErrMisconfigured = errors.New("stream misconfigured")

// MisconfiguredError lists what is wrong with a stream that Grantline refuses to run on.
type MisconfiguredError struct {
	Stream   string
	Problems []string
}

func (e *MisconfiguredError) Error() string {
	return fmt.Sprintf("stream %s is misconfigured: %s", e.Stream, strings.Join(e.Problems, "; "))
}

// Unwrap makes errors.Is(err, ErrMisconfigured) true.
func (e *MisconfiguredError) Unwrap() error { return ErrMisconfigured }

// Check verifies that the four streams exist and that the evidence stream keeps its promises:
// deletes and purges denied, no rollup, no maximum age, direct gets and atomic batches on. Every
// service runs it at start and refuses to start on an error.
func Check(ctx context.Context, js jetstream.JetStream) error {
	for _, cfg := range StreamConfigs(DefaultSettings) {
		st, err := js.Stream(ctx, cfg.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("stream %s does not exist; provision the streams first (grantline dev does it): %w", cfg.Name, ErrMisconfigured)
		}
		if err != nil {
			return fmt.Errorf("look up stream %s: %w", cfg.Name, err)
		}
		if cfg.Name == topology.EventsStream {
			if problems := evidenceProblems(st.CachedInfo().Config); len(problems) > 0 {
				return &MisconfiguredError{Stream: cfg.Name, Problems: problems}
			}
		}
	}
	return nil
}

// evidenceProblems says how an evidence stream configuration breaks immutability or the append rule.
func evidenceProblems(c jetstream.StreamConfig) []string {
	var p []string
	if !c.DenyDelete {
		p = append(p, "message deletes are allowed (deny_delete is off)")
	}
	if !c.DenyPurge {
		p = append(p, "purges are allowed (deny_purge is off)")
	}
	if c.AllowRollup {
		p = append(p, "rollups are allowed")
	}
	if c.MaxAge != 0 {
		p = append(p, fmt.Sprintf("events expire after %s (max_age must be 0)", c.MaxAge))
	}
	if c.MaxMsgs > 0 || c.MaxMsgsPerSubject > 0 {
		p = append(p, "a message limit would drop old evidence")
	}
	if c.MaxBytes > 0 && c.Discard != jetstream.DiscardNew {
		p = append(p, "a full stream would drop old evidence (discard must be new)")
	}
	if c.AllowMsgTTL {
		p = append(p, "per-message TTLs are allowed")
	}
	if !c.AllowDirect {
		p = append(p, "direct gets are off (loads need them)")
	}
	if !c.AllowAtomicPublish {
		p = append(p, "atomic batch publish is off (multi-event appends need it)")
	}
	if c.Storage != jetstream.FileStorage {
		p = append(p, "storage is not file")
	}
	return p
}
