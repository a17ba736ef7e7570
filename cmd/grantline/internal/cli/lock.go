package cli

import (
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// lockView is a lock as the revoker's API shows it.
type lockView struct {
	ID    string `json:"id"`
	Scope struct {
		Kind string `json:"kind"`
		ID   string `json:"id"`
	} `json:"scope"`
	Reason           string     `json:"reason"`
	PlacedBy         string     `json:"placed_by"`
	PlacedAt         time.Time  `json:"placed_at"`
	Until            *time.Time `json:"until,omitempty"`
	EmergencyAllowed bool       `json:"emergency_allowed"`
	Status           string     `json:"status"`
	Holds            bool       `json:"holds"`
	RemovedBy        string     `json:"removed_by,omitempty"`
	Outstanding      *int       `json:"outstanding,omitempty"`
}

func lockCommand(stdout io.Writer) *cobra.Command {
	var f apiFlags
	cmd := &cobra.Command{Use: "lock", Short: "Lock a person, an entitlement or a target system during an incident (security only)"}
	f.register(cmd)

	var user, entitlement, target, reason string
	var until time.Duration
	var emergency bool
	create := &cobra.Command{
		Use:   "create (--user <id> | --entitlement <id> | --target <system>) --reason <text> [--until <duration>]",
		Short: "Place a lock: new requests it covers are denied and every grant it covers is revoked",
		Long: `Places a lock at the revoker, as a member of the lock admin groups (never on yourself). While it
holds, policy denies the new requests it covers, naming it (emergencies too, unless
--emergency-allowed), and every active grant it covers is revoked with reason locked. A person's lock
covers what they hold and what they ask for; a target's, every entitlement on that system.`,
		Example: `  grantline lock create --user alice --reason "laptop stolen, INC-78" --as carol
  grantline lock create --target postgres/payments --reason "compromised" --until 24h --as carol`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var kind, id string
			for k, v := range map[string]string{"user": user, "entitlement": entitlement, "target": target} {
				if v != "" {
					if kind != "" {
						return errors.New("name exactly one of --user, --entitlement, --target")
					}
					kind, id = k, v
				}
			}
			if kind == "" {
				return errors.New("name exactly one of --user, --entitlement, --target")
			}
			body := map[string]any{"scope": map[string]string{"kind": kind, "id": id}, "reason": reason, "emergency_allowed": emergency}
			if until > 0 {
				body["until"] = time.Now().Add(until).UTC().Format(time.RFC3339)
			}
			var out lockView
			// One key per run: a retry of a lost answer places no second lock.
			if err := f.call(cmd.Context(), "POST", "/v1/locks", body, &out, idempotencyKey, newIdempotencyKey()); err != nil {
				return err
			}
			return f.print(stdout, out, func(o io.Writer) {
				fmt.Fprintf(o, "Lock %s placed on %s %s. Its grants are being revoked; remove it with: grantline lock remove %s\n",
					out.ID, out.Scope.Kind, out.Scope.ID, out.ID)
			})
		},
	}
	create.Flags().StringVar(&user, "user", "", "lock this person (their immutable ID)")
	create.Flags().StringVar(&entitlement, "entitlement", "", "lock this entitlement, for every holder")
	create.Flags().StringVar(&target, "target", "", "lock every entitlement on this target system (the catalogue's system)")
	create.Flags().StringVar(&reason, "reason", "", "why (required)")
	create.Flags().DurationVar(&until, "until", 0, "how long the lock holds (default: until removed)")
	create.Flags().BoolVar(&emergency, "emergency-allowed", false, "let emergency requests through the lock")
	_ = create.MarkFlagRequired("reason")

	list := &cobra.Command{
		Use:   "list",
		Short: "Every lock, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out struct {
				Locks []lockView `json:"locks"`
			}
			if err := f.call(cmd.Context(), "GET", "/v1/locks", nil, &out); err != nil {
				return err
			}
			return f.print(stdout, out, func(o io.Writer) {
				if len(out.Locks) == 0 {
					fmt.Fprintln(o, "No locks.")
					return
				}
				w := tabwriter.NewWriter(o, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "LOCK\tSCOPE\tHOLDS\tGRANTS LEFT\tPLACED BY\tPLACED AT\tUNTIL\tREASON")
				for _, l := range out.Locks {
					until := "removed"
					switch {
					case l.Status != "removed" && l.Until != nil:
						until = l.Until.UTC().Format(time.RFC3339)
					case l.Status != "removed":
						until = "-"
					}
					left := "-"
					if l.Outstanding != nil {
						left = fmt.Sprint(*l.Outstanding)
					}
					fmt.Fprintf(w, "%s\t%s %s\t%v\t%s\t%s\t%s\t%s\t%s\n", l.ID, l.Scope.Kind, l.Scope.ID, l.Holds, left, l.PlacedBy,
						l.PlacedAt.UTC().Format(time.RFC3339), until, l.Reason)
				}
				_ = w.Flush()
			})
		},
	}

	var note string
	remove := &cobra.Command{
		Use:   "remove <lock-id> [--reason <text>]",
		Short: "Remove a lock: new requests are no longer denied by it; nothing it revoked comes back",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out lockView
			if err := f.call(cmd.Context(), "POST", "/v1/locks/"+args[0]+"/remove", map[string]string{"reason": note}, &out); err != nil {
				return err
			}
			return f.print(stdout, out, func(o io.Writer) {
				fmt.Fprintf(o, "Lock %s removed. Access it revoked stays revoked.\n", out.ID)
			})
		},
	}
	remove.Flags().StringVar(&note, "reason", "", "why")
	cmd.AddCommand(create, list, remove)
	return cmd
}
