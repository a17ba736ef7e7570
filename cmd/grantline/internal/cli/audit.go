package cli

import (
	"context"
	"encoding/json/jsontext"
	"encoding/json/v2"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/term"

	"github.com/grantline/grantline/pkg/audit"
	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/checkpoint"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/topology"
)

// errFindings makes the command exit non-zero after it printed what it found.
var errFindings = errors.New("verification found problems")

type auditFlags struct {
	natsURL, nkey, trustFile string
	from, to                 uint64
	slo                      time.Duration
	fulfilmentSLO            time.Duration
	asJSON                   bool
	checkpoints              []string
}

func auditCommand(stdout, stderr io.Writer) *cobra.Command {
	var f auditFlags
	cmd := &cobra.Command{Use: "audit", Short: "Verify, replay and export the evidence, online or offline"}
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.natsURL, "nats", envOr("GRANTLINE_NATS_URL", "nats://127.0.0.1:4222"), "NATS server holding GRANTLINE_EVENTS (GRANTLINE_NATS_URL)")
	pf.StringVar(&f.nkey, "nkey", envOr(brokeraccess.EnvNKeyFile, ""), "NKey seed file of the auditor's NATS user ("+brokeraccess.EnvNKeyFile+
		"; default: nats/auditor.nk beside the trust file, where grantline dev and deploy secrets put it, if it exists)")
	pf.StringVar(&f.trustFile, "trust", envOr("GRANTLINE_TRUST_FILE", filepath.Join(".grantline", "keys", "trust.json")), "trust file listing every service's keys (GRANTLINE_TRUST_FILE)")
	pf.BoolVar(&f.asJSON, "json", false, "print a machine-readable report")

	verify := &cobra.Command{
		Use:   "verify [export-dir]",
		Short: "Verify the whole stream, a range of it, or an export on disk",
		Long: `Checks every stored event: its signature, that the signing service may emit its type, the hash
chain of each request, that no stream sequence is missing, and the lifecycle invariants (no grant without an
allowing decision and satisfied approvals, separation of duties, expiry within the decided duration, every
expired grant revoked or its failure recorded within the SLO, every allowed request granted or recorded
failed within the fulfilment SLO). With a directory argument it verifies an
export offline, including its manifest.

With --checkpoints (the checkpoint stream, "stream", and/or directories a directory witness wrote), the
history must also be the one the signed checkpoints describe: the first position where it departs from
them (an event changed, missing, inserted or reordered), a cut tail, a stream recreated since, and forked
or invalid checkpoints are reported, each naming the checkpoint that proves it. Exits 1 when anything is
found.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			trust, err := events.LoadTrustFile(f.trustFile)
			if err != nil {
				return err
			}
			opts := audit.Options{RevocationSLO: f.slo, FulfilmentSLO: f.fulfilmentSLO, Now: time.Now()}
			var js jetstream.JetStream
			if len(args) == 0 || slices.Contains(f.checkpoints, "stream") {
				var closeNATS func()
				if js, closeNATS, err = connect(f.natsURL, brokeraccess.Auditor, f.auditorKey()); err != nil {
					return err
				}
				defer closeNATS()
			}
			if len(f.checkpoints) > 0 {
				if f.from > 1 {
					return errors.New("--checkpoints needs the history from its first event (no --from)")
				}
				if opts.Checkpoints, err = loadCheckpoints(cmd.Context(), js, trust, f.checkpoints); err != nil {
					return err
				}
			}
			progress := newProgress(stderr, "verified")
			var report *audit.Report
			if len(args) == 1 {
				m, signedBy, err := audit.VerifyPack(args[0], trust)
				switch {
				case errors.Is(err, audit.ErrUnsigned):
					if m, err = audit.CheckManifest(args[0]); err != nil {
						return err
					}
					fmt.Fprintln(stderr, "The export is not signed: its files match its manifest, which nothing vouches for.")
				case err != nil:
					return err
				default:
					fmt.Fprintf(stderr, "The export is signed by %s and every file matches its manifest.\n", signedBy)
				}
				opts.Now, opts.ExpectFirstSeq = m.CreatedAt, m.FirstSeq
				if opts.Checkpoints != nil {
					// The export was taken at its creation: later checkpoints may cover events it could not
					// hold, and an export of a period ends before the stream did.
					opts.Checkpoints, opts.EndsEarly = opts.Checkpoints.SignedBy(m.CreatedAt), m.Period != ""
				}
				file, err := os.Open(filepath.Join(args[0], "events.jsonl"))
				if err != nil {
					return err
				}
				defer file.Close()
				if report, err = audit.NewVerifier(trust, opts).Run(func(fn func(events.Record) error) error {
					return audit.ReadExport(file, progress.counting(fn))
				}, runtime.GOMAXPROCS(0)); err != nil {
					return err
				}
				if report.Events != m.Events {
					report.Findings = append(report.Findings, audit.Finding{Kind: audit.FindingGap, Position: report.Events,
						Detail: fmt.Sprintf("the export holds %d events, its manifest %d", report.Events, m.Events)})
				}
			} else {
				if f.from <= 1 {
					opts.ExpectFirstSeq = 1
				}
				if opts.Checkpoints != nil {
					st, err := js.Stream(cmd.Context(), topology.EventsStream)
					if err != nil {
						return err
					}
					opts.StreamCreated = st.CachedInfo().Created
				}
				if report, err = audit.NewVerifier(trust, opts).Run(func(fn func(events.Record) error) error {
					return audit.ReadStream(cmd.Context(), js, audit.Range{From: f.from, To: f.to}, progress.counting(fn))
				}, runtime.GOMAXPROCS(0)); err != nil {
					return err
				}
			}
			progress.done()
			if err := printReport(stdout, report, f.asJSON); err != nil {
				return err
			}
			if !report.Clean() {
				return errFindings
			}
			return nil
		},
	}
	verify.Flags().StringArrayVar(&f.checkpoints, "checkpoints", nil, `signed checkpoints to verify against: "stream" (the checkpoint stream) or a directory witness's directory; repeatable`)
	verify.Flags().Uint64Var(&f.from, "from", 0, "first stream sequence (default: the first)")
	verify.Flags().Uint64Var(&f.to, "to", 0, "last stream sequence (default: the last)")
	verify.Flags().DurationVar(&f.slo, "revocation-slo", time.Minute, "how long after expiry a revocation may take")
	verify.Flags().DurationVar(&f.fulfilmentSLO, "fulfilment-slo", audit.DefaultFulfilmentSLO, "how long after approval a grant, or a recorded failure, may take")

	var out, from, to, signKey string
	var controls bool
	export := &cobra.Command{
		Use:   "export --out <dir>",
		Short: "Export events (JSON Lines with signatures), a CSV summary per request and a manifest of hashes",
		Long: `Writes events.jsonl (every stored event with its signature, bodies verbatim), requests.csv,
campaigns.csv (each grant an access review covered, and its outcome) and manifest.json (each file's
SHA-256), verifying as it goes.

With --controls it also writes report.html, a printable report mapping the period's evidence to SOC 2
CC6.1–CC6.3, ISO/IEC 27001 A.5.15/A.5.18 and NIST SP 800-53 AC-2/AC-6/AU-9: requests and decisions,
approvals with separation of duties, grants and revocations as observed on the targets, emergencies and
their post-reviews, and checkpoint coverage (with --checkpoints). The period is --from/--to given as
times (RFC 3339 or YYYY-MM-DD; --to exclusive): the export then holds the stream from its first event to
the end of the period, so that it verifies on its own, and the report counts the period.

With --sign-key (an exporter key of the trust file, signing/exporter.key of grantline deploy secrets) the
pack is signed as a whole: manifest.sig signs the manifest, which covers every file. grantline audit
verify <dir> checks the signature and every file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			trust, err := events.LoadTrustFile(f.trustFile)
			if err != nil {
				return err
			}
			opts := audit.Options{RevocationSLO: f.slo, FulfilmentSLO: f.fulfilmentSLO, Now: time.Now()}
			var since, until time.Time
			if f.from, since, err = parseBound(from); err != nil {
				return fmt.Errorf("--from: %w", err)
			}
			if f.to, until, err = parseBound(to); err != nil {
				return fmt.Errorf("--to: %w", err)
			}
			if (!since.IsZero() || !until.IsZero()) && !controls {
				return errors.New("--from and --to take times with --controls only (stream sequences otherwise)")
			}
			var signer note.Signer
			if signKey != "" {
				if signer, err = checkpoint.LoadSigner(signKey); err != nil {
					return err
				}
			}
			js, closeNATS, err := connect(f.natsURL, brokeraccess.Auditor, f.auditorKey())
			if err != nil {
				return err
			}
			defer closeNATS()
			if len(f.checkpoints) > 0 {
				if f.from > 1 {
					return errors.New("--checkpoints needs the history from its first event")
				}
				if opts.Checkpoints, err = loadCheckpoints(cmd.Context(), js, trust, f.checkpoints); err != nil {
					return err
				}
				opts.ExpectFirstSeq = 1
			}
			opts.EndsEarly = f.to != 0 || !until.IsZero()
			if controls {
				opts.Controls = audit.NewControls(since, until)
			}
			x, err := audit.NewExporter(out, audit.NewVerifier(trust, opts))
			if err != nil {
				return err
			}
			progress := newProgress(stderr, "exported")
			if err := x.AddAll(func(fn func(events.Record) error) error {
				return audit.ReadStream(cmd.Context(), js, audit.Range{From: f.from, To: f.to}, func(r events.Record) error {
					if !until.IsZero() && !r.StoredAt.Before(until) {
						return nil
					}
					progress.tick(r.Seq)
					return fn(r)
				})
			}, runtime.GOMAXPROCS(0)); err != nil {
				return err
			}
			m, report, err := x.Finish(time.Now())
			if err != nil {
				return err
			}
			if signer != nil {
				if err := audit.SignPack(out, signer); err != nil {
					return err
				}
			}
			progress.done()
			if f.asJSON {
				return writeJSON(stdout, map[string]any{"manifest": m, "report": report})
			}
			fmt.Fprintf(stdout, "Exported %d events of %d requests (stream sequences %d to %d) to %s\n", m.Events, m.Requests, m.FirstSeq, m.LastSeq, out)
			for _, name := range slices.Sorted(maps.Keys(m.Files)) {
				fmt.Fprintf(stdout, "  %-14s %s\n", name, m.Files[name])
			}
			if m.Period != "" {
				fmt.Fprintf(stdout, "report.html maps the period %s to the controls.\n", m.Period)
			}
			if signer != nil {
				fmt.Fprintf(stdout, "Signed as a whole by %s (manifest.sig).\n", signer.Name())
			}
			if !report.Clean() {
				_ = printReport(stdout, report, false)
				return errFindings
			}
			return nil
		},
	}
	export.Flags().StringVar(&out, "out", "", "directory to create for the export (required)")
	export.Flags().StringVar(&from, "from", "", "first stream sequence, or with --controls the period's start (a time)")
	export.Flags().StringVar(&to, "to", "", "last stream sequence, or with --controls the period's end (a time, exclusive)")
	export.Flags().BoolVar(&controls, "controls", false, "add report.html, the period's evidence mapped to SOC 2, ISO 27001 and NIST 800-53 controls")
	export.Flags().StringVar(&signKey, "sign-key", "", "exporter key (signed-note form) that signs the pack as a whole")
	export.Flags().StringArrayVar(&f.checkpoints, "checkpoints", nil, `signed checkpoints to verify against: "stream" or a directory witness's directory; repeatable`)
	export.Flags().DurationVar(&f.slo, "revocation-slo", time.Minute, "how long after expiry a revocation may take")
	export.Flags().DurationVar(&f.fulfilmentSLO, "fulfilment-slo", audit.DefaultFulfilmentSLO, "how long after approval a grant, or a recorded failure, may take")
	_ = export.MarkFlagRequired("out")

	replay := &cobra.Command{
		Use:   "replay <request-id>",
		Short: "Show a request's timeline from its verified events",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !events.ValidRequestID(args[0]) {
				return fmt.Errorf("%q is not a request ID", args[0])
			}
			trust, js, closeNATS, err := f.online()
			if err != nil {
				return err
			}
			defer closeNATS()
			return replayRequest(cmd.Context(), stdout, js, trust, args[0], f.asJSON)
		},
	}
	cmd.AddCommand(verify, export, replay, whoHadCommand(stdout), proveCommand(stdout, &f), verifyProofCommand(stdout, &f))
	return cmd
}

// loadCheckpoints gathers the checkpoints of sources: "stream" is the checkpoint stream (through js),
// anything else a directory witness's directory.
func loadCheckpoints(ctx context.Context, js jetstream.JetStream, trust *events.Verifier, sources []string) (*audit.Checkpoints, error) {
	ct, err := checkpoint.NewTrust(trust)
	if err != nil {
		return nil, err
	}
	cs := audit.NewCheckpoints(ct)
	for _, src := range sources {
		if src == "stream" {
			err = cs.AddStream(ctx, js)
		} else {
			err = cs.AddDir(src)
		}
		if err != nil {
			return nil, fmt.Errorf("checkpoints from %s: %w", src, err)
		}
	}
	if cs.Len() == 0 {
		return nil, fmt.Errorf("no checkpoint found in %s", strings.Join(sources, ", "))
	}
	return cs, nil
}

func proveCommand(stdout io.Writer, f *auditFlags) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "prove <request-id>",
		Short: "Write an offline proof that a request's events are in the checkpointed log",
		Long: `Writes a bundle (JSON) holding the request's stored events, each with its inclusion proof in the
evidence log, and the latest signed checkpoint with its witnesses' cosignatures. grantline audit
verify-proof checks it with nothing but the trust file. An event newer than the latest checkpoint makes
it fail: try again after the next checkpoint.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !events.ValidRequestID(args[0]) {
				return fmt.Errorf("%q is not a request ID", args[0])
			}
			trust, js, closeNATS, err := f.online()
			if err != nil {
				return err
			}
			defer closeNATS()
			b, err := audit.Prove(cmd.Context(), js, trust, args[0])
			if err != nil {
				return err
			}
			if out == "" {
				out = args[0] + ".proof.json"
			}
			data, err := json.Marshal(b, jsontext.WithIndent("  "))
			if err != nil {
				return err
			}
			if err := os.WriteFile(out, append(data, '\n'), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "Wrote %s: %d events of request %s, proven in the log of %d events\n", out, len(b.Events), args[0],
				b.Events[len(b.Events)-1].LeafIndex+1)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "file to write (default <request-id>.proof.json)")
	return cmd
}

func verifyProofCommand(stdout io.Writer, f *auditFlags) *cobra.Command {
	var minWitnesses int
	cmd := &cobra.Command{
		Use:   "verify-proof <bundle>",
		Short: "Check a proof bundle offline, with the trust file alone",
		Long: `Checks the checkpoint's signature by a trusted checkpointer and the trusted witnesses' cosignatures,
each event's signature, emitter and chain from the request's first event, the request's lifecycle, and
each event's inclusion in the checkpointed log. Needs no broker. Exits 1 if the proof does not hold.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			trust, err := events.LoadTrustFile(f.trustFile)
			if err != nil {
				return err
			}
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			var b audit.ProofBundle
			if err := events.UnmarshalStrict(data, &b); err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			r, err := audit.VerifyProof(&b, trust, minWitnesses)
			if err != nil {
				return err
			}
			if f.asJSON {
				return writeJSON(stdout, r)
			}
			witnesses := "no witness"
			if len(r.Witnesses) > 0 {
				witnesses = "cosigned by " + strings.Join(r.Witnesses, ", ")
			}
			fmt.Fprintf(stdout, "Proof holds: request %s (%s, %s of %s), %d events (%s) at log positions %v,\n",
				r.RequestID, r.Status, r.Submitted.Entitlement, r.Submitted.Requester.ID, r.Events, strings.Join(r.Types, ", "), r.Positions)
			fmt.Fprintf(stdout, "in the log %s of %d events signed by %s at %s, %s.\n", r.Origin, r.LogSize, r.Signer,
				r.SignedAt.Format(time.RFC3339), witnesses)
			return nil
		},
	}
	cmd.Flags().IntVar(&minWitnesses, "min-witnesses", 0, "trusted witness cosignatures the checkpoint must carry")
	return cmd
}

// online loads the trust file and connects to the broker as the auditor; call the returned func to
// close the connection.
func (f auditFlags) online() (*events.Verifier, jetstream.JetStream, func(), error) {
	trust, err := events.LoadTrustFile(f.trustFile)
	if err != nil {
		return nil, nil, nil, err
	}
	js, closeNATS, err := connect(f.natsURL, brokeraccess.Auditor, f.auditorKey())
	if err != nil {
		return nil, nil, nil, err
	}
	return trust, js, closeNATS, nil
}

// auditorKey is --nkey, or else the auditor's seed beside the trust file if there is one.
func (f auditFlags) auditorKey() string {
	if f.nkey != "" {
		return f.nkey
	}
	beside := filepath.Join(filepath.Dir(f.trustFile), "nats", string(brokeraccess.Auditor)+".nk")
	if _, err := os.Stat(beside); err == nil {
		return beside
	}
	return ""
}

// connect opens a connection to url as NATS user, authenticated with the seed in nkeyFile (none if
// empty), with any extra options.
func connect(url string, user brokeraccess.User, nkeyFile string, extra ...nats.Option) (jetstream.JetStream, func(), error) {
	opts, err := brokeraccess.ClientOptions(user, nkeyFile)
	if err != nil {
		return nil, nil, err
	}
	nc, err := nats.Connect(url, append(append(opts, nats.Name("grantline-"+string(user)), nats.Timeout(5*time.Second)), extra...)...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to %s: %w", url, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return js, nc.Close, nil
}

// replayRequest prints each verified event of a request in order, with who caused it and what it says.
func replayRequest(ctx context.Context, out io.Writer, js jetstream.JetStream, trust *events.Verifier, id string, asJSON bool) error {
	chain := trust.NewChain()
	var evs []events.Event
	var problems []error
	err := audit.ReadStream(ctx, js, audit.Range{Subject: events.RequestFilter(id)}, func(r events.Record) error {
		ev, err := chain.Next(r)
		if err != nil {
			problems = append(problems, err)
			return nil
		}
		evs = append(evs, ev)
		return nil
	})
	if err != nil {
		return err
	}
	if len(evs) == 0 && len(problems) == 0 {
		return fmt.Errorf("request %s has no events", id)
	}
	if asJSON {
		if err := writeJSON(out, evs); err != nil {
			return err
		}
	} else {
		w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "TIME\tEVENT\tACTOR\tSOURCE\tDETAIL")
		for _, ev := range evs {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", ev.Time.UTC().Format(time.RFC3339), ev.Type.Name(), ev.Actor, ev.Source, compact(ev.Data, 100))
		}
		_ = w.Flush()
	}
	for _, p := range problems {
		fmt.Fprintln(out, "NOT VERIFIED:", p)
	}
	if len(problems) > 0 {
		return errFindings
	}
	return nil
}

func compact(b []byte, limit int) string {
	s := string(b)
	if len(s) > limit {
		s = s[:limit] + "…"
	}
	return s
}

func printReport(out io.Writer, r *audit.Report, asJSON bool) error {
	if asJSON {
		return writeJSON(out, r)
	}
	if c := r.Checkpoints; c != nil {
		fmt.Fprintf(out, "%d checkpoints; the latest covers %d events, signed at %s, cosigned by %d witness(es).\n",
			c.Count, c.Covered, c.Latest.Format(time.RFC3339), len(c.Witnesses))
	}
	fmt.Fprintf(out, "%d events of %d requests, stream sequences %d to %d: ", r.Events, r.Requests, r.FirstSeq, r.LastSeq)
	if r.Clean() {
		fmt.Fprintln(out, "verified, nothing found.")
	} else {
		fmt.Fprintf(out, "%d finding(s)\n", len(r.Findings))
		w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "POSITION\tSEQ\tKIND\tREQUEST\tDETAIL")
		for _, f := range r.Findings {
			fmt.Fprintf(w, "%d\t%d\t%s\t%s\t%s\n", f.Position, f.Seq, f.Kind, f.RequestID, f.Detail)
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	return printDrift(out, r.Drift)
}

// printDrift lists the drift a history records: what the targets showed against the evidence, which
// the history itself is not wrong for.
func printDrift(out io.Writer, drift []audit.Drift) error {
	if len(drift) == 0 {
		return nil
	}
	fmt.Fprintf(out, "The targets drifted from the evidence %d time(s) (recorded by the revoker's reconciler):\n", len(drift))
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SEQ\tTIME\tKIND\tACTION\tREQUEST OR FINDING\tTARGET")
	for _, d := range drift {
		subject := d.RequestID
		if d.FindingID != "" {
			subject = "finding " + d.FindingID
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s: %s\n", d.Seq, d.Time.UTC().Format(time.RFC3339), d.Kind, d.Action, subject, d.Connector, d.TargetRef)
	}
	return w.Flush()
}

func writeJSON(out io.Writer, v any) error {
	b, err := json.Marshal(v, jsontext.WithIndent("  "))
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "%s\n", b)
	return err
}

// progress reports long runs on stderr: a line every few seconds with the rate, so a verification of
// millions of events shows it is moving without flooding a terminal, and none when stderr is not a
// terminal (a log or a pipe), where only the closing line is written.
type progress struct {
	w     io.Writer
	verb  string
	live  bool
	n     int
	last  time.Time
	start time.Time
}

// progressEvery is how often a long run says where it is.
const progressEvery = 5 * time.Second

func newProgress(w io.Writer, verb string) *progress {
	now := time.Now()
	f, isFile := w.(*os.File)
	return &progress{w: w, verb: verb, live: isFile && term.IsTerminal(int(f.Fd())), last: now, start: now}
}

func (p *progress) tick(seq uint64) {
	p.n++
	if p.live && time.Since(p.last) >= progressEvery {
		p.last = time.Now()
		fmt.Fprintf(p.w, "%s %d events (at stream sequence %d, %.0f/s)\n", p.verb, p.n, seq, p.rate())
	}
}

// counting wraps fn so that every event it is given counts towards the progress.
func (p *progress) counting(fn func(events.Record) error) func(events.Record) error {
	return func(r events.Record) error { p.tick(r.Seq); return fn(r) }
}

func (p *progress) rate() float64 { return float64(p.n) / time.Since(p.start).Seconds() }

func (p *progress) done() {
	if time.Since(p.start) >= time.Second {
		fmt.Fprintf(p.w, "%s %d events in %s (%.0f/s)\n", p.verb, p.n, time.Since(p.start).Round(time.Millisecond), p.rate())
	}
}
