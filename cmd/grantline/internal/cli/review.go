package cli

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func reviewCommand(stdout io.Writer) *cobra.Command {
	var f apiFlags
	cmd := &cobra.Command{Use: "review", Short: "List, approve and reject the requests that await your review; run access reviews"}
	f.register(cmd)

	list := &cobra.Command{
		Use:   "list",
		Short: "What awaits your review: approval stages and emergency post-reviews",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var inbox struct {
				Items []map[string]any `json:"items"`
			}
			if err := f.call(cmd.Context(), "GET", "/v1/reviews", nil, &inbox); err != nil {
				return err
			}
			return f.print(stdout, inbox, func(out io.Writer) {
				if len(inbox.Items) == 0 {
					fmt.Fprintln(out, "Nothing awaits your review.")
					return
				}
				w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "REQUEST\tKIND\tSTAGE\tREQUESTER\tENTITLEMENT\tDURATION\tSUBMITTED WITH\tJUSTIFICATION")
				for _, it := range together(inbox.Items) {
					secs, _ := it["duration_seconds"].(float64)
					with := "-"
					if c, ok := it["correlation_id"].(string); ok {
						with = c
					}
					fmt.Fprintf(w, "%v\t%v\t%v\t%v\t%v\t%s\t%s\t%v\n", it["request_id"], it["kind"], it["stage_name"], it["requester"],
						it["entitlement"], time.Duration(secs)*time.Second, with, it["justification"])
				}
				_ = w.Flush()
			})
		},
	}

	decide := func(use, short, decision string) *cobra.Command {
		var comment string
		c := &cobra.Command{
			Use:   use + " <request-id>",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				var out map[string]any
				body := map[string]string{"decision": decision, "comment": comment}
				if err := f.call(cmd.Context(), "POST", "/v1/requests/"+args[0]+"/reviews", body, &out, idempotencyKey, newIdempotencyKey()); err != nil {
					return err
				}
				return f.print(stdout, out, func(w io.Writer) {
					fmt.Fprintf(w, "Recorded your %s on %v (stage %v). The request is now %v.\n", decision, out["request_id"], out["stage_name"], out["status"])
				})
			},
		}
		c.Flags().StringVar(&comment, "comment", "", "why")
		return c
	}
	cmd.AddCommand(list, decide("approve", "Approve a request in your stage", "approve"), decide("reject", "Reject a request", "reject"),
		campaignCommand(&f, stdout))
	return cmd
}

// together orders inbox items so that requests submitted together (one correlation ID) follow the
// first of them, keeping the inbox's order otherwise: a reviewer judges a batch side by side.
func together(items []map[string]any) []map[string]any {
	out := make([]map[string]any, 0, len(items))
	placed := map[string]bool{}
	for i, it := range items {
		c, _ := it["correlation_id"].(string)
		if c == "" {
			out = append(out, it)
			continue
		}
		if placed[c] {
			continue
		}
		placed[c] = true
		for _, other := range items[i:] {
			if oc, _ := other["correlation_id"].(string); oc == c {
				out = append(out, other)
			}
		}
	}
	return out
}
