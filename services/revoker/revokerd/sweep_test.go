package revokerd_test

import (
	"context"
	"encoding/json/v2"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/pkg/targettest"
	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/services/revoker/reaction"
)

// TestSweepLooksOnlyPastItsMark: three live grants. Two are made, and a start's sweep marks the
// evidence as looked at past them; the third is made after. While the revoker is down the timers stream
// is purged, and the index loses the keys of the second grant and of the third. At the next start the
// sweep looks at the granted events after its mark only, so the third grant's key is put back and the
// second's is not (no start pays for the history again); and it wakes the first grant's second from
// its key in the index, which it no longer reaches through the evidence.
func TestSweepLooksOnlyPastItsMark(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	who := someone("engineers")
	kept := e.Granted(t, targettest.Request{Requester: who, Entitlement: "analytics-read", Duration: time.Hour})
	lost := e.Granted(t, targettest.Request{Requester: who, Entitlement: "analytics-read", Duration: 2 * time.Hour})
	keptKey, lostKey := e.armedKey(t, kept), e.armedKey(t, lost)
	e.stopRevoker()
	e.startRevoker(t)
	poll.Until(t, 20*time.Second, "the sweep to mark both grants looked at", func() bool { return e.swept(t) >= keySeq(t, lostKey) })

	later := e.Granted(t, targettest.Request{Requester: who, Entitlement: "analytics-read", Duration: 3 * time.Hour})
	laterKey := e.armedKey(t, later)
	e.stopRevoker()
	if m := e.swept(t); m >= keySeq(t, laterKey) {
		t.Fatalf("the sweep marked %d, past the grant made after it (%d): the test proves nothing", m, keySeq(t, laterKey))
	}
	e.purgeTimers(t)
	for _, key := range []string{lostKey, laterKey} {
		if err := e.revoke.Expiries.Purge(ctx, key); err != nil {
			t.Fatal(err)
		}
	}

	e.startRevoker(t)
	poll.Until(t, 20*time.Second, "the sweep to mark the later grant looked at", func() bool { return e.swept(t) >= keySeq(t, laterKey) })
	if got := e.expiryKeys(t, later); len(got) != 1 || got[0] != laterKey {
		t.Errorf("the grant made after the mark: keys %v, want %s put back", got, laterKey)
	}
	if got := e.expiryKeys(t, lost); len(got) != 0 {
		t.Errorf("the grant made before the mark: keys %v, want none (the sweep looked at it again)", got)
	}
	if !e.scheduled(t, keySecond(t, keptKey)) {
		t.Errorf("the second of the grant whose key was kept has no timer waiting: its expiry would never fire")
	}
}

// TestSweepOfARecreatedIndex: a live grant, which a start's sweep marks as looked at. While the
// revoker is down the expiry index is deleted and created again, empty, its mark gone with its keys;
// at the next start the sweep looks at every granted event, puts the grant's key back, and marks again.
func TestSweepOfARecreatedIndex(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := e.Granted(t, targettest.Request{Requester: someone("engineers"), Entitlement: "analytics-read", Duration: time.Hour})
	key := e.armedKey(t, id)
	e.stopRevoker()
	e.startRevoker(t)
	poll.Until(t, 20*time.Second, "the sweep to mark the grant looked at", func() bool { return e.swept(t) >= keySeq(t, key) })
	e.stopRevoker()

	if err := e.JS.DeleteKeyValue(ctx, topology.ExpiriesBucket); err != nil {
		t.Fatal(err)
	}
	kv, err := e.JS.CreateOrUpdateKeyValue(ctx, reaction.ExpiriesConfig(1))
	if err != nil {
		t.Fatal(err)
	}
	e.revoke.Expiries = kv
	e.startRevoker(t)
	poll.Until(t, 20*time.Second, "the grant's key to be put back", func() bool {
		got := e.expiryKeys(t, id)
		return len(got) == 1 && got[0] == key
	})
	poll.Until(t, 20*time.Second, "the sweep to mark the grant looked at again", func() bool { return e.swept(t) >= keySeq(t, key) })
	if !e.scheduled(t, keySecond(t, key)) {
		t.Error("the grant's second has no timer waiting")
	}
}

// TestSweepDistrustsTheMarkOfAnotherStream: a live grant, which a start's sweep marks as looked at.
// While the revoker is down its key is lost, and the mark is one of an evidence stream created earlier,
// as when the stream is restored from a backup (a restored stream is created anew, its sequences may
// run on from the same numbers, and what they hold since the backup is another history). The next
// start looks at every granted event, puts the grant's key back, and marks the stream it has.
func TestSweepDistrustsTheMarkOfAnotherStream(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := e.Granted(t, targettest.Request{Requester: someone("engineers"), Entitlement: "analytics-read", Duration: time.Hour})
	key := e.armedKey(t, id)
	e.stopRevoker()
	e.startRevoker(t)
	poll.Until(t, 20*time.Second, "the sweep to mark the grant looked at", func() bool { return e.swept(t) >= keySeq(t, key) })
	e.stopRevoker()

	m := e.mark(t)
	st, err := e.JS.Stream(ctx, topology.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	if created := st.CachedInfo().Created; !m.StreamCreated.Equal(created) {
		t.Fatalf("the mark names the stream created at %s, the evidence stream was created at %s", m.StreamCreated, created)
	}
	m.StreamCreated = m.StreamCreated.Add(-time.Hour)
	value, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.revoke.Expiries.Put(ctx, reaction.SweptKey, value); err != nil {
		t.Fatal(err)
	}
	if err := e.revoke.Expiries.Purge(ctx, key); err != nil {
		t.Fatal(err)
	}

	e.startRevoker(t)
	poll.Until(t, 20*time.Second, "the grant's key to be put back", func() bool {
		got := e.expiryKeys(t, id)
		return len(got) == 1 && got[0] == key
	})
	poll.Until(t, 20*time.Second, "the sweep to mark the stream it has", func() bool {
		return e.mark(t).StreamCreated.Equal(st.CachedInfo().Created)
	})
}

// expiryKeys are request id's keys in the expiry index.
func (e *env) expiryKeys(t testing.TB, id string) []string {
	t.Helper()
	lister, err := e.revoke.Expiries.ListKeysFiltered(context.Background(), "*."+id+".*")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for k := range lister.Keys() {
		out = append(out, k)
	}
	return out
}

// armedKey waits for request id's expiry to be armed and returns its key.
func (e *env) armedKey(t testing.TB, id string) string {
	t.Helper()
	var keys []string
	poll.Until(t, 10*time.Second, "the expiry of "+id+" to be armed", func() bool {
		keys = e.expiryKeys(t, id)
		return len(keys) == 1
	})
	return keys[0]
}

// sweptMark is the sweep's mark (reaction.SweptKey) as the index stores it.
type sweptMark struct {
	Seq           uint64    `json:"seq"`
	StreamCreated time.Time `json:"stream_created"`
}

// mark is the sweep's mark; zero for none.
func (e *env) mark(t testing.TB) sweptMark {
	t.Helper()
	entry, err := e.revoke.Expiries.Get(context.Background(), reaction.SweptKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return sweptMark{}
	}
	if err != nil {
		t.Fatal(err)
	}
	var m sweptMark
	if err := json.Unmarshal(entry.Value(), &m); err != nil {
		t.Fatalf("the sweep's mark %q: %v", entry.Value(), err)
	}
	return m
}

// swept is the sequence the sweep has marked the evidence looked at up to; 0 for no mark.
func (e *env) swept(t testing.TB) uint64 {
	t.Helper()
	return e.mark(t).Seq
}

// purgeTimers loses every timer, waiting or fired, as a purged or recreated timers stream does.
func (e *env) purgeTimers(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	st, err := e.JS.Stream(ctx, topology.TimersStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(ctx, jetstream.WithPurgeSubject(topology.TimerSubjects)); err != nil {
		t.Fatal(err)
	}
}

// scheduled reports whether the expiry timer of second sec is waiting.
func (e *env) scheduled(t testing.TB, sec string) bool {
	t.Helper()
	ctx := context.Background()
	st, err := e.JS.Stream(ctx, topology.TimersStream)
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.GetLastMsgForSubject(ctx, topology.TimerSchedule(sec, topology.TimerExpiry))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

// keySecond and keySeq are the second and the granted event's sequence an index key names
// (<second>.<request id>.<sequence>).
func keySecond(t testing.TB, key string) string { return keyPart(t, key, 0) }

func keySeq(t testing.TB, key string) uint64 {
	t.Helper()
	seq, err := strconv.ParseUint(keyPart(t, key, 2), 10, 64)
	if err != nil {
		t.Fatalf("index key %q: %v", key, err)
	}
	return seq
}

func keyPart(t testing.TB, key string, i int) string {
	t.Helper()
	parts := strings.Split(key, ".")
	if len(parts) != 3 {
		t.Fatalf("index key %q names no grant", key)
	}
	return parts[i]
}
