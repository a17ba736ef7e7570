package audit

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/grantline/grantline/pkg/events"
)

// ControlRow is one control of a framework and the period's evidence for it.
type ControlRow struct {
	Framework, ID, Name string
	// Requirement says what the control asks, in a line.
	Requirement string
	Evidence    []string
	// Attention lists what an auditor should look at; empty means the evidence shows the control met.
	Attention []string
}

// Met reports whether nothing needs attention.
func (r ControlRow) Met() bool { return len(r.Attention) == 0 }

// MapControls maps the period's figures to SOC 2 CC6.1–CC6.3, ISO/IEC 27001:2022 A.5.15 and A.5.18 and
// NIST SP 800-53 AC-2, AC-6 and AU-9.
func MapControls(c ControlCounts) []ControlRow {
	n := func(format string, args ...any) string { return fmt.Sprintf(format, args...) }
	var revisions []string
	for _, r := range c.Revisions {
		revisions = append(revisions, n("%s (%d)", r.Revision, r.Count))
	}
	decided := 0
	for _, v := range c.Decisions {
		decided += v
	}
	integrity := c.FindingsByKind[FindingKind(events.ViolationBadSignature)] + c.FindingsByKind[FindingKind(events.ViolationChainBroken)] +
		c.FindingsByKind[FindingKind(events.ViolationTypeNotAllowed)] + c.FindingsByKind[FindingKind(events.ViolationUnknownKey)] +
		c.FindingsByKind[FindingKind(events.ViolationKeyNotValid)] + c.FindingsByKind[FindingKind(events.ViolationSourceMismatch)] +
		c.FindingsByKind[FindingKind(events.ViolationMissingSignature)] + c.FindingsByKind[FindingGap]
	checkpointFindings := c.FindingsByKind[FindingCheckpointDiverged] + c.FindingsByKind[FindingCheckpointTail] +
		c.FindingsByKind[FindingStreamRecreated] + c.FindingsByKind[FindingCheckpointFork] + c.FindingsByKind[FindingCheckpointInvalid]

	policy := []string{
		n("%d requests submitted; %d decided by policy-as-code: %d denied, %d approval required, %d auto-approved, %d emergency",
			c.Requests, decided, c.Decisions[events.OutcomeDeny], c.Decisions[events.OutcomeApprovalRequired],
			c.Decisions[events.OutcomeAutoApproved], c.Decisions[events.OutcomeEmergency]),
		n("policy revisions that decided (sha256 of the bundle): %s", orNone(strings.Join(revisions, ", "))),
	}
	approvals := []string{
		n("%d approvals and %d rejections from %d reviews by %d distinct reviewers, each review bound to the request digest", c.Approved, c.Rejected, c.Reviews, c.Reviewers),
		n("every grant verified to follow an allowing decision and satisfied stages; requester, subject and fulfiller never approve (lifecycle findings of this kind: %d)", c.SeparationOfDutiesFindings),
	}
	grants := []string{
		n("%d grants, %d observed present on the target; every one time-bound (without expiry: %d; longest: %s)", c.Grants, c.GrantsObserved, c.GrantsWithoutExpiry, c.LongestGrant),
		n("%d revocations (%s), %d observed gone from the target; %d of grants made before the period", c.Revocations, reasons(c.RevocationsByReason), c.RevocationsObservedGone, c.RevocationsOfEarlierGrants),
		n("%d expiries recorded, %d failed revocation attempts, %d revocations overdue with nothing recorded; %d grants still active at the end", c.Expired, c.RevocationFailures, c.RevocationsOverdue, c.ActiveAtEnd),
		"drift between targets and evidence: " + c.Drift,
	}
	emergency := []string{
		n("%d emergency requests; post-reviews: %d ratified, %d flagged (revoked), %d overdue, %d still open at the end", c.Emergencies, c.PostReviewsRatified, c.PostReviewsFlagged, c.PostReviewsOverdue, c.EmergencyReviewsOpen),
	}
	coverage := "no checkpoint"
	if cp := c.Checkpoints; cp != nil && cp.Count > 0 {
		coverage = n("%d signed checkpoints; the latest covers %d events (signed %s, cosigned by %s); %d later events not yet covered",
			cp.Count, cp.Covered, cp.Latest.UTC().Format(time.RFC3339), orNone(strings.Join(cp.Witnesses, ", ")), c.Uncheckpointed)
	}
	evidence := []string{
		n("%d events of %d requests (stream sequences %d to %d) verified: each signed by the one service allowed to emit its type, chained per request", c.VerifiedEvents, c.VerifiedRequests, c.FirstSeq, c.LastSeq),
		"checkpoints (Merkle tree heads, RFC 9162): " + coverage,
	}

	var decisionIssues, approvalIssues, removalIssues, emergencyIssues, integrityIssues []string
	if c.Decisions[events.OutcomeDeny]+c.Decisions[events.OutcomeApprovalRequired]+c.Decisions[events.OutcomeAutoApproved]+c.Decisions[events.OutcomeEmergency] < c.Requests-c.Withdrawn {
		decisionIssues = append(decisionIssues, n("%d requests of the period have no decision yet", c.Requests-c.Withdrawn-decided))
	}
	if c.SeparationOfDutiesFindings > 0 || c.FindingsByKind[FindingInvariant] > 0 {
		approvalIssues = append(approvalIssues, n("%d lifecycle findings (%d of separation of duties)", c.FindingsByKind[FindingInvariant], c.SeparationOfDutiesFindings))
	}
	if c.RevocationsOverdue > 0 {
		removalIssues = append(removalIssues, n("%d revocations overdue with no attempt recorded", c.RevocationsOverdue))
	}
	if c.GrantsWithoutExpiry > 0 {
		removalIssues = append(removalIssues, n("%d grants without an expiry", c.GrantsWithoutExpiry))
	}
	if c.Revocations > c.RevocationsObservedGone {
		removalIssues = append(removalIssues, n("%d revocations did not observe the access gone", c.Revocations-c.RevocationsObservedGone))
	}
	if c.PostReviewsOverdue > 0 {
		emergencyIssues = append(emergencyIssues, n("%d emergency post-reviews overdue", c.PostReviewsOverdue))
	}
	if integrity > 0 {
		integrityIssues = append(integrityIssues, n("%d signature, chain or sequence findings", integrity))
	}
	if checkpointFindings > 0 {
		integrityIssues = append(integrityIssues, n("%d findings against the checkpoints", checkpointFindings))
	}
	if c.Checkpoints == nil || c.Checkpoints.Count == 0 {
		integrityIssues = append(integrityIssues, "the history was not checked against signed checkpoints")
	}

	cat := func(parts ...[]string) []string {
		var out []string
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	return []ControlRow{
		{"SOC 2", "CC6.1", "Logical access security", "Access to protected assets is restricted by access control policies and software.",
			cat(policy, evidence[:1]), cat(decisionIssues, integrityIssues)},
		{"SOC 2", "CC6.2", "Registration and authorisation", "Access is authorised, by the asset's owners, before it is granted.",
			cat(policy[:1], approvals), approvalIssues},
		{"SOC 2", "CC6.3", "Modification and removal", "Access is time-bound and removed when no longer needed, and removal is verified.",
			cat(grants, emergency), cat(removalIssues, emergencyIssues)},
		{"ISO/IEC 27001:2022", "A.5.15", "Access control", "Rules to control access are established from business needs and applied to every request.",
			cat(policy, emergency), cat(decisionIssues, emergencyIssues)},
		{"ISO/IEC 27001:2022", "A.5.18", "Access rights", "Access rights are provisioned, reviewed and removed per the rules.",
			cat(approvals, grants), cat(approvalIssues, removalIssues)},
		{"NIST SP 800-53", "AC-2", "Account management", "Accounts and access are requested, approved, created, monitored and removed.",
			cat(approvals, grants), cat(approvalIssues, removalIssues)},
		{"NIST SP 800-53", "AC-6", "Least privilege", "Only the access needed, for the time needed; privileged emergency use is reviewed.",
			cat(grants[:1], emergency, policy[:1]), cat(removalIssues, emergencyIssues)},
		{"NIST SP 800-53", "AU-9", "Protection of audit information", "Audit records are protected from unauthorised modification and deletion.",
			evidence, integrityIssues},
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func reasons(m map[events.RevocationReason]int) string {
	var parts []string
	for _, r := range []events.RevocationReason{events.RevokeExpired, events.RevokeEarly, events.RevokeReviewFailed, events.RevokeDrift, events.RevokeLocked, events.RevokeReviewRevoked} {
		if m[r] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", r, m[r]))
		}
	}
	return orNone(strings.Join(parts, ", "))
}

// PackReport is the printable report of an evidence pack.
type PackReport struct {
	Period      string
	GeneratedAt time.Time
	Stream      string
	Counts      ControlCounts
	Controls    []ControlRow
	Findings    []Finding
}

//go:embed report.html.tmpl
var reportTemplate string

var reportHTML = template.Must(template.New("report").Funcs(template.FuncMap{
	"utc": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
}).Parse(reportTemplate))

// WriteReport writes the report as one self-contained, printable HTML page.
func WriteReport(w io.Writer, r PackReport) error { return reportHTML.Execute(w, r) }

// packSignatureFile is the signature of an evidence pack, beside its manifest.
const packSignatureFile = "manifest.sig"

// packText is what an evidence pack's signature signs: the format and the manifest's hash, which in
// turn covers every file of the pack.
func packText(manifest []byte) string {
	sum := sha256.Sum256(manifest)
	return "grantline-evidence-pack/v1\nmanifest sha256:" + hex.EncodeToString(sum[:]) + "\n"
}

// SignPack signs the export in dir as a whole: a signed note over its manifest's hash, written to
// manifest.sig.
func SignPack(dir string, signer note.Signer) error {
	manifest, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return err
	}
	msg, err := note.Sign(&note.Note{Text: packText(manifest)}, signer)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, packSignatureFile), msg, 0o644)
}

// ErrUnsigned means the export has no manifest.sig.
var ErrUnsigned = errors.New("the export is not signed (no manifest.sig)")

// VerifyPack checks the export in dir as a whole: its manifest's signature by an exporter key of the
// trust file, then every file against the manifest (CheckManifest). It returns the manifest and the
// name of the key that signed it; ErrUnsigned when there is no signature.
func VerifyPack(dir string, trust *events.Verifier) (*Manifest, string, error) {
	msg, err := os.ReadFile(filepath.Join(dir, packSignatureFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, "", ErrUnsigned
	}
	if err != nil {
		return nil, "", err
	}
	var list []note.Verifier
	for _, k := range trust.Exporters() {
		v, err := note.NewVerifier(k)
		if err != nil {
			return nil, "", fmt.Errorf("trust file: exporter key %q: %w", k, err)
		}
		list = append(list, v)
	}
	n, err := note.Open(msg, note.VerifierList(list...))
	if err != nil {
		return nil, "", fmt.Errorf("the export's signature does not verify with the trust file's exporter keys: %w", err)
	}
	manifest, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return nil, "", err
	}
	if n.Text != packText(manifest) {
		return nil, "", errors.New("manifest.json is not the manifest that was signed: the export was changed after it was signed")
	}
	m, err := CheckManifest(dir)
	if err != nil {
		return nil, "", err
	}
	return m, n.Sigs[0].Name, nil
}

// reportBytes renders the report for an exporter.
func reportBytes(r PackReport) ([]byte, error) {
	var b bytes.Buffer
	if err := WriteReport(&b, r); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
