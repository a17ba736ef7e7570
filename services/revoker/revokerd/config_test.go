package revokerd_test

import (
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/config"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/services/revoker/revokerd"
)

// TestConfig: what the revoker adds to the shared configuration (pkg/config tests the rest): its
// retry settings, and a credential key that is optional but, when set, must be one.
func TestConfig(t *testing.T) {
	key, _ := events.GenerateSigner(events.Revoker, "revoker-1")
	shared := []string{"GRANTLINE_TRUST_FILE=trust.json", "GRANTLINE_SIGNING_KEY=" + string(key.MarshalKeyFile()),
		"GRANTLINE_OIDC_ISSUER=https://id.example", "GRANTLINE_OIDC_AUDIENCE=grantline", "GRANTLINE_CATALOGUE=catalogue.yaml"}
	c := revokerd.Defaults()
	if err := config.Parse(&c, shared); err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != ":8085" || strings.Join(c.AdminGroups, ",") != "security" || strings.Join(c.LockAdminGroups, ",") != "security" || c.RetryBudget != 5 || c.ReportEvery != 5*time.Minute ||
		c.BackoffCap != time.Minute || c.CredentialKey != "" || c.SLO != 30*time.Second || c.AttemptTimeout != 10*time.Second {
		t.Fatalf("defaults %+v", c)
	}
	c = revokerd.Defaults()
	err := config.Parse(&c, append(shared, "GRANTLINE_REVOKE_BACKOFF_CAP=-1s", "GRANTLINE_REVOKE_RETRY_BUDGET=none",
		"GRANTLINE_CREDENTIAL_KEY=c2hvcnQ="))
	want := `GRANTLINE_REVOKE_RETRY_BUDGET="none" is malformed: strconv.ParseInt: parsing "none": invalid syntax` + "\n" +
		"GRANTLINE_REVOKE_BACKOFF_CAP must be above zero, not -1s\nGRANTLINE_CREDENTIAL_KEY must be 32 bytes, got 5"
	if err == nil || err.Error() != want {
		t.Errorf("Parse = %v, want\n%s", err, want)
	}
	c = revokerd.Defaults()
	err = config.Parse(&c, append(shared, "GRANTLINE_REVOKE_ATTEMPT_TIMEOUT=1m"))
	if err == nil || !strings.Contains(err.Error(), "must be shorter than GRANTLINE_REVOKE_SLO") {
		t.Errorf("an attempt timeout past the SLO: %v", err)
	}
}
