package dashboards

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/dify-exporter/dify_exporter/alerts"
)

const (
	dashboardFile = "dify-overview.json"
	dsRef         = "${datasource}"
	rateInterval  = "[$__rate_interval]"
)

// exportedMetrics are the metric names the exporter (and Prometheus, for up) exposes
// (docs/metrics.md); the histogram contributes its _bucket/_sum/_count series.
var exportedMetrics = setOf(
	"dify_workflow_run_tokens", "dify_workflow_run_steps", "dify_workflow_run_elapsed_seconds",
	"dify_workflow_run_status", "dify_workflow_run_created_timestamp_seconds",
	"dify_workflow_run_finished_timestamp_seconds",
	"dify_up", "dify_app_info", "dify_workflow_runs", "dify_workflow_runs_finished_total",
	"dify_workflow_tokens_total",
	"dify_workflow_run_duration_seconds_bucket", "dify_workflow_run_duration_seconds_sum",
	"dify_workflow_run_duration_seconds_count",
	"dify_scrape_duration_seconds", "dify_exporter_api_requests_total",
	"dify_exporter_run_errors_total", "dify_exporter_tracked_runs", "dify_exporter_runs_stale",
	"dify_exporter_config_last_reload_successful", "dify_exporter_build_info",
	"dify_exporter_refresh_age_seconds", "dify_exporter_dify_time_offset_seconds",
	"dify_exporter_dify_clock_skew_seconds", "dify_exporter_log_rows_offset_seconds", "dify_server_info",
	"up",
)

// exporterLevel are the metrics without an app label: queries naming only these are
// filtered by job alone (not by $app).
var exporterLevel = setOf("up", "dify_exporter_config_last_reload_successful", "dify_exporter_build_info")

func setOf(s ...string) map[string]bool {
	m := map[string]bool{}
	for _, v := range s {
		m[v] = true
	}
	return m
}

type dash struct {
	UID           string   `json:"uid"`
	Title         string   `json:"title"`
	SchemaVersion int      `json:"schemaVersion"`
	Panels        []panelJ `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Definition string          `json:"definition"`
			Multi      bool            `json:"multi"`
			IncludeAll bool            `json:"includeAll"`
			AllValue   string          `json:"allValue"`
			Refresh    int             `json:"refresh"`
			Datasource *dsJ            `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

type dsJ struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panelJ struct {
	ID          int      `json:"id"`
	Type        string   `json:"type"`
	Title       string   `json:"title"`
	Description string   `json:"description"`
	Datasource  *dsJ     `json:"datasource"`
	Panels      []panelJ `json:"panels"`
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Targets []struct {
		RefID      string `json:"refId"`
		Expr       string `json:"expr"`
		Instant    bool   `json:"instant"`
		Range      bool   `json:"range"`
		Format     string `json:"format"`
		Datasource *dsJ   `json:"datasource"`
	} `json:"targets"`
}

func load(t *testing.T) dash {
	t.Helper()
	var d dash
	dec := json.NewDecoder(bytes.NewReader(Overview))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("parse %s: %v", dashboardFile, err)
	}
	return d
}

func allPanels(ps []panelJ) []panelJ {
	var out []panelJ
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

func TestEmbeddedIsFile(t *testing.T) {
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, Overview) {
		t.Fatal("embedded Overview differs from the file")
	}
	if !json.Valid(b) {
		t.Fatal("invalid JSON")
	}
}

func TestDashboardBasics(t *testing.T) {
	d := load(t)
	if d.UID != "dify-overview" {
		t.Errorf("uid = %q, want dify-overview", d.UID)
	}
	// 41 is Grafana 12's. What Grafana's migrations up to it change must already hold, or
	// Grafana rewrites the dashboard on load: v40 wants refresh as a string, v41 drops
	// timepicker.time_options.
	if d.SchemaVersion != 41 {
		t.Errorf("schemaVersion %d, want 41 (Grafana 12)", d.SchemaVersion)
	}
	var raw struct {
		Refresh    any            `json:"refresh"`
		Timepicker map[string]any `json:"timepicker"`
	}
	if err := json.Unmarshal(Overview, &raw); err != nil {
		t.Fatal(err)
	}
	if _, ok := raw.Refresh.(string); !ok {
		t.Errorf("refresh %v: schemaVersion 40 and later want a string", raw.Refresh)
	}
	if _, ok := raw.Timepicker["time_options"]; ok {
		t.Error("timepicker.time_options: removed in schemaVersion 41")
	}
	if d.Title == "" {
		t.Error("no title")
	}
}

func TestVariables(t *testing.T) {
	d := load(t)
	found := map[string]bool{}
	for _, v := range d.Templating.List {
		found[v.Name] = true
		switch v.Name {
		case "datasource":
			var q string
			if err := json.Unmarshal(v.Query, &q); err != nil || v.Type != "datasource" || q != "prometheus" {
				t.Errorf("variable datasource: type %q query %s, want a datasource variable of type prometheus", v.Type, v.Query)
			}
		case "job", "instance", "app":
			if !v.Multi || !v.IncludeAll || v.AllValue != ".+" || v.Refresh != 2 {
				t.Errorf("variable %s: multi=%v includeAll=%v allValue=%q refresh=%d; want true, true, \".+\", 2",
					v.Name, v.Multi, v.IncludeAll, v.AllValue, v.Refresh)
			}
			if v.Datasource == nil || v.Datasource.UID != dsRef || v.Datasource.Type != "prometheus" {
				t.Errorf("variable %s: datasource %+v, want %s", v.Name, v.Datasource, dsRef)
			}
			want := map[string]string{
				"job":      "label_values(dify_up, job)",
				"instance": `label_values(dify_up{job=~"$job"}, instance)`,
				"app":      `label_values(dify_up{job=~"$job", instance=~"$instance"}, app)`,
			}[v.Name]
			if v.Definition != want || !strings.Contains(string(v.Query), strings.ReplaceAll(want, `"`, `\"`)) {
				t.Errorf("variable %s: query %s / definition %q, want %q", v.Name, v.Query, v.Definition, want)
			}
		}
	}
	// Grafana resolves chained variables in list order: each after those it uses.
	var order []string
	for _, v := range d.Templating.List {
		order = append(order, v.Name)
	}
	if want := []string{"datasource", "job", "instance", "app", "exporter_url"}; !slices.Equal(order, want) {
		t.Errorf("variables %v, want %v", order, want)
	}
}

func TestPanels(t *testing.T) {
	d := load(t)
	ids := map[int]string{}
	types := setOf("row", "stat", "timeseries", "table")
	for _, p := range allPanels(d.Panels) {
		name := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if p.ID == 0 {
			t.Errorf("%s: id 0", name)
		}
		if other, dup := ids[p.ID]; dup {
			t.Errorf("%s: id also used by %q", name, other)
		}
		ids[p.ID] = p.Title
		if !types[p.Type] {
			t.Errorf("%s: type %q, want one of row, stat, timeseries, table", name, p.Type)
		}
		if p.Title == "" {
			t.Errorf("%s: no title", name)
		}
		if p.Type == "row" { // rows hold no queries, units or descriptions
			continue
		}
		if strings.TrimSpace(p.Description) == "" {
			t.Errorf("%s: no description", name)
		}
		if p.FieldConfig.Defaults.Unit == "" {
			t.Errorf("%s: no unit (fieldConfig.defaults.unit)", name)
		}
		if p.Datasource == nil || p.Datasource.UID != dsRef || p.Datasource.Type != "prometheus" {
			t.Errorf("%s: datasource %+v, want {prometheus %s}", name, p.Datasource, dsRef)
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: no targets", name)
		}
		for _, tg := range p.Targets {
			if tg.Datasource == nil || tg.Datasource.UID != dsRef {
				t.Errorf("%s target %s: datasource %+v, want %s", name, tg.RefID, tg.Datasource, dsRef)
			}
			if p.Type == "table" && (!tg.Instant || tg.Range || tg.Format != "table") {
				t.Errorf("%s target %s: tables need instant queries with format table", name, tg.RefID)
			}
			if p.Type == "timeseries" && tg.Instant {
				t.Errorf("%s target %s: time series need range queries", name, tg.RefID)
			}
		}
	}
}

var (
	rangeFunc   = regexp.MustCompile(`\b(rate|irate|increase|delta|idelta|deriv|[a-z]+_over_time)\s*\(`)
	fixedRange  = regexp.MustCompile(`\[\s*\d+[smhdwy]`)
	metricRef   = regexp.MustCompile(`\b([a-z_]+:dify_[a-zA-Z0-9_:]+|dify_[a-z_]+|up)\b`)
	afterMetric = regexp.MustCompile(`^\s*\{([^}]*)\}`)
)

// closing returns the index of the parenthesis closing the one at s[open].
func closing(s string, open int) int {
	depth := 0
	for i := open; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

func recordingRules(t *testing.T) map[string]bool {
	t.Helper()
	var rf struct {
		Groups []struct {
			Rules []struct {
				Record string `yaml:"record"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(alerts.Rules, &rf); err != nil {
		t.Fatalf("parse alerts/dify.rules.yml: %v", err)
	}
	m := map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				m[r.Record] = true
			}
		}
	}
	return m
}

func TestQueries(t *testing.T) {
	d := load(t)
	records := recordingRules(t)
	n := 0
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			n++
			name := fmt.Sprintf("panel %d %q target %s", p.ID, p.Title, tg.RefID)
			expr := tg.Expr
			if strings.TrimSpace(expr) == "" {
				t.Errorf("%s: empty expr", name)
				continue
			}
			// Every range function uses $__rate_interval.
			for _, loc := range rangeFunc.FindAllStringIndex(expr, -1) {
				open := loc[1] - 1
				end := closing(expr, open)
				if end < 0 {
					t.Errorf("%s: unbalanced parentheses in %q", name, expr)
					break
				}
				if arg := strings.TrimSpace(expr[open+1 : end]); !strings.HasSuffix(arg, rateInterval) {
					t.Errorf("%s: %q must use %s", name, expr[loc[0]:end+1], rateInterval)
				}
			}
			if fixedRange.MatchString(expr) {
				t.Errorf("%s: fixed range in %q; use %s", name, expr, rateInterval)
			}
			// Every metric is known, and every selector filters by job and instance and
			// (unless the metric has no app label) by app.
			refs := metricRef.FindAllStringSubmatchIndex(expr, -1)
			if len(refs) == 0 {
				t.Errorf("%s: no metric in %q", name, expr)
			}
			for _, r := range refs {
				metric := expr[r[2]:r[3]]
				if !exportedMetrics[metric] && !records[metric] {
					t.Errorf("%s: %s is neither an exported metric nor a recording rule of alerts/dify.rules.yml", name, metric)
				}
				m := afterMetric.FindStringSubmatch(expr[r[1]:])
				if m == nil {
					t.Errorf("%s: %s without label matchers in %q", name, metric, expr)
					continue
				}
				for _, want := range []string{`job=~"$job"`, `instance=~"$instance"`} {
					if !strings.Contains(m[1], want) {
						t.Errorf("%s: %s{%s} does not filter %s", name, metric, m[1], want)
					}
				}
				if !exporterLevel[metric] && !strings.Contains(m[1], `app=~"$app"`) {
					t.Errorf("%s: %s{%s} does not filter app=~\"$app\"", name, metric, m[1])
				}
			}
		}
	}
	if n < 20 {
		t.Errorf("only %d queries", n)
	}
}

var testVars = map[string]string{"__rate_interval": "1m", "job": "dify_exporter", "instance": ".+", "app": ".+", "datasource": "prom"}

func TestQueriesHelper(t *testing.T) {
	qs, err := Queries(Overview, testVars)
	if err != nil {
		t.Fatal(err)
	}
	d := load(t)
	var want int
	for _, p := range allPanels(d.Panels) {
		want += len(p.Targets)
	}
	if len(qs) != want {
		t.Errorf("Queries returned %d queries, dashboard has %d targets", len(qs), want)
	}
	tables := 0
	for _, q := range qs {
		if strings.Contains(q.Expr, "$") || strings.Contains(q.Expr, "[[") {
			t.Errorf("panel %d: unexpanded variable in %q", q.PanelID, q.Expr)
		}
		if q.PanelID == 0 || q.PanelTitle == "" {
			t.Errorf("query %q: no panel id/title", q.Expr)
		}
		if q.Instant {
			tables++
		}
	}
	if tables != 4 {
		t.Errorf("%d instant queries, want 4 (the tables)", tables)
	}

	if _, err := Queries(Overview, map[string]string{"job": "x"}); err == nil {
		t.Error("Queries with missing variables: no error")
	}
	got, err := Queries([]byte(`{"panels":[{"id":1,"title":"r","type":"row","panels":[
		{"id":2,"title":"p","targets":[{"refId":"A","expr":"rate(m{a=~\"${app}\",b=~\"$job\",c=\"${job:regex}\",d=\"[[app]]\"}[$__rate_interval])","instant":true}]}]}]}`),
		map[string]string{"app": "x|y", "job": "j", "__rate_interval": "2m"})
	if err != nil {
		t.Fatal(err)
	}
	wantQ := Query{PanelID: 2, PanelTitle: "p", RefID: "A", Instant: true,
		Expr: `rate(m{a=~"x|y",b=~"j",c="j",d="x|y"}[2m])`}
	if len(got) != 1 || got[0] != wantQ {
		t.Errorf("Queries = %+v, want [%+v]", got, wantQ)
	}
	if _, err := Queries([]byte("{"), nil); err == nil {
		t.Error("Queries on bad JSON: no error")
	}
}

// TestQueriesParse checks every expanded query with the real PromQL parser, by wrapping them
// as recording rules for `promtool check rules`. Skipped without promtool unless CI is set.
func TestQueriesParse(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		msg := "promtool not found in PATH: install it with `apt-get install prometheus` to check the dashboard's PromQL"
		if os.Getenv("CI") != "" {
			t.Fatal(msg + " (CI is set, so this is an error)")
		}
		t.Skip(msg)
	}
	qs, err := Queries(Overview, testVars)
	if err != nil {
		t.Fatal(err)
	}
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rule
	for i, q := range qs {
		rules = append(rules, rule{Record: fmt.Sprintf("dashboard:query_%d_panel_%d:check", i, q.PanelID), Expr: q.Expr})
	}
	b, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "dashboard.rules.yml")
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "check", "rules", f).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules on the dashboard queries: %v\n%s", err, out)
	}
}

func TestAllExporterMetricsShown(t *testing.T) {
	// The dashboard should show the key series; list what no panel uses, for reviewers.
	used := map[string]bool{}
	for _, m := range metricRef.FindAllString(string(Overview), -1) {
		used[m] = true
	}
	var unused []string
	for m := range exportedMetrics {
		if !used[m] {
			unused = append(unused, m)
		}
	}
	sort.Strings(unused)
	t.Logf("exported metrics no panel uses: %v", unused)
	for _, m := range []string{"dify_up", "dify_workflow_runs", "dify_workflow_runs_finished_total",
		"dify_workflow_tokens_total", "dify_workflow_run_duration_seconds_bucket",
		"dify_workflow_run_status", "dify_workflow_run_created_timestamp_seconds",
		"dify_workflow_run_finished_timestamp_seconds", "dify_workflow_run_tokens",
		"dify_scrape_duration_seconds", "dify_exporter_api_requests_total",
		"dify_exporter_run_errors_total", "dify_exporter_runs_stale"} {
		if !used[m] {
			t.Errorf("no panel shows %s", m)
		}
	}
}
