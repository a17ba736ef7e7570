package cli

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/services/intake"
)

func streamsCommand(stdout io.Writer) *cobra.Command {
	var natsURL, nkey, as string
	cmd := &cobra.Command{Use: "streams", Short: "Create and check Grantline's streams (as the NATS operator)"}
	pf := cmd.PersistentFlags()
	pf.StringVar(&natsURL, "nats", envOr("GRANTLINE_NATS_URL", "nats://127.0.0.1:4222"), "NATS servers, comma-separated (GRANTLINE_NATS_URL)")
	pf.StringVar(&nkey, "nkey", envOr(brokeraccess.EnvNKeyFile, ""), "NKey seed file of the NATS user to act as ("+brokeraccess.EnvNKeyFile+")")
	pf.StringVar(&as, "as", string(brokeraccess.Operator), "the NATS user the key belongs to: its replies arrive on that user's inbox")

	settings := eventstore.DefaultSettings
	var integrations string
	var named []string
	provision := &cobra.Command{
		Use:   "provision",
		Short: "Create the streams and the integrations' consumers, or bring the disposable ones up to date; never loosens the evidence stream",
		Long: `Creates GRANTLINE_EVENTS, GRANTLINE_TIMERS, GRANTLINE_INTAKE, GRANTLINE_DLQ and GRANTLINE_CHECKPOINTS
with --replicas replicas, or updates the disposable ones. An existing evidence stream is never changed:
if it is misconfigured, every problem is reported and nothing is touched. For each integration in
--integrations it creates (or updates) the durable push consumer outcomes-<name> on GRANTLINE_INTAKE
through which that integration reads its outcomes over JetStream: an integration may only bind to it,
never create a consumer (docs/integrations.md says why). Only the operator's NATS user may do this;
services only check. Running it again changes nothing. The services declare their own key-value
buckets when they start (their NATS users may create and update those, nothing else).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			js, closeNATS, err := connect(natsURL, brokeraccess.User(as), nkey)
			if err != nil {
				return err
			}
			defer closeNATS()
			names, err := integrationNames(integrations)
			if err != nil {
				return err
			}
			names = append(names, named...)
			if err := eventstore.Provision(cmd.Context(), js, settings); err != nil {
				return err
			}
			if err := eventstore.ProvisionIntegrations(cmd.Context(), js, names); err != nil {
				return err
			}
			for _, name := range names {
				c := topology.IntegrationConsumer(name)
				fmt.Fprintf(stdout, "consumer %s of %s: integration %s's outcomes, delivered to %s\n", c.Durable, c.Stream, name,
					topology.IntegrationDeliveries(name))
			}
			return printStreams(cmd, stdout, js)
		},
	}
	provision.Flags().IntVar(&settings.Replicas, "replicas", settings.Replicas, "replicas of each stream: 1 on one node, 3 (or 5) in a cluster")
	provision.Flags().StringVar(&integrations, "integrations", envOr("GRANTLINE_INTEGRATIONS", ""),
		"the integrations file (GRANTLINE_INTEGRATIONS): one outcomes consumer per integration")
	provision.Flags().StringArrayVar(&named, "integration", nil,
		"an integration's name, besides those of --integrations (the Helm chart's Job, which runs before the files' ConfigMap exists); repeatable")
	provision.Flags().Int64Var(&settings.EventsMaxBytes, "events-max-bytes", settings.EventsMaxBytes, "size at which the evidence stream refuses writes rather than drop evidence")

	check := &cobra.Command{
		Use:   "check",
		Short: "Check that the four streams exist and the evidence stream is hardened, as every service does at start",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			js, closeNATS, err := connect(natsURL, brokeraccess.User(as), nkey)
			if err != nil {
				return err
			}
			defer closeNATS()
			if err := eventstore.Check(cmd.Context(), js); err != nil {
				return err
			}
			return printStreams(cmd, stdout, js)
		},
	}
	cmd.AddCommand(provision, check)
	return cmd
}

// printStreams lists the four streams with their replicas, size and hardening.
func printStreams(cmd *cobra.Command, out io.Writer, js jetstream.JetStream) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "STREAM\tSUBJECTS\tREPLICAS\tMESSAGES\tDENY DELETE\tDENY PURGE")
	for _, c := range eventstore.StreamConfigs(eventstore.DefaultSettings) {
		st, err := js.Stream(cmd.Context(), c.Name)
		if err != nil {
			return fmt.Errorf("stream %s: %w", c.Name, err)
		}
		info := st.CachedInfo()
		fmt.Fprintf(w, "%s\t%v\t%d\t%d\t%v\t%v\n", info.Config.Name, info.Config.Subjects, info.Config.Replicas, info.State.Msgs,
			info.Config.DenyDelete, info.Config.DenyPurge)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out, "The streams are ready; the services can start.")
	return nil
}

// integrationNames lists the integrations in the integrations file at path, none for an empty path.
func integrationNames(path string) ([]string, error) {
	if path == "" {
		return nil, nil
	}
	in, err := intake.LoadIntegrations(path)
	if err != nil {
		return nil, err
	}
	return in.Names(), nil
}
