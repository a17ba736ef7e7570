package cli

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"

	"github.com/spf13/cobra"

	"github.com/grantline/grantline/cmd/grantline/internal/devmode"
	"github.com/grantline/grantline/services/notifier/mailsink"
)

// mailSinkCommand is `grantline dev mailsink`: the mail sink grantline dev runs in process, on its own,
// for the notifier of a compose deployment to mail through.
func mailSinkCommand(stdout, stderr io.Writer) *cobra.Command {
	var smtpAddr, httpAddr string
	cmd := &cobra.Command{
		Use:   "mailsink",
		Short: "Run a local SMTP server that keeps the mail it receives and lists it over HTTP",
		Long: `Receives mail over SMTP (no authentication, no TLS: for development only), delivers none of it,
and lists what it received at GET ` + devmode.MailPath + ` on --http as JSON, newest first (to, subject, text,
html, from, received). deploy/compose.yaml points the notifier at it. Nothing is kept across restarts.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := slog.New(slog.NewJSONHandler(stderr, nil)).With("service", "mailsink")
			ln, err := net.Listen("tcp", httpAddr)
			if err != nil {
				return err
			}
			sink, err := mailsink.Start(smtpAddr)
			if err != nil {
				ln.Close()
				return err
			}
			defer sink.Close()
			mux := http.NewServeMux()
			mux.Handle("GET "+devmode.MailPath, sink.Handler())
			fmt.Fprintf(stdout, "Mail sink: SMTP on %s, the mail at http://%s%s\n", sink.Addr(), ln.Addr(), devmode.MailPath)
			return serveUntilDone(cmd.Context(), ln, mux, log)
		},
	}
	cmd.Flags().StringVar(&smtpAddr, "smtp", "127.0.0.1:2525", "address to receive mail on")
	cmd.Flags().StringVar(&httpAddr, "http", "127.0.0.1:8025", "address to list the mail on")
	return cmd
}
