package cli

import (
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// campaignItemView is one grant under review as the approval service shows it.
type campaignItemView struct {
	RequestID   string    `json:"request_id"`
	Entitlement string    `json:"entitlement"`
	SubjectID   string    `json:"subject_id"`
	RequesterID string    `json:"requester_id"`
	ExpiresAt   time.Time `json:"expires_at"`
	Owners      []string  `json:"owners"`
	State       string    `json:"state"`
	Decision    string    `json:"decision,omitempty"`
	DecidedBy   string    `json:"decided_by,omitempty"`
	Note        string    `json:"note,omitempty"`
}

// campaignView is an access review as the approval service shows it.
type campaignView struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Status string `json:"status"`
	Filter struct {
		Entitlement       string `json:"entitlement,omitempty"`
		LongerThanSeconds int64  `json:"longer_than_seconds,omitempty"`
	} `json:"filter"`
	CreatedBy          string             `json:"created_by"`
	OpenedAt           time.Time          `json:"opened_at"`
	Deadline           time.Time          `json:"deadline"`
	RemindAt           []time.Time        `json:"remind_at,omitempty"`
	Unanswered         string             `json:"unanswered"`
	EscalateTo         []string           `json:"escalate_to,omitempty"`
	EscalationDeadline *time.Time         `json:"escalation_deadline,omitempty"`
	Awaiting           int                `json:"awaiting"`
	Items              []campaignItemView `json:"items"`
}

// campaignCommand is `grantline review campaign`: access reviews (certification campaigns).
func campaignCommand(f *apiFlags, stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "campaign", Short: "Access reviews: owners keep or revoke each active grant by a deadline"}

	var name, entitlement, unanswered string
	var longer, deadline, escalation time.Duration
	var remind []time.Duration
	var escalateTo []string
	create := &cobra.Command{
		Use:   "create --name <text> (--entitlement <id> | --longer-than <duration>) --deadline <duration> [--unanswered revoke|escalate]",
		Short: "Open an access review over the active grants a filter selects (campaign admins only)",
		Long: `Opens an access review at the approval service, as a member of the campaign admin groups. Every
active grant of --entitlement and/or held longer than --longer-than becomes an item its entitlement's
owners keep or revoke by the deadline; they are reminded at each --remind (before the deadline). At the
deadline what is unanswered is revoked (--unanswered revoke), or passed to --escalate-to until
--escalation-deadline and revoked then if still unanswered (--unanswered escalate). A revocation is
carried out by the revoker with reason review_revoked. Durations count from now.`,
		Example: `  grantline review campaign create --name "payments-admin Q4" --entitlement payments-admin --deadline 72h --remind 48h --as carol
  grantline review campaign create --name "long grants" --longer-than 720h --deadline 168h --unanswered escalate \
      --escalate-to security --escalation-deadline 216h --as carol`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if entitlement == "" && longer <= 0 {
				return errors.New("name --entitlement, --longer-than, or both")
			}
			now := time.Now().UTC()
			at := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
			filter := map[string]any{}
			if entitlement != "" {
				filter["entitlement"] = entitlement
			}
			if longer > 0 {
				filter["longer_than_seconds"] = int64(longer / time.Second)
			}
			body := map[string]any{"name": name, "filter": filter, "deadline": at(deadline), "unanswered": unanswered}
			if len(remind) > 0 {
				var times []string
				for _, d := range remind {
					times = append(times, at(d))
				}
				body["remind_at"] = times
			}
			if len(escalateTo) > 0 {
				body["escalate_to"] = escalateTo
			}
			if escalation > 0 {
				body["escalation_deadline"] = at(escalation)
			}
			var out campaignView
			if err := f.call(cmd.Context(), "POST", "/v1/campaigns", body, &out); err != nil {
				return err
			}
			return f.print(stdout, out, func(o io.Writer) {
				fmt.Fprintf(o, "Campaign %s opened over %d grants, due %s. Owners decide with: grantline review campaign decide %s <request-id> keep|revoke\n",
					out.ID, len(out.Items), out.Deadline.UTC().Format(time.RFC3339), out.ID)
			})
		},
	}
	create.Flags().StringVar(&name, "name", "", "what the review is (required)")
	create.Flags().StringVar(&entitlement, "entitlement", "", "review the grants of this entitlement")
	create.Flags().DurationVar(&longer, "longer-than", 0, "review the grants held longer than this (through their extensions), such as 720h")
	create.Flags().DurationVar(&deadline, "deadline", 0, "when the owners must have answered, from now (required)")
	create.Flags().DurationSliceVar(&remind, "remind", nil, "remind the owners of what is pending at this time from now (repeatable)")
	create.Flags().StringVar(&unanswered, "unanswered", "revoke", "what happens to an unanswered grant at the deadline: revoke or escalate")
	create.Flags().StringSliceVar(&escalateTo, "escalate-to", nil, "groups an unanswered grant is escalated to (with --unanswered escalate)")
	create.Flags().DurationVar(&escalation, "escalation-deadline", 0, "when the escalation groups must have answered, from now")
	_ = create.MarkFlagRequired("name")
	_ = create.MarkFlagRequired("deadline")

	list := &cobra.Command{
		Use:   "list",
		Short: "The access reviews you take part in, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out struct {
				Campaigns []campaignView `json:"campaigns"`
			}
			if err := f.call(cmd.Context(), "GET", "/v1/campaigns", nil, &out); err != nil {
				return err
			}
			return f.print(stdout, out, func(o io.Writer) {
				if len(out.Campaigns) == 0 {
					fmt.Fprintln(o, "No access reviews.")
					return
				}
				w := tabwriter.NewWriter(o, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "CAMPAIGN\tNAME\tSTATUS\tAWAITING\tGRANTS\tDEADLINE\tUNANSWERED")
				for _, c := range out.Campaigns {
					fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%s\t%s\n", c.ID, c.Name, c.Status, c.Awaiting, len(c.Items),
						c.Deadline.UTC().Format(time.RFC3339), c.Unanswered)
				}
				_ = w.Flush()
			})
		},
	}

	show := &cobra.Command{
		Use:   "show <campaign-id>",
		Short: "One access review: each grant and where it stands",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out campaignView
			if err := f.call(cmd.Context(), "GET", "/v1/campaigns/"+args[0], nil, &out); err != nil {
				return err
			}
			return f.print(stdout, out, func(o io.Writer) {
				fmt.Fprintf(o, "%s  %s  (%s, opened by %s)\n", out.ID, out.Name, out.Status, out.CreatedBy)
				fmt.Fprintf(o, "deadline %s; unanswered: %s", out.Deadline.UTC().Format(time.RFC3339), out.Unanswered)
				if out.EscalationDeadline != nil {
					fmt.Fprintf(o, " to %v until %s", out.EscalateTo, out.EscalationDeadline.UTC().Format(time.RFC3339))
				}
				fmt.Fprintf(o, "\n%d of %d awaiting an answer\n\n", out.Awaiting, len(out.Items))
				w := tabwriter.NewWriter(o, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "REQUEST\tENTITLEMENT\tHOLDER\tEXPIRES\tSTATE\tBY\tNOTE")
				for _, it := range out.Items {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", it.RequestID, it.Entitlement, it.SubjectID,
						it.ExpiresAt.UTC().Format(time.RFC3339), it.State, orDash(it.DecidedBy), it.Note)
				}
				_ = w.Flush()
			})
		},
	}

	var note string
	decide := &cobra.Command{
		Use:   "decide <campaign-id> <request-id> keep|revoke [--note <text>]",
		Short: "Keep or revoke one grant under review (its entitlement's owners; never your own access)",
		Args:  cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out campaignItemView
			body := map[string]string{"request_id": args[1], "decision": args[2], "note": note}
			if err := f.call(cmd.Context(), "POST", "/v1/campaigns/"+args[0]+"/decisions", body, &out); err != nil {
				return err
			}
			return f.print(stdout, out, func(o io.Writer) {
				fmt.Fprintf(o, "Recorded: %s's %s is %s.\n", out.SubjectID, out.Entitlement, out.State)
			})
		},
	}
	decide.Flags().StringVar(&note, "note", "", "why")
	cmd.AddCommand(create, list, show, decide)
	return cmd
}
