package postgres

import (
	"context"
	"strings"
	"testing"

	"github.com/grantline/grantline/pkg/connector"
	"github.com/grantline/grantline/pkg/events"
)

// TestHoldingsListWhatLooksLikeGrantlineAccess: the inventory holds the live grants of a person and of
// a service account with their grant IDs, a grantline_* role nobody's grant explains (without one),
// and neither a revoked grant nor a membership a DBA gave by hand. Other tests of the package share
// the server's roles, so only this test's names are looked at.
func TestHoldingsListWhatLooksLikeGrantlineAccess(t *testing.T) {
	c, pool := target(t)
	ctx := context.Background()
	who := person(t)
	live := grantFor(events.RequestSubject{Kind: events.SubjectHuman, ID: who}, "analytics-read")
	gone := grantFor(events.RequestSubject{Kind: events.SubjectHuman, ID: who}, "payments-admin")
	login := grantFor(events.RequestSubject{Kind: events.SubjectServiceAccount, ID: "svc-" + strings.ToLower(events.NewID()[20:]), Owner: "payments-owners"}, "reporting-db-credential")
	secret, err := connector.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	login.Secret = secret
	for _, g := range []connector.Grant{live, gone, login} {
		if _, err := c.Grant(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Revoke(ctx, gone); err != nil {
		t.Fatal(err)
	}
	stray := "grantline_hotfix_" + strings.ToLower(events.NewID()[20:])
	dba := person(t)
	for _, sql := range []string{
		"CREATE ROLE " + ident(stray) + " NOLOGIN IN ROLE payments_admin",
		"GRANT " + ident(stray) + " TO " + ident(who),
		"CREATE ROLE " + ident(dba) + " LOGIN IN ROLE payments_admin",
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}

	holdings, err := c.Holdings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byRef := map[string]connector.Holding{}
	for _, h := range holdings {
		byRef[h.Ref] = h
	}
	want := []struct {
		name    string
		ref     string
		grantID string
		detail  map[string]string
	}{
		{"a person's live grant", "role " + GrantRole(live.ID), live.ID,
			map[string]string{"grant_role": GrantRole(live.ID), "role": "analytics_read", "member": who}},
		{"a service account's live login", "role " + LoginRole(login.Subject.ID, login.ID), login.ID,
			map[string]string{"login_role": LoginRole(login.Subject.ID, login.ID), "role": "reporting_read", "can_login": "true"}},
		{"a grantline_* role no grant explains", "role " + stray, "",
			map[string]string{"grant_role": stray, "role": "payments_admin", "member": who}},
	}
	for _, w := range want {
		h, ok := byRef[w.ref]
		if !ok {
			t.Errorf("%s: %s is not listed", w.name, w.ref)
			continue
		}
		if h.GrantID != w.grantID || !h.Observed.Present {
			t.Errorf("%s: grant ID %q present %v, want %q present", w.name, h.GrantID, h.Observed.Present, w.grantID)
		}
		for k, v := range w.detail {
			if h.Observed.Detail[k] != v {
				t.Errorf("%s: detail %s = %q, want %q", w.name, k, h.Observed.Detail[k], v)
			}
		}
	}
	for _, absent := range []string{"role " + GrantRole(gone.ID), "role " + dba, "role payments_admin"} {
		if _, ok := byRef[absent]; ok {
			t.Errorf("%s is listed", absent)
		}
	}

	// A grant role a DBA emptied is still listed, as not giving access.
	if _, err := pool.Exec(ctx, "REVOKE "+ident(GrantRole(live.ID))+" FROM "+ident(who)); err != nil {
		t.Fatal(err)
	}
	if holdings, err = c.Holdings(ctx); err != nil {
		t.Fatal(err)
	}
	for _, h := range holdings {
		if h.GrantID == live.ID && h.Observed.Present {
			t.Fatalf("a grant role without members is listed as present: %+v", h)
		}
	}
}
