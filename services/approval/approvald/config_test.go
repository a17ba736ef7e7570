package approvald_test

import (
	"strings"
	"testing"

	"github.com/grantline/grantline/pkg/config"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/services/approval/approvald"
)

// TestConfig: what approval adds to the shared configuration (pkg/config tests the rest): its
// database, required, whose password never shows, and the catalogue, required.
func TestConfig(t *testing.T) {
	key, _ := events.GenerateSigner(events.Approval, "approval-1")
	shared := []string{"GRANTLINE_TRUST_FILE=trust.json", "GRANTLINE_SIGNING_KEY=" + string(key.MarshalKeyFile()),
		"GRANTLINE_OIDC_ISSUER=https://id.example", "GRANTLINE_OIDC_AUDIENCE=grantline"}
	c := approvald.Defaults()
	if err := config.Parse(&c, shared); err == nil || err.Error() != "GRANTLINE_DATABASE_URL is required\nGRANTLINE_CATALOGUE is required" {
		t.Fatalf("Parse without a database or a catalogue = %v", err)
	}
	c = approvald.Defaults()
	if err := config.Parse(&c, append(shared, "GRANTLINE_DATABASE_URL=postgres://approval:s3cret@db:5432/approval", "GRANTLINE_CATALOGUE=catalogue.yaml")); err != nil {
		t.Fatal(err)
	}
	if shown := config.LogValue(c).String(); c.HTTPAddr != ":8083" || strings.Contains(shown, "s3cret") || !strings.Contains(shown, "approval:xxxxx@db") {
		t.Fatalf("address %s; logged as %s", c.HTTPAddr, shown)
	}
}
