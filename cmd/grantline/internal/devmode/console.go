package devmode

import (
	"net"
	"path/filepath"

	"github.com/grantline/grantline/services/console/signin"
)

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

// consoleVariables prepares the console's own variables: its session key (created on first use beside
// the signing keys), its callback registered with the dev issuer, its public URL, and the one origin as
// every service's API, which it calls over HTTP like any client. On plain http on the loopback
// interface its cookies are not Secure (session.CookiesFor).
func (e *Env) consoleVariables() (map[string]string, error) {
	key := filepath.Join(e.cfg.DataDir, "keys", "console-session.key")
	if _, err := credentialKey(key); err != nil {
		return nil, err
	}
	if err := e.issuer.AllowRedirect(e.ConsoleURL() + signin.CallbackPath); err != nil {
		return nil, err
	}
	return map[string]string{"GRANTLINE_CONSOLE_PUBLIC_URL": e.ConsoleURL(), "GRANTLINE_API_URL": "http://" + e.HTTPAddr(),
		"GRANTLINE_CONSOLE_SESSION_KEY_FILE": key}, nil
}
