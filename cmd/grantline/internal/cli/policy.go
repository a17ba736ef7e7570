package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/grantline/grantline/services/policy"
)

func policyCommand(stdout io.Writer) *cobra.Command {
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
	cmd.AddCommand(test, eval)
	return cmd
}
