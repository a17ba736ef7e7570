package audit

import (
	"bytes"
	"encoding/csv"
	"encoding/json/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/grantline/grantline/pkg/events"
)

// TestCampaignsAreAudited: an access review's events in the evidence are verified like a request's
// (signature, chain, the approval service's right to emit them) and folded by the campaign's own rules;
// the export's campaigns.csv says what became of each grant reviewed. A campaign in which an owner
// certified her own grant is an invariant finding at that event.
func TestCampaignsAreAudited(t *testing.T) {
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
	at := last.StoredAt
	seal := func(lines [][]byte, id, prevHash, actor string, when time.Time, p events.Payload) ([][]byte, string) {
		t.Helper()
		_, body, err := events.Draft{Payload: p, Actor: actor}.Seal(id, events.Approval, when, prevHash)
		if err != nil {
			t.Fatal(err)
		}
		line, _ := json.Marshal(ExportedEvent{Seq: last.Seq + uint64(len(lines)-len(base)+1), Subject: events.NATSSubject(id, p.EventType()),
			StoredAt: at, Signature: h.signers[events.Approval].Sign(body), Body: body})
		return append(lines, line), events.ChainHash(body)
	}
	rita := events.Principal{ID: "rita", Groups: []string{"governance"}}
	carol := events.Principal{ID: "carol", Groups: []string{"db-owners"}}
	kept, revoked, unanswered := events.NewID(), events.NewID(), events.NewID()
	item := func(id, holder string) events.CampaignItem {
		return events.CampaignItem{RequestID: id, Entitlement: "pg-prod-admin", SubjectID: holder, RequesterID: holder,
			ExpiresAt: at.Add(40 * 24 * time.Hour), Owners: []string{"db-owners"}}
	}
	deadline := at.Add(time.Hour)
	campaign := func(secondHolder string) (string, [][]byte) {
		id := events.NewID()
		lines, head := seal(append([][]byte{}, base...), id, events.GenesisHash(id), rita.ID, at, events.CampaignOpened{
			Name: "Q1 review", Filter: events.CampaignFilter{Entitlement: "pg-prod-admin"}, CreatedBy: rita, Deadline: deadline,
			Unanswered: events.CampaignRevoke, Items: []events.CampaignItem{item(kept, "bob"), item(revoked, secondHolder), item(unanswered, "dan")}})
		lines, head = seal(lines, id, head, carol.ID, at, events.CampaignDecided{RequestID: kept, Decision: events.CampaignKeep, Reviewer: carol})
		lines, head = seal(lines, id, head, carol.ID, at, events.CampaignDecided{RequestID: revoked, Decision: events.CampaignRevokes, Reviewer: carol, Note: "left the team"})
		lines, _ = seal(lines, id, head, "service:approval", deadline, events.CampaignClosed{RevokedUnanswered: []string{unanswered}})
		return id, lines
	}
	export := func(lines [][]byte) (string, *Report) {
		src := filepath.Join(t.TempDir(), "src")
		if err := os.MkdirAll(src, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, "events.jsonl"), append(bytes.Join(lines, []byte("\n")), '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(t.TempDir(), "out")
		x, err := NewExporter(dir, NewVerifier(h.trust, Options{Now: h.now, ExpectFirstSeq: 1}))
		if err != nil {
			t.Fatal(err)
		}
		read := func(fn func(events.Record) error) error {
			f, err := os.Open(filepath.Join(src, "events.jsonl"))
			if err != nil {
				return err
			}
			defer f.Close()
			return ReadExport(f, fn)
		}
		if err := x.AddAll(read, runtime.GOMAXPROCS(0)); err != nil {
			t.Fatal(err)
		}
		_, r, err := x.Finish(h.now)
		if err != nil {
			t.Fatal(err)
		}
		return dir, r
	}

	id, lines := campaign("eve")
	dir, r := export(lines)
	if !r.Clean() || r.Events != len(base)+4 {
		t.Fatalf("a campaign kept, revoked and closed: %d events (want %d), findings %+v", r.Events, len(base)+4, r.Findings)
	}
	f, err := os.Open(filepath.Join(dir, "campaigns.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var got [][]string
	for _, row := range rows[1:] {
		got = append(got, []string{row[0], row[2], row[5], row[9], row[10]})
	}
	want := [][]string{{id, "closed", kept, "kept", "carol"}, {id, "closed", revoked, "revoked", "carol"}, {id, "closed", unanswered, "revoked_unanswered", ""}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("campaigns.csv (-want +got):\n%s", diff)
	}

	_, r = export(func() [][]byte { _, l := campaign("carol"); return l }())
	if r.Clean() || r.Findings[0].Kind != FindingInvariant || r.Findings[0].Position != len(base)+3 {
		t.Fatalf("carol certifying her own grant: findings %+v, want an invariant at %d", r.Findings, len(base)+3)
	}
}
