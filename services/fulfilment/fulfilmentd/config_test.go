package fulfilmentd_test

import (
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/config"
	"github.com/grantline/grantline/pkg/credential"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/services/fulfilment/fulfilmentd"
)

// TestConfig: what fulfilment adds to the shared configuration (pkg/config tests the rest): the
// credential key (required, checked, never shown), the targets and the grant settings.
func TestConfig(t *testing.T) {
	key, _ := events.GenerateSigner(events.Fulfilment, "fulfilment-1")
	shared := []string{"GRANTLINE_TRUST_FILE=trust.json", "GRANTLINE_SIGNING_KEY=" + string(key.MarshalKeyFile()),
		"GRANTLINE_OIDC_ISSUER=https://id.example", "GRANTLINE_OIDC_AUDIENCE=grantline", "GRANTLINE_CATALOGUE=catalogue.yaml"}
	c := fulfilmentd.Defaults()
	err := config.Parse(&c, append(shared, credential.KeyEnv+"="+credential.GenerateKey(),
		"GRANTLINE_PG_TARGET_URL=postgres://grantline:hunter2@db/payments", "GRANTLINE_PG_ROLES=analytics-read=analytics_read, payments-admin=payments_admin"))
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != ":8084" || c.TaskDue != 4*time.Hour || c.RetryFor != 15*time.Minute || c.Replicas != 1 {
		t.Fatalf("defaults %+v", c)
	}
	if shown := config.LogValue(c).String(); strings.Contains(shown, "hunter2") || strings.Contains(shown, c.CredentialKey) {
		t.Fatalf("a secret shows in %s", shown)
	}

	c = fulfilmentd.Defaults()
	err = config.Parse(&c, append(shared, credential.KeyEnv+"=c2hvcnQ=", "GRANTLINE_PG_ROLES=analytics-read", "GRANTLINE_TASK_DUE=soon"))
	want := `GRANTLINE_PG_ROLES="analytics-read" is malformed: role mapping "analytics-read" is not entitlement=role` + "\n" +
		`GRANTLINE_TASK_DUE="soon" is malformed: unable to parse duration: time: invalid duration "soon"` + "\n" +
		credential.KeyEnv + " must be 32 bytes, got 5"
	if err == nil || err.Error() != want {
		t.Errorf("Parse = %v, want\n%s", err, want)
	}
	c = fulfilmentd.Defaults()
	if err := config.Parse(&c, shared); err == nil || !strings.HasPrefix(err.Error(), credential.KeyEnv+" is required") {
		t.Errorf("Parse without a credential key = %v", err)
	}
}
