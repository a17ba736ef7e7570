package auth

import (
	"fmt"
	"net/http"
	"strings"
)

// Paths the dev issuer serves, relative to the issuer URL.
const (
	discoveryPath = "/.well-known/openid-configuration"
	jwksPath      = "/jwks"
)

func (d *DevIssuer) discoveryDocument() map[string]any {
	return map[string]any{
		"issuer":                                d.issuer,
		"jwks_uri":                              d.issuer + jwksPath,
		"id_token_signing_alg_values_supported": []string{d.key.Algorithm},
		"response_types_supported":              []string{"code", "id_token"},
		"authorization_endpoint":                d.issuer + authorizePath,
		"token_endpoint":                        d.issuer + tokenPath,
		"grant_types_supported":                 []string{grantAuthorizationCode, GrantTokenExchange},
		"code_challenge_methods_supported":      []string{"S256"},
		"token_endpoint_auth_methods_supported": []string{"none", "client_secret_basic"},
		"subject_types_supported":               []string{"public"},
		"claims_supported":                      []string{"iss", "sub", "aud", "exp", "iat", "name", DefaultGroupsClaim, "act"},
	}
}

// Handler serves the issuer's public metadata. It expects request paths relative to the issuer
// URL's path, that is with the issuer path already stripped:
//
//	GET /.well-known/openid-configuration   discovery document (issuer, jwks_uri, algorithms)
//	GET /jwks                                JWKS holding the public key only
//	GET, POST /authorize                     sign-in: a picker of the directory's people (devlogin.go)
//	POST /token                              the authorization code grant with PKCE (devlogin.go), and
//	                                         token exchange for the clients AllowDelegation allows
//	                                         (devexchange.go)
//
// A missing leading slash is tolerated, so with issuer "http://127.0.0.1:8080/dev/oidc" either
// mux.Handle("/dev/oidc/", http.StripPrefix("/dev/oidc", h)) or
// mux.Handle("/dev/oidc/", http.StripPrefix("/dev/oidc/", h)) works. Other paths get 404 and
// other methods 405. Tokens also come from Mint and MintFromDir, without the endpoints.
func (d *DevIssuer) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+discoveryPath, serveJSON(d.discovery))
	mux.HandleFunc("GET "+jwksPath, serveJSON(d.jwks))
	mux.HandleFunc("GET "+authorizePath, d.authorize)
	mux.HandleFunc("POST "+authorizePath, d.authorize)
	mux.HandleFunc("POST "+tokenPath, d.tokenEndpoint)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/") {
			r = r.Clone(r.Context())
			r.URL.Path = "/" + r.URL.Path
			if r.URL.RawPath != "" {
				r.URL.RawPath = "/" + r.URL.RawPath
			}
		}
		mux.ServeHTTP(w, r)
	})
}

func serveJSON(body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		// The issuer URL changes when dev restarts on another port; cached metadata would point
		// verifiers at the old one.
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(body)
	}
}

// tokenEndpoint serves POST /token for both grants the issuer offers: the authorization code grant of
// a person signing in (token, devlogin.go) and the token exchange of an allowed delegate (exchange,
// devexchange.go).
func (d *DevIssuer) tokenEndpoint(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if err := r.ParseForm(); err != nil {
		tokenError(w, http.StatusBadRequest, "invalid_request", "the body is not a form")
		return
	}
	switch gt := r.PostForm.Get("grant_type"); gt {
	case grantAuthorizationCode:
		d.token(w, r)
	case GrantTokenExchange:
		d.exchange(w, r)
	default:
		tokenError(w, http.StatusBadRequest, "unsupported_grant_type", fmt.Sprintf("grant_type %q is not supported", gt))
	}
}
