package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/dify-exporter/dify_exporter/client/difytest"
	"github.com/dify-exporter/dify_exporter/dashboards"
)

const (
	appName = "e2e"
	jobName = "dify_exporter" // the rules assume this scrape job name
	apiKey  = "app-e2eTestKey0123456789abc"

	// overallTimeout bounds each polling phase; generous for a loaded 2-core machine.
	overallTimeout = 90 * time.Second
)

// TestEndToEnd runs the exporter, Prometheus and Alertmanager together.
//
// Skipped with -short (it builds a binary and starts three servers, ~30 s).
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test skipped in -short mode (it starts Prometheus, Alertmanager and the exporter)")
	}
	promBin := requireTool(t, "prometheus")
	amBin := requireTool(t, "prometheus-alertmanager")
	start := time.Now()

	root := repoRoot(t)
	dir := t.TempDir()
	e := &env{t: t, dir: dir}

	// 1. The exporter binary.
	exporterBin := buildExporter(t, root, dir)

	// 2. A simulated Dify with runs in every status.
	srv := difytest.NewServer()
	t.Cleanup(srv.Close)
	srv.AddApp(apiKey, difytest.App{Name: "E2E workflow", Mode: "workflow"})
	now := time.Now()
	runs := seedRuns(srv, now)

	// 3. The exporter.
	keyFile := filepath.Join(dir, "dify.key")
	writeFile(t, keyFile, apiKey+"\n")
	exporterAddr := freeAddr(t)
	e.start("exporter", exporterBin,
		"--dify.url="+srv.URL(),
		"--dify.api-key-file="+keyFile,
		"--dify.app-name="+appName,
		"--discovery.workflow-logs",
		"--discovery.lookback=100h",
		"--web.listen-address="+exporterAddr,
		"--log.level=debug",
	)
	exporterURL := "http://" + exporterAddr
	e.waitReady("exporter", exporterURL+"/-/ready")

	// 4. Alertmanager, delivering every alert to a webhook in the test.
	hook := &webhook{}
	hookSrv := httptest.NewServer(hook)
	t.Cleanup(hookSrv.Close)
	amDir := filepath.Join(dir, "alertmanager")
	mustMkdir(t, amDir)
	amConfig := filepath.Join(amDir, "alertmanager.yml")
	writeFile(t, amConfig, alertmanagerConfig(t, filepath.Join(root, "alerts", "alertmanager.yml"), hookSrv.URL+"/alerts"))
	amAddr := freeAddr(t)
	e.start("alertmanager", amBin,
		"--config.file="+amConfig,
		"--storage.path="+filepath.Join(amDir, "data"),
		"--web.listen-address="+amAddr,
		"--cluster.listen-address=",
		"--log.level=debug",
	)
	amURL := "http://" + amAddr
	e.waitReady("alertmanager", amURL+"/-/ready")

	// 5. Prometheus, with the repository's rules (waiting times shortened).
	promDir := filepath.Join(dir, "prometheus")
	mustMkdir(t, promDir)
	rules := loadRules(t, filepath.Join(root, "alerts", "dify.rules.yml"))
	rulesFile := filepath.Join(promDir, "dify.rules.yml")
	writeFile(t, rulesFile, string(rules.shortened))
	promConfig := filepath.Join(promDir, "prometheus.yml")
	// The rules are loaded only once the exporter has been scraped (config
	// reload): Prometheus 2.x starts scraping up to 5 s after it starts, and
	// until then absent(up{job="dify_exporter"}) is true, which with the
	// shortened `for` would fire DifyExporterDown (and, through the inhibit
	// rules, hold back the run alerts) although the exporter is up.
	promYAML := func(withRules bool) string {
		ruleFiles := ""
		if withRules {
			ruleFiles = fmt.Sprintf("rule_files:\n  - %q\n", rulesFile)
		}
		return fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: %s
    static_configs:
      - targets: [%q]
%salerting:
  alertmanagers:
    - static_configs:
        - targets: [%q]
`, jobName, exporterAddr, ruleFiles, amAddr)
	}
	writeFile(t, promConfig, promYAML(false))
	promAddr := freeAddr(t)
	e.start("prometheus", promBin,
		"--config.file="+promConfig,
		"--storage.tsdb.path="+filepath.Join(promDir, "data"),
		"--web.listen-address="+promAddr,
		"--web.enable-lifecycle",
		// Resend firing alerts every 2 s, not every minute: an alert that
		// fires while the config reload below re-discovers the Alertmanager
		// would otherwise wait a minute for its second chance.
		"--rules.alert.resend-delay=2s",
		"--log.level=debug",
	)
	prom := &promAPI{e: e, base: "http://" + promAddr}
	e.waitReady("prometheus", prom.base+"/-/ready")
	e.poll("Prometheus has scraped the exporter", func() (bool, string) {
		v, err := prom.instant(fmt.Sprintf(`up{job=%q} == 1`, jobName))
		if err != nil {
			return false, err.Error()
		}
		return len(v) > 0, "up is not 1 yet"
	})
	writeFile(t, promConfig, promYAML(true))
	e.poll("Prometheus has loaded the rules", func() (bool, string) {
		resp, err := httpClient.Post(prom.base+"/-/reload", "", nil)
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false, "reload: " + resp.Status
		}
		n, err := prom.ruleCount()
		if err != nil {
			return false, err.Error()
		}
		return n == rules.count, fmt.Sprintf("%d rules loaded, want %d", n, rules.count)
	})
	t.Logf("exporter, Alertmanager and Prometheus (with rules) up after %s", time.Since(start).Round(time.Millisecond))

	// Wait until Prometheus has scraped the runs that will finish while running,
	// and the zero counters a few times, so that rate() sees their finish.
	sel := fmt.Sprintf(`job=%q, app=%q`, jobName, appName)
	e.poll("Prometheus has scraped the running runs and the zero counters", func() (bool, string) {
		var missing []string
		for _, id := range runs.toFinish {
			q := fmt.Sprintf(`dify_workflow_run_status{%s, run_id=%q, status="running"} == 1`, sel, id)
			if v, err := prom.instant(q); err != nil || len(v) == 0 {
				missing = append(missing, "run "+id+" running")
			}
		}
		q := fmt.Sprintf(`count_over_time(dify_workflow_runs_finished_total{%s, status="succeeded"}[1m]) >= 3`, sel)
		if v, err := prom.instant(q); err != nil || len(v) == 0 {
			missing = append(missing, "3 samples of the finished counter")
		}
		return len(missing) == 0, strings.Join(missing, ", ")
	})

	// Finish those runs now: the exporter counts finishes it watches happen.
	finished := time.Now()
	for i, id := range runs.toFinish {
		status := []string{"succeeded", "failed", "partial-succeeded"}[i%3]
		srv.PutRun(apiKey, difytest.Run{
			ID: id, Status: status, CreatedAt: runs.toFinishCreated,
			FinishedAt: finished, ElapsedTime: finished.Sub(runs.toFinishCreated).Seconds(),
			TotalSteps: 4 + i, TotalTokens: finishTokens(i),
		})
	}

	// Inject server errors on the logs (which refresh the stuck and paused runs in
	// bulk) and on the run detail endpoint (which the exporter falls back to) until
	// the exporter has counted some, so that the error and stale-run panels have
	// something to show.
	srv.SetFault(difytest.EndpointLogs, difytest.Fault{Status: http.StatusInternalServerError})
	srv.SetFault(difytest.EndpointRun, difytest.Fault{Status: http.StatusInternalServerError})
	e.poll("the exporter has counted run fetch errors", func() (bool, string) {
		v, err := prom.instant(fmt.Sprintf(`dify_exporter_run_errors_total{%s, reason="server_error"} > 0`, sel))
		if err != nil {
			return false, err.Error()
		}
		return len(v) > 0, "no dify_exporter_run_errors_total{reason=\"server_error\"} in Prometheus yet"
	})
	srv.ClearFaults()

	// 6a. Every dashboard panel query returns data from the real Prometheus.
	t.Run("dashboard", func(t *testing.T) {
		queries, err := dashboards.Queries(dashboards.Overview, dashboardVars)
		if err != nil {
			t.Fatal(err)
		}
		if len(queries) == 0 {
			t.Fatal("the dashboard has no queries")
		}
		panels := map[int]bool{}
		for _, q := range queries {
			panels[q.PanelID] = true
		}
		var missing []string
		ok := e.pollT(t, "every dashboard panel has data", func() (bool, string) {
			missing = missing[:0]
			withData := maps.Clone(panels) // a panel has data when all its queries have
			for _, q := range queries {
				if reason, ok := emptyByDesign[q.PanelTitle]; ok {
					t.Logf("panel %d %q may be empty: %s", q.PanelID, q.PanelTitle, reason)
					continue
				}
				n, finite, err := prom.panelData(q)
				switch {
				case err != nil:
					missing = append(missing, fmt.Sprintf("panel %d %q %s: %v", q.PanelID, q.PanelTitle, q.RefID, err))
				case n == 0 || finite == 0:
					missing = append(missing, fmt.Sprintf("panel %d %q %s: %d series, %d finite samples (%s)", q.PanelID, q.PanelTitle, q.RefID, n, finite, q.Expr))
				default:
					continue
				}
				withData[q.PanelID] = false
			}
			e.stats.panelsWithData, e.stats.panels, e.stats.queries = 0, len(panels), len(queries)
			for _, has := range withData {
				if has {
					e.stats.panelsWithData++
				}
			}
			return len(missing) == 0, strings.Join(missing, "\n")
		})
		t.Logf("dashboard: %d/%d panels (%d queries) returned non-empty, finite data", e.stats.panelsWithData, e.stats.panels, e.stats.queries)
		if !ok {
			t.Errorf("panels without data:\n%s", strings.Join(missing, "\n"))
		}
	})

	// 6b. Every metric the dashboard or the rules name is exposed by the exporter.
	t.Run("metric names", func(t *testing.T) {
		exposed := scrapeNames(t, exporterURL+"/metrics")
		queries, err := dashboards.Queries(dashboards.Overview, dashboardVars)
		if err != nil {
			t.Fatal(err)
		}
		referenced := map[string][]string{} // name -> where
		for _, q := range queries {
			for _, n := range metricNames(q.Expr) {
				referenced[n] = append(referenced[n], fmt.Sprintf("panel %d %q", q.PanelID, q.PanelTitle))
			}
		}
		for name, expr := range rules.exprs {
			for _, n := range metricNames(expr) {
				referenced[n] = append(referenced[n], "rule "+name)
			}
		}
		var checked []string
		for n, where := range referenced {
			if n == "up" || rules.recorded[n] {
				continue
			}
			checked = append(checked, n)
			if !exposed[n] {
				t.Errorf("metric %s (used by %s) is not in the exporter's /metrics", n, strings.Join(dedupe(where), ", "))
			}
		}
		sort.Strings(checked)
		if len(checked) == 0 {
			t.Fatal("found no metric names in the dashboard and the rules")
		}
		t.Logf("%d metric names referenced by the dashboard and the rules are all exposed: %s", len(checked), strings.Join(checked, " "))
	})

	// 6b'. The values Prometheus scraped match the seeded runs: the three runs that
	// finished while the exporter watched are counted, the seven that had finished
	// before it started are not; the per-status gauges count every tracked run.
	t.Run("values", func(t *testing.T) {
		want := map[string]float64{
			`dify_workflow_runs_finished_total{status="succeeded"}`:         1,
			`dify_workflow_runs_finished_total{status="failed"}`:            1,
			`dify_workflow_runs_finished_total{status="partial-succeeded"}`: 1,
			`dify_workflow_runs_finished_total{status="stopped"}`:           0,
			`dify_workflow_tokens_total`:                                    runs.toFinishTokens,
			`dify_workflow_run_duration_seconds_count`:                      float64(len(runs.toFinish)),
			`dify_workflow_runs{status="running"}`:                          1, // the stuck run
			`dify_workflow_runs{status="paused"}`:                           1,
			`dify_workflow_runs{status="succeeded"}`:                        5,
			`dify_workflow_runs{status="failed"}`:                           2,
			`dify_workflow_runs{status="stopped"}`:                          1,
			`dify_workflow_runs{status="partial-succeeded"}`:                2,
			`dify_exporter_tracked_runs{source="discovered"}`:               float64(runs.total),
			`dify_up`: 1,
		}
		keys := make([]string, 0, len(want))
		for k := range want {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var wrong []string
		ok := e.pollT(t, "the scraped values match the seeded runs", func() (bool, string) {
			wrong = wrong[:0]
			for _, k := range keys {
				name, matchers, _ := strings.Cut(k, "{")
				q := fmt.Sprintf("sum(%s{%s, %s)", name, sel, strings.TrimSuffix(matchers, "}")+"}")
				if matchers == "" {
					q = fmt.Sprintf("sum(%s{%s})", name, sel)
				}
				got, err := prom.value(q)
				if err != nil || got != want[k] {
					wrong = append(wrong, fmt.Sprintf("%s = %v (err %v), want %v", k, got, err, want[k]))
				}
			}
			return len(wrong) == 0, strings.Join(wrong, "; ")
		})
		if !ok {
			t.Errorf("wrong values:\n%s", strings.Join(wrong, "\n"))
		}
	})

	// 6c. The run-level alerts reach the webhook through Alertmanager.
	t.Run("run alerts", func(t *testing.T) {
		for _, want := range []struct{ alert, runID string }{
			{"DifyWorkflowRunStuck", runs.stuck},
			{"DifyWorkflowRunPausedTooLong", runs.paused},
		} {
			hook.wait(t, e, want.alert, map[string]string{
				"alertname": want.alert, "severity": rules.severity[want.alert],
				"app": appName, "run_id": want.runID, "job": jobName,
			})
		}
	})

	// 6d. A revoked key: dify_up goes to 0 and DifyAPIUnreachable is delivered.
	t.Run("revoked key", func(t *testing.T) {
		srv.RevokeKey(apiKey)
		e.pollT(t, "dify_up is 0 in Prometheus", func() (bool, string) {
			v, err := prom.instant(fmt.Sprintf(`dify_up{%s} == 0`, sel))
			if err != nil {
				return false, err.Error()
			}
			return len(v) > 0, "dify_up is not 0"
		})
		e.pollT(t, "the refused key is counted as reason=\"unauthorized\"", func() (bool, string) {
			v, err := prom.instant(fmt.Sprintf(`dify_exporter_run_errors_total{%s, reason="unauthorized"} > 0`, sel))
			if err != nil {
				return false, err.Error()
			}
			return len(v) > 0, "no unauthorized errors counted"
		})
		hook.wait(t, e, "DifyAPIUnreachable", map[string]string{
			"alertname": "DifyAPIUnreachable", "severity": rules.severity["DifyAPIUnreachable"],
			"app": appName, "job": jobName,
		})
	})

	// The landing page shows the app down with its error; the API key is in
	// no output of the exporter (landing page, metrics, log).
	t.Run("landing page and key secrecy", func(t *testing.T) {
		var page string
		e.pollT(t, "the landing page shows the app down", func() (bool, string) {
			page = getBody(t, exporterURL+"/")
			return strings.Contains(page, `class="down"`), "no app marked down on the landing page"
		})
		if !strings.Contains(page, `data-app="`+appName+`"`) {
			t.Errorf("the landing page does not list app %s:\n%s", appName, page)
		}
		if !strings.Contains(strings.ToLower(page), "unauthorized") && !strings.Contains(page, "401") {
			t.Errorf("the landing page does not show why the app is down (want unauthorized or 401):\n%s", page)
		}
		metrics := getBody(t, exporterURL+"/metrics")
		logText, err := os.ReadFile(filepath.Join(dir, "exporter.log"))
		if err != nil {
			t.Fatal(err)
		}
		for where, text := range map[string]string{"landing page": page, "/metrics": metrics, "exporter log": string(logText)} {
			if strings.Contains(text, apiKey) || strings.Contains(text, strings.TrimPrefix(apiKey, "app-")) {
				t.Errorf("the API key appears in the %s", where)
			}
		}
	})

	// 6e. The repository's inhibit rules: DifyAPIUnreachable silences the run
	// alerts of the same app (still firing in Prometheus: the exporter keeps
	// serving the runs' last values).
	t.Run("inhibition", func(t *testing.T) {
		e.pollT(t, "Alertmanager shows DifyWorkflowRunStuck inhibited", func() (bool, string) {
			state, inhibitedBy, err := alertState(amURL, "DifyWorkflowRunStuck")
			if err != nil {
				return false, err.Error()
			}
			return state == "suppressed" && len(inhibitedBy) > 0, fmt.Sprintf("state %q, inhibited by %v", state, inhibitedBy)
		})
	})

	// The exporter was up all along: its own down alert must never have fired.
	if slices.Contains(hook.names(), "DifyExporterDown") {
		t.Errorf("DifyExporterDown was delivered although the exporter was up")
	}
	t.Logf("alerts delivered to the webhook: %s", strings.Join(hook.names(), ", "))
	t.Logf("dashboard panels with data: %d/%d; total time %s",
		e.stats.panelsWithData, e.stats.panels, time.Since(start).Round(100*time.Millisecond))
}

// dashboardVars are the dashboard variables as Grafana would expand them for
// this test's Prometheus (1 s scrape interval: a 1m rate interval holds
// plenty of samples).
var dashboardVars = map[string]string{
	"datasource":      "prometheus",
	"job":             jobName,
	"instance":        ".+", // the variable's all-value, as Grafana sends it for "All"
	"app":             appName,
	"__rate_interval": "1m",
	"__interval":      "1s",
	"__range":         "5m",
	"__range_s":       "300",
}

// emptyByDesign lists the panels (by title) allowed to return no data, with
// the reason. None is: the test makes run fetch errors (fault injection),
// finished-run counts (runs finishing while watched) and stale runs happen,
// so every panel must show something.
var emptyByDesign = map[string]string{}

// seededRuns are the IDs the assertions need.
type seededRuns struct {
	stuck, paused   string
	toFinish        []string
	toFinishCreated time.Time
	toFinishTokens  float64 // their tokens once finished
	total           int
}

// seedRuns puts runs in every status, all within the discovery lookback.
func seedRuns(srv *difytest.Server, now time.Time) seededRuns {
	var s seededRuns
	put := func(status string, created time.Time, finished time.Time, tokens, steps int) string {
		id := difytest.NewRunID()
		r := difytest.Run{ID: id, Status: status, CreatedAt: created, TotalTokens: tokens, TotalSteps: steps}
		if !finished.IsZero() {
			r.FinishedAt = finished
			r.ElapsedTime = finished.Sub(created).Seconds()
		} else {
			r.ElapsedTime = now.Sub(created).Seconds()
		}
		srv.PutRun(apiKey, r)
		s.total++
		return id
	}
	// Finished before the exporter starts: exposed, but not counted.
	put("succeeded", now.Add(-2*time.Hour), now.Add(-2*time.Hour+40*time.Second), 900, 5)
	put("failed", now.Add(-90*time.Minute), now.Add(-90*time.Minute+12*time.Second), 300, 3)
	put("stopped", now.Add(-80*time.Minute), now.Add(-80*time.Minute+7*time.Second), 120, 2)
	put("partial-succeeded", now.Add(-70*time.Minute), now.Add(-70*time.Minute+25*time.Second), 640, 6)
	for i := range 3 { // a few recent runs
		c := now.Add(-time.Duration(10-i) * time.Minute)
		put("succeeded", c, c.Add(time.Duration(3+i)*time.Second), 200+50*i, 4)
	}
	s.stuck = put("running", now.Add(-3*time.Hour), time.Time{}, 50, 1)
	s.paused = put("paused", now.Add(-72*time.Hour), time.Time{}, 80, 2)
	// Running now; they finish (succeeded, failed, partial-succeeded) while the
	// exporter watches, which fills the counters and the histogram.
	s.toFinishCreated = now.Add(-20 * time.Second)
	for range 3 {
		s.toFinish = append(s.toFinish, put("running", s.toFinishCreated, time.Time{}, 10, 1))
	}
	for i := range s.toFinish {
		s.toFinishTokens += float64(finishTokens(i))
	}
	return s
}

// finishTokens is the token count of the i-th run that finishes during the test.
func finishTokens(i int) int { return 1500 + 100*i }

// --- processes -------------------------------------------------------------

// buildExporter builds the exporter binary into dir.
func buildExporter(t *testing.T, root, dir string) string {
	t.Helper()
	start := time.Now()
	bin := filepath.Join(dir, "dify_exporter")
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("the go command is not in PATH")
	}
	build := exec.Command(goBin, "build", "-o", bin, "github.com/dify-exporter/dify_exporter")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Logf("built the exporter in %s", time.Since(start).Round(time.Millisecond))
	return bin
}

type proc struct {
	name, log string
	cmd       *exec.Cmd
	done      chan struct{}
	err       error
}

type env struct {
	t     *testing.T
	dir   string
	mu    sync.Mutex
	procs []*proc
	stats struct{ panelsWithData, panels, queries int }
}

// start runs a binary with its output in a log file, stopped at cleanup.
func (e *env) start(name, bin string, args ...string) *proc {
	t := e.t
	t.Helper()
	logPath := filepath.Join(e.dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = e.dir
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
	t.Cleanup(func() {
		select {
		case <-p.done:
			return
		default:
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	// Registered after the stop: runs before it, while the logs are complete
	// enough to explain a failure.
	t.Cleanup(func() {
		if t.Failed() {
			e.dumpLog(p)
		}
	})
	return p
}

func (e *env) dumpLog(p *proc) {
	b, err := os.ReadFile(p.log)
	if err != nil {
		e.t.Logf("%s log: %v", p.name, err)
		return
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	const n = 60
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	e.t.Logf("--- last %d lines of the %s log (%s) ---\n%s", len(lines), p.name, p.log, strings.Join(lines, "\n"))
}

// exited returns an error if a started process has exited.
func (e *env) exited() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, p := range e.procs {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited: %v", p.name, p.err)
		default:
		}
	}
	return nil
}

func (e *env) waitReady(name, u string) {
	e.t.Helper()
	e.poll(name+" is ready", func() (bool, string) {
		resp, err := httpClient.Get(u)
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
}

// poll calls cond until it is true, failing the test after overallTimeout.
func (e *env) poll(what string, cond func() (bool, string)) {
	e.t.Helper()
	if !e.pollT(e.t, what, cond) {
		e.t.FailNow()
	}
}

// pollT calls cond until it is true; on timeout it reports an error on t
// and returns false.
func (e *env) pollT(t *testing.T, what string, cond func() (bool, string)) bool {
	t.Helper()
	start := time.Now()
	deadline := start.Add(overallTimeout)
	var last string
	for {
		if err := e.exited(); err != nil {
			t.Fatalf("waiting until %s: %v", what, err)
		}
		ok, msg := cond()
		if ok {
			t.Logf("%s (after %s)", what, time.Since(start).Round(10*time.Millisecond))
			return true
		}
		last = msg
		if time.Now().After(deadline) {
			t.Errorf("timed out after %s waiting until %s; last state: %s", overallTimeout, what, last)
			return false
		}
		time.Sleep(250 * time.Millisecond)
	}
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

// --- Prometheus HTTP API ----------------------------------------------------

type promAPI struct {
	e    *env
	base string
}

type promSeries struct {
	Metric map[string]string `json:"metric"`
	Value  []any             `json:"value"`
	Values [][]any           `json:"values"`
}

func (p *promAPI) get(path string, params url.Values) (string, []promSeries, error) {
	resp, err := httpClient.Get(p.base + path + "?" + params.Encode())
	if err != nil {
		return "", nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", nil, err
	}
	var r struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
		Data      struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return "", nil, fmt.Errorf("%s: %v: %.200s", resp.Status, err, body)
	}
	if r.Status != "success" {
		return "", nil, fmt.Errorf("%s: %s: %s", r.Status, r.ErrorType, r.Error)
	}
	var series []promSeries
	switch r.Data.ResultType {
	case "vector", "matrix":
		if err := json.Unmarshal(r.Data.Result, &series); err != nil {
			return "", nil, err
		}
	case "scalar":
		var v []any
		if err := json.Unmarshal(r.Data.Result, &v); err != nil {
			return "", nil, err
		}
		series = []promSeries{{Value: v}}
	default:
		return "", nil, fmt.Errorf("unexpected result type %q", r.Data.ResultType)
	}
	return r.Data.ResultType, series, nil
}

func (p *promAPI) instant(q string) ([]promSeries, error) {
	_, s, err := p.get("/api/v1/query", url.Values{"query": {q}})
	return s, err
}

// value runs an instant query that must return one sample.
func (p *promAPI) value(q string) (float64, error) {
	s, err := p.instant(q)
	if err != nil {
		return 0, err
	}
	if len(s) != 1 || len(s[0].Value) != 2 {
		return 0, fmt.Errorf("%d series", len(s))
	}
	str, _ := s[0].Value[1].(string)
	return strconv.ParseFloat(str, 64)
}

// ruleCount is the number of rules Prometheus has loaded.
func (p *promAPI) ruleCount() (int, error) {
	resp, err := httpClient.Get(p.base + "/api/v1/rules")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Groups []struct {
				Rules []json.RawMessage `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return 0, err
	}
	n := 0
	for _, g := range r.Data.Groups {
		n += len(g.Rules)
	}
	return n, nil
}

// panelData runs a panel query the way Grafana would (instant for tables, a
// range over the last two minutes otherwise) and counts the series and the
// finite samples.
func (p *promAPI) panelData(q dashboards.Query) (series, finite int, err error) {
	var s []promSeries
	if q.Instant {
		s, err = p.instant(q.Expr)
	} else {
		end := time.Now()
		_, s, err = p.get("/api/v1/query_range", url.Values{
			"query": {q.Expr},
			"start": {strconv.FormatInt(end.Add(-2*time.Minute).Unix(), 10)},
			"end":   {strconv.FormatInt(end.Unix(), 10)},
			"step":  {"2"},
		})
	}
	if err != nil {
		return 0, 0, err
	}
	for _, ser := range s {
		samples := ser.Values
		if ser.Value != nil {
			samples = append(samples, ser.Value)
		}
		for _, v := range samples {
			if len(v) == 2 {
				if str, ok := v[1].(string); ok {
					if f, err := strconv.ParseFloat(str, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
						finite++
					}
				}
			}
		}
	}
	return len(s), finite, nil
}

// --- Alertmanager webhook ---------------------------------------------------

type webhookAlert struct {
	Status string            `json:"status"`
	Labels map[string]string `json:"labels"`
}

type webhook struct {
	mu     sync.Mutex
	alerts []webhookAlert
}

func (h *webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var msg struct {
		Alerts []webhookAlert `json:"alerts"`
	}
	if err := json.NewDecoder(r.Body).Decode(&msg); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	h.alerts = append(h.alerts, msg.Alerts...)
	h.mu.Unlock()
}

// find returns a firing alert whose labels include want.
func (h *webhook) find(want map[string]string) (webhookAlert, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, a := range h.alerts {
		if a.Status != "firing" {
			continue
		}
		match := true
		for k, v := range want {
			if a.Labels[k] != v {
				match = false
				break
			}
		}
		if match {
			return a, true
		}
	}
	return webhookAlert{}, false
}

func (h *webhook) wait(t *testing.T, e *env, name string, want map[string]string) {
	t.Helper()
	e.pollT(t, name+" reached the webhook with labels "+fmt.Sprint(want), func() (bool, string) {
		if a, ok := h.find(want); ok {
			t.Logf("%s delivered: %v", name, a.Labels)
			return true, ""
		}
		return false, "delivered so far: " + strings.Join(h.names(), ", ")
	})
}

// names lists the distinct alert names delivered (firing), sorted.
func (h *webhook) names() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var n []string
	for _, a := range h.alerts {
		if a.Status == "firing" {
			n = append(n, a.Labels["alertname"])
		}
	}
	return dedupe(n)
}

// alertState returns the Alertmanager state ("active", "suppressed") of an
// alert and the fingerprints of the alerts inhibiting it.
func alertState(amURL, alertname string) (string, []string, error) {
	q := url.Values{"filter": {fmt.Sprintf("alertname=%q", alertname)}}
	resp, err := httpClient.Get(amURL + "/api/v2/alerts?" + q.Encode())
	if err != nil {
		return "", nil, err
	}
	defer resp.Body.Close()
	var alerts []struct {
		Status struct {
			State       string   `json:"state"`
			InhibitedBy []string `json:"inhibitedBy"`
		} `json:"status"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&alerts); err != nil {
		return "", nil, err
	}
	if len(alerts) == 0 {
		return "", nil, errors.New("no such alert in Alertmanager")
	}
	return alerts[0].Status.State, alerts[0].Status.InhibitedBy, nil
}

// --- configuration files ----------------------------------------------------

// alertmanagerConfig is the repository's example configuration with one
// receiver, the test's webhook, for every severity (the example drops info
// alerts and sends the others to placeholder URLs). Its inhibit rules stay.
func alertmanagerConfig(t *testing.T, example, hookURL string) string {
	t.Helper()
	var cfg map[string]any
	b, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("%s: %v", example, err)
	}
	cfg["route"] = map[string]any{
		"receiver":        "webhook",
		"group_by":        []string{"alertname", "app"},
		"group_wait":      "1s",
		"group_interval":  "1s",
		"repeat_interval": "1m",
	}
	cfg["receivers"] = []any{map[string]any{
		"name": "webhook",
		"webhook_configs": []any{map[string]any{
			"url": hookURL, "send_resolved": true,
		}},
	}}
	if _, ok := cfg["inhibit_rules"]; !ok {
		t.Logf("note: %s has no inhibit_rules", example)
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

type ruleSet struct {
	shortened []byte
	recorded  map[string]bool   // recording rule names
	exprs     map[string]string // rule name -> expression
	severity  map[string]string // alert -> severity label
	count     int               // rules in the file
}

// loadRules parses the rule file and shortens every alert's `for`.
//
// The shipped `for` durations (1m to 15m) are too long for a test. This test
// proves that the expressions fire on the exporter's real metrics, carry the
// right labels and are routed by Alertmanager; the waiting times are covered
// by the promtool unit tests (alerts/dify.rules.test.yml). So the test's copy
// sets `for` to 2s, and to 5s for DifyExporterDown, whose absent(up) is true
// until the first scrape and needs at least two scrape intervals.
func loadRules(t *testing.T, path string) ruleSet {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	rs := ruleSet{recorded: map[string]bool{}, exprs: map[string]string{}, severity: map[string]string{}}
	groups, ok := doc["groups"].([]any)
	if !ok || len(groups) == 0 {
		t.Fatalf("%s: no groups", path)
	}
	for _, g := range groups {
		gm, ok := g.(map[string]any)
		if !ok {
			t.Fatalf("%s: a group is not a mapping", path)
		}
		rules, _ := gm["rules"].([]any)
		for _, r := range rules {
			rm, ok := r.(map[string]any)
			if !ok {
				t.Fatalf("%s: a rule is not a mapping", path)
			}
			rs.count++
			expr, _ := rm["expr"].(string)
			if rec, ok := rm["record"].(string); ok {
				rs.recorded[rec] = true
				rs.exprs[rec] = expr
				continue
			}
			alert, _ := rm["alert"].(string)
			rs.exprs[alert] = expr
			if labels, ok := rm["labels"].(map[string]any); ok {
				rs.severity[alert], _ = labels["severity"].(string)
			}
			if _, ok := rm["for"]; ok {
				rm["for"] = "2s"
				if alert == "DifyExporterDown" {
					rm["for"] = "5s"
				}
			}
		}
	}
	rs.shortened, err = yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// --- metric names -------------------------------------------------------------

// scrapeNames scrapes an exporter and returns every sample name it exposes
// (histograms and summaries with their _bucket/_sum/_count names).
func scrapeNames(t *testing.T, u string) map[string]bool {
	t.Helper()
	resp, err := httpClient.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", u, resp.Status)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse %s: %v", u, err)
	}
	names := map[string]bool{}
	for name, f := range fams {
		if len(f.GetMetric()) == 0 {
			continue
		}
		names[name] = true
		switch f.GetType().String() {
		case "HISTOGRAM", "GAUGE_HISTOGRAM":
			names[name+"_bucket"], names[name+"_sum"], names[name+"_count"] = true, true, true
		case "SUMMARY":
			names[name+"_sum"], names[name+"_count"] = true, true
		}
	}
	return names
}

// promqlWords are PromQL keywords and aggregation operators that can stand
// where a metric name could (not followed directly by "(").
var promqlWords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true,
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
	"inf": true, "nan": true,
}

// labelListWords are followed by a parenthesised list of label names.
var labelListWords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// metricNames extracts the metric names of a PromQL expression: identifiers
// outside label matchers, ranges and strings that are neither functions,
// keywords nor label lists.
func metricNames(expr string) []string {
	var names []string
	isIdentStart := func(c byte) bool { return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	isIdent := func(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }
	nextNonSpace := func(i int) int {
		for i < len(expr) && strings.ContainsRune(" \t\r\n", rune(expr[i])) {
			i++
		}
		return i
	}
	skipString := func(i int) int { // expr[i] is a quote; returns the index after the closing one
		q := expr[i]
		for i++; i < len(expr); i++ {
			if expr[i] == '\\' && q != '`' {
				i++
				continue
			}
			if expr[i] == q {
				return i + 1
			}
		}
		return i
	}
	skipGroup := func(i int, open, closing byte) int { // expr[i] == open
		depth := 0
		for i < len(expr) {
			switch c := expr[i]; {
			case c == '"' || c == '\'' || c == '`':
				i = skipString(i)
				continue
			case c == open:
				depth++
			case c == closing:
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			i = skipString(i)
		case c == '{':
			i = skipGroup(i, '{', '}')
		case c == '[':
			i = skipGroup(i, '[', ']')
		case c == '#': // comment to the end of the line
			for i < len(expr) && expr[i] != '\n' {
				i++
			}
		case c >= '0' && c <= '9' || c == '.':
			for i < len(expr) && (isIdent(expr[i]) || expr[i] == '.') {
				i++
			}
		case isIdentStart(c):
			j := i
			for j < len(expr) && isIdent(expr[j]) {
				j++
			}
			word := expr[i:j]
			k := nextNonSpace(j)
			switch {
			case labelListWords[strings.ToLower(word)]:
				if k < len(expr) && expr[k] == '(' {
					j = skipGroup(k, '(', ')')
				}
			case promqlWords[strings.ToLower(word)]:
			case k < len(expr) && expr[k] == '(': // a function call
			default:
				names = append(names, word)
			}
			i = j
		default:
			i++
		}
	}
	return dedupe(names)
}

func TestMetricNames(t *testing.T) {
	for expr, want := range map[string]string{
		`sum by (app, le) (rate(x_bucket{job=~"a|b", le!="1"}[5m])) / on (app) group_left(mode) y`: "x_bucket y",
		`topk(10, (time() - a{b="c"}) and on (app, run_id) (s{status="running"} == 1))`:            "a s",
		`absent(up{job="dify_exporter"}) or up{job="dify_exporter"} == 0`:                          "up",
		`histogram_quantile(0.95, sum without (instance) (rate(h_bucket[1h]))) > 6e2`:              "h_bucket",
		`app:rec:rate5m * 3600 > 1000000`:                                                          "app:rec:rate5m",
	} {
		if got := strings.Join(metricNames(expr), " "); got != want {
			t.Errorf("metricNames(%q) = %q, want %q", expr, got, want)
		}
	}
}

// getBody GETs a URL and returns its body, failing the test on errors.
func getBody(t *testing.T, u string) string {
	t.Helper()
	resp, err := httpClient.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", u, resp.Status)
	}
	return string(b)
}

// --- helpers ------------------------------------------------------------------

func requireTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	msg := name + " not found in PATH: install it with `apt-get install prometheus prometheus-alertmanager`"
	if os.Getenv("CI") != "" {
		t.Fatal(msg + " (CI is set, so the end-to-end test must not be skipped)")
	}
	t.Skip(msg)
	return ""
}

// repoRoot is the module root: the parent of this file's directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	var candidates []string
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		candidates = append(candidates, filepath.Dir(filepath.Dir(file)))
	}
	if wd, err := os.Getwd(); err == nil {
		candidates = append(candidates, filepath.Dir(wd)) // go test runs in the package directory
	}
	for _, c := range candidates {
		if _, err := os.Stat(filepath.Join(c, "go.mod")); err == nil {
			return c
		}
	}
	t.Fatalf("cannot find the repository root (tried %v)", candidates)
	return ""
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func mustMkdir(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
}

func dedupe(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return slices.Compact(s)
}
