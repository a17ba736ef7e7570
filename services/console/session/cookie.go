package session

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"
)

// Cookies writes and reads the console's two cookies: the session's ID, and the ID of a sign-in in
// progress. Both are HttpOnly (no script reads them), SameSite=Lax (sent when a person follows a link
// to the console, as the identity provider's redirect back is, and never with a cross-site POST), and
// Secure with the __Host- prefix (https only, this host only, path /) unless Secure is off.
//
// Secure is off only for a console served over plain http on the loopback interface (grantline dev on
// http://localhost:8080), where browsers would not send a Secure cookie back to every client.
type Cookies struct {
	Secure bool
}

// SessionName is the session cookie's name.
func (c Cookies) SessionName() string { return c.name("grantline-session") }

// LoginName is the sign-in cookie's name.
func (c Cookies) LoginName() string { return c.name("grantline-login") }

func (c Cookies) name(base string) string {
	if c.Secure {
		return "__Host-" + base
	}
	return base
}

// Set sets cookie name to value until expires.
func (c Cookies) Set(w http.ResponseWriter, name, value string, expires time.Time) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", Expires: expires, MaxAge: max(int(time.Until(expires).Seconds()), 1),
		HttpOnly: true, Secure: c.Secure, SameSite: http.SameSiteLaxMode})
}

// Clear tells the browser to forget cookie name.
func (c Cookies) Clear(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: c.Secure, SameSite: http.SameSiteLaxMode})
}

// Value is cookie name's value in r, or "".
func (c Cookies) Value(r *http.Request, name string) string {
	ck, err := r.Cookie(name)
	if err != nil {
		return ""
	}
	return ck.Value
}

// CookiesFor returns the cookie policy of a console served at publicURL: Secure over https; over
// plain http only on the loopback interface (grantline dev), where Secure is off because browsers
// would not send such a cookie back over http. It refuses plain http anywhere else, which would send
// session cookies in clear over a network.
func CookiesFor(publicURL string) (Cookies, error) {
	u, err := url.Parse(publicURL)
	if err != nil || u.Host == "" {
		return Cookies{}, fmt.Errorf("the console's public URL %q is not an absolute URL", publicURL)
	}
	switch u.Scheme {
	case "https":
		return Cookies{Secure: true}, nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			return Cookies{Secure: false}, nil
		}
		return Cookies{}, fmt.Errorf("the console's public URL %q is plain http on a network: use https (plain http is for localhost only)", publicURL)
	}
	return Cookies{}, fmt.Errorf("the console's public URL %q is not http(s)", publicURL)
}
