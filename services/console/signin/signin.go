// Package signin signs people in to the console with OpenID Connect: the authorization code grant
// with PKCE (S256) and a state, against the configured issuer, whose endpoints come from its
// discovery document. The ID token it returns is verified (issuer, audience, signature, expiry) and
// becomes a server-side session (package session); the browser keeps only the session's ID.
//
// The ID token is also the bearer token the console sends to the services, exactly as the CLI sends
// one: so the client ID is the audience the services accept, and a session ends when its token does.
package signin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/grantline/grantline/pkg/auth"
	"github.com/grantline/grantline/services/console/session"
)

// Paths the flow serves.
const (
	LoginPath    = "/auth/login"
	CallbackPath = "/auth/callback"
	LogoutPath   = "/auth/logout"
)

// loginTTL bounds a sign-in at the identity provider, from the redirect there to the callback.
const loginTTL = 10 * time.Minute

// idpClient reaches the identity provider (discovery, the token endpoint, its keys): a provider that
// hangs fails the sign-in rather than holding the person's request.
var idpClient = &http.Client{Timeout: 10 * time.Second}

// Config is how the console signs people in.
type Config struct {
	// Issuer is the OIDC issuer URL, exactly as its tokens name it.
	Issuer string
	// ClientID is the console's client at the issuer, which is also the audience the services accept.
	ClientID string
	// GroupsClaim names the claim listing the person's groups (default "groups").
	GroupsClaim string
	// JWKSURL is where the issuer's signing keys are; empty means the discovery document's jwks_uri.
	JWKSURL string
	// PublicURL is the console's origin as browsers reach it, such as "http://localhost:8080"; the
	// callback is PublicURL + CallbackPath.
	PublicURL string
	// MaxAge caps a session's life; a session also ends with its token.
	MaxAge time.Duration
}

// Flow is the sign-in flow. It is safe for concurrent use.
type Flow struct {
	cfg      Config
	sessions *session.Store
	cookies  session.Cookies
	log      *slog.Logger
	// keyCtx outlives New: the verifier fetches the issuer's keys with it whenever a token names a
	// key it has not seen.
	keyCtx context.Context

	mu       sync.Mutex
	provider *provider
}

// provider is what the issuer's discovery document says, found on first use.
type provider struct {
	oauth    oauth2.Config
	verifier *oidc.IDTokenVerifier
}

// New returns the flow for cfg, storing sessions in sessions. It does not contact the issuer, which
// may not be serving yet (grantline dev serves it on the console's own origin): discovery happens at
// the first sign-in, and again after a failure. It fails for a configuration that cannot work.
func New(ctx context.Context, cfg Config, sessions *session.Store, cookies session.Cookies, log *slog.Logger) (*Flow, error) {
	var errs []error
	if cfg.Issuer == "" {
		errs = append(errs, errors.New("sign-in: no OIDC issuer"))
	}
	if cfg.ClientID == "" {
		errs = append(errs, errors.New("sign-in: no client ID"))
	}
	if u, err := url.Parse(cfg.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.TrimSuffix(u.Path, "/") != "" {
		errs = append(errs, fmt.Errorf("sign-in: the console's public URL %q is not an http(s) origin", cfg.PublicURL))
	}
	if cfg.MaxAge <= 0 {
		errs = append(errs, fmt.Errorf("sign-in: session lifetime %s is not positive", cfg.MaxAge))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = auth.DefaultGroupsClaim
	}
	cfg.PublicURL = strings.TrimSuffix(cfg.PublicURL, "/")
	return &Flow{cfg: cfg, sessions: sessions, cookies: cookies, log: log, keyCtx: context.WithoutCancel(ctx)}, nil
}

// discover returns the issuer's endpoints and key set, asking the issuer the first time.
func (f *Flow) discover(ctx context.Context) (*provider, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.provider != nil {
		return f.provider, nil
	}
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, idpClient), f.cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("discover the OIDC issuer %s: %w", f.cfg.Issuer, err)
	}
	jwks := f.cfg.JWKSURL
	if jwks == "" {
		var meta struct {
			JWKS string `json:"jwks_uri"`
		}
		if err := p.Claims(&meta); err != nil || meta.JWKS == "" {
			return nil, fmt.Errorf("the OIDC issuer %s publishes no jwks_uri", f.cfg.Issuer)
		}
		jwks = meta.JWKS
	}
	keys := oidc.NewRemoteKeySet(oidc.ClientContext(f.keyCtx, idpClient), jwks)
	f.provider = &provider{
		oauth: oauth2.Config{ClientID: f.cfg.ClientID, Endpoint: p.Endpoint(), RedirectURL: f.cfg.PublicURL + CallbackPath,
			Scopes: []string{oidc.ScopeOpenID, "profile"}},
		verifier: oidc.NewVerifier(f.cfg.Issuer, keys, &oidc.Config{ClientID: f.cfg.ClientID, SupportedSigningAlgs: []string{oidc.RS256, oidc.ES256}}),
	}
	// A public client: PKCE stands where a secret would, so the client ID goes in the body.
	f.provider.oauth.Endpoint.AuthStyle = oauth2.AuthStyleInParams
	return f.provider, nil
}

// Start sends the browser to the identity provider, remembering (server side) the state, the PKCE
// verifier and the page to come back to, which must be a path of the console.
func (f *Flow) Start(w http.ResponseWriter, r *http.Request, returnTo string) error {
	p, err := f.discover(r.Context())
	if err != nil {
		return err
	}
	l := session.Login{State: session.NewID(), Verifier: oauth2.GenerateVerifier(), ReturnTo: LocalPath(returnTo),
		Expires: time.Now().Add(loginTTL)}
	id, err := f.sessions.BeginLogin(r.Context(), l)
	if err != nil {
		return err
	}
	f.cookies.Set(w, f.cookies.LoginName(), id, l.Expires)
	http.Redirect(w, r, p.oauth.AuthCodeURL(l.State, oauth2.S256ChallengeOption(l.Verifier)), http.StatusSeeOther)
	return nil
}

// LocalPath is returnTo if it is a path of this origin, else "/": a sign-in never sends the person
// elsewhere ("//evil.example" and "https://…" are not local paths).
func LocalPath(returnTo string) string {
	u, err := url.Parse(returnTo)
	if err != nil || u.Scheme != "" || u.Host != "" || !strings.HasPrefix(u.Path, "/") || strings.HasPrefix(returnTo, "//") || strings.Contains(returnTo, `\`) {
		return "/"
	}
	return u.RequestURI()
}

// ErrRefused is wrapped by Finish's errors that the person should see: the identity provider said no,
// or the callback does not belong to a sign-in started here.
var ErrRefused = errors.New("sign-in refused")

// Finish handles the identity provider's callback: it checks the state against the sign-in started
// in this browser, redeems the code with its verifier, verifies the ID token, and starts a session.
// It returns the page to show next. Every failure is an error; ErrRefused ones are the person's to see.
func (f *Flow) Finish(w http.ResponseWriter, r *http.Request) (string, error) {
	loginID := f.cookies.Value(r, f.cookies.LoginName())
	f.cookies.Clear(w, f.cookies.LoginName())
	l, err := f.sessions.TakeLogin(r.Context(), loginID)
	if errors.Is(err, session.ErrNone) {
		return "", fmt.Errorf("%w: this sign-in was not started in this browser, or took too long", ErrRefused)
	}
	if err != nil {
		return "", err
	}
	q := r.URL.Query()
	if q.Get("state") != l.State {
		return "", fmt.Errorf("%w: the answer does not belong to this sign-in (state)", ErrRefused)
	}
	if e := q.Get("error"); e != "" {
		return "", fmt.Errorf("%w: the identity provider said %s: %s", ErrRefused, e, q.Get("error_description"))
	}
	p, err := f.discover(r.Context())
	if err != nil {
		return "", err
	}
	tok, err := p.oauth.Exchange(oidc.ClientContext(r.Context(), idpClient), q.Get("code"), oauth2.VerifierOption(l.Verifier))
	if err != nil {
		return "", fmt.Errorf("%w: the identity provider did not redeem the code: %v", ErrRefused, err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return "", fmt.Errorf("%w: the identity provider returned no ID token", ErrRefused)
	}
	s, err := f.sessionOf(r.Context(), p, raw)
	if err != nil {
		return "", err
	}
	id, err := f.sessions.Create(r.Context(), s)
	if err != nil {
		return "", err
	}
	f.cookies.Set(w, f.cookies.SessionName(), id, s.Expires)
	f.log.Info("signed in", "subject", s.Subject, "session_ends", s.Expires.UTC().Format(time.RFC3339))
	return l.ReturnTo, nil
}

// sessionOf verifies an ID token and reads the session it opens.
func (f *Flow) sessionOf(ctx context.Context, p *provider, raw string) (session.Session, error) {
	idTok, err := p.verifier.Verify(ctx, raw)
	if err != nil {
		return session.Session{}, fmt.Errorf("%w: the ID token does not verify: %v", ErrRefused, err)
	}
	var claims map[string]any
	if err := idTok.Claims(&claims); err != nil {
		return session.Session{}, fmt.Errorf("%w: unreadable ID token claims: %v", ErrRefused, err)
	}
	sub, err := auth.NormalizeSubject(idTok.Subject)
	if err != nil {
		return session.Session{}, fmt.Errorf("%w: the ID token's subject: %v", ErrRefused, err)
	}
	s := session.Session{Subject: sub, Token: raw, Expires: idTok.Expiry}
	s.Name, _ = claims["name"].(string)
	if groups, ok := claims[f.cfg.GroupsClaim].([]any); ok {
		for _, g := range groups {
			if name, ok := g.(string); ok {
				s.Groups = append(s.Groups, name)
			}
		}
	}
	if limit := time.Now().Add(f.cfg.MaxAge); limit.Before(s.Expires) {
		s.Expires = limit
	}
	return s, nil
}

// Current is the session the request's cookie names, and its ID; false when there is none, it ended,
// or the store cannot be read (which is logged).
func (f *Flow) Current(r *http.Request) (session.Session, string, bool) {
	id := f.cookies.Value(r, f.cookies.SessionName())
	if id == "" {
		return session.Session{}, "", false
	}
	s, err := f.sessions.Get(r.Context(), id)
	if err != nil {
		if !errors.Is(err, session.ErrNone) {
			f.log.Error("read session", "error", err.Error())
		}
		return session.Session{}, "", false
	}
	return s, id, true
}

// SignOut ends the request's session, if any, and clears its cookie.
func (f *Flow) SignOut(w http.ResponseWriter, r *http.Request) error {
	f.cookies.Clear(w, f.cookies.SessionName())
	if id := f.cookies.Value(r, f.cookies.SessionName()); id != "" {
		return f.sessions.Delete(r.Context(), id)
	}
	return nil
}

// Ready reports whether the issuer's discovery document can be read, for /readyz.
func (f *Flow) Ready(ctx context.Context) error {
	_, err := f.discover(ctx)
	return err
}
