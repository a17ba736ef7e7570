package web

import (
	"errors"
	"net/http"

	"github.com/grantline/grantline/services/console/signin"
)

// login sends the browser to the identity provider; ?return= is the console page to come back to.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if err := c.cfg.SignIn.Start(w, r, r.URL.Query().Get("return")); err != nil {
		c.cfg.Log.Error("start sign-in", "error", err.Error())
		c.renderError(w, r, http.StatusBadGateway, "Sign-in is unavailable", "The identity provider could not be reached. Try again shortly.")
	}
}

// callback is where the identity provider sends the browser back.
func (c *Console) callback(w http.ResponseWriter, r *http.Request) {
	next, err := c.cfg.SignIn.Finish(w, r)
	switch {
	case errors.Is(err, signin.ErrRefused):
		c.cfg.Log.Warn("sign-in refused", "error", err.Error())
		c.renderError(w, r, http.StatusBadRequest, "Sign-in failed", err.Error())
	case err != nil:
		c.cfg.Log.Error("finish sign-in", "error", err.Error())
		c.renderError(w, r, http.StatusBadGateway, "Sign-in is unavailable", "The sign-in could not be completed. Try again shortly.")
	default:
		http.Redirect(w, r, next, http.StatusSeeOther)
	}
}

// logout ends the session (a POST, so another site cannot sign a person out).
func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	if err := c.cfg.SignIn.SignOut(w, r); err != nil {
		c.cfg.Log.Error("sign out", "error", err.Error())
	}
	http.Redirect(w, r, "/?notice=signed-out", http.StatusSeeOther)
}
