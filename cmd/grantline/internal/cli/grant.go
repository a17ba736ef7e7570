package cli

import (
	"fmt"
	"io"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func grantCommand(stdout io.Writer) *cobra.Command {
	var f apiFlags
	cmd := &cobra.Command{Use: "grant", Short: "Active and past grants, as the targets showed them"}
	f.register(cmd)
	var all bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List active grants (--all for past ones too)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := "/v1/grants?active=true"
			if all {
				path = "/v1/grants"
			}
			var page struct {
				Items []map[string]any `json:"items"`
			}
			if err := f.call(cmd.Context(), "GET", path, nil, &page); err != nil {
				return err
			}
			return f.print(stdout, page, func(out io.Writer) { printGrants(out, page.Items) })
		},
	}
	list.Flags().BoolVar(&all, "all", false, "include past grants")
	cmd.AddCommand(list)
	return cmd
}

// whoHadCommand answers "who held this entitlement at that instant, and why".
func whoHadCommand(stdout io.Writer) *cobra.Command {
	var f apiFlags
	var entitlement, at string
	cmd := &cobra.Command{
		Use:     "who-had --entitlement <id> [--at <time>]",
		Short:   "Who held an entitlement at an instant, with the request, policy revision, approvers and observed states",
		Example: `  grantline audit who-had --entitlement payments-admin --at 2026-11-28T10:00:00Z --as erin`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			when := time.Now().UTC()
			if at != "" {
				t, err := time.Parse(time.RFC3339, at)
				if err != nil {
					return fmt.Errorf("--at must be RFC 3339 with a zone: %w", err)
				}
				when = t
			}
			q := url.Values{"entitlement": {entitlement}, "at": {when.Format(time.RFC3339)}}
			var answer struct {
				Holders []map[string]any `json:"holders"`
			}
			if err := f.call(cmd.Context(), "GET", "/v1/audit/access?"+q.Encode(), nil, &answer); err != nil {
				return err
			}
			return f.print(stdout, answer, func(out io.Writer) {
				if len(answer.Holders) == 0 {
					fmt.Fprintf(out, "Nobody held %s at %s.\n", entitlement, when.Format(time.RFC3339))
					return
				}
				printGrants(out, answer.Holders)
			})
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&entitlement, "entitlement", "", "the entitlement (required)")
	cmd.Flags().StringVar(&at, "at", "", "the instant, RFC 3339 (default: now)")
	_ = cmd.MarkFlagRequired("entitlement")
	return cmd
}

func printGrants(out io.Writer, items []map[string]any) {
	if len(items) == 0 {
		fmt.Fprintln(out, "No grants.")
		return
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "REQUEST\tENTITLEMENT\tHOLDER\tGRANTED\tEXPIRES\tREVOKED\tAPPROVERS\tPOLICY")
	for _, g := range items {
		subject, _ := g["subject"].(map[string]any)
		fmt.Fprintf(w, "%v\t%v\t%v\t%v\t%v\t%v\t%v\t%v\n", g["request_id"], g["entitlement"], subject["id"], g["granted_at"],
			g["expires_at"], orDash(g["revoked_at"]), joinAny(asSlice(g["approvers"])), g["policy_revision"])
	}
	_ = w.Flush()
}

func orDash(v any) any {
	if v == nil || v == "" {
		return "-"
	}
	return v
}
