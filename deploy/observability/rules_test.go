// Package observability holds Grantline's Prometheus alerting rules and Grafana dashboard (the files
// beside this one) and their tests: each rule parsed and evaluated by Prometheus's own rule engine over
// synthetic series, and every metric the rules and the dashboard read checked against the metrics the
// services define. It is a module of its own so that Prometheus stays out of the services' builds.
package observability

import (
	"context"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/rules"
)

// alertCase is one scenario of an alert: series as promqltest's load command reads them (one sample
// a minute from time zero), evaluated every minute up to at, and the label sets of the alerts that
// fire then (nil: none).
type alertCase struct {
	name   string
	series string
	at     time.Duration
	firing []map[string]string
}

// alertCases are the scenarios of every rule in alerts.yaml, quiet and firing, by alert.
var alertCases = map[string][]alertCase{
	"GrantlineRevocationsOverdue": {
		{"every grant revoked on time", `grantline_overdue_revocations 0x30`, 30 * time.Minute, nil},
		{"an overdue revocation that clears within five minutes", `grantline_overdue_revocations 0x10 1 1 1 0x10`, 14 * time.Minute, nil},
		{"an overdue revocation for five minutes", `grantline_overdue_revocations 0x10 1x10`, 16 * time.Minute, []map[string]string{{}}},
	},
	"GrantlineRevocationLagHigh": {
		{"revocations within a second", `
			grantline_revocation_lag_seconds_bucket{le="1"} 0+60x30
			grantline_revocation_lag_seconds_bucket{le="60"} 0+60x30
			grantline_revocation_lag_seconds_bucket{le="+Inf"} 0+60x30`, 30 * time.Minute, nil},
		{"revocations minutes late", `
			grantline_revocation_lag_seconds_bucket{le="1"} 0x30
			grantline_revocation_lag_seconds_bucket{le="60"} 0x30
			grantline_revocation_lag_seconds_bucket{le="300"} 0+60x30
			grantline_revocation_lag_seconds_bucket{le="+Inf"} 0+60x30`, 30 * time.Minute, []map[string]string{{}}},
	},
	"GrantlineConsumerLagging": {
		{"a burst drained in minutes", `
			grantline_consumer_pending{durable="revoker-expiry"} 0 5000 2000 100 0x20
			grantline_consumer_pending{durable="policy"} 0x25`, 25 * time.Minute, nil},
		{"the revoker's expiries pile up", `
			grantline_consumer_pending{durable="revoker-expiry"} 0 600+100x25
			grantline_consumer_pending{durable="policy"} 0x25`, 25 * time.Minute, []map[string]string{{"durable": "revoker-expiry"}}},
	},
	"GrantlineDeadLetters": {
		{"only acknowledgements", `grantline_consumer_deliveries_total{durable="policy",outcome="ack"} 0+10x30`, 30 * time.Minute, nil},
		{"a dead letter twenty minutes ago is old news", `
			grantline_consumer_deliveries_total{durable="intake",outcome="dead-letter"} 0x5 1x40`, 40 * time.Minute, nil},
		{"intake set a message aside", `
			grantline_consumer_deliveries_total{durable="intake",outcome="ack"} 0+10x30
			grantline_consumer_deliveries_total{durable="intake",outcome="dead-letter"} 0x25 1x5`, 28 * time.Minute,
			[]map[string]string{{"durable": "intake"}}},
	},
	"GrantlineRedeliveriesHigh": {
		{"a few retries", `
			grantline_consumer_deliveries_total{durable="fulfilment",outcome="ack"} 0+100x30
			grantline_consumer_redeliveries_total{durable="fulfilment"} 0+5x30`, 30 * time.Minute, nil},
		{"half the deliveries are retries", `
			grantline_consumer_deliveries_total{durable="fulfilment",outcome="retry"} 0+50x30
			grantline_consumer_deliveries_total{durable="fulfilment",outcome="ack"} 0+50x30
			grantline_consumer_redeliveries_total{durable="fulfilment"} 0+50x30`, 30 * time.Minute,
			[]map[string]string{{"durable": "fulfilment"}}},
	},
	"GrantlinePolicyFailing": {
		{"policy decides", `grantline_policy_decisions_total{outcome="auto_approved",failed="false"} 0+10x30`, 30 * time.Minute, nil},
		{"policy failed closed", `
			grantline_policy_decisions_total{outcome="auto_approved",failed="false"} 0+10x30
			grantline_policy_decisions_total{outcome="deny",failed="true"} 0x25 1x5`, 28 * time.Minute, []map[string]string{{}}},
	},
	"GrantlineDecisionsSlow": {
		{"decisions in milliseconds", `
			grantline_decision_latency_seconds_bucket{le="0.05"} 0+60x30
			grantline_decision_latency_seconds_bucket{le="+Inf"} 0+60x30`, 30 * time.Minute, nil},
		{"decisions take seconds", `
			grantline_decision_latency_seconds_bucket{le="1"} 0x30
			grantline_decision_latency_seconds_bucket{le="5"} 0+60x30
			grantline_decision_latency_seconds_bucket{le="+Inf"} 0+60x30`, 30 * time.Minute, []map[string]string{{}}},
	},
	"GrantlineGrantsSlow": {
		{"grants within a second", `
			grantline_grant_latency_seconds_bucket{le="1"} 0+60x30
			grantline_grant_latency_seconds_bucket{le="+Inf"} 0+60x30`, 30 * time.Minute, nil},
		{"a target takes a minute", `
			grantline_grant_latency_seconds_bucket{le="30"} 0x30
			grantline_grant_latency_seconds_bucket{le="60"} 0+60x30
			grantline_grant_latency_seconds_bucket{le="+Inf"} 0+60x30`, 30 * time.Minute, []map[string]string{{}}},
	},
	"GrantlineApprovalsWaiting": {
		{"approvals within the day", `
			grantline_pending_approvals{age="under_1h"} 3x90
			grantline_pending_approvals{age="over_24h"} 0x90`, 90 * time.Minute, nil},
		{"a request waits for days", `grantline_pending_approvals{age="over_24h"} 1x90`, 90 * time.Minute, []map[string]string{{}}},
	},
	"GrantlineConnectorFailing": {
		{"a failure now and then", `grantline_connector_errors_total{connector="postgres",operation="grant",class="timeout"} 0+0.1x30`, 30 * time.Minute, nil},
		{"the target refuses every revocation", `
			grantline_connector_errors_total{connector="postgres",operation="revoke",class="unavailable"} 0+2x30
			grantline_connector_errors_total{connector="postgres",operation="grant",class="timeout"} 0x30`, 30 * time.Minute,
			[]map[string]string{{"connector": "postgres", "operation": "revoke"}}},
	},
	"GrantlineCircuitOpen": {
		{"a breaker that opened and closed again", `grantline_circuit_state{target="vpn"} 0x5 2 2 1 0x20`, 28 * time.Minute, nil},
		{"a breaker open for minutes", `
			grantline_circuit_state{target="vpn"} 0x5 2x20
			grantline_circuit_state{target="tickets"} 0x25`, 25 * time.Minute, []map[string]string{{"target": "vpn"}}},
	},
	"GrantlineReadSideDown": {
		{"the read side reports", `grantline_active_grants 4x30`, 30 * time.Minute, nil},
		{"the read side stopped reporting", `grantline_active_grants 4x5`, 30 * time.Minute, []map[string]string{{}}},
	},
}

func loadRules(t *testing.T) []rulefmt.Rule {
	t.Helper()
	groups, errs := rulefmt.ParseFile("alerts.yaml", false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		t.Fatalf("alerts.yaml: %v", errs)
	}
	var out []rulefmt.Rule
	for _, g := range groups.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

// TestAlertRules evaluates each alerting rule with Prometheus's rule engine over each scenario, as the
// rule manager would every minute, and compares what fires.
func TestAlertRules(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	for _, r := range loadRules(t) {
		cases := alertCases[r.Alert]
		if !slices.ContainsFunc(cases, func(c alertCase) bool { return c.firing == nil }) ||
			!slices.ContainsFunc(cases, func(c alertCase) bool { return c.firing != nil }) {
			t.Errorf("%s needs a scenario where it fires and one where it stays quiet", r.Alert)
		}
		for _, c := range cases {
			t.Run(r.Alert+"/"+c.name, func(t *testing.T) {
				expr, err := p.ParseExpr(r.Expr)
				if err != nil {
					t.Fatal(err)
				}
				rule := rules.NewAlertingRule(r.Alert, expr, time.Duration(r.For), time.Duration(r.KeepFiringFor),
					labels.FromMap(r.Labels), labels.FromMap(r.Annotations), labels.EmptyLabels(), "", true, slog.New(slog.DiscardHandler))
				store := promqltest.LoadedStorage(t, loadCommand(c.series))
				engine := promqltest.NewTestEngine(t, false, 0, promqltest.DefaultMaxSamplesPerQuery)
				query := rules.EngineQueryFunc(engine, store)
				for at := time.Duration(0); at <= c.at; at += time.Minute {
					if _, err := rule.Eval(context.Background(), 0, time.Unix(0, 0).Add(at), query, nil, 0); err != nil {
						t.Fatalf("evaluate at %s: %v", at, err)
					}
				}
				var firing []map[string]string
				for _, a := range rule.ActiveAlerts() {
					if a.State != rules.StateFiring {
						continue
					}
					got := map[string]string{}
					a.Labels.Range(func(l labels.Label) {
						if l.Name != labels.AlertName && r.Labels[l.Name] == "" {
							got[l.Name] = l.Value
						}
					})
					firing = append(firing, got)
					a.Annotations.Range(func(l labels.Label) {
						if strings.Contains(l.Value, "error expanding") || strings.Contains(l.Value, "{{") {
							t.Errorf("annotation %s does not expand: %s", l.Name, l.Value)
						}
					})
				}
				if !sameAlerts(firing, c.firing) {
					t.Errorf("firing %v, want %v", firing, c.firing)
				}
			})
		}
	}
	for name := range alertCases {
		if !slices.ContainsFunc(loadRules(t), func(r rulefmt.Rule) bool { return r.Alert == name }) {
			t.Errorf("scenarios for %s, which alerts.yaml does not define", name)
		}
	}
}

func sameAlerts(got, want []map[string]string) bool {
	key := func(m map[string]string) string {
		var parts []string
		for k, v := range m {
			parts = append(parts, k+"="+v)
		}
		slices.Sort(parts)
		return strings.Join(parts, ",")
	}
	g, w := make([]string, len(got)), make([]string, len(want))
	for i := range got {
		g[i] = key(got[i])
	}
	for i := range want {
		w[i] = key(want[i])
	}
	slices.Sort(g)
	slices.Sort(w)
	return slices.Equal(g, w)
}

// loadCommand is promqltest's load command for series written one a line, indented or not.
func loadCommand(series string) string {
	cmd := "load 1m\n"
	for _, line := range strings.Split(series, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			cmd += "  " + line + "\n"
		}
	}
	return cmd
}

// TestEveryAlertHasARunbookEntry: each alert links to its section of docs/operations.md, which says
// what it means and what to do.
func TestEveryAlertHasARunbookEntry(t *testing.T) {
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range loadRules(t) {
		if !strings.Contains(string(doc), "\n### "+r.Alert+"\n") {
			t.Errorf("docs/operations.md has no section ### %s", r.Alert)
		}
		if want := "docs/operations.md#" + strings.ToLower(r.Alert); r.Annotations["runbook"] != want {
			t.Errorf("%s: runbook annotation %q, want %q", r.Alert, r.Annotations["runbook"], want)
		}
	}
}
