package reaction

import (
	"context"
	"encoding/json/v2"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/deadletter"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/streamscan"
	"github.com/grantline/grantline/pkg/telemetry"
	"github.com/grantline/grantline/pkg/topology"
)

// SweptKey is the expiry index's key that holds how far the start-up sweep has looked through the
// evidence stream: the sequence up to which every grant has been looked at, and the stream's
// creation time. It names no second (<second>.<request id>.<sequence>), so no fire reads it. It lives in
// the index because it speaks for the index's keys: an index purged or recreated loses it with them.
// Deleting it makes the next start read every grant again.
const SweptKey = "swept"

// Sweep is run at start and makes sure every live grant's expiry is armed: its key in the index, and
// its second's timer waiting or fired. A revoker that was down while grants were made or timers fired
// needs no sweep: its durable consumers hold those. The sweep covers what was lost, at a cost that
// follows the live grants and the grants made since the last sweep, not the history:
//
//   - the index's own keys, the armed grants: a second with keys whose timer is neither waiting nor
//     fired (a purged or recreated timers stream) is woken, and past its second fires at once;
//   - the grants after SweptKey that no revoked event followed (streamscan.LiveGrantsFrom): each
//     still live (granted, no revocation under way) without its key is armed, and a grant past its expiry is then revoked at once. An index purged or
//     recreated has lost SweptKey with its keys, an index from before SweptKey never had it (grants
//     armed before expiries were kept by the second), and an evidence stream restored from a backup is
//     not the one SweptKey names: each time the next start reads every grant.
//
// A key lost on its own from a kept index (deleted by hand) is not put back: delete SweptKey with it.
// It returns how many keys it put and seconds it woke. It loads one request at a time and holds one
// entry per second with keys and one per grant not yet revoked.
func (h *Reactions) Sweep(ctx context.Context) (armed int, err error) {
	woken, err := h.wakeLost(ctx)
	if err != nil {
		return woken, fmt.Errorf("sweep: %w", err)
	}
	put, err := h.armMissing(ctx)
	if err != nil {
		return woken + put, fmt.Errorf("sweep: %w", err)
	}
	return woken + put, nil
}

// wakeLost wakes every second with keys in the index whose timer is neither waiting nor fired, and
// returns how many it woke.
func (h *Reactions) wakeLost(ctx context.Context) (woken int, err error) {
	st, err := h.JS.Stream(ctx, topology.TimersStream)
	if err != nil {
		return 0, err
	}
	// The grants' keys (<second>.<request id>.<sequence>), not SweptKey; their names are all it needs.
	checked := map[int64]bool{}
	err = h.readIndex(ctx, "*.>", func(e jetstream.KeyValueEntry) error {
		first, _, _ := strings.Cut(e.Key(), ".")
		sec, err := strconv.ParseInt(first, 10, 64)
		if err != nil {
			h.Log.Error("expiry index: a key that names no second", "key", e.Key())
			return nil
		}
		if checked[sec] {
			return nil
		}
		checked[sec] = true
		kept, err := timerKept(ctx, st, sec)
		if err != nil || kept {
			return err
		}
		woken++
		return h.wake(ctx, sec)
	}, jetstream.MetaOnly())
	if err != nil {
		return woken, fmt.Errorf("wake the lost seconds of the expiry index: %w", err)
	}
	return woken, nil
}

// timerKept reports whether second sec's timer is in the timers stream: a schedule still waiting, or a
// fired copy (the consumer has it, or has handled it and a key whose removal failed is all that is
// left). Neither means it was lost.
func timerKept(ctx context.Context, st jetstream.Stream, sec int64) (bool, error) {
	second := strconv.FormatInt(sec, 10)
	for _, subject := range []string{topology.TimerSchedule(second, topology.TimerExpiry), topology.TimerFired(second, topology.TimerExpiry)} {
		if _, err := st.GetLastMsgForSubject(ctx, subject); err == nil {
			return true, nil
		} else if !errors.Is(err, jetstream.ErrMsgNotFound) {
			return false, err
		}
	}
	return false, nil
}

// armMissing arms each live grant without its key among the grants after SweptKey, moves SweptKey
// past them, and returns how many it armed. SweptKey moves only once every grant up to it has been
// looked at, so a sweep cut short starts again from the previous mark.
func (h *Reactions) armMissing(ctx context.Context) (armed int, err error) {
	st, err := h.JS.Stream(ctx, topology.EventsStream)
	if err != nil {
		return 0, err
	}
	created := st.CachedInfo().Created
	swept, err := h.swept(ctx, created)
	if err != nil {
		return 0, err
	}
	// The scan reads the granted and the revoked events after the mark and keeps only the grants no
	// revocation ended: a first sweep over years of history loads the few grants still live, not every
	// grant ever made.
	live, through, err := streamscan.LiveGrantsFrom(ctx, h.JS, swept+1)
	if err != nil {
		return 0, err
	}
	for _, g := range live {
		put, err := h.armIfMissing(ctx, g.RequestID, g.Seq)
		if err != nil {
			return armed, err
		}
		if put {
			armed++
		}
	}
	if through > swept {
		return armed, h.mark(ctx, sweptMark{Seq: through, StreamCreated: created})
	}
	return armed, nil
}

// armIfMissing arms the expiry of request id, granted at seq, if the grant is still live and its key
// is not in the index, and reports whether it did.
func (h *Reactions) armIfMissing(ctx context.Context, id string, seq uint64) (bool, error) {
	l, err := h.Store.LoadAtLeast(ctx, id, seq)
	if deadletter.Permanent(err) {
		h.Log.Error("sweep: request fails verification", telemetry.KeyRequestID, id, telemetry.KeyError, err.Error())
		return false, nil
	}
	if err != nil {
		return false, err
	}
	r := l.Request
	if r.Status() != events.StatusGranted || r.RevocationDue() != "" {
		return false, nil
	}
	_, err = h.Expiries.Get(ctx, expiryKey(dueSecond(r.Grant().ExpiresAt), id, seq))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return true, h.arm(ctx, id, seq, r.Grant().ExpiresAt)
	case err != nil:
		return false, err
	}
	return false, nil
}

// sweptMark is SweptKey's value: every granted event up to Seq of the evidence stream created at
// StreamCreated has been looked at. A stream created since (restored from a backup) is another
// history, though its sequences may run on from the same numbers.
type sweptMark struct {
	Seq           uint64    `json:"seq"`
	StreamCreated time.Time `json:"stream_created"`
}

// swept returns the sequence up to which a sweep of this index has looked at every granted event of
// the evidence stream created at created. Without a mark (an index new, recreated or from before
// SweptKey), or with one of another stream, it returns 0: every granted event is to be looked at.
func (h *Reactions) swept(ctx context.Context, created time.Time) (uint64, error) {
	e, err := h.Expiries.Get(ctx, SweptKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", SweptKey, err)
	}
	var m sweptMark
	if err := json.Unmarshal(e.Value(), &m); err != nil {
		h.Log.Error("expiry index: an unreadable sweep mark; every granted event is looked at", "value", string(e.Value()), telemetry.KeyError, err.Error())
		return 0, nil
	}
	if !m.StreamCreated.Equal(created) {
		h.Log.Warn("sweep: the evidence stream was created after the sweep's mark (restored?); every granted event is looked at",
			"marked_stream_created", m.StreamCreated.UTC().Format(time.RFC3339Nano), "stream_created", created.UTC().Format(time.RFC3339Nano))
		return 0, nil
	}
	return m.Seq, nil
}

// mark records m in SweptKey.
func (h *Reactions) mark(ctx context.Context, m sweptMark) error {
	value, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if _, err := h.Expiries.Put(ctx, SweptKey, value); err != nil {
		return fmt.Errorf("mark the sweep at %d: %w", m.Seq, err)
	}
	return nil
}
