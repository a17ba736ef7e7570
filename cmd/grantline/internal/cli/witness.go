package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/grantline/grantline/pkg/checkpoint"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/witness"
)

// The files of a witness's state directory.
const (
	witnessKeyFile   = "witness.key"
	witnessStateFile = "state.json"
)

func witnessCommand(stdout, stderr io.Writer) *cobra.Command {
	var stateDir string
	cmd := &cobra.Command{
		Use:   "witness",
		Short: "Run an HTTP witness that countersigns the evidence log's checkpoints as it grows",
		Long: `A witness runs outside the operator's control, with its own key and state: it countersigns a
checkpoint only if a consistency proof shows it extends the last one it countersigned, so it refuses a
forked or shrunken log. Put the verifier key "init" prints in the trust file's checkpoints.witnesses and
the witness's URL in the checkpointer's GRANTLINE_WITNESS_URLS.`,
	}
	cmd.PersistentFlags().StringVar(&stateDir, "state", "witness", "the witness's directory: its key and the last checkpoint it countersigned")

	var name string
	initCmd := &cobra.Command{
		Use:   "init --name <name>",
		Short: "Create the witness's key in its state directory and print its verifier key",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if err := os.MkdirAll(stateDir, 0o700); err != nil {
				return err
			}
			skey, vkey, err := checkpoint.GenerateKey(name)
			if err != nil {
				return err
			}
			f, err := os.OpenFile(filepath.Join(stateDir, witnessKeyFile), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("%s already has a key; a witness keeps its key for life", stateDir)
			}
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintln(f, skey); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "Witness %s created in %s. Its verifier key, for the trust file's checkpoints.witnesses:\n%s\n", name, stateDir, vkey)
			return nil
		},
	}
	initCmd.Flags().StringVar(&name, "name", "", "the witness's name, as its signatures will carry it (required)")
	_ = initCmd.MarkFlagRequired("name")

	var addr, trustFile string
	serve := &cobra.Command{
		Use:   "serve",
		Short: "Serve POST /add-checkpoint (C2SP tlog-witness) until interrupted",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := slog.New(slog.NewJSONHandler(stderr, nil)).With("service", "witness")
			verifier, err := events.LoadTrustFile(trustFile)
			if err != nil {
				return err
			}
			trust, err := checkpoint.NewTrust(verifier)
			if err != nil {
				return err
			}
			signer, err := checkpoint.LoadSigner(filepath.Join(stateDir, witnessKeyFile))
			if err != nil {
				return fmt.Errorf("%w (grantline witness init creates the key)", err)
			}
			srv, err := witness.NewServer(trust, signer, filepath.Join(stateDir, witnessStateFile), log)
			if err != nil {
				return err
			}
			return serveWitness(cmd.Context(), addr, srv, stdout, log)
		},
	}
	serve.Flags().StringVar(&addr, "addr", "127.0.0.1:8090", "address to listen on")
	serve.Flags().StringVar(&trustFile, "trust", envOr("GRANTLINE_TRUST_FILE", filepath.Join(".grantline", "keys", "trust.json")),
		"trust file naming the log's origin and its checkpointers' keys (GRANTLINE_TRUST_FILE)")
	cmd.AddCommand(initCmd, serve)
	return cmd
}

// serveWitness serves srv on addr until ctx ends, then stops within a few seconds.
func serveWitness(ctx context.Context, addr string, srv *witness.Server, stdout io.Writer, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	srv.Routes(mux)
	fmt.Fprintf(stdout, "Witness listening on http://%s%s (at size %d)\n", ln.Addr(), witness.AddPath, srv.Size())
	return serveUntilDone(ctx, ln, mux, log)
}

// serveUntilDone serves h on ln until ctx ends, then stops within a few seconds.
func serveUntilDone(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	stop, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(stop); err != nil {
		log.Warn("http stop", "error", err.Error())
	}
	<-done
	return nil
}
