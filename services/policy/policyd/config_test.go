package policyd

import (
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/config"
	"github.com/grantline/grantline/pkg/events"
)

// TestConfig: what policy adds to the shared configuration (pkg/config tests the rest): its bundle and
// how it evaluates, and no OIDC, since it has no API.
func TestConfig(t *testing.T) {
	key, _ := events.GenerateSigner(events.Policy, "policy-7")
	shared := []string{"GRANTLINE_TRUST_FILE=trust.json", "GRANTLINE_SIGNING_KEY=" + string(key.MarshalKeyFile())}
	c := Defaults()
	if err := config.Parse(&c, append(shared, "GRANTLINE_CATALOGUE=catalogue.yaml", "GRANTLINE_POLICY_DIR=policies")); err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != ":8082" || c.EvalTimeout != 2*time.Second || c.MaxDeliveries != 5 || c.StateReplicas != 1 {
		t.Fatalf("defaults %+v", c)
	}
	c = Defaults()
	err := config.Parse(&c, append(shared, "GRANTLINE_POLICY_EVAL_TIMEOUT=2", "GRANTLINE_POLICY_MAX_DELIVERIES=0", "GRANTLINE_POLICY_STATE_REPLICAS=3"))
	want := "GRANTLINE_CATALOGUE is required\nGRANTLINE_POLICY_DIR is required\n" +
		`GRANTLINE_POLICY_EVAL_TIMEOUT="2" is malformed: unable to parse duration: time: missing unit in duration "2"` + "\n" +
		"GRANTLINE_POLICY_MAX_DELIVERIES must be above zero, not 0"
	if err == nil || err.Error() != want {
		t.Errorf("Parse = %v, want\n%s", err, want)
	}
	if c.StateReplicas != 3 {
		t.Errorf("state replicas %d", c.StateReplicas)
	}
	var usage strings.Builder
	if err := config.Usage(&usage, &c); err != nil || strings.Contains(usage.String(), "OIDC") {
		t.Errorf("policy lists OIDC settings it has no use for (%v):\n%s", err, usage.String())
	}
}
