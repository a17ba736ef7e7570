package observability

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
)

// repoRoot is where the services' code is, from this directory.
const repoRoot = "../.."

// TestEveryMetricReadIsExported: each metric the alerting rules and the dashboard read is one a service
// defines, under the name the OpenTelemetry Prometheus exporter gives it (counters end in _total,
// histograms in seconds in _seconds_bucket, _sum and _count). A renamed metric would otherwise leave an
// alert that never fires.
func TestEveryMetricReadIsExported(t *testing.T) {
	exported := exportedMetrics(t)
	if len(exported) < 10 {
		t.Fatalf("found only %d metrics in the services' code: the scan is broken (%v)", len(exported), exported)
	}
	read := map[string][]string{} // metric → where it is read
	p := parser.NewParser(parser.Options{})
	for _, r := range loadRules(t) {
		for _, name := range metricsOf(t, p, r.Expr) {
			read[name] = append(read[name], "alert "+r.Alert)
		}
	}
	for _, e := range dashboardExprs(t) {
		for _, name := range metricsOf(t, p, e.expr) {
			read[name] = append(read[name], "panel "+e.panel)
		}
	}
	for name, where := range read {
		if !exported[name] {
			t.Errorf("%s is read by %s but no service exports it", name, strings.Join(slices.Compact(where), ", "))
		}
	}
}

type panelExpr struct{ panel, expr string }

// dashboardExprs returns every query of the dashboard's panels.
func dashboardExprs(t *testing.T) []panelExpr {
	t.Helper()
	b, err := os.ReadFile("grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	var out []panelExpr
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			out = append(out, panelExpr{p.Title, tg.Expr})
		}
	}
	if len(out) == 0 {
		t.Fatal("the dashboard has no queries")
	}
	return out
}

// metricsOf parses expr and returns the metric names it selects.
func metricsOf(t *testing.T, p parser.Parser, expr string) []string {
	t.Helper()
	e, err := p.ParseExpr(expr)
	if err != nil {
		t.Fatalf("%q: %v", expr, err)
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok && vs.Name != "" {
			names = append(names, vs.Name)
		}
		return nil
	})
	return names
}

var (
	// An instrument defined with the OpenTelemetry metric API, and what follows it up to the end of the
	// call's line, where its unit is given.
	instrument = regexp.MustCompile(`(Int64Counter|Float64Counter|Int64Histogram|Float64Histogram|Int64ObservableGauge|Float64ObservableGauge|Int64Gauge|Float64Gauge)\("(grantline_[a-z0-9_]+)"([^\n]*\n[^\n]*)`)
	// A latency histogram made with telemetry.LatencyHistogram: always in seconds.
	latency = regexp.MustCompile(`LatencyHistogram\([^,]+,\s*"[^"]+",\s*"(grantline_[a-z0-9_]+)"`)
)

// exportedMetrics scans the services' and packages' code for the instruments they define and returns
// the names the Prometheus exporter gives their series.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	histogram := func(name string) {
		for _, suffix := range []string{"_seconds_bucket", "_seconds_sum", "_seconds_count"} {
			names[name+suffix] = true
		}
	}
	for _, dir := range []string{"pkg", "services"} {
		err := filepath.WalkDir(filepath.Join(repoRoot, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range instrument.FindAllStringSubmatch(string(b), -1) {
				switch kind, name, rest := m[1], m[2], m[3]; {
				case strings.HasSuffix(kind, "Counter"):
					names[name+"_total"] = true
				case strings.HasSuffix(kind, "Histogram") && strings.Contains(rest, `WithUnit("s")`):
					histogram(name)
				case strings.HasSuffix(kind, "Histogram"):
					t.Errorf("%s: histogram %s has no unit of seconds; give it one or teach this test its name", path, name)
				default:
					names[name] = true
				}
			}
			for _, m := range latency.FindAllStringSubmatch(string(b), -1) {
				histogram(m[1])
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return names
}
