package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func taskCommand(stdout io.Writer) *cobra.Command {
	var f apiFlags
	cmd := &cobra.Command{Use: "task", Short: "Manual fulfilment tasks for systems without an API"}
	f.register(cmd)
	list := &cobra.Command{
		Use:   "list",
		Short: "Open tasks for your groups",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out struct {
				Tasks []map[string]any `json:"tasks"`
			}
			if err := f.call(cmd.Context(), "GET", "/v1/tasks", nil, &out); err != nil {
				return err
			}
			return f.print(stdout, out, func(o io.Writer) {
				if len(out.Tasks) == 0 {
					fmt.Fprintln(o, "No open tasks for your groups.")
					return
				}
				w := tabwriter.NewWriter(o, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "TASK\tPURPOSE\tENTITLEMENT\tSUBJECT\tDUE\tYOU MAY COMPLETE")
				for _, t := range out.Tasks {
					may := "yes"
					if t["may_complete"] != true {
						may = fmt.Sprint("no: ", t["why"])
					}
					fmt.Fprintf(w, "%v\t%v\t%v\t%v\t%v\t%s\n", t["id"], t["purpose"], t["entitlement"], t["subject"], t["due_at"], may)
				}
				_ = w.Flush()
				for _, t := range out.Tasks {
					if by, ok := t["continued_by"].(string); ok && by != "" {
						fmt.Fprintf(o, "%v: request %s extends this grant and continues the access; keep it, remove only what this grant alone added.\n", t["id"], by)
					}
				}
			})
		},
	}
	var evidence string
	complete := &cobra.Command{
		Use:   "complete <task-id> --evidence <text>",
		Short: "Record that you did the task on the target, with evidence",
		Long: "Record that you did the task on the target, with evidence. A grant task is completed at fulfilment\n" +
			"and a revoke task at the revoker: the command finds where in your task list.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := completePath(cmd, &f, args[0])
			if err != nil {
				return err
			}
			var out map[string]any
			if err := f.call(cmd.Context(), "POST", path, map[string]string{"evidence": evidence}, &out); err != nil {
				return err
			}
			return f.print(stdout, out, func(o io.Writer) {
				fmt.Fprintf(o, "Task %v done; request %v is %v.\n", out["task_id"], out["request_id"], out["status"])
			})
		},
	}
	complete.Flags().StringVar(&evidence, "evidence", "", "what you did and how it can be checked (required)")
	_ = complete.MarkFlagRequired("evidence")
	cmd.AddCommand(list, complete)
	return cmd
}

// completePath is where task taskID is completed, as the caller's task list says: the list holds both
// kinds of task, each with the path of the service that completes it.
func completePath(cmd *cobra.Command, f *apiFlags, taskID string) (string, error) {
	var list struct {
		Tasks []struct {
			ID          string `json:"id"`
			CompleteURL string `json:"complete_url"`
		} `json:"tasks"`
	}
	if err := f.call(cmd.Context(), "GET", "/v1/tasks", nil, &list); err != nil {
		return "", err
	}
	for _, t := range list.Tasks {
		if t.ID != taskID {
			continue
		}
		if !strings.HasPrefix(t.CompleteURL, "/") {
			// The bearer token goes with the completion: only ever to this origin.
			return "", fmt.Errorf("task %s: the task list gives no path on this server to complete it (%q)", taskID, t.CompleteURL)
		}
		return t.CompleteURL, nil
	}
	return "", fmt.Errorf("task %s is not open for your groups (grantline task list shows the ones that are)", taskID)
}
