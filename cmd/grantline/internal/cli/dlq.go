package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os/user"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/deadletter"
)

type dlqFlags struct {
	natsURL, nkey, as, actor string
	asJSON                   bool
}

func dlqCommand(stdout, stderr io.Writer) *cobra.Command {
	var f dlqFlags
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "Inspect, replay and discard dead letters (as the NATS operator)",
		Long: `A consumer sets a message aside in GRANTLINE_DLQ when no retry can help (a malformed or forged event,
an integration's refused request) or after its last allowed delivery failed. The copy says why, which
consumer gave up after how many deliveries, and where the original is: it stays in its stream at its
sequence. Only the operator's NATS user may read or act on dead letters; replay and discard are logged
on stderr and recorded in GRANTLINE_DLQ with who did them and why.`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.natsURL, "nats", envOr("GRANTLINE_NATS_URL", "nats://127.0.0.1:4222"), "NATS servers, comma-separated (GRANTLINE_NATS_URL)")
	pf.StringVar(&f.nkey, "nkey", envOr(brokeraccess.EnvNKeyFile, ""), "NKey seed file of the operator's NATS user ("+brokeraccess.EnvNKeyFile+")")
	pf.StringVar(&f.as, "as", string(brokeraccess.Operator), "the NATS user the key belongs to")
	pf.BoolVar(&f.asJSON, "json", false, "print JSON for scripts instead of a table")
	pf.StringVar(&f.actor, "actor", currentUser(), "who acts, as recorded with a replay or a discard (default: the login name)")

	list := &cobra.Command{
		Use:   "list",
		Short: "List the dead letters: reason, origin (stream, sequence, subject, consumer), deliveries, replay",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.with(cmd.Context(), func(ctx context.Context, js jetstream.JetStream) error {
				letters, err := deadletter.List(ctx, js)
				if err != nil {
					return err
				}
				if f.asJSON {
					return writeJSON(stdout, letters)
				}
				return printLetters(stdout, letters)
			})
		},
	}
	show := &cobra.Command{
		Use:   "show <seq>",
		Short: "Show one dead letter with its headers and the message it set aside",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			seq, err := dlqSeq(args[0])
			if err != nil {
				return err
			}
			return f.with(cmd.Context(), func(ctx context.Context, js jetstream.JetStream) error {
				l, err := deadletter.Get(ctx, js, seq)
				if err != nil {
					return err
				}
				if f.asJSON {
					return writeJSON(stdout, l)
				}
				return printLetter(stdout, l)
			})
		},
	}
	var note string
	replay := &cobra.Command{
		Use:   "replay <seq>",
		Short: "Have the dead letter's consumer handle the original message once more",
		Long: `Asks the consumer that set the dead letter aside to handle the original once more: its service reads
the original from its stream at its sequence and hands it to the same handler, which is idempotent.
Nothing is published to the original stream, so no event is added to the evidence. A dead letter is
replayed at most once; if the handler fails again, the message is set aside as a new dead letter that
names this one.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.act(cmd.Context(), stdout, stderr, args[0], deadletter.Replay, note, "dead letter replayed",
				func(l deadletter.Letter) string {
					return fmt.Sprintf("Dead letter %d: %s will handle %s sequence %d once more.", l.Seq, l.Consumer, l.Stream, l.StreamSeq)
				})
		},
	}
	replay.Flags().StringVar(&note, "note", "", "why it is replayed (recorded with the replay)")
	var reason string
	discard := &cobra.Command{
		Use:   "discard <seq> --reason <why>",
		Short: "Remove a dead letter, recording who did and why",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.act(cmd.Context(), stdout, stderr, args[0], deadletter.Discard, reason, "dead letter discarded",
				func(l deadletter.Letter) string { return fmt.Sprintf("Dead letter %d discarded.", l.Seq) })
		},
	}
	discard.Flags().StringVar(&reason, "reason", "", "why it is discarded (required, recorded)")
	_ = discard.MarkFlagRequired("reason")
	cmd.AddCommand(list, show, replay, discard)
	return cmd
}

// with connects as the operator and runs fn. The broker's refusal of a permission (a user other than
// the operator) ends fn at once with an error that names it, rather than after a timeout.
func (f *dlqFlags) with(ctx context.Context, fn func(context.Context, jetstream.JetStream) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	refused := nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) {
			cancel(fmt.Errorf("the NATS server refused user %s (only the operator's user may handle dead letters): %w", f.as, err))
		}
	})
	js, closeNATS, err := connect(f.natsURL, brokeraccess.User(f.as), f.nkey, refused)
	if err != nil {
		return err
	}
	defer closeNATS()
	ctx, stop := context.WithTimeout(ctx, 30*time.Second)
	defer stop()
	if err := fn(ctx, js); err != nil {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.DeadlineExceeded) {
			return cause
		}
		return err
	}
	return nil
}

// act carries out one of the operator's actions (deadletter.Replay, deadletter.Discard) on dead letter
// arg, logs it on stderr as a JSON line naming the NATS user, the actor, the dead letter and the note,
// and tells the operator what happens next.
func (f *dlqFlags) act(ctx context.Context, stdout, stderr io.Writer, arg string,
	action func(context.Context, jetstream.JetStream, uint64, string, string) (deadletter.Letter, error),
	note, logged string, outcome func(deadletter.Letter) string) error {
	seq, err := dlqSeq(arg)
	if err != nil {
		return err
	}
	return f.with(ctx, func(ctx context.Context, js jetstream.JetStream) error {
		l, err := action(ctx, js, seq, f.actor, note)
		if err != nil {
			return err
		}
		slog.New(slog.NewJSONHandler(stderr, nil)).Info(logged, "nats_user", f.as, "actor", f.actor, "dlq_seq", l.Seq,
			"consumer", l.Consumer, "stream", l.Stream, "stream_seq", l.StreamSeq, "subject", l.Subject, "reason", l.Reason, "note", note)
		fmt.Fprintln(stdout, outcome(l))
		return nil
	})
}

func dlqSeq(arg string) (uint64, error) {
	seq, err := strconv.ParseUint(arg, 10, 64)
	if err != nil || seq == 0 {
		return 0, fmt.Errorf("%q is not a dead letter's sequence (see grantline dlq list)", arg)
	}
	return seq, nil
}

func currentUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return ""
}

func printLetters(out io.Writer, letters []deadletter.Letter) error {
	if len(letters) == 0 {
		fmt.Fprintln(out, "No dead letters.")
		return nil
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SEQ\tAT\tCONSUMER\tORIGIN\tSUBJECT\tDELIVERIES\tREPLAYED\tREASON")
	for _, l := range letters {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s#%d\t%s\t%d\t%s\t%s\n", l.Seq, l.At.UTC().Format(time.RFC3339), l.Consumer, l.Stream, l.StreamSeq,
			l.Subject, l.Deliveries, replayedText(l), compact([]byte(l.Reason), 80))
	}
	return w.Flush()
}

func printLetter(out io.Writer, l deadletter.Letter) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "dead letter\t%d (%s)\n", l.Seq, l.At.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "consumer\t%s\n", l.Consumer)
	fmt.Fprintf(w, "reason\t%s\n", l.Reason)
	fmt.Fprintf(w, "deliveries\t%d\n", l.Deliveries)
	fmt.Fprintf(w, "origin\t%s sequence %d, subject %s\n", l.Stream, l.StreamSeq, l.Subject)
	if l.ReplayOf != 0 {
		fmt.Fprintf(w, "set aside by the replay of\t%d\n", l.ReplayOf)
	}
	fmt.Fprintf(w, "replayed\t%s\n", replayedText(l))
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out, "headers:")
	for _, k := range slices.Sorted(maps.Keys(l.Headers)) {
		for _, v := range l.Headers[k] {
			fmt.Fprintf(out, "  %s: %s\n", k, v)
		}
	}
	fmt.Fprintf(out, "message (%d bytes):\n%s\n", len(l.Data), l.Data)
	return nil
}

func replayedText(l deadletter.Letter) string {
	if l.Replayed == nil {
		return "no"
	}
	s := l.Replayed.At.UTC().Format(time.RFC3339) + " by " + l.Replayed.Actor
	if l.Replayed.Note != "" {
		s += ": " + l.Replayed.Note
	}
	return s
}
