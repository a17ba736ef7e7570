package audit

import (
	"bytes"
	"encoding/json/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/grantline/grantline/pkg/events"
)

// TestLocksAreAudited: a lock's events in the evidence are verified like a request's (signature, chain,
// the revoker's right to emit them) and folded by the lock's own rules, apart from the requests: a lock
// placed and removed by security verifies clean and counts as no request; a lock its own subject
// removed is an invariant finding at that event.
func TestLocksAreAudited(t *testing.T) {
	h := newHistory(t)
	clean := h.export(t)
	b, err := os.ReadFile(filepath.Join(clean, "events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	base := bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
	var last ExportedEvent
	if err := json.Unmarshal(base[len(base)-1], &last); err != nil {
		t.Fatal(err)
	}
	// seal appends a lock's event, signed by the revoker, as the export line after the last one.
	seal := func(lines [][]byte, lockID, prevHash, actor string, p events.Payload) ([][]byte, string) {
		t.Helper()
		_, body, err := events.Draft{Payload: p, Actor: actor}.Seal(lockID, events.Revoker, last.StoredAt, prevHash)
		if err != nil {
			t.Fatal(err)
		}
		line, _ := json.Marshal(ExportedEvent{Seq: last.Seq + uint64(len(lines)-len(base)+1), Subject: events.NATSSubject(lockID, p.EventType()),
			StoredAt: last.StoredAt, Signature: h.signers[events.Revoker].Sign(body), Body: body})
		return append(lines, line), events.ChainHash(body)
	}
	lock := func(removedBy string) [][]byte {
		id := events.NewID()
		security := events.Principal{ID: "sam", Groups: []string{"security"}}
		lines, head := seal(append([][]byte{}, base...), id, events.GenesisHash(id), security.ID,
			events.LockPlaced{Scope: events.LockScope{Kind: events.LockUser, ID: "mallory"}, Reason: "laptop stolen", PlacedBy: security})
		lines, _ = seal(lines, id, head, removedBy, events.LockRemoved{RemovedBy: events.Principal{ID: removedBy}})
		return lines
	}
	verify := func(lines [][]byte) *Report {
		dir := filepath.Join(t.TempDir(), "locked")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "events.jsonl"), append(bytes.Join(lines, []byte("\n")), '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		return verifyExport(t, h, dir)
	}

	before := verify(base)
	r := verify(lock("sam"))
	if !r.Clean() || r.Events != len(base)+2 || r.Requests != before.Requests {
		t.Fatalf("a lock placed and removed by security: %d events, %d requests (want %d and %d), findings %+v",
			r.Events, r.Requests, len(base)+2, before.Requests, r.Findings)
	}
	r = verify(lock("mallory"))
	if r.Clean() || r.Findings[0].Kind != FindingInvariant || r.Findings[0].Position != len(base)+2 {
		t.Fatalf("a lock removed by the locked person: findings %+v, want an invariant at %d", r.Findings, len(base)+2)
	}
}
