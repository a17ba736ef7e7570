package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"
)

// The dev issuer's sign-in endpoints, relative to the issuer URL: the authorization code grant with
// PKCE (RFC 6749 §4.1, RFC 7636), which is how a browser application such as the console signs
// people in. They exist for `grantline dev` only: the "sign-in" is a list of the directory's people
// to pick from, with no password.
const (
	authorizePath = "/authorize"
	// grantAuthorizationCode is the grant_type of a token request redeeming a code (POST /token is
	// shared with token exchange: tokenEndpoint).
	grantAuthorizationCode = "authorization_code"
)

// Lifetimes of what the sign-in endpoints hand out.
const (
	// devCodeTTL bounds the time between picking a person and the client's token request, which is
	// one redirect away.
	devCodeTTL = time.Minute
	// devLoginTokenTTL is the life of a token from the token endpoint; a console session ends with it.
	devLoginTokenTTL = time.Hour
)

// devLogin is the sign-in endpoints' state: the redirect URIs clients may name and the codes handed
// out and not yet redeemed. Codes live in memory: dev runs one process, and a code lives a minute.
type devLogin struct {
	mu        sync.Mutex
	redirects map[string]bool
	codes     map[string]pendingCode
	now       func() time.Time
}

// pendingCode is what an authorization code stands for until it is redeemed, once.
type pendingCode struct {
	user, clientID, redirectURI, challenge string
	expires                                time.Time
}

func newDevLogin() *devLogin {
	return &devLogin{redirects: map[string]bool{}, codes: map[string]pendingCode{}, now: time.Now}
}

// AllowRedirect lets the authorization endpoint send codes to uri, compared exactly (RFC 9700
// §4.1.3): an application registers its callback, such as "http://localhost:8080/auth/callback",
// before people sign in through it. It returns an error for a URI that is not absolute http(s) or
// that carries a fragment.
func (d *DevIssuer) AllowRedirect(uri string) error {
	if err := checkHTTPURL("redirect URI", uri); err != nil {
		return err
	}
	if strings.Contains(uri, "#") {
		return fmt.Errorf("redirect URI %q must not carry a fragment", uri)
	}
	d.login.mu.Lock()
	defer d.login.mu.Unlock()
	d.login.redirects[uri] = true
	return nil
}

// authorization is a validated authorization request: the parameters the picker carries from the
// GET that shows it to the POST that picks someone.
type authorization struct {
	ClientID, RedirectURI, State, Challenge string
}

// pkceValue is the shape of a code verifier (RFC 7636 §4.1) and of an S256 challenge: 43 to 128
// unreserved characters.
var pkceValue = regexp.MustCompile(`^[A-Za-z0-9._~-]{43,128}$`)

// authorizationError is a refused authorization request. With a redirect it goes back to the client
// as error= (RFC 6749 §4.1.2.1); without one (the redirect URI itself is wrong) it is shown to the
// person, because sending it to an unregistered URI is what an attacker would want.
type authorizationError struct {
	code, description string
	redirect          bool
}

func (e *authorizationError) Error() string { return e.code + ": " + e.description }

// parseAuthorization checks an authorization request's parameters, from the query (GET) or the form
// (POST).
func (d *DevIssuer) parseAuthorization(v url.Values) (authorization, *authorizationError) {
	a := authorization{ClientID: v.Get("client_id"), RedirectURI: v.Get("redirect_uri"), State: v.Get("state"),
		Challenge: v.Get("code_challenge")}
	d.login.mu.Lock()
	registered := d.login.redirects[a.RedirectURI]
	d.login.mu.Unlock()
	switch {
	case a.ClientID != d.audience:
		return a, &authorizationError{code: "unauthorized_client", description: fmt.Sprintf("client_id must be %q, the audience of this issuer's tokens", d.audience)}
	case !registered:
		return a, &authorizationError{code: "invalid_request", description: fmt.Sprintf("redirect_uri %q is not registered with the dev issuer", a.RedirectURI)}
	case v.Get("response_type") != "code":
		return a, &authorizationError{code: "unsupported_response_type", description: "response_type must be code", redirect: true}
	case v.Get("code_challenge_method") != "S256":
		return a, &authorizationError{code: "invalid_request", description: "PKCE is required: code_challenge_method must be S256", redirect: true}
	case !pkceValue.MatchString(a.Challenge):
		return a, &authorizationError{code: "invalid_request", description: "code_challenge must be 43 to 128 characters of base64url", redirect: true}
	}
	return a, nil
}

// pickerPage lists the directory's people; each button signs in as one of them. It needs no script
// and no style of its own, which keeps its Content-Security-Policy to nothing but the form.
var pickerPage = template.Must(template.New("picker").Parse(`<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in - Grantline development identity provider</title></head>
<body>
<main>
<h1>Sign in</h1>
<p>Grantline development identity provider. Pick who you are: there is no password, because this
issuer exists for <code>grantline dev</code> only.</p>
<form method="post" action="authorize">
<input type="hidden" name="response_type" value="code">
<input type="hidden" name="client_id" value="{{.ClientID}}">
<input type="hidden" name="redirect_uri" value="{{.RedirectURI}}">
<input type="hidden" name="state" value="{{.State}}">
<input type="hidden" name="code_challenge" value="{{.Challenge}}">
<input type="hidden" name="code_challenge_method" value="S256">
<ul>
{{range .Users}}<li><button type="submit" name="user" value="{{.ID}}">{{.Name}} ({{.ID}})</button>
{{with .Groups}}groups: {{range $i, $g := .}}{{if $i}}, {{end}}{{$g}}{{end}}{{else}}no groups{{end}}</li>
{{end}}</ul>
</form>
</main>
</body>
</html>
`))

// authorize serves the authorization endpoint: GET shows the picker, POST (the picker's form) hands
// the chosen person's code to the client's redirect URI.
func (d *DevIssuer) authorize(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "unreadable authorization request", http.StatusBadRequest)
		return
	}
	params := r.Form
	if r.Method == http.MethodPost {
		params = r.PostForm
	}
	a, refused := d.parseAuthorization(params)
	if refused != nil {
		refuseAuthorization(w, r, a, refused)
		return
	}
	// Only the redirect's origin may receive the picker's form after it posts (CSP form-action also
	// governs the redirect that follows a submission).
	target, _ := url.Parse(a.RedirectURI)
	w.Header().Set("Content-Security-Policy", "default-src 'none'; form-action 'self' "+target.Scheme+"://"+target.Host+"; frame-ancestors 'none'; base-uri 'none'")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	if r.Method == http.MethodGet {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = pickerPage.Execute(w, struct {
			authorization
			Users []User
		}{a, d.directory.Users()})
		return
	}
	u, ok := d.directory.User(params.Get("user"))
	if !ok {
		refuseAuthorization(w, r, a, &authorizationError{code: "access_denied", description: "no such person in the directory", redirect: true})
		return
	}
	code := rand.Text()
	d.login.mu.Lock()
	now := d.login.now()
	for c, p := range d.login.codes {
		if now.After(p.expires) {
			delete(d.login.codes, c)
		}
	}
	d.login.codes[code] = pendingCode{user: u.ID, clientID: a.ClientID, redirectURI: a.RedirectURI, challenge: a.Challenge, expires: now.Add(devCodeTTL)}
	d.login.mu.Unlock()
	http.Redirect(w, r, withQuery(a.RedirectURI, url.Values{"code": {code}, "state": {a.State}}), http.StatusSeeOther)
}

func refuseAuthorization(w http.ResponseWriter, r *http.Request, a authorization, e *authorizationError) {
	if !e.redirect {
		http.Error(w, "sign-in refused: "+e.Error(), http.StatusBadRequest)
		return
	}
	http.Redirect(w, r, withQuery(a.RedirectURI, url.Values{"error": {e.code}, "error_description": {e.description}, "state": {a.State}}), http.StatusSeeOther)
}

// withQuery adds v to uri's query, keeping what the registered URI already carries.
func withQuery(uri string, v url.Values) string {
	u, _ := url.Parse(uri) // registered URIs were parsed by AllowRedirect
	q := u.Query()
	for k, vals := range v {
		if len(vals) == 1 && vals[0] == "" {
			continue
		}
		q[k] = vals
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// refusal is the token endpoint's refusal of a code (RFC 6749 §5.2), written by tokenError.
type refusal struct {
	status      int
	code, about string
}

// token serves the token endpoint for the authorization code grant: the code is redeemed once, for
// the client and redirect URI it was issued to, and only with the verifier whose S256 hash is the
// challenge the authorization request carried. The answer carries the person's token as both the
// ID token and the access token, since the services accept the ID token as the bearer.
func (d *DevIssuer) token(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	user, refused := d.redeem(r)
	if refused != nil {
		tokenError(w, refused.status, refused.code, refused.about)
		return
	}
	tok, err := d.mint(d.login.now(), user, devLoginTokenTTL)
	if err != nil {
		http.Error(w, "cannot mint a token", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "id_token": tok, "token_type": "Bearer",
		"expires_in": int(devLoginTokenTTL.Seconds())})
}

// redeem checks a token request and consumes its code, returning the person it was issued for.
func (d *DevIssuer) redeem(r *http.Request) (string, *refusal) {
	if err := r.ParseForm(); err != nil {
		return "", &refusal{http.StatusBadRequest, "invalid_request", "the body must be application/x-www-form-urlencoded"}
	}
	f := r.PostForm
	if gt := f.Get("grant_type"); gt != grantAuthorizationCode {
		return "", &refusal{http.StatusBadRequest, "unsupported_grant_type", fmt.Sprintf("grant_type %q is not supported", gt)}
	}
	clientID := f.Get("client_id")
	if id, _, ok := r.BasicAuth(); ok {
		clientID = id
	}
	if clientID != d.audience {
		return "", &refusal{http.StatusUnauthorized, "invalid_client", "unknown client"}
	}
	verifier := f.Get("code_verifier")
	if !pkceValue.MatchString(verifier) {
		return "", &refusal{http.StatusBadRequest, "invalid_request", "code_verifier must be 43 to 128 unreserved characters"}
	}
	d.login.mu.Lock()
	p, ok := d.login.codes[f.Get("code")]
	// Spent on the first attempt, right or wrong: a code that was guessed at is no longer worth having.
	delete(d.login.codes, f.Get("code"))
	now := d.login.now()
	d.login.mu.Unlock()
	sum := sha256.Sum256([]byte(verifier))
	challenge := base64.RawURLEncoding.EncodeToString(sum[:])
	switch {
	case !ok:
		return "", &refusal{http.StatusBadRequest, "invalid_grant", "unknown or already redeemed code"}
	case now.After(p.expires):
		return "", &refusal{http.StatusBadRequest, "invalid_grant", "the code expired"}
	case p.clientID != clientID || p.redirectURI != f.Get("redirect_uri"):
		return "", &refusal{http.StatusBadRequest, "invalid_grant", "the code was issued to another client or redirect URI"}
	case subtle.ConstantTimeCompare([]byte(challenge), []byte(p.challenge)) != 1:
		return "", &refusal{http.StatusBadRequest, "invalid_grant", "the code_verifier does not match the code_challenge"}
	}
	return p.user, nil
}
