package revokerd_test

import (
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/services/revoker/revokerd"
)

func TestConfigFromEnv(t *testing.T) {
	vars := map[string]string{
		"GRANTLINE_CATALOGUE": "catalogue.yaml", "GRANTLINE_TRUST_FILE": "trust.json",
		"GRANTLINE_OIDC_ISSUER": "https://idp.example", "GRANTLINE_OIDC_AUDIENCE": "grantline",
	}
	c, err := revokerd.ConfigFromEnv(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != ":8085" || c.AdminGroups[0] != "security" || c.RetryBudget != 5 || c.ReportEvery != 5*time.Minute ||
		c.BackoffCap != time.Minute || c.CredentialKey != nil {
		t.Fatalf("config %+v", c)
	}
	vars["GRANTLINE_REVOKE_BACKOFF_CAP"] = "-1s"
	vars["GRANTLINE_REVOKE_RETRY_BUDGET"] = "none"
	_, err = revokerd.ConfigFromEnv(func(k string) string { return vars[k] })
	for _, want := range []string{"GRANTLINE_REVOKE_BACKOFF_CAP", "GRANTLINE_REVOKE_RETRY_BUDGET"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not name %s: %v", want, err)
		}
	}
}
