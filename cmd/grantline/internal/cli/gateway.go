package cli

import (
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/grantline/grantline/cmd/grantline/internal/devmode"
	"github.com/grantline/grantline/cmd/grantline/internal/gateway"
	"github.com/grantline/grantline/pkg/auth"
	"github.com/grantline/grantline/pkg/ops"
	"github.com/grantline/grantline/services/console/signin"
)

func gatewayCommand(stderr io.Writer) *cobra.Command {
	var (
		addr, dataDir, issuerURL, examples string
		upstreams                          = map[gateway.Service]*string{}
	)
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "Serve the separately deployed services on one HTTP origin",
		Long: `Forwards each route of Grantline's HTTP API to the service that owns it, as an ingress would, so
the CLI and people reach one address when the services run as their own processes or containers
(deploy/compose.yaml runs it). With --console every other path goes to the web console, which people
then open at this origin. /readyz is ready when every service is.

With --dev-data-dir it also serves a development OIDC issuer under /dev/oidc whose key lives in that
directory, so "grantline dev token <user> --data-dir <dir>" and "--as <user>" work as they do against
grantline dev; with --console too, people sign in to the console through it (its callback, at the
issuer's origin, is registered). Never use the development issuer in production: anyone with the
directory mints tokens.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := slog.New(slog.NewJSONHandler(stderr, nil)).With("service", "gateway")
			cfg := gateway.Config{Upstreams: map[gateway.Service]*url.URL{}, Log: log}
			for s, raw := range upstreams {
				if *raw == "" {
					continue // an optional service this deployment does not run
				}
				u, err := url.Parse(*raw)
				if err != nil || u.Scheme == "" || u.Host == "" {
					return fmt.Errorf("--%s %q is not an absolute URL", s, *raw)
				}
				cfg.Upstreams[s] = u
			}
			if dataDir != "" {
				dir, err := auth.LoadDirectory(filepath.Join(examples, "directory.yaml"))
				if err != nil {
					return err
				}
				issuer, err := auth.OpenDevIssuer(devmode.OIDCDir(dataDir), issuerURL, devmode.Audience, dir)
				if err != nil {
					return err
				}
				if cfg.Upstreams[gateway.Console] != nil {
					// Behind this gateway the console is at the origin people reach, the issuer's.
					origin, err := url.Parse(issuerURL)
					if err == nil {
						err = issuer.AllowRedirect(origin.Scheme + "://" + origin.Host + signin.CallbackPath)
					}
					if err != nil {
						return fmt.Errorf("--dev-issuer-url: %w", err)
					}
				}
				cfg.DevIssuer = issuer.Handler()
			}
			h, err := gateway.New(cfg)
			if err != nil {
				return err
			}
			srv, err := ops.Listen(addr, h, log)
			if err != nil {
				return err
			}
			log.Info("serving", "addr", srv.Addr(), "dev_issuer", dataDir != "")
			return srv.Serve(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "http", envOr("GRANTLINE_HTTP_ADDR", ":8080"), "address to serve on (GRANTLINE_HTTP_ADDR)")
	for s, def := range map[gateway.Service]string{
		gateway.Intake: "http://127.0.0.1:8081", gateway.Approval: "http://127.0.0.1:8083",
		gateway.Fulfilment: "http://127.0.0.1:8084", gateway.Revoker: "http://127.0.0.1:8085", gateway.Query: "http://127.0.0.1:8086",
		gateway.Notifier: "", gateway.Console: "",
	} {
		env := "GRANTLINE_" + strings.ToUpper(string(s)) + "_URL"
		upstreams[s] = f.String(string(s), envOr(env, def), fmt.Sprintf("the %s service's base URL (%s)", s, env))
	}
	f.StringVar(&dataDir, "dev-data-dir", os.Getenv("GRANTLINE_DEV_DATA_DIR"), "serve a development OIDC issuer keyed from this directory (GRANTLINE_DEV_DATA_DIR)")
	f.StringVar(&issuerURL, "dev-issuer-url", envOr("GRANTLINE_DEV_ISSUER_URL", "http://localhost:8080/dev/oidc"), "the development issuer's public URL, as tokens name it (GRANTLINE_DEV_ISSUER_URL)")
	f.StringVar(&examples, "examples", envOr("GRANTLINE_EXAMPLES", "examples"), "directory holding directory.yaml, the development issuer's people (GRANTLINE_EXAMPLES)")
	return cmd
}
