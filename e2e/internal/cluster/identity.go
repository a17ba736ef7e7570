package cluster

import (
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/grantline/grantline/pkg/auth"
)

// audience is the audience of the tokens the services accept.
const audience = "grantline"

// identity is the identity provider: the dev OIDC issuer over examples/directory.yaml, served from the
// test process on 127.0.0.1, where the containers fetch its keys.
type identity struct {
	issuer *auth.DevIssuer
	srv    *http.Server
	served chan error
}

func startIdentity(work, examples string) (*identity, error) {
	dir, err := auth.LoadDirectory(filepath.Join(examples, "directory.yaml"))
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	issuer, err := auth.OpenDevIssuer(filepath.Join(work, "oidc"), "http://"+l.Addr().String()+"/oidc", audience, dir)
	if err != nil {
		l.Close()
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/oidc/", http.StripPrefix("/oidc", issuer.Handler()))
	id := &identity{issuer: issuer, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, served: make(chan error, 1)}
	go func() { id.served <- id.srv.Serve(l) }()
	return id, nil
}

// env is how a service finds the issuer: its URL, the audience, and the key set (so no discovery).
func (id *identity) env() map[string]string {
	vc := id.issuer.VerifierConfig()
	return map[string]string{
		"GRANTLINE_OIDC_ISSUER": vc.Issuer, "GRANTLINE_OIDC_AUDIENCE": vc.Audience, "GRANTLINE_OIDC_JWKS_URL": vc.JWKSURL,
	}
}

func (id *identity) close(ctx context.Context) error {
	err := id.srv.Shutdown(ctx)
	if served := <-id.served; !errors.Is(served, http.ErrServerClosed) {
		err = errors.Join(err, served)
	}
	return err
}

// Token mints a bearer token for user of examples/directory.yaml (alice, bob, carol, dave, erin,
// frank), valid for an hour.
func (c *Cluster) Token(user string) (string, error) { return c.id.issuer.Mint(user, time.Hour) }
