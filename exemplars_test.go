package main

import (
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dify-exporter/dify_exporter/client/difytest"
)

// TestExemplarsOnlyInOpenMetrics finishes a listed run while the exporter
// watches and scrapes /metrics over HTTP in both formats: OpenMetrics
// carries the run as the exemplar of its duration bucket and counters, the
// text format has no exemplar at all.
func TestExemplarsOnlyInOpenMetrics(t *testing.T) {
	srv, e, id := startWithRun(t, 40)
	e.scrape() // tracked while paused
	r, _ := srv.Run(secretKey, id)
	r.Status, r.FinishedAt, r.TotalTokens, r.ElapsedTime = "failed", time.Now(), 90, 12
	srv.PutRun(secretKey, r)

	om := http.Header{"Accept": {"application/openmetrics-text;version=1.0.0;q=0.9,text/plain;q=0.5"}}
	code, body := e.do(http.MethodGet, "/metrics", om, nil)
	if code != http.StatusOK || !strings.HasSuffix(body, "# EOF\n") {
		t.Fatalf("OpenMetrics /metrics: %d, body:\n%s", code, body)
	}
	// The run is exposed as failed, and is the exemplar: its value, then
	// the exporter's time of counting it.
	exposed := false
	for _, l := range strings.Split(body, "\n") {
		exposed = exposed || strings.HasPrefix(l, "dify_workflow_run_status{") &&
			strings.Contains(l, `run_id="`+id+`"`) && strings.Contains(l, `status="failed"`) && strings.HasSuffix(l, "} 1")
	}
	if !exposed {
		t.Errorf("run %s not exposed as failed:\n%s", id, grepLines(body, id))
	}
	for _, want := range []struct{ series, value string }{
		{`dify_workflow_run_duration_seconds_bucket{app="default",le="15.0"} 1`, "12"},
		{`dify_workflow_runs_finished_total{app="default",status="failed"} 1.0`, "1"},
		{`dify_workflow_tokens_total{app="default"} 90.0`, "90"},
	} {
		line := ""
		for _, l := range strings.Split(body, "\n") {
			if strings.HasPrefix(l, want.series+" # {") {
				line = l
			}
		}
		// # {labels} value timestamp
		m := regexp.MustCompile(`# \{(.*)\} (\S+) (\S+)$`).FindStringSubmatch(line)
		if m == nil {
			t.Errorf("no exemplar on %s in:\n%s", want.series, grepLines(body, "dify_workflow_"))
			continue
		}
		if !slices.Contains(strings.Split(m[1], ","), `run_id="`+id+`"`) {
			t.Errorf("%s: exemplar labels {%s}, want run_id %q", want.series, m[1], id)
		}
		if v, err := strconv.ParseFloat(m[2], 64); err != nil || strconv.FormatFloat(v, 'f', -1, 64) != want.value {
			t.Errorf("%s: exemplar value %s, want %s", want.series, m[2], want.value)
		}
		sec, err := strconv.ParseFloat(m[3], 64)
		if at := time.Unix(int64(sec), 0); err != nil || time.Since(at) > time.Minute || time.Until(at) > time.Second {
			t.Errorf("%s: exemplar time %s is not the scrape's (%v)", want.series, m[3], err)
		}
	}

	code, text := e.get("/metrics")
	if code != http.StatusOK {
		t.Fatalf("text /metrics: %d", code)
	}
	if strings.Contains(text, " # {") || strings.Contains(text, "# EOF") {
		t.Errorf("text exposition carries OpenMetrics syntax:\n%s", grepLines(text, " # {"))
	}
	m := parseMetrics(t, text)
	if v := m.mustValue(t, "dify_workflow_run_duration_seconds_bucket", "le", "15"); v != 1 {
		t.Errorf("text duration bucket le=15 = %v, want 1", v)
	}
}

// startWithRun starts the exporter on one workflow app with one listed
// paused run of tokens tokens (paused runs keep their tokens).
func startWithRun(t *testing.T, tokens int) (*difytest.Server, *exporter, string) {
	t.Helper()
	srv := newDify(t)
	srv.AddApp(secretKey, difytest.App{Name: "T", Mode: "workflow"})
	id := difytest.NewRunID()
	srv.PutRun(secretKey, difytest.Run{ID: id, Status: "paused", TotalTokens: tokens, TotalSteps: 3})
	return srv, startExporter(t, baseEnv("DIFY_API_KEY="+secretKey), "--dify.url="+srv.URL(), "--dify.run-id="+id), id
}

// grepLines is text's sample lines holding sub.
func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
