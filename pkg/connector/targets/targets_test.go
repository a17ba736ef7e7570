package targets_test

import (
	"context"
	"encoding/base64"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/config"
	"github.com/grantline/grantline/pkg/connector"
	"github.com/grantline/grantline/pkg/connector/postgres"
	"github.com/grantline/grantline/pkg/connector/targets"
	"github.com/grantline/grantline/pkg/connector/webhook"
	"github.com/grantline/grantline/pkg/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

func env(vars map[string]string) func(string) string { return func(k string) string { return vars[k] } }

// service is a configuration that holds the targets, as fulfilment's and the revoker's do.
type service struct {
	Targets targets.Config
}

// TestConfigIsReadOnce: config.Parse reads the role mapping into a map, names the variable of a
// malformed one, and shows the targets with the URL's password masked.
func TestConfigIsReadOnce(t *testing.T) {
	var c service
	err := config.Parse(&c, []string{"GRANTLINE_PG_TARGET_URL=postgres://grantline:hunter2@db/payments",
		"GRANTLINE_PG_ROLES=payments-admin = payments_admin, analytics-read=analytics_read ,"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(postgres.Roles{"analytics-read": "analytics_read", "payments-admin": "payments_admin"}, c.Targets.PGRoles); diff != "" {
		t.Errorf("roles (-want +got):\n%s", diff)
	}
	shown := config.LogValue(c).String()
	for _, want := range []string{"pg_target_url=postgres://grantline:xxxxx@db/payments", "pg_roles=analytics-read=analytics_read,payments-admin=payments_admin"} {
		if !strings.Contains(shown, want) {
			t.Errorf("the start-up line %s does not show %s", shown, want)
		}
	}

	for roles, want := range map[string]string{
		"analytics-read":                   `GRANTLINE_PG_ROLES="analytics-read" is malformed: role mapping "analytics-read" is not entitlement=role`,
		"analytics-read=pg_read_all_data":  `GRANTLINE_PG_ROLES="analytics-read=pg_read_all_data" is malformed: role mapping "analytics-read=pg_read_all_data": `,
		"a=analytics_read,=payments_admin": `GRANTLINE_PG_ROLES="a=analytics_read,=payments_admin" is malformed: role mapping "=payments_admin" is not entitlement=role`,
	} {
		var c service
		if err := config.Parse(&c, []string{"GRANTLINE_PG_ROLES=" + roles}); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("GRANTLINE_PG_ROLES=%s: %v, want %s…", roles, err, want)
		}
	}
}

func TestLoadWebhooks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "webhooks.json")
	if err := os.WriteFile(path, []byte(`{"targets":[{"name":"vpn","url":"https://vpn.example/grantline","secret_env":"VPN_HMAC",
		"entitlements":["vpn-admin","vpn-user"]}],"timeout":"2s","breaker_open":"1m"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	secret := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123"))
	cfg, err := targets.LoadWebhooks(path, env(map[string]string{"VPN_HMAC": secret}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Targets["vpn-user"].Name != "vpn" || string(cfg.Targets["vpn-admin"].Secret) != "0123456789abcdef0123" ||
		cfg.Timeout != 2*time.Second || cfg.BreakerOpen != time.Minute {
		t.Fatalf("%+v", cfg)
	}
	if _, err := targets.LoadWebhooks(path, env(nil)); err == nil || !strings.Contains(err.Error(), "VPN_HMAC") {
		t.Fatalf("a missing secret: %v", err)
	}
}

// TestOpen: each configured target gets its connector, none without configuration; a webhook file that
// cannot be used fails the whole and leaves nothing open.
func TestOpen(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	set, closeAll, err := targets.Open(ctx, targets.Config{}, env(nil), log, nil)
	if err != nil || len(set) != 0 {
		t.Fatalf("no targets: %v %v", set, err)
	}
	closeAll()

	path := filepath.Join(t.TempDir(), "webhooks.json")
	if err := os.WriteFile(path, []byte(`{"targets":[{"name":"vpn","url":"https://vpn.example/grantline","secret_env":"VPN_HMAC","entitlements":["vpn-admin"]}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c := targets.Config{PGTargetURL: pgtest.New(t), PGRoles: postgres.DemoRoles(), Webhooks: path}
	secret := env(map[string]string{"VPN_HMAC": base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))})
	set, closeAll, err = targets.Open(ctx, c, secret, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeAll)
	if len(set) != 2 || set[postgres.Name] == nil || set[webhook.Name] == nil {
		t.Errorf("opened %v, want the postgres and the webhook connectors", slices.Sorted(maps.Keys(set)))
	}
	// The PostgreSQL connector behind its circuit breaker and traced, still issuing service accounts' logins.
	if _, ok := set[postgres.Name].(connector.Issuer); !ok {
		t.Errorf("postgres connector: %T", set[postgres.Name])
	}
	// Traced keeps what each connector can do: the PostgreSQL target lists its holdings, a webhook cannot.
	if _, ok := set[postgres.Name].(connector.Inventory); !ok {
		t.Errorf("the postgres connector (%T) has no inventory", set[postgres.Name])
	}
	if _, ok := set[webhook.Name].(connector.Inventory); ok {
		t.Errorf("the webhook connector (%T) claims an inventory", set[webhook.Name])
	}
	if _, _, err := targets.Open(ctx, c, env(nil), log, nil); err == nil || !strings.Contains(err.Error(), "VPN_HMAC") {
		t.Fatalf("a webhook secret missing: %v", err)
	}
}

// TestMetrics: a webhook target that keeps failing opens its breaker, which grantline_circuit_state
// shows as 2 (open) for that target; failed calls are counted by connector, operation and class.
func TestMetrics(t *testing.T) {
	ctx := context.Background()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) }))
	t.Cleanup(down.Close)
	path := filepath.Join(t.TempDir(), "webhooks.json")
	if err := os.WriteFile(path, []byte(`{"targets":[{"name":"vpn","url":"`+down.URL+`","secret_env":"VPN_HMAC","entitlements":["vpn-admin"]}],
		"max_attempts":1,"breaker_failures":2}`), 0o600); err != nil {
		t.Fatal(err)
	}
	reader := sdkmetric.NewManualReader()
	meter := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	secret := env(map[string]string{"VPN_HMAC": base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))})
	set, closeAll, err := targets.Open(ctx, targets.Config{Webhooks: path}, secret, slog.New(slog.DiscardHandler), meter)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeAll)
	errs := targets.NewErrors(meter)
	g := connector.Grant{ID: "r1", Entitlement: catalogue.Entitlement{ID: "vpn-admin", Connector: webhook.Name}, ExpiresAt: time.Now().Add(time.Hour)}
	for range 2 {
		_, err := set[webhook.Name].Grant(ctx, g)
		if err == nil {
			t.Fatal("a grant on a target answering 502 succeeded")
		}
		errs.Record(ctx, webhook.Name, "grant", err)
	}
	errs.Record(ctx, webhook.Name, "grant", nil)

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	var state, failed int64 = -1, 0
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch data := m.Data.(type) {
			case metricdata.Gauge[int64]:
				for _, dp := range data.DataPoints {
					if target, _ := dp.Attributes.Value("target"); m.Name == "grantline_circuit_state" && target.AsString() == "vpn" {
						state = dp.Value
					}
				}
			case metricdata.Sum[int64]:
				for _, dp := range data.DataPoints {
					if op, _ := dp.Attributes.Value("operation"); m.Name == "grantline_connector_errors" && op.AsString() == "grant" {
						failed += dp.Value
					}
				}
			}
		}
	}
	if state != 2 || failed != 2 {
		t.Fatalf("circuit state %d (want 2, open), failed grants %d (want 2)", state, failed)
	}
}
