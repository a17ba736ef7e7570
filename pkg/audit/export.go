package audit

import (
	"bufio"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json/jsontext"
	"encoding/json/v2"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/topology"
)

// Manifest describes an export: what range of the stream it holds, when it was taken, the hash of each
// file, and what verification found while it was written. A copy whose files do not match these hashes,
// or whose events.jsonl has a different count, has been altered.
type Manifest struct {
	CreatedAt time.Time         `json:"created_at"`
	Stream    string            `json:"stream"`
	FirstSeq  uint64            `json:"first_seq"`
	LastSeq   uint64            `json:"last_seq"`
	Events    int               `json:"events"`
	Requests  int               `json:"requests"`
	Findings  int               `json:"findings"`
	Files     map[string]string `json:"files"`
	// Period is the period report.html covers, when the export has one (--controls).
	Period string `json:"period,omitempty"`
}

// Exporter writes an export into a directory, one stored event at a time, verifying as it goes.
type Exporter struct {
	dir      string
	file     *os.File
	buf      *bufio.Writer
	verifier *Verifier
}

// NewExporter creates dir (which must not hold an export already) and starts events.jsonl.
func NewExporter(dir string, v *Verifier) (*Exporter, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "events.jsonl"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start export: %w", err)
	}
	return &Exporter{dir: dir, file: f, buf: bufio.NewWriterSize(f, 1<<20), verifier: v}, nil
}

// Add writes and verifies the next stored event.
func (x *Exporter) Add(rec events.Record) error {
	if err := x.write(rec); err != nil {
		return err
	}
	x.verifier.Add(rec)
	return nil
}

// AddAll writes every event of src and verifies them on workers goroutines, as Add for each would (see
// Verifier.Run).
func (x *Exporter) AddAll(src Source, workers int) error {
	return x.verifier.addAll(func(fn func(events.Record) error) error {
		return src(func(rec events.Record) error {
			if err := x.write(rec); err != nil {
				return err
			}
			return fn(rec)
		})
	}, workers)
}

func (x *Exporter) write(rec events.Record) error {
	line, err := json.Marshal(ExportedEvent{Seq: rec.Seq, Subject: rec.Subject, StoredAt: rec.StoredAt.UTC(),
		Signature: rec.Signature, Body: jsontext.Value(rec.Body)})
	if err != nil {
		return fmt.Errorf("export event %d: %w", rec.Seq, err)
	}
	_, err = x.buf.Write(append(line, '\n'))
	return err
}

// Finish writes requests.csv, campaigns.csv and manifest.json and returns the manifest and the verification report.
func (x *Exporter) Finish(now time.Time) (*Manifest, *Report, error) {
	if err := x.buf.Flush(); err != nil {
		return nil, nil, err
	}
	if err := x.file.Close(); err != nil {
		return nil, nil, err
	}
	report := x.verifier.Finish()
	if err := x.writeSummary(); err != nil {
		return nil, nil, err
	}
	if err := x.writeCampaigns(); err != nil {
		return nil, nil, err
	}
	m := &Manifest{CreatedAt: now.UTC(), Stream: topology.EventsStream, FirstSeq: report.FirstSeq, LastSeq: report.LastSeq,
		Events: report.Events, Requests: report.Requests, Findings: len(report.Findings), Files: map[string]string{}}
	names := []string{"events.jsonl", "requests.csv", "campaigns.csv"}
	if c := x.verifier.opts.Controls; c != nil {
		counts := c.Counts(report)
		html, err := reportBytes(PackReport{Period: c.Period(), GeneratedAt: now.UTC(), Stream: topology.EventsStream, Counts: counts,
			Controls: MapControls(counts), Findings: report.Findings})
		if err != nil {
			return nil, nil, fmt.Errorf("report: %w", err)
		}
		if err := os.WriteFile(filepath.Join(x.dir, "report.html"), html, 0o644); err != nil {
			return nil, nil, err
		}
		m.Period = c.Period()
		names = append(names, "report.html")
	}
	for _, name := range names {
		sum, err := fileSHA256(filepath.Join(x.dir, name))
		if err != nil {
			return nil, nil, err
		}
		m.Files[name] = sum
	}
	b, _ := json.Marshal(m, jsontext.WithIndent("  "))
	if err := os.WriteFile(filepath.Join(x.dir, "manifest.json"), append(b, '\n'), 0o644); err != nil {
		return nil, nil, err
	}
	return m, report, nil
}

// writeSummary writes one CSV row per request: who asked for what, what policy decided under which
// revision, who approved, what was granted until when, and how it ended.
func (x *Exporter) writeSummary() error {
	f, err := os.Create(filepath.Join(x.dir, "requests.csv"))
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	_ = w.Write([]string{"request_id", "status", "requester", "subject", "entitlement", "justification", "ticket",
		"duration_seconds", "emergency", "outcome", "policy_revision", "approvers", "granted_at", "expires_at",
		"observed_granted", "revocation_reason", "observed_after_revocation"})
	for _, id := range x.verifier.order {
		r, err := x.verifier.request(id)
		if err != nil {
			return err
		}
		s, d, g, rv := r.Submitted(), r.Decision(), r.Grant(), r.Revoked()
		row := []string{id, string(r.Status()), s.Requester.ID, string(s.Subject.Kind) + ":" + s.Subject.ID, s.Entitlement,
			s.Justification, s.Ticket, fmt.Sprint(s.DurationSeconds), fmt.Sprint(s.Emergency), string(d.Outcome),
			d.PolicyRevision, strings.Join(r.Approvers(), " "), "", "", "", "", ""}
		if g != nil {
			row[12], row[13], row[14] = r.GrantedAt().UTC().Format(time.RFC3339), g.ExpiresAt.UTC().Format(time.RFC3339), fmt.Sprint(g.Observed.Present)
		}
		if rv != nil {
			row[15], row[16] = string(rv.Reason), fmt.Sprint(rv.Observed.Present)
		}
		if err := w.Write(row); err != nil {
			return err
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return err
	}
	return f.Close()
}

// writeCampaigns writes one CSV row per grant an access review covered: the campaign, its deadline and
// rule, whose grant it was, and its outcome (kept, revoked, revoked_unanswered, or still pending or
// escalated) with who decided it.
func (x *Exporter) writeCampaigns() error {
	f, err := os.Create(filepath.Join(x.dir, "campaigns.csv"))
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	_ = w.Write([]string{"campaign_id", "campaign", "campaign_status", "deadline", "unanswered_rule", "request_id",
		"entitlement", "subject", "requester", "outcome", "decided_by", "note"})
	for _, c := range x.verifier.campaigns {
		if c.Status() == events.CampaignStatusNone {
			continue // its opening was refused: the finding says so
		}
		o := c.Opened()
		for _, it := range o.Items {
			state, _ := c.State(it.RequestID)
			d, _ := c.Decision(it.RequestID)
			if err := w.Write([]string{c.ID(), o.Name, string(c.Status()), o.Deadline.UTC().Format(time.RFC3339), string(o.Unanswered),
				it.RequestID, it.Entitlement, it.SubjectID, it.RequesterID, string(state), d.Reviewer.ID, d.Note}); err != nil {
				return err
			}
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return err
	}
	return f.Close()
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// CheckManifest verifies an export directory's files against its manifest and returns the manifest;
// a changed, missing or extra-line file is an error naming it.
func CheckManifest(dir string) (*Manifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m, json.RejectUnknownMembers(true)); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	for name, want := range m.Files {
		got, err := fileSHA256(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if got != want {
			return nil, fmt.Errorf("%s does not match the manifest (%s, manifest says %s)", name, got, want)
		}
	}
	return &m, nil
}
