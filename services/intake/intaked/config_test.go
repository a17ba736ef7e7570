package intaked_test

import (
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/config"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/services/intake/intaked"
)

// TestConfig: what intake adds to the shared configuration (pkg/config tests the rest).
func TestConfig(t *testing.T) {
	key, _ := events.GenerateSigner(events.Intake, "intake-1")
	shared := []string{"GRANTLINE_TRUST_FILE=trust.json", "GRANTLINE_SIGNING_KEY=" + string(key.MarshalKeyFile()),
		"GRANTLINE_OIDC_ISSUER=https://id.example", "GRANTLINE_OIDC_AUDIENCE=grantline"}
	c := intaked.Defaults()
	if err := config.Parse(&c, append(shared, "GRANTLINE_CATALOGUE=catalogue.yaml")); err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != ":8081" || c.Replicas != 1 || c.Integrations != "" || strings.Join(c.ReaderGroups, ",") != "auditors,security" ||
		c.SubmitBurst != 30 || c.SubmitEvery != 2*time.Second || c.IntegrationSubmitBurst != 500 || c.IntegrationSubmitEvery != 20*time.Millisecond {
		t.Fatalf("defaults %+v", c)
	}
	c = intaked.Defaults()
	err := config.Parse(&c, append(shared, "GRANTLINE_REPLICAS=0", "GRANTLINE_READER_GROUPS=compliance, auditors"))
	if err == nil || err.Error() != "GRANTLINE_CATALOGUE is required\nGRANTLINE_REPLICAS must be above zero, not 0" {
		t.Errorf("Parse = %v, want the catalogue and the replicas named", err)
	}
	if strings.Join(c.ReaderGroups, ",") != "compliance,auditors" {
		t.Errorf("reader groups %v", c.ReaderGroups)
	}
}
