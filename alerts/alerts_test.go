package alerts

import (
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const (
	rulesFile        = "dify.rules.yml"
	rulesTestFile    = "dify.rules.test.yml"
	alertmanagerFile = "alertmanager.yml"
	runbookFile      = "runbook.md"
	runbookURLPrefix = "https://github.com/dify-exporter/dify_exporter/blob/main/alerts/runbook.md#"
)

// requireTool returns the path of a binary. Without it the test is skipped, unless the
// environment variable CI is set: then the test fails, so that CI cannot pass vacuously.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	msg := name + " not found in PATH: install it with `apt-get install prometheus prometheus-alertmanager` (Debian/Ubuntu) or from https://prometheus.io/download/"
	if os.Getenv("CI") != "" {
		t.Fatal(msg + " (CI is set, so this is an error)")
	}
	t.Skip(msg)
	return ""
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	bin := requireTool(t, name)
	cmd := exec.Command(bin, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

func TestPromtoolCheckRules(t *testing.T) {
	run(t, "promtool", "check", "rules", rulesFile)
}

func TestPromtoolTestRules(t *testing.T) {
	run(t, "promtool", "test", "rules", rulesTestFile)
}

func TestAmtoolCheckConfig(t *testing.T) {
	run(t, "amtool", "check-config", alertmanagerFile)
}

func TestAmtoolRoutes(t *testing.T) {
	for _, tc := range []struct {
		receiver string
		labels   []string
	}{
		{"pager", []string{"severity=critical", "alertname=DifyAPIUnreachable", "app=example"}},
		{"pager", []string{"severity=critical", "alertname=DifyExporterDown", "job=dify_exporter"}},
		{"ticket", []string{"severity=warning", "alertname=DifyWorkflowRunStuck", "app=example"}},
		{"null", []string{"severity=info", "alertname=DifyWorkflowRunPausedTooLong", "app=example"}},
	} {
		t.Run(tc.receiver+"/"+tc.labels[0], func(t *testing.T) {
			args := append([]string{"config", "routes", "test",
				"--config.file=" + alertmanagerFile,
				"--verify.receivers=" + tc.receiver}, tc.labels...)
			run(t, "amtool", args...)
		})
	}
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Record      string            `yaml:"record"`
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func parseRules(t *testing.T) ruleFile {
	t.Helper()
	var rf ruleFile
	dec := yaml.NewDecoder(bytes.NewReader(Rules))
	dec.KnownFields(true)
	if err := dec.Decode(&rf); err != nil {
		t.Fatalf("parse %s: %v", rulesFile, err)
	}
	if len(rf.Groups) == 0 {
		t.Fatalf("%s: no groups", rulesFile)
	}
	return rf
}

func alerts(rf ruleFile) []rule {
	var out []rule
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				out = append(out, r)
			}
		}
	}
	return out
}

// runbookAnchors returns the GitHub anchors of the headings of runbook.md.
func runbookAnchors(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(runbookFile)
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	nonWord := regexp.MustCompile(`[^a-z0-9 _-]`)
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.TrimSpace(strings.TrimLeft(line, "#"))
		a := strings.ReplaceAll(nonWord.ReplaceAllString(strings.ToLower(h), ""), " ", "-")
		anchors[a] = true
	}
	return anchors
}

var (
	camelCase  = regexp.MustCompile(`^Dify[A-Z][A-Za-z0-9]*$`)
	recordName = regexp.MustCompile(`^[a-z_]+:[a-z_]+:[a-z0-9_]+$`)
)

func TestRuleConventions(t *testing.T) {
	rf := parseRules(t)
	anchors := runbookAnchors(t)
	seen := map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			switch {
			case r.Record != "":
				if !recordName.MatchString(r.Record) {
					t.Errorf("recording rule %q: not named level:metric:operations", r.Record)
				}
				if strings.Contains(r.Record, "_total:rate") {
					t.Errorf("recording rule %q: drop _total under rate", r.Record)
				}
			case r.Alert != "":
				name := r.Alert
				if seen[name] {
					t.Errorf("alert %s defined twice", name)
				}
				seen[name] = true
				if !camelCase.MatchString(name) {
					t.Errorf("alert %s: name must be CamelCase with the prefix Dify", name)
				}
				switch s := r.Labels["severity"]; s {
				case "critical", "warning", "info":
				default:
					t.Errorf("alert %s: severity %q not in critical|warning|info", name, s)
				}
				sum := r.Annotations["summary"]
				if sum == "" || !strings.HasSuffix(sum, ".") || strings.Contains(sum, "{{") {
					t.Errorf("alert %s: summary %q must be static and end with a period", name, sum)
				}
				if d := r.Annotations["description"]; d == "" || !strings.Contains(d, "{{") {
					t.Errorf("alert %s: description %q must be templated ($labels/$value)", name, d)
				}
				u := r.Annotations["runbook_url"]
				want := runbookURLPrefix + strings.ToLower(name)
				if u != want {
					t.Errorf("alert %s: runbook_url %q, want %q", name, u, want)
				}
				if !anchors[strings.ToLower(name)] {
					t.Errorf("alert %s: no heading %q in %s", name, name, runbookFile)
				}
			default:
				t.Errorf("group %s: rule with neither record nor alert", g.Name)
			}
		}
	}
	for _, want := range []string{
		"DifyExporterDown", "DifyAPIUnreachable", "DifyWorkflowRunStuck",
		"DifyWorkflowRunPausedTooLong", "DifyWorkflowErrorBudgetBurnFast", "DifyWorkflowErrorBudgetBurnSlow",
		"DifyHostClockSkew", "DifyLogRowsTimeZone",
		"DifyWorkflowDurationP95High", "DifyTokenBurnHigh", "DifyExporterRunErrors",
		"DifyExporterScrapeTimeouts", "DifyExporterConfigReloadFailed",
	} {
		if !seen[want] {
			t.Errorf("alert %s missing from %s", want, rulesFile)
		}
	}
}

func TestEveryAlertHasFiringAndQuietTests(t *testing.T) {
	b, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	var tf struct {
		Tests []struct {
			AlertRuleTests []struct {
				Alertname string           `yaml:"alertname"`
				ExpAlerts []map[string]any `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
			PromQLExprTests []struct {
				Expr string `yaml:"expr"`
			} `yaml:"promql_expr_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(b, &tf); err != nil {
		t.Fatalf("parse %s: %v", rulesTestFile, err)
	}
	firing, quiet, exprs := map[string]int{}, map[string]int{}, map[string]bool{}
	for _, tc := range tf.Tests {
		for _, at := range tc.AlertRuleTests {
			if len(at.ExpAlerts) > 0 {
				firing[at.Alertname]++
			} else {
				quiet[at.Alertname]++
			}
		}
		for _, pt := range tc.PromQLExprTests {
			exprs[strings.TrimSpace(pt.Expr)] = true
		}
	}
	rf := parseRules(t)
	known := map[string]bool{}
	for _, a := range alerts(rf) {
		known[a.Alert] = true
		if firing[a.Alert] == 0 {
			t.Errorf("alert %s: no test case in %s where it fires", a.Alert, rulesTestFile)
		}
		if quiet[a.Alert] == 0 {
			t.Errorf("alert %s: no test case in %s where it must not fire", a.Alert, rulesTestFile)
		}
	}
	for name := range firing {
		if !known[name] {
			t.Errorf("%s tests unknown alert %s", rulesTestFile, name)
		}
	}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Record != "" && !exprs[r.Record] {
				t.Errorf("recording rule %s: no promql_expr_test in %s", r.Record, rulesTestFile)
			}
		}
	}
}

func TestAlertmanagerConfigShape(t *testing.T) {
	var cfg struct {
		Route struct {
			GroupBy []string `yaml:"group_by"`
			Routes  []struct {
				Receiver string   `yaml:"receiver"`
				Matchers []string `yaml:"matchers"`
			} `yaml:"routes"`
		} `yaml:"route"`
		InhibitRules []struct {
			SourceMatchers []string `yaml:"source_matchers"`
			TargetMatchers []string `yaml:"target_matchers"`
			Equal          []string `yaml:"equal"`
		} `yaml:"inhibit_rules"`
	}
	if err := yaml.Unmarshal(AlertmanagerConfig, &cfg); err != nil {
		t.Fatal(err)
	}
	gb := append([]string(nil), cfg.Route.GroupBy...)
	sort.Strings(gb)
	if strings.Join(gb, ",") != "alertname,app" {
		t.Errorf("group_by = %v, want [alertname app]", cfg.Route.GroupBy)
	}
	found := false
	for _, ir := range cfg.InhibitRules {
		if strings.Join(ir.SourceMatchers, ",") == `alertname="DifyAPIUnreachable"` &&
			strings.Join(ir.TargetMatchers, ",") == `alertname=~"DifyWorkflow.*|DifyExporter(RunErrors|ScrapeTimeouts)"` &&
			strings.Join(ir.Equal, ",") == "app" {
			found = true
		}
	}
	if !found {
		t.Errorf("no inhibit rule DifyAPIUnreachable -> DifyWorkflow.* with equal [app]")
	}
}
