package cli

import (
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/grantline/grantline/cmd/grantline/internal/whatif"
	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/services/policy"
)

func policyCommand(stdout, stderr io.Writer) *cobra.Command {
	dir := filepath.Join(envOr("GRANTLINE_EXAMPLES", "examples"), "policies")
	cmd := &cobra.Command{Use: "policy", Short: "Test and evaluate the Rego policy bundle"}
	cmd.PersistentFlags().StringVar(&dir, "dir", dir, "the policy bundle directory (GRANTLINE_POLICY_DIR)")
	if v := os.Getenv("GRANTLINE_POLICY_DIR"); v != "" {
		dir = v
	}

	test := &cobra.Command{
		Use:   "test",
		Short: "Run the bundle's Rego tests (opa test)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return policy.Test(cmd.Context(), dir, stdout)
		},
	}
	eval := &cobra.Command{
		Use:   "eval <input.json>",
		Short: "Evaluate the bundle on an input document and print the decision",
		Long:  "Reads the policy input document (as the policy service builds it) from a file, or - for stdin.",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var in []byte
			var err error
			if args[0] == "-" {
				in, err = io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
			} else {
				in, err = os.ReadFile(args[0])
			}
			if err != nil {
				return fmt.Errorf("read input: %w", err)
			}
			out, err := policy.Eval(cmd.Context(), dir, in)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(stdout, "%s\n", out)
			return err
		},
	}
	cmd.AddCommand(test, eval, whatifCommand(stdout, stderr))
	return cmd
}

func whatifCommand(stdout, stderr io.Writer) *cobra.Command {
	var f auditFlags
	var bundle, catalogueFile, from, to string
	cmd := &cobra.Command{
		Use:   "whatif --bundle <dir>",
		Short: "Re-evaluate the recorded policy decisions of a period with a candidate bundle and report what would change",
		Long: `Reads every policy_decided of the period from the evidence stream (verified against the trust file),
decides each one again with the candidate bundle on the decision's recorded input, bit for bit, and
reports what would change: allowed → denied, auto-approved → approval required, stages, durations,
deadlines, reasons; as a table, or JSON with --json. Decisions recorded before inputs were kept are
rebuilt from the request, --catalogue and the decision's time, and used only if they hash to the
recorded digest; the others are listed as not reproducible.

Decisions made by the candidate bundle itself (the same revision) must come out the same: the report
says whether they did.

--from and --to take a stream sequence or a time (RFC 3339, or a date: YYYY-MM-DD, from midnight UTC);
--to is exclusive for a time.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			trust, err := events.LoadTrustFile(f.trustFile)
			if err != nil {
				return err
			}
			engine, err := policy.Load(cmd.Context(), bundle)
			if err != nil {
				return err
			}
			cfg := whatif.Config{Trust: trust, Engine: engine}
			if cfg.Range.From, cfg.Since, err = parseBound(from); err != nil {
				return fmt.Errorf("--from: %w", err)
			}
			if cfg.Range.To, cfg.Until, err = parseBound(to); err != nil {
				return fmt.Errorf("--to: %w", err)
			}
			if catalogueFile != "" {
				if cfg.Catalogue, err = catalogue.Load(catalogueFile); err != nil {
					return err
				}
			}
			js, closeNATS, err := connect(f.natsURL, brokeraccess.Auditor, f.auditorKey())
			if err != nil {
				return err
			}
			defer closeNATS()
			cfg.JS = js
			p := newProgress(stderr, "re-evaluated")
			cfg.Progress = p.tick
			rep, err := whatif.Run(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			p.done()
			if f.asJSON {
				return writeJSON(stdout, rep)
			}
			return printWhatif(stdout, rep)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&bundle, "bundle", "", "the candidate policy bundle directory (required)")
	fl.StringVar(&catalogueFile, "catalogue", "", "the catalogue, to rebuild the inputs of decisions that did not record theirs")
	fl.StringVar(&from, "from", "", "first decision: a stream sequence or a time")
	fl.StringVar(&to, "to", "", "last decision: a stream sequence, or a time (exclusive)")
	fl.StringVar(&f.natsURL, "nats", envOr("GRANTLINE_NATS_URL", "nats://127.0.0.1:4222"), "NATS server holding GRANTLINE_EVENTS (GRANTLINE_NATS_URL)")
	fl.StringVar(&f.nkey, "nkey", envOr(brokeraccess.EnvNKeyFile, ""), "NKey seed file of the auditor's NATS user (default: nats/auditor.nk beside the trust file, if it exists)")
	fl.StringVar(&f.trustFile, "trust", envOr("GRANTLINE_TRUST_FILE", filepath.Join(".grantline", "keys", "trust.json")), "trust file (GRANTLINE_TRUST_FILE)")
	fl.BoolVar(&f.asJSON, "json", false, "print the report as JSON")
	_ = cmd.MarkFlagRequired("bundle")
	return cmd
}

// parseBound reads a --from or --to: digits are a stream sequence, anything else a time (RFC 3339 or a
// date). Empty is neither.
func parseBound(s string) (uint64, time.Time, error) {
	if s == "" {
		return 0, time.Time{}, nil
	}
	if seq, err := strconv.ParseUint(s, 10, 64); err == nil {
		return seq, time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, time.DateOnly} {
		if t, err := time.Parse(layout, s); err == nil {
			return 0, t, nil
		}
	}
	return 0, time.Time{}, fmt.Errorf("%q is neither a stream sequence nor a time (RFC 3339 or YYYY-MM-DD)", s)
}

// printWhatif prints a what-if report for people: the counts, then one line per changed decision.
func printWhatif(out io.Writer, r *whatif.Report) error {
	fmt.Fprintf(out, "Candidate bundle %s: %d decisions in the period, %d decided again (%d on their recorded input, %d rebuilt to their digest).\n",
		r.Revision, r.Decisions, r.Evaluated, r.FromInput, r.Rebuilt)
	switch {
	case r.SameRevision == 0:
		fmt.Fprintln(out, "None of them was made by this bundle.")
	case r.SameRevisionChanged == 0:
		fmt.Fprintf(out, "This bundle made %d of them and reproduced all %d exactly.\n", r.SameRevision, r.SameRevision)
	default:
		fmt.Fprintf(out, "WARNING: this bundle made %d of them but did NOT reproduce %d: the engine or the evidence is not what it was.\n",
			r.SameRevision, r.SameRevisionChanged)
	}
	if len(r.Unreproducible) > 0 {
		fmt.Fprintf(out, "%d decisions could not be reproduced bit for bit and were not decided again (--json lists why).\n", len(r.Unreproducible))
	}
	if len(r.Failed) > 0 {
		fmt.Fprintf(out, "%d decisions the candidate could not make (the policy service would deny them); --json lists them.\n", len(r.Failed))
	}
	if r.Changed == 0 {
		fmt.Fprintln(out, "No decision would change.")
		return nil
	}
	fmt.Fprintf(out, "%d decisions would change:\n", r.Changed)
	kinds := slices.Sorted(maps.Keys(r.Counts))
	for _, k := range kinds {
		fmt.Fprintf(out, "  %-36s %d\n", k, r.Counts[k])
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "\nREQUEST\tDECIDED\tENTITLEMENT\tREQUESTER\tCHANGE\tRECORDED\tCANDIDATE")
	for _, c := range r.Changes {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.RequestID, c.DecidedAt.UTC().Format(time.RFC3339), c.Entitlement, c.Requester,
			c.Kind, c.Recorded, c.Candidate)
	}
	return w.Flush()
}
