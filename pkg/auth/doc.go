// Package auth turns an HTTP request into an Identity: it verifies OIDC bearer tokens against the
// issuer's published keys (coreos/go-oidc) and normalises the subject so that one person has one
// spelling. It also provides DevIssuer, a file-backed token issuer for `grantline dev` that serves
// discovery and JWKS over HTTP and lets a separate CLI process mint tokens offline.
//
// DevIssuer is for development and demos only: anyone who can read its data directory can mint
// tokens for any user in the directory.
package auth
