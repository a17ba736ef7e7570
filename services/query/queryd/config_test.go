package queryd_test

import (
	"strings"
	"testing"

	"github.com/grantline/grantline/pkg/config"
	"github.com/grantline/grantline/services/query/queryd"
)

// TestConfig: what the read side adds to the shared configuration (pkg/config tests the rest): no
// signing key, its database, its schema (which must be a schema name) and its auditor groups.
func TestConfig(t *testing.T) {
	shared := []string{"GRANTLINE_TRUST_FILE=trust.json", "GRANTLINE_OIDC_ISSUER=https://id.example", "GRANTLINE_OIDC_AUDIENCE=grantline"}
	c := queryd.Defaults()
	if err := config.Parse(&c, append(shared, "GRANTLINE_DATABASE_URL=postgres://query:secret@db/grantline", "GRANTLINE_CATALOGUE=catalogue.yaml")); err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != ":8086" || c.Schema != "readside" || strings.Join(c.AuditorGroups, ",") != "auditors,security" {
		t.Fatalf("defaults %+v", c)
	}
	c = queryd.Defaults()
	err := config.Parse(&c, append(shared, "GRANTLINE_QUERY_SCHEMA=Read-Side", "GRANTLINE_AUDITOR_GROUPS= auditors , compliance,"))
	want := "GRANTLINE_DATABASE_URL is required\nGRANTLINE_CATALOGUE is required\n" +
		`GRANTLINE_QUERY_SCHEMA "Read-Side" is not a valid schema name (lower-case letters, digits, underscores)`
	if err == nil || err.Error() != want {
		t.Errorf("Parse = %v, want\n%s", err, want)
	}
	if strings.Join(c.AuditorGroups, ",") != "auditors,compliance" {
		t.Errorf("auditor groups %v", c.AuditorGroups)
	}
}
