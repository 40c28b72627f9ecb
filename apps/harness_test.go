package apps

// The harness wires a configuration into the collector and serves the
// endpoints in process, as the binary does, against the simulated Dify of
// client/difytest: tests drive reloads (State.Reload is what SIGHUP calls,
// POST /-/reload goes through the handler) and the watched run-ID files
// (every scrape syncs them) without building a binary.

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/dify-exporter/dify_exporter/client/difytest"
	"github.com/dify-exporter/dify_exporter/collector"
	"github.com/dify-exporter/dify_exporter/config"
	"github.com/dify-exporter/dify_exporter/exposition"
	"github.com/dify-exporter/dify_exporter/server"
)

const (
	secretKey   = "app-SECRETKEY0123456789abcdef"
	secretKeyB  = "app-OTHERSECRET9876543210zyxw"
	secretInput = "TOPSECRETINPUT"
	secretOut   = "TOPSECRETOUTPUT"
)

// wiring is what the command line adds to a loader: the flags that are
// not part of the configuration.
type wiring struct {
	registration       bool
	shard, totalShards int
}

// harness is a running exporter: State, collector and endpoints, served
// on loopback.
type harness struct {
	t     *testing.T
	state *State
	exp   *collector.Exporter
	url   string
	logs  *syncBuffer

	mu     sync.Mutex
	bodies []string // every HTTP body the test received, for secret checks
}

// defaults are the flags' defaults.
func defaults() config.Defaults {
	return config.Defaults{
		URL:         "https://api.dify.ai/v1",
		Runs:        config.RunLimits{Retention: time.Hour, Max: 1000},
		Timeout:     10 * time.Second,
		Concurrency: 8,
		Discovery:   config.Discovery{Lookback: time.Hour},
	}
}

// flagsLoader is the single app of the --dify.* flags at url; the key is
// DIFY_API_KEY's.
func flagsLoader(url string, runIDs ...string) *Loader {
	d := defaults()
	d.URL = url
	return &Loader{AppName: "default", Defaults: d, RunIDs: runIDs}
}

// fileLoader reads the config file path.
func fileLoader(path string) *Loader {
	return &Loader{ConfigFile: path, AppName: "default", Defaults: defaults()}
}

// start loads and applies loader's configuration as start-up does, and
// serves the endpoints with every scrape refreshing.
func start(t *testing.T, loader *Loader, w wiring) *harness {
	t.Helper()
	if w.totalShards == 0 {
		w.totalShards = 1
	}
	logs := &syncBuffer{}
	logger := log.NewLogfmtLogger(logs)
	runs := exposition.NewCache()
	exp := collector.New(nil, collector.WithLogger(logger), collector.WithRunCache(runs), collector.WithMinInterval(0))
	state := NewState(exp, loader, w.shard, w.totalShards, logger)
	cfg, err := loader.Load()
	if err != nil {
		t.Fatalf("loading the configuration: %v", err)
	}
	if err := state.Apply(cfg); err != nil {
		t.Fatalf("applying the configuration: %v", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(exp, state.ReloadOK())
	handler, err := server.NewHandler(server.Config{
		Exporter: exp, Reloader: state, Metrics: exposition.NewRenderer(runs, reg, 40, logger), Logger: logger,
		TelemetryPath: "/metrics", TimeoutOffset: 500 * time.Millisecond, Registration: w.registration,
		Timeouts: server.DefaultTimeouts,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(handler)
	srv.Config = server.NewServer(handler, server.DefaultTimeouts, nil)
	srv.Start()
	t.Cleanup(srv.Close)
	return &harness{t: t, state: state, exp: exp, url: srv.URL, logs: logs}
}

func (h *harness) log() string { return h.logs.String() }

// waitLog waits up to 10 s until msg has been logged n times.
func (h *harness) waitLog(msg string, n int) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(h.log(), msg) < n {
		if time.Now().After(deadline) {
			h.t.Fatalf("%q logged %d times in 10 s, want %d; log:\n%s", msg, strings.Count(h.log(), msg), n, h.log())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (h *harness) do(method, path string, header http.Header, body io.Reader) (int, string) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.url+path, body)
	if err != nil {
		h.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	h.mu.Lock()
	h.bodies = append(h.bodies, string(b))
	h.mu.Unlock()
	return resp.StatusCode, string(b)
}

func (h *harness) get(path string) (int, string) {
	h.t.Helper()
	return h.do(http.MethodGet, path, nil, nil)
}

func (h *harness) post(path, body string) (int, string) {
	h.t.Helper()
	return h.do(http.MethodPost, path, http.Header{"Content-Type": {"application/json"}}, strings.NewReader(body))
}

// scrape GETs /metrics and parses it.
func (h *harness) scrape() metrics {
	h.t.Helper()
	code, body := h.get("/metrics")
	if code != http.StatusOK {
		h.t.Fatalf("/metrics: %d %s", code, body)
	}
	return parseMetrics(h.t, body)
}

// checkNoSecrets asserts that none of secrets is in the log or in any
// HTTP body the test received, after one more GET of /metrics and /.
func (h *harness) checkNoSecrets(secrets ...string) {
	h.t.Helper()
	h.get("/metrics")
	h.get("/")
	logText := h.log()
	h.mu.Lock()
	bodies := append([]string(nil), h.bodies...)
	h.mu.Unlock()
	for _, s := range secrets {
		for _, line := range strings.Split(logText, "\n") {
			if strings.Contains(line, s) {
				h.t.Errorf("secret %q in a log line: %s", s, line)
			}
		}
		for _, b := range bodies {
			if i := strings.Index(b, s); i >= 0 {
				h.t.Errorf("secret %q in an HTTP body: …%s…", s, b[max(0, i-120):min(len(b), i+len(s)+40)])
			}
		}
	}
}

// metrics is a parsed text exposition.
type metrics struct {
	raw      string
	families map[string]*dto.MetricFamily
}

func parseMetrics(t *testing.T, text string) metrics {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("unparsable exposition: %v\n%s", err, text)
	}
	return metrics{raw: text, families: mfs}
}

// find returns the values of name's samples whose labels include want
// (given as name, value pairs).
func (m metrics) find(name string, want ...string) []float64 {
	var out []float64
	mf := m.families[name]
next:
	for _, s := range mf.GetMetric() {
		labels := map[string]string{}
		for _, lp := range s.GetLabel() {
			labels[lp.GetName()] = lp.GetValue()
		}
		for i := 0; i+1 < len(want); i += 2 {
			if labels[want[i]] != want[i+1] {
				continue next
			}
		}
		switch {
		case s.Gauge != nil:
			out = append(out, s.GetGauge().GetValue())
		case s.Counter != nil:
			out = append(out, s.GetCounter().GetValue())
		default:
			out = append(out, s.GetUntyped().GetValue())
		}
	}
	return out
}

// value returns the one sample's value, and whether there was exactly one.
func (m metrics) value(name string, want ...string) (float64, bool) {
	v := m.find(name, want...)
	if len(v) != 1 {
		return 0, false
	}
	return v[0], true
}

func (m metrics) mustValue(t *testing.T, name string, want ...string) float64 {
	t.Helper()
	v, ok := m.value(name, want...)
	if !ok {
		t.Fatalf("want exactly one %s%v, got %d; metrics:\n%s", name, want, len(m.find(name, want...)), grepLines(m.raw, "dify_"))
	}
	return v
}

// grepLines returns text's lines holding sub, comments left out.
func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// touch moves a file's modification time on, so a watcher keyed on
// mtime and size sees every edit even within the clock's granularity.
func touch(t *testing.T, path string, n int) {
	t.Helper()
	mt := time.Now().Add(time.Duration(n) * time.Second)
	if err := os.Chtimes(path, mt, mt); err != nil {
		t.Fatal(err)
	}
}

func newDify(t *testing.T) *difytest.Server {
	t.Helper()
	srv := difytest.NewServer()
	t.Cleanup(srv.Close)
	return srv
}

// putRun stores a run with distinctive secret inputs and outputs.
func putRun(srv *difytest.Server, key, status string, tokens int) string {
	id := difytest.NewRunID()
	r := difytest.Run{ID: id, Status: status, TotalTokens: tokens, TotalSteps: 3, ElapsedTime: 1.5,
		Inputs:  map[string]any{"query": secretInput, "secret": secretKey},
		Outputs: map[string]any{"answer": secretOut}}
	if status != "running" && status != "paused" {
		r.FinishedAt = time.Now()
	}
	srv.PutRun(key, r)
	return id
}

// startWithRun starts the exporter of the --dify.* flags on one workflow
// app with one listed paused run of tokens tokens.
func startWithRun(t *testing.T, tokens int) (*difytest.Server, *harness, string) {
	t.Helper()
	srv := newDify(t)
	srv.AddApp(secretKey, difytest.App{Name: "T", Mode: "workflow"})
	id := putRun(srv, secretKey, "paused", tokens) // paused runs keep their tokens
	t.Setenv("DIFY_API_KEY", secretKey)
	return srv, start(t, flagsLoader(srv.URL(), id), wiring{}), id
}

// twoAppsConfig writes a config file of apps a and b at url with the keys
// of the env vars KEY_A and KEY_B, and sets them.
func twoAppsConfig(t *testing.T, url string, aIDs, bIDs string) string {
	t.Helper()
	t.Setenv("KEY_A", secretKey)
	t.Setenv("KEY_B", secretKeyB)
	path := filepath.Join(t.TempDir(), "c.yml")
	writeFile(t, path, fmt.Sprintf("apps:\n  - name: a\n    url: %s\n    api_key_env: KEY_A\n    run_ids: [%s]\n  - name: b\n    url: %s\n    api_key_env: KEY_B\n    run_ids: [%s]\n",
		url, aIDs, url, bIDs))
	return path
}
