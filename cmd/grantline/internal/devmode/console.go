package devmode

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/services/console/apiclient"
	"github.com/grantline/grantline/services/console/consoled"
)

// consoleSessionTTL is how long a console session lasts in dev; the dev issuer's tokens last an hour,
// and a session ends with its token anyway.
const consoleSessionTTL = 8 * time.Hour

// ConsoleURL is where people open the console: the HTTP origin under the host name the configuration
// gives (localhost by default), at the bound port. Sign-in comes back to this origin only, so the
// console must be opened at this address (http://localhost:8080/, not http://127.0.0.1:8080/).
func (e *Env) ConsoleURL() string {
	host, _, err := net.SplitHostPort(e.cfg.HTTPAddr)
	if err != nil || host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	_, port, _ := net.SplitHostPort(e.HTTPAddr())
	return "http://" + net.JoinHostPort(host, port)
}

// startConsole serves the web console at / of the one origin, beside the services' APIs that it calls
// over HTTP like any client, connected to NATS as its own user for its session bucket only. Being on
// plain http on the loopback interface, its cookies are not Secure (session.CookiesFor).
func (e *Env) startConsole(ctx context.Context, d demo, mux *http.ServeMux, log *slog.Logger) error {
	_, js, err := e.connect(brokeraccess.Console)
	if err != nil {
		return err
	}
	key, err := credentialKey(filepath.Join(e.cfg.DataDir, "keys", "console-session.key"))
	if err != nil {
		return err
	}
	if err := e.issuer.AllowRedirect(e.ConsoleURL() + "/auth/callback"); err != nil {
		return err
	}
	c, err := consoled.Deps{JS: js, Catalogue: d.catalogue, API: apiclient.Config{BaseURL: "http://" + e.HTTPAddr()},
		PublicURL: e.ConsoleURL(), Issuer: e.issuer.VerifierConfig().Issuer, ClientID: Audience,
		SessionKey: key, SessionTTL: consoleSessionTTL, Replicas: 1}.Build(ctx, log)
	if err != nil {
		return err
	}
	e.console = c
	mux.Handle("/", c.Handler)
	e.health.SetCheck("console-oidc", c.Ready)
	return nil
}
