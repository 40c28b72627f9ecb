package main

// End-to-end tests of the exporter binary: it is built once in TestMain and
// driven as a subprocess (so that signals reach it alone) against the
// in-memory Dify of client/difytest, on 127.0.0.1 with port 0.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/dify-exporter/dify_exporter/client/difytest"
)

var exporterBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dify_exporter_test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	exporterBin = filepath.Join(dir, "dify_exporter")
	// With the race detector when the toolchain has it, so that the
	// end-to-end tests also catch data races in the exporter itself (it
	// then exits 66 and the cleanup's exit check reports it).
	build := exec.Command("go", "build", "-race", "-o", exporterBin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		build = exec.Command("go", "build", "-o", exporterBin, ".")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "building the exporter: %v\n%s", err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const (
	secretKey   = "app-SECRETKEY0123456789abcdef"
	secretKeyB  = "app-OTHERSECRET9876543210zyxw"
	secretInput = "TOPSECRETINPUT"
	secretOut   = "TOPSECRETOUTPUT"
)

// baseEnv is a minimal environment: nothing of the test's own (no
// DIFY_API_KEY) leaks into the exporter.
func baseEnv(extra ...string) []string {
	return append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, extra...)
}

// runOnce runs the binary to completion and returns its exit code, stdout
// and stderr.
func runOnce(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exporterBin, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stdout.String(), stderr.String()
	case errors.As(err, &ee) && ee.Exited():
		return ee.ExitCode(), stdout.String(), stderr.String()
	}
	t.Fatalf("running %v: %v (stderr %q)", args, err, stderr.String())
	return 0, "", ""
}

// exporter is a running exporter subprocess.
type exporter struct {
	t    *testing.T
	cmd  *exec.Cmd
	addr string
	done chan struct{}

	mu    sync.Mutex
	lines []string

	bodies []string // every HTTP body the test received, for secret checks
}

func startExporter(t *testing.T, env []string, args ...string) *exporter {
	t.Helper()
	args = append([]string{"--web.listen-address=127.0.0.1:0"}, args...)
	// Every scrape refreshes unless a test asks otherwise (a later flag wins).
	args = append([]string{"--refresh.min-interval=0"}, args...)
	cmd := exec.Command(exporterBin, args...)
	cmd.Env = env
	pr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e := &exporter{t: t, cmd: cmd, done: make(chan struct{})}
	addrc := make(chan string, 1)
	addrRE := regexp.MustCompile(`msg="?Listening on"? .*address=([0-9.:\[\]]+)`)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			e.mu.Lock()
			e.lines = append(e.lines, line)
			e.mu.Unlock()
			if m := addrRE.FindStringSubmatch(line); m != nil {
				select {
				case addrc <- m[1]:
				default:
				}
			}
		}
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); close(e.done) }()
	t.Cleanup(func() {
		select {
		case <-e.done:
			return
		default:
		}
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil || strings.Contains(e.log(), "DATA RACE") {
				t.Errorf("exporter exited with %v after SIGTERM; log:\n%s", err, e.log())
			}
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("exporter did not stop within 15s of SIGTERM")
		}
	})
	select {
	case e.addr = <-addrc:
	case err := <-exited:
		t.Fatalf("exporter exited before listening: %v; log:\n%s", err, e.log())
	case <-time.After(20 * time.Second):
		t.Fatalf("exporter did not listen within 20s; log:\n%s", e.log())
	}
	return e
}

func (e *exporter) log() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return strings.Join(e.lines, "\n")
}

func (e *exporter) do(method, path string, header http.Header, body io.Reader) (int, string) {
	e.t.Helper()
	req, err := http.NewRequest(method, "http://"+e.addr+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	e.mu.Lock()
	e.bodies = append(e.bodies, string(b))
	e.mu.Unlock()
	return resp.StatusCode, string(b)
}

func (e *exporter) get(path string) (int, string) {
	e.t.Helper()
	return e.do(http.MethodGet, path, nil, nil)
}

func (e *exporter) post(path, body string) (int, string) {
	e.t.Helper()
	return e.do(http.MethodPost, path, http.Header{"Content-Type": {"application/json"}}, strings.NewReader(body))
}

// scrape GETs /metrics and parses it.
func (e *exporter) scrape() metrics {
	e.t.Helper()
	code, body := e.get("/metrics")
	if code != http.StatusOK {
		e.t.Fatalf("/metrics: %d %s", code, body)
	}
	return parseMetrics(e.t, body)
}

// sample is one line of the text exposition format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

type metrics struct {
	raw     string
	samples []sample
}

var labelRE = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

func parseMetrics(t *testing.T, text string) metrics {
	t.Helper()
	m := metrics{raw: text}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			t.Fatalf("bad exposition line %q", line)
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			t.Fatalf("bad value in %q: %v", line, err)
		}
		s := sample{labels: map[string]string{}, value: v}
		head := line[:sp]
		if i := strings.IndexByte(head, '{'); i >= 0 {
			s.name = head[:i]
			for _, lm := range labelRE.FindAllStringSubmatch(head[i:], -1) {
				s.labels[lm[1]] = lm[2]
			}
		} else {
			s.name = head
		}
		m.samples = append(m.samples, s)
	}
	return m
}

// find returns the samples of name whose labels include want (given as
// name, value pairs).
func (m metrics) find(name string, want ...string) []sample {
	var out []sample
next:
	for _, s := range m.samples {
		if s.name != name {
			continue
		}
		for i := 0; i+1 < len(want); i += 2 {
			if s.labels[want[i]] != want[i+1] {
				continue next
			}
		}
		out = append(out, s)
	}
	return out
}

// value returns the one sample's value, and whether there was exactly one.
func (m metrics) value(name string, want ...string) (float64, bool) {
	s := m.find(name, want...)
	if len(s) != 1 {
		return 0, false
	}
	return s[0].value, true
}

func (m metrics) mustValue(t *testing.T, name string, want ...string) float64 {
	t.Helper()
	v, ok := m.value(name, want...)
	if !ok {
		t.Fatalf("want exactly one %s%v, got %d; metrics:\n%s", name, want, len(m.find(name, want...)), grepLines(m.raw, "dify_"))
	}
	return v
}

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

// startWithRun starts the exporter on one workflow app with one listed
// running run of tokens tokens.
func startWithRun(t *testing.T, tokens int) (*difytest.Server, *exporter, string) {
	t.Helper()
	srv := newDify(t)
	srv.AddApp(secretKey, difytest.App{Name: "T", Mode: "workflow"})
	id := putRun(srv, secretKey, "paused", tokens) // paused runs keep their tokens
	return srv, startExporter(t, baseEnv("DIFY_API_KEY="+secretKey), "--dify.url="+srv.URL(), "--dify.run-id="+id), id
}

func TestStartupFailures(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	writeFile(t, keyFile, secretKey+"\n")
	badCfg := filepath.Join(dir, "bad.yml")
	writeFile(t, badCfg, "apps:\n  - name: translator\n    api_key_env: K\n    timeuot: 10s\n")
	goodCfg := filepath.Join(dir, "good.yml")
	writeFile(t, goodCfg, "apps:\n  - name: translator\n    url: http://127.0.0.1:1/v1\n    api_key_env: K\n")
	keyEnv := "DIFY_API_KEY=" + secretKey
	caCfg := filepath.Join(dir, "ca.yml")
	writeFile(t, caCfg, "apps:\n  - name: translator\n    url: http://127.0.0.1:1/v1\n    api_key_env: K\n    http_client_config:\n      tls_config:\n        ca_file: "+filepath.Join(dir, "nonexistent-ca.pem")+"\n")
	const keyShaped = "app-AbCdEfGh0123456789IjKlMn" // app- and 24 letters and digits, as Dify makes them

	tests := []struct {
		name string
		env  []string
		args []string
		want []string // substrings of the one stderr line
	}{
		{"missing key", baseEnv(), nil, []string{"DIFY_API_KEY", "--dify.api-key-file"}},
		{"empty key env", baseEnv("DIFY_API_KEY="), nil, []string{"DIFY_API_KEY"}},
		{"blank key env", baseEnv("DIFY_API_KEY=  "), nil, []string{"DIFY_API_KEY", "empty"}},
		{"two words in key env", baseEnv("DIFY_API_KEY=" + secretKey + " " + secretKey), nil, []string{"DIFY_API_KEY"}},
		{"unreadable key file", baseEnv(), []string{"--dify.api-key-file=" + filepath.Join(dir, "nope")}, []string{"api_key_file", filepath.Join(dir, "nope")}},
		{"key file is a directory", baseEnv(), []string{"--dify.api-key-file=" + dir}, []string{"api_key_file", dir}},
		{"empty key file", baseEnv(), []string{"--dify.api-key-file=" + os.DevNull}, []string{"api_key_file", "empty"}},
		{"bad url scheme", baseEnv(keyEnv), []string{"--dify.url=ftp://x"}, []string{"--dify.url"}},
		{"malformed run id", baseEnv(keyEnv), []string{"--dify.run-id=../../x"}, []string{"--dify.run-id", "invalid run ID"}},
		{"shard out of range", baseEnv(keyEnv), []string{"--shard=3", "--total-shards=2"}, []string{"--shard"}},
		{"bad config file", baseEnv("K=" + secretKey), []string{"--config.file=" + badCfg}, []string{badCfg, "line 4", "timeuot"}},
		{"config check bad file", baseEnv("K=" + secretKey), []string{"--config.check", "--config.file=" + badCfg}, []string{badCfg, "line 4", "timeuot"}},
		{"config check without file, no key", baseEnv(), []string{"--config.check"}, []string{"DIFY_API_KEY", "--dify.api-key-file"}},
		{"config check without file, bad url", baseEnv(keyEnv), []string{"--config.check", "--dify.url=ftp://x"}, []string{"--dify.url"}},
		{"config check without file, bad run id", baseEnv(keyEnv), []string{"--config.check", "--dify.run-id=../../x"}, []string{"--dify.run-id", "invalid run ID"}},
		{"config check, missing CA file", baseEnv("K=" + secretKey), []string{"--config.check", "--config.file=" + caCfg}, []string{"translator", "nonexistent-ca.pem"}},
		{"missing CA file", baseEnv("K=" + secretKey), []string{"--config.file=" + caCfg}, []string{"translator", "nonexistent-ca.pem"}},
		{"key as app name", baseEnv(keyEnv), []string{"--dify.app-name=" + keyShaped}, []string{"--dify.app-name", "API key"}},
		{"config check, key as app name", baseEnv(keyEnv), []string{"--config.check", "--dify.app-name=" + keyShaped}, []string{"--dify.app-name", "API key"}},
		{"api key as a flag", baseEnv(), []string{"--dify.api-key=" + secretKey}, []string{"--dify.api-key-file=FILE", "DIFY_API_KEY"}},
		{"api key flag without value", baseEnv(), []string{"--dify.api-key"}, []string{"--dify.api-key-file=FILE", "DIFY_API_KEY"}},
		{"telemetry path /", baseEnv(keyEnv), []string{"--web.telemetry-path=/"}, []string{"--web.telemetry-path", "landing page"}},
		{"telemetry path empty", baseEnv(keyEnv), []string{"--web.telemetry-path="}, []string{"--web.telemetry-path", "empty"}},
		{"telemetry path without /", baseEnv(keyEnv), []string{"--web.telemetry-path=metrics"}, []string{"--web.telemetry-path", "start with /"}},
		{"telemetry path health", baseEnv(keyEnv), []string{"--web.telemetry-path=/-/healthy"}, []string{"--web.telemetry-path", "health"}},
		{"telemetry path reload", baseEnv(keyEnv), []string{"--web.telemetry-path=/-/reload"}, []string{"--web.telemetry-path", "reload"}},
		{"telemetry path registration", baseEnv(keyEnv), []string{"--web.telemetry-path=/api/v1/runs"}, []string{"--web.telemetry-path", "registration"}},
		{"telemetry path pattern", baseEnv(keyEnv), []string{"--web.telemetry-path=/m/{x}"}, []string{"--web.telemetry-path", "plain path"}},
		{"negative max connections", baseEnv(keyEnv), []string{"--web.max-connections=-1"}, []string{"--web.max-connections"}},
		{"config key env unset", baseEnv(), []string{"--config.file=" + goodCfg}, []string{"translator", "K"}},
		{"unknown flag", baseEnv(keyEnv), []string{"--no-such-flag"}, []string{"no-such-flag"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--web.listen-address=127.0.0.1:0"}, tc.args...)
			code, stdout, stderr := runOnce(t, tc.env, args...)
			if code == 0 {
				t.Fatalf("exit code 0, want non-zero; stderr:\n%s", stderr)
			}
			lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
			if len(lines) != 1 || lines[0] == "" {
				t.Fatalf("want one line on stderr, got %d:\n%s", len(lines), stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(lines[0], w) {
					t.Errorf("stderr %q does not contain %q", lines[0], w)
				}
			}
			if strings.Contains(stderr+stdout, secretKey) {
				t.Errorf("the key appears in the output: %s", stderr)
			}
		})
	}

	t.Run("config check flags only", func(t *testing.T) {
		code, _, stderr := runOnce(t, baseEnv(keyEnv), "--config.check", "--dify.url=http://127.0.0.1:1/v1", "--dify.run-id="+difytest.NewRunID())
		if code != 0 {
			t.Fatalf("exit code %d, want 0; stderr:\n%s", code, stderr)
		}
		if !strings.Contains(stderr, "Configuration is valid") || strings.Contains(stderr, secretKey) {
			t.Errorf("stderr: %s", stderr)
		}
	})
	t.Run("config check good file", func(t *testing.T) {
		code, _, stderr := runOnce(t, baseEnv("K="+secretKey), "--config.check", "--config.file="+goodCfg)
		if code != 0 {
			t.Fatalf("exit code %d, want 0; stderr:\n%s", code, stderr)
		}
		if !strings.Contains(stderr, "Configuration is valid") || strings.Contains(stderr, secretKey) {
			t.Errorf("stderr: %s", stderr)
		}
	})
}

func TestVersion(t *testing.T) {
	code, stdout, stderr := runOnce(t, baseEnv(), "--version")
	if code != 0 {
		t.Fatalf("exit code %d; stderr %s", code, stderr)
	}
	file, err := os.ReadFile("VERSION")
	if err != nil {
		t.Fatal(err)
	}
	if want := "dify_exporter, version " + strings.TrimSpace(string(file)) + " "; !strings.Contains(stdout+stderr, want) {
		t.Errorf("--version printed %q; want %q, the VERSION file's", stdout+stderr, want)
	}
}

func TestEndpoints(t *testing.T) {
	srv := newDify(t)
	srv.AddApp(secretKey, difytest.App{Name: "Translator", Mode: "workflow"})
	id1 := putRun(srv, secretKey, "succeeded", 10)
	id2 := putRun(srv, secretKey, "paused", 20)
	e := startExporter(t, baseEnv("DIFY_API_KEY="+secretKey), "--dify.url="+srv.URL(),
		"--dify.app-name=translator", "--dify.run-id="+id1, "--dify.run-id="+id2)

	for _, p := range []string{"/-/healthy", "/-/ready"} {
		if code, body := e.get(p); code != http.StatusOK {
			t.Errorf("GET %s: %d %q", p, code, body)
		}
	}
	if code, _ := e.get("/no-such-page"); code != http.StatusNotFound {
		t.Errorf("GET /no-such-page: %d, want 404", code)
	}
	if code, _ := e.post("/api/v1/runs", `{"app":"translator","run_id":"`+difytest.NewRunID()+`"}`); code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
		t.Errorf("POST /api/v1/runs without --web.enable-registration: %d, want 404 or 405", code)
	}
	if code, _ := e.get("/-/reload"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /-/reload: %d, want 405", code)
	}

	m := e.scrape()
	if v := m.mustValue(t, "dify_up", "app", "translator"); v != 1 {
		t.Errorf("dify_up = %v, want 1", v)
	}
	if v := m.mustValue(t, "dify_workflow_run_tokens", "app", "translator", "run_id", id2); v != 20 {
		t.Errorf("tokens of %s = %v, want 20", id2, v)
	}
	if v := m.mustValue(t, "dify_exporter_tracked_runs", "app", "translator", "source", "static"); v != 2 {
		t.Errorf("tracked static runs = %v, want 2", v)
	}
	if len(m.find("dify_exporter_build_info")) != 1 {
		t.Errorf("no dify_exporter_build_info")
	}

	code, page := e.get("/")
	if code != http.StatusOK {
		t.Fatalf("GET /: %d", code)
	}
	row := regexp.MustCompile(`<tr class="app" data-app="translator"><td><a [^>]*>translator</a></td><td>([^<]*)</td><td>(.*?)</td><td>[^<]*</td><td><a class="runs" [^>]*>(\d+)</a></td>`).FindStringSubmatch(page)
	if row == nil {
		t.Fatalf("landing page has no row for the app:\n%s", page)
	}
	if row[1] != "workflow" || !strings.Contains(row[2], "up") || row[3] != "2" {
		t.Errorf("landing page row = mode %q, health %q, tracked %q; want workflow, up, 2", row[1], row[2], row[3])
	}
}

func TestScrapeTimeoutHeader(t *testing.T) {
	srv := newDify(t)
	srv.AddApp(secretKey, difytest.App{Name: "T", Mode: "workflow"})
	id := putRun(srv, secretKey, "paused", 42)
	e := startExporter(t, baseEnv("DIFY_API_KEY="+secretKey), "--dify.url="+srv.URL(), "--dify.run-id="+id)

	m := e.scrape()
	if v := m.mustValue(t, "dify_workflow_run_tokens", "run_id", id); v != 42 {
		t.Fatalf("tokens = %v, want 42", v)
	}
	srv.SetFault(difytest.EndpointRun, difytest.Fault{Hang: true})
	for i := range 2 {
		start := time.Now()
		code, body := e.do(http.MethodGet, "/metrics", http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {"1"}}, nil)
		took := time.Since(start)
		if code != http.StatusOK {
			t.Fatalf("scrape %d: %d %s", i, code, body)
		}
		if took > 3*time.Second {
			t.Errorf("scrape %d with a hanging Dify and a 1 s timeout took %v", i, took)
		}
		m := parseMetrics(t, body)
		if v := m.mustValue(t, "dify_exporter_runs_stale", "app", "default"); v != 1 {
			t.Errorf("scrape %d: runs_stale = %v, want 1", i, v)
		}
		if v := m.mustValue(t, "dify_workflow_run_tokens", "run_id", id); v != 42 {
			t.Errorf("scrape %d: tokens = %v, want the last good 42", i, v)
		}
		if v := m.mustValue(t, "dify_workflow_run_status", "run_id", id, "status", "paused"); v != 1 {
			t.Errorf("scrape %d: status running = %v, want 1", i, v)
		}
		if v, _ := m.value("dify_exporter_run_errors_total", "app", "default", "reason", "timeout"); v < float64(i+1) {
			t.Errorf("scrape %d: run_errors_total{reason=timeout} = %v, want >= %d", i, v, i+1)
		}
	}
	// Dify answers again: the next scrape is fresh.
	srv.ClearFaults()
	srv.PutRun(secretKey, difytest.Run{ID: id, Status: "succeeded", TotalTokens: 50, FinishedAt: time.Now()})
	m = e.scrape()
	if v := m.mustValue(t, "dify_exporter_runs_stale", "app", "default"); v != 0 {
		t.Errorf("runs_stale after recovery = %v, want 0", v)
	}
	if v := m.mustValue(t, "dify_workflow_run_tokens", "run_id", id); v != 50 {
		t.Errorf("tokens after recovery = %v, want 50", v)
	}
}

func TestFailingAppDoesNotBreakOther(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(srv *difytest.Server, key string)
		reason string
	}{
		{"revoked key", func(srv *difytest.Server, key string) { srv.RevokeKey(key) }, "unauthorized"},
		{"disabled app", func(srv *difytest.Server, key string) {
			srv.DisableApp(key, "The app's API service has been disabled.")
		}, "forbidden"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newDify(t)
			srv.AddApp(secretKey, difytest.App{Name: "A", Mode: "workflow"})
			srv.AddApp(secretKeyB, difytest.App{Name: "B", Mode: "workflow"})
			ra := putRun(srv, secretKey, "paused", 1)
			rb := putRun(srv, secretKeyB, "paused", 7)
			dir := t.TempDir()
			cfg := filepath.Join(dir, "c.yml")
			writeFile(t, cfg, fmt.Sprintf("apps:\n  - name: a\n    url: %s\n    api_key_env: KEY_A\n    run_ids: [%s]\n  - name: b\n    url: %s\n    api_key_env: KEY_B\n    run_ids: [%s]\n",
				srv.URL(), ra, srv.URL(), rb))
			e := startExporter(t, baseEnv("KEY_A="+secretKey, "KEY_B="+secretKeyB), "--config.file="+cfg)
			m := e.scrape()
			if m.mustValue(t, "dify_up", "app", "a") != 1 || m.mustValue(t, "dify_up", "app", "b") != 1 {
				t.Fatalf("both apps should be up first:\n%s", grepLines(m.raw, "dify_up"))
			}
			tc.break_(srv, secretKey)
			m = e.scrape()
			if v := m.mustValue(t, "dify_up", "app", "a"); v != 0 {
				t.Errorf("dify_up{app=a} = %v, want 0", v)
			}
			if v := m.mustValue(t, "dify_up", "app", "b"); v != 1 {
				t.Errorf("dify_up{app=b} = %v, want 1", v)
			}
			if v := m.mustValue(t, "dify_workflow_run_tokens", "app", "b", "run_id", rb); v != 7 {
				t.Errorf("b's run tokens = %v, want 7", v)
			}
			if v, _ := m.value("dify_exporter_run_errors_total", "app", "a", "reason", tc.reason); v < 1 {
				t.Errorf("run_errors_total{app=a,reason=%s} = %v, want >= 1", tc.reason, v)
			}
			if v, ok := m.value("dify_exporter_run_errors_total", "app", "b", "reason", tc.reason); ok && v != 0 {
				t.Errorf("run_errors_total{app=b,reason=%s} = %v, want 0", tc.reason, v)
			}
			_, page := e.get("/")
			// App, mode, Dify release, health.
			if !regexp.MustCompile(`<tr class="app" data-app="a"><td><a [^>]*>a</a></td><td>[^<]*</td><td>[^<]*</td><td><span class="down">down</span></td>`).MatchString(page) ||
				!regexp.MustCompile(`<tr class="app" data-app="b"><td><a [^>]*>b</a></td><td>[^<]*</td><td>[^<]*</td><td><span class="up">up</span></td>`).MatchString(page) {
				t.Errorf("landing page should show a down and b up:\n%s", page)
			}
		})
	}
}

func TestConfigReload(t *testing.T) {
	srv := newDify(t)
	srv.AddApp(secretKey, difytest.App{Name: "A", Mode: "workflow"})
	srv.AddApp(secretKeyB, difytest.App{Name: "B", Mode: "workflow"})
	ra := putRun(srv, secretKey, "succeeded", 1)
	ra2 := putRun(srv, secretKey, "succeeded", 2)
	rb := putRun(srv, secretKeyB, "succeeded", 3)
	rb2 := putRun(srv, secretKeyB, "failed", 4)

	dir := t.TempDir()
	keyB := filepath.Join(dir, "b.key")
	writeFile(t, keyB, secretKeyB+"\n")
	cfgPath := filepath.Join(dir, "c.yml")
	cfg := func(aIDs, bIDs string, extra string) string {
		return fmt.Sprintf("apps:\n  - name: a\n    url: %s\n    api_key_env: KEY_A\n    run_ids: [%s]\n%s  - name: b\n    url: %s\n    api_key_file: b.key\n    run_ids: [%s]\n",
			srv.URL(), aIDs, extra, srv.URL(), bIDs)
	}
	writeFile(t, cfgPath, cfg(ra, rb, ""))
	e := startExporter(t, baseEnv("KEY_A="+secretKey), "--config.file="+cfgPath, "--log.level=debug")

	m := e.scrape()
	for _, want := range []struct{ app, id string }{{"a", ra}, {"b", rb}} {
		m.mustValue(t, "dify_workflow_run_tokens", "app", want.app, "run_id", want.id)
	}
	if v := m.mustValue(t, "dify_exporter_config_last_reload_successful"); v != 1 {
		t.Errorf("reload_successful at start = %v, want 1", v)
	}

	// Add a run ID and reload over HTTP.
	writeFile(t, cfgPath, cfg(ra+", "+ra2, rb, ""))
	if code, body := e.post("/-/reload", ""); code != http.StatusOK {
		t.Fatalf("POST /-/reload: %d %s", code, body)
	}
	m = e.scrape()
	if v := m.mustValue(t, "dify_workflow_run_tokens", "app", "a", "run_id", ra2); v != 2 {
		t.Errorf("new run's tokens = %v, want 2", v)
	}

	// Break the file: the reload fails with a message, the old config stays.
	writeFile(t, cfgPath, cfg(ra, rb+", "+rb2, "    timeuot: 1s\n"))
	code, body := e.post("/-/reload", "")
	if code != http.StatusInternalServerError {
		t.Errorf("POST /-/reload with a bad file: %d, want 500", code)
	}
	if !strings.Contains(body, "timeuot") || !strings.Contains(body, "line 6") || !strings.Contains(body, cfgPath) {
		t.Errorf("reload error body should name the file, line and key: %q", body)
	}
	m = e.scrape()
	if v := m.mustValue(t, "dify_exporter_config_last_reload_successful"); v != 0 {
		t.Errorf("reload_successful after a bad reload = %v, want 0", v)
	}
	// The landing page says so, with the error.
	failedRE := regexp.MustCompile(`(?s)<p class="down" id="reload-failed">Reload failed \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC.*?</p>`)
	_, page := e.get("/")
	if f := failedRE.FindString(page); !strings.Contains(f, "timeuot") || !strings.Contains(f, "line 6") {
		t.Errorf("landing page after a bad reload should show the failure with its error; got %q in:\n%s", f, page)
	}
	for _, app := range []string{"a", "b"} {
		if v := m.mustValue(t, "dify_up", "app", app); v != 1 {
			t.Errorf("dify_up{app=%s} after a bad reload = %v, want 1", app, v)
		}
	}
	m.mustValue(t, "dify_workflow_run_tokens", "app", "a", "run_id", ra2)
	if len(m.find("dify_workflow_run_tokens", "run_id", rb2)) != 0 {
		t.Errorf("the bad file's run %s is exported", rb2)
	}

	// An unreadable key file fails the reload too.
	writeFile(t, cfgPath, strings.Replace(cfg(ra, rb, ""), "b.key", "missing.key", 1))
	if code, body := e.post("/-/reload", ""); code != http.StatusInternalServerError || !strings.Contains(body, "missing.key") {
		t.Errorf("reload with a missing key file: %d %q, want 500 naming the file", code, body)
	}

	// Fix it and reload with SIGHUP.
	writeFile(t, cfgPath, cfg(ra, rb+", "+rb2, ""))
	if err := e.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		m = e.scrape()
		ok := m.find("dify_workflow_run_tokens", "app", "b", "run_id", rb2) != nil
		v, _ := m.value("dify_exporter_config_last_reload_successful")
		if ok && v == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("SIGHUP reload not seen within 10s: run present %v, reload_successful %v; log:\n%s", ok, v, e.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(m.find("dify_workflow_run_tokens", "run_id", ra2)) != 0 {
		t.Errorf("run %s, removed from the file, is still exported", ra2)
	}
	if _, page := e.get("/"); failedRE.MatchString(page) {
		t.Errorf("landing page still shows a failed reload after a good one:\n%s", page)
	}
	if v := m.mustValue(t, "dify_workflow_run_status", "run_id", rb2, "status", "failed"); v != 1 {
		t.Errorf("status of %s = %v, want failed", rb2, v)
	}
	checkNoSecrets(t, e, secretKey, secretKeyB, secretInput, secretOut)
}

func TestRunIDsFile(t *testing.T) {
	srv := newDify(t)
	srv.AddApp(secretKey, difytest.App{Name: "T", Mode: "workflow"})
	r1 := putRun(srv, secretKey, "succeeded", 1)
	r2 := putRun(srv, secretKey, "succeeded", 2)
	r3 := putRun(srv, secretKey, "failed", 3)
	ids := filepath.Join(t.TempDir(), "ids")
	writeFile(t, ids, "# runs\n"+r1+"\n")
	e := startExporter(t, baseEnv("DIFY_API_KEY="+secretKey), "--dify.url="+srv.URL(), "--dify.run-ids-file="+ids)

	steps := []struct {
		name    string
		content string // "" keeps the file as is
		want    []string
		notWant []string
	}{
		{"initial", "", []string{r1}, []string{r2, r3}},
		{"add", r1 + "\n" + strings.ToUpper(r2) + "  # upper case\n\n", []string{r1, r2}, []string{r3}},
		{"remove", r2 + "\n", []string{r2}, []string{r1, r3}},
		{"bad line keeps the last good IDs", r3 + "\nnot-a-uuid\n", []string{r2}, []string{r1, r3}},
		{"fixed", r3 + "\n" + r1 + "\n", []string{r1, r3}, []string{r2}},
		{"emptied", "# nothing\n", nil, []string{r1, r2, r3}},
	}
	for i, st := range steps {
		if st.content != "" {
			writeFile(t, ids, st.content)
			touch(t, ids, i)
		}
		m := e.scrape()
		if v := m.mustValue(t, "dify_exporter_tracked_runs", "app", "default", "source", "file"); v != float64(len(st.want)) {
			t.Errorf("%s: tracked_runs{source=file} = %v, want %d", st.name, v, len(st.want))
		}
		for _, id := range st.want {
			if len(m.find("dify_workflow_run_tokens", "run_id", id)) != 1 {
				t.Errorf("%s: run %s not exported", st.name, id)
			}
		}
		for _, id := range st.notWant {
			if len(m.find("dify_workflow_run_tokens", "run_id", id)) != 0 {
				t.Errorf("%s: run %s exported", st.name, id)
			}
		}
	}
	if !strings.Contains(e.log(), "not-a-uuid") || !strings.Contains(e.log(), ids+":2") {
		t.Errorf("the bad line should be logged with file and line; log:\n%s", e.log())
	}
	if n := strings.Count(e.log(), "not-a-uuid"); n != 1 {
		t.Errorf("the bad file was logged %d times, want once", n)
	}

	// A deleted file keeps its last IDs and is logged once, not on every
	// scrape; when it comes back it is read again.
	writeFile(t, ids, r2+"\n")
	touch(t, ids, 20)
	e.scrape()
	if err := os.Remove(ids); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		m := e.scrape()
		if len(m.find("dify_workflow_run_tokens", "run_id", r2)) != 1 {
			t.Errorf("deleted file: run %s no longer exported", r2)
		}
	}
	if n := strings.Count(e.log(), "Cannot read run IDs file"); n != 1 {
		t.Errorf("the missing file was logged %d times in 3 scrapes, want once; log:\n%s", n, grepLines(e.log(), "Cannot read"))
	}
	writeFile(t, ids, r1+"\n")
	touch(t, ids, 30)
	m := e.scrape()
	if len(m.find("dify_workflow_run_tokens", "run_id", r1)) != 1 || len(m.find("dify_workflow_run_tokens", "run_id", r2)) != 0 {
		t.Errorf("restored file not read again:\n%s", grepLines(m.raw, "dify_workflow_run_tokens"))
	}
}

func TestRegistration(t *testing.T) {
	srv := newDify(t)
	srv.AddApp(secretKey, difytest.App{Name: "Bot", Mode: "advanced-chat"})
	done := putRun(srv, secretKey, "succeeded", 11)
	running1 := putRun(srv, secretKey, "running", 12)
	running2 := putRun(srv, secretKey, "paused", 13)
	e := startExporter(t, baseEnv("DIFY_API_KEY="+secretKey), "--dify.url="+srv.URL(),
		"--dify.app-name=bot", "--web.enable-registration", "--runs.max=2")

	reg := func(app, id string) string { return fmt.Sprintf(`{"app":%q,"run_id":%q}`, app, id) }
	big := `{"app":"bot","run_id":"` + strings.Repeat("a", 1<<20) + `"}`
	const jsonType = "application/json"
	refused := []struct {
		name        string
		method      string
		contentType string
		body        string
		code        int
		want        string // in the message
	}{
		{"GET", http.MethodGet, "", "", http.StatusMethodNotAllowed, "POST"},
		{"unknown app", http.MethodPost, jsonType, reg("nope", difytest.NewRunID()), http.StatusBadRequest, "nope"},
		{"malformed id", http.MethodPost, jsonType, reg("bot", "../../x"), http.StatusBadRequest, "invalid run ID"},
		{"malformed id in array", http.MethodPost, jsonType, "[" + reg("bot", "1234") + "]", http.StatusBadRequest, "invalid run ID"},
		{"bad json", http.MethodPost, jsonType, `{"app": "bot", "run_id":`, http.StatusBadRequest, "run_id"},
		{"wrong type", http.MethodPost, jsonType, `{"app": 1, "run_id": 2}`, http.StatusBadRequest, "run_id"},
		{"empty body", http.MethodPost, jsonType, ``, http.StatusBadRequest, "run_id"},
		{"over 1 MiB", http.MethodPost, jsonType, big, http.StatusRequestEntityTooLarge, "bytes"},
		// What a web page can post cross-site without a preflight.
		{"text/plain", http.MethodPost, "text/plain", reg("bot", difytest.NewRunID()), http.StatusUnsupportedMediaType, "application/json"},
		{"form", http.MethodPost, "application/x-www-form-urlencoded", reg("bot", difytest.NewRunID()), http.StatusUnsupportedMediaType, "application/json"},
		{"multipart", http.MethodPost, "multipart/form-data; boundary=x", reg("bot", difytest.NewRunID()), http.StatusUnsupportedMediaType, "application/json"},
		{"no content type", http.MethodPost, "", reg("bot", difytest.NewRunID()), http.StatusUnsupportedMediaType, "application/json"},
		{"json in another charset", http.MethodPost, "application/json; charset=latin1", reg("bot", difytest.NewRunID()), http.StatusUnsupportedMediaType, "application/json"},
		{"no run id field", http.MethodPost, jsonType, `{"app":"bot","id":"` + difytest.NewRunID() + `"}`, http.StatusBadRequest, `"run_id" is missing`},
		{"run_id and workflow_run_id differ", http.MethodPost, jsonType, `{"app":"bot","run_id":"` + difytest.NewRunID() + `","workflow_run_id":"` + difytest.NewRunID() + `"}`, http.StatusBadRequest, "differ"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			var h http.Header
			if tc.contentType != "" {
				h = http.Header{"Content-Type": {tc.contentType}}
			}
			code, body := e.do(tc.method, "/api/v1/runs", h, strings.NewReader(tc.body))
			if code != tc.code {
				t.Errorf("%d %q, want %d", code, body, tc.code)
			}
			if !strings.Contains(body, tc.want) {
				t.Errorf("message %q does not contain %q", body, tc.want)
			}
		})
	}
	m := e.scrape()
	if v := m.mustValue(t, "dify_exporter_tracked_runs", "app", "bot", "source", "registered"); v != 0 {
		t.Fatalf("refused registrations are tracked: %v", v)
	}

	// Dify's own field name, and a charset, are accepted.
	code, body := e.do(http.MethodPost, "/api/v1/runs", http.Header{"Content-Type": {"application/json; charset=UTF-8"}},
		strings.NewReader(`{"app":"bot","workflow_run_id":"`+done+`"}`))
	if code != http.StatusAccepted {
		t.Fatalf("register one as workflow_run_id: %d %q", code, body)
	}
	m = e.scrape()
	if v := m.mustValue(t, "dify_workflow_run_tokens", "app", "bot", "run_id", done); v != 11 {
		t.Errorf("registered run's tokens = %v, want 11", v)
	}
	if v := m.mustValue(t, "dify_exporter_tracked_runs", "app", "bot", "source", "registered"); v != 1 {
		t.Errorf("tracked registered = %v, want 1", v)
	}

	// An array; the finished run makes room for the second one.
	if code, body := e.post("/api/v1/runs", "["+reg("bot", running1)+", "+reg("bot", strings.ToUpper(running2))+"]"); code != http.StatusAccepted {
		t.Fatalf("register array: %d %q", code, body)
	}
	// The cap (2) is full of runs that have not finished.
	if code, body := e.post("/api/v1/runs", reg("bot", difytest.NewRunID())); code != http.StatusTooManyRequests {
		t.Errorf("register past the cap: %d %q, want 429", code, body)
	}
	m = e.scrape()
	if v := m.mustValue(t, "dify_workflow_run_status", "run_id", running1, "status", "running"); v != 1 {
		t.Errorf("running1 status = %v", v)
	}
	if v := m.mustValue(t, "dify_workflow_run_status", "run_id", running2, "status", "paused"); v != 1 {
		t.Errorf("running2 status = %v", v)
	}
	if code, body := e.post("/api/v1/runs", reg("bot", difytest.NewRunID())); code != http.StatusTooManyRequests {
		t.Errorf("register past the cap after a scrape: %d %q, want 429", code, body)
	}
	// Registering a run already tracked is not refused by the cap.
	if code, body := e.post("/api/v1/runs", reg("bot", running1)); code != http.StatusAccepted {
		t.Errorf("re-register a tracked run: %d %q, want 202", code, body)
	}
	if v := m.mustValue(t, "dify_exporter_tracked_runs", "app", "bot", "source", "registered"); v != 2 {
		t.Errorf("tracked registered = %v, want 2", v)
	}
	if code, page := e.get("/"); code != http.StatusOK || !strings.Contains(page, "Registration") {
		t.Errorf("landing page should say registration is on: %d", code)
	}
}

// checkNoSecrets asserts that none of secrets is in the exporter's log or
// in any HTTP body the test received, then scrapes /metrics and / once more
// and checks them.
func checkNoSecrets(t *testing.T, e *exporter, secrets ...string) {
	t.Helper()
	e.get("/metrics")
	e.get("/")
	logText := e.log()
	e.mu.Lock()
	bodies := append([]string(nil), e.bodies...)
	e.mu.Unlock()
	for _, s := range secrets {
		for _, line := range strings.Split(logText, "\n") {
			if strings.Contains(line, s) {
				t.Errorf("secret %q in a log line: %s", s, line)
			}
		}
		for _, b := range bodies {
			if i := strings.Index(b, s); i >= 0 {
				t.Errorf("secret %q in an HTTP body: …%s…", s, b[max(0, i-120):min(len(b), i+len(s)+40)])
			}
		}
	}
}

func TestSecretsNeverLeak(t *testing.T) {
	srv := newDify(t)
	srv.AddApp(secretKey, difytest.App{Name: "A", Mode: "workflow"})
	srv.AddApp(secretKeyB, difytest.App{Name: "B", Mode: "workflow"})
	ra := putRun(srv, secretKey, "running", 1)
	ra2 := putRun(srv, secretKey, "succeeded", 2)
	rb := putRun(srv, secretKeyB, "running", 3)

	dir := t.TempDir()
	keyFile := filepath.Join(dir, "a.key")
	writeFile(t, keyFile, secretKey+"\n")
	ids := filepath.Join(dir, "a.ids")
	writeFile(t, ids, ra2+"\n")
	cfgPath := filepath.Join(dir, "c.yml")
	good := fmt.Sprintf("apps:\n  - name: a\n    url: %s\n    api_key_file: a.key\n    run_ids: [%s]\n    run_ids_file: a.ids\n    discovery: {workflow_logs: true}\n  - name: b\n    url: %s\n    api_key_env: KEY_B\n    run_ids: [%s]\n",
		srv.URL(), ra, srv.URL(), rb)
	writeFile(t, cfgPath, good)
	e := startExporter(t, baseEnv("KEY_B="+secretKeyB), "--config.file="+cfgPath, "--log.level=debug",
		"--web.enable-registration", "--dify.timeout=2s")

	m := e.scrape()
	m.mustValue(t, "dify_workflow_run_tokens", "app", "a", "run_id", ra)
	m.mustValue(t, "dify_workflow_run_tokens", "app", "b", "run_id", rb)

	type step struct {
		name string
		do   func()
	}
	faults := []step{
		{"401 revoked key", func() { srv.RevokeKey(secretKey) }},
		{"403 disabled app", func() {
			srv.AddApp(secretKey, difytest.App{Name: "A", Mode: "workflow"})
			srv.DisableApp(secretKey, "The app's API service has been disabled.")
		}},
		{"500 on runs", func() {
			srv.DisableApp(secretKey, "")
			srv.SetFault(difytest.EndpointRun, difytest.Fault{Status: 500})
		}},
		{"502 proxy page", func() {
			srv.SetFault(difytest.EndpointRun, difytest.Fault{Status: 502, Body: "<html>Bad Gateway</html>", ContentType: "text/html"})
		}},
		{"500 on logs", func() {
			srv.ClearFaults()
			srv.SetFault(difytest.EndpointLogs, difytest.Fault{Status: 500})
		}},
		{"429 rate limited", func() {
			srv.ClearFaults()
			srv.SetFault(difytest.EndpointRun, difytest.Fault{Status: 429, RetryAfter: "1"})
		}},
		{"reset connection", func() {
			srv.ClearFaults()
			srv.SetFault(difytest.EndpointRun, difytest.Fault{Reset: true})
		}},
		{"truncated body", func() {
			srv.ClearFaults()
			srv.SetFault(difytest.EndpointRun, difytest.Fault{Truncate: true})
		}},
		{"garbage body", func() {
			srv.ClearFaults()
			srv.SetFault(difytest.EndpointRun, difytest.Fault{Status: 200, Body: "{not json", ContentType: "application/json"})
		}},
		{"bad reload: unknown key", func() {
			srv.ClearFaults()
			writeFile(t, cfgPath, good+"    timeuot: 1s\n")
			if code, _ := e.post("/-/reload", ""); code != http.StatusInternalServerError {
				t.Errorf("bad reload: %d, want 500", code)
			}
		}},
		{"bad reload: missing key env", func() {
			writeFile(t, cfgPath, strings.Replace(good, "KEY_B", "KEY_C", 1))
			if code, _ := e.post("/-/reload", ""); code != http.StatusInternalServerError {
				t.Errorf("bad reload: %d, want 500", code)
			}
		}},
		{"bad reload: key file with two lines", func() {
			writeFile(t, cfgPath, good)
			writeFile(t, keyFile, secretKey+"\n"+secretKey+"\n")
			if code, _ := e.post("/-/reload", ""); code != http.StatusInternalServerError {
				t.Errorf("bad reload: %d, want 500", code)
			}
			writeFile(t, keyFile, secretKey+"\n")
		}},
		{"bad IDs file", func() {
			writeFile(t, ids, "nonsense line\n")
			touch(t, ids, 5)
		}},
		{"registration errors", func() {
			for _, body := range []string{
				`{"app":"nope","run_id":"` + difytest.NewRunID() + `"}`,
				`{"app":"a","run_id":"nonsense"}`,
				`[{"app":"a","run_id":"` + difytest.NewRunID() + `"},{"app":"x","run_id":"y"}]`,
				`{garbage`,
			} {
				if code, _ := e.post("/api/v1/runs", body); code != http.StatusBadRequest {
					t.Errorf("registration %s: %d, want 400", body, code)
				}
			}
		}},
		{"registered run unknown to Dify", func() {
			if code, _ := e.post("/api/v1/runs", `{"app":"b","run_id":"`+difytest.NewRunID()+`"}`); code != http.StatusAccepted {
				t.Errorf("registration: %d, want 202", code)
			}
		}},
	}
	for _, st := range faults {
		st.do()
		e.scrape()
		e.get("/")
	}
	if !strings.Contains(e.log(), "level=debug") {
		t.Errorf("no debug lines logged: is --log.level=debug in effect?")
	}
	checkNoSecrets(t, e, secretKey, secretKeyB, secretInput, secretOut)
}

// TestSecretsInRegistrationErrors posts a key where an app name or run ID
// belongs (a caller's mistake): neither the 400 body nor the debug log may
// repeat it.
func TestSecretsInRegistrationErrors(t *testing.T) {
	srv := newDify(t)
	srv.AddApp(secretKey, difytest.App{Name: "A", Mode: "workflow"})
	e := startExporter(t, baseEnv("DIFY_API_KEY="+secretKey), "--dify.url="+srv.URL(), "--log.level=debug",
		"--web.enable-registration")
	tests := []struct{ name, body string }{
		{"key as app", `{"app":"` + secretKey + `","run_id":"` + difytest.NewRunID() + `"}`},
		{"key as run ID", `{"app":"default","run_id":"` + secretKey + `"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if code, body := e.post("/api/v1/runs", tc.body); code != http.StatusBadRequest {
				t.Errorf("%d %q, want 400", code, body)
			}
		})
	}
	checkNoSecrets(t, e, secretKey)
}

// TestSecretsInConfigErrors writes the key where it does not belong in the
// config and IDs files: the errors (start-up, reload, IDs file) must not
// repeat it.
func TestSecretsInConfigErrors(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "c.yml")
	writeFile(t, cfgPath, "apps:\n  - name: a\n    api_key: "+secretKey+"\n")
	code, stdout, stderr := runOnce(t, baseEnv(), "--config.file="+cfgPath, "--web.listen-address=127.0.0.1:0")
	if code == 0 || strings.Contains(stdout+stderr, secretKey) || !strings.Contains(stderr, cfgPath) {
		t.Errorf("inline key: exit %d, stderr %q: want non-zero, naming the file, without the key", code, stderr)
	}

	srv := newDify(t)
	srv.AddApp(secretKey, difytest.App{Name: "A", Mode: "workflow"})
	ids := filepath.Join(dir, "ids")
	writeFile(t, ids, secretKey+"\n")
	good := fmt.Sprintf("apps:\n  - name: a\n    url: %s\n    api_key_env: KEY_A\n    run_ids_file: ids\n", srv.URL())
	writeFile(t, cfgPath, good)
	e := startExporter(t, baseEnv("KEY_A="+secretKey), "--config.file="+cfgPath, "--log.level=debug")
	e.scrape()
	writeFile(t, cfgPath, good+"    api_key: "+secretKey+"\n")
	if code, _ := e.post("/-/reload", ""); code != http.StatusInternalServerError {
		t.Errorf("reload with an inline key: %d, want 500", code)
	}
	writeFile(t, cfgPath, strings.Replace(good, "KEY_A", secretKey, 1))
	if code, _ := e.post("/-/reload", ""); code != http.StatusInternalServerError {
		t.Errorf("reload with the key as api_key_env: %d, want 500", code)
	}
	checkNoSecrets(t, e, secretKey)
}

func TestDemo(t *testing.T) {
	e := startExporter(t, baseEnv(), "--demo")
	type series map[string]float64 // run_id/metric -> value
	snapshot := func(m metrics) series {
		s := series{}
		for _, name := range []string{"dify_workflow_run_tokens", "dify_workflow_run_steps", "dify_workflow_run_elapsed_seconds"} {
			for _, x := range m.find(name, "app", "demo") {
				s[x.labels["run_id"]+"/"+name] = x.value
			}
		}
		for _, x := range m.find("dify_workflow_run_status", "app", "demo") {
			if x.value == 1 {
				s[x.labels["run_id"]+"/status="+x.labels["status"]] = 1
			}
		}
		return s
	}
	m := e.scrape()
	if v := m.mustValue(t, "dify_up", "app", "demo"); v != 1 {
		t.Fatalf("dify_up{app=demo} = %v, want 1", v)
	}
	first := snapshot(m)
	if len(first) == 0 {
		t.Fatalf("no run series in the demo:\n%s", grepLines(m.raw, "dify_"))
	}
	statuses := []string{"running", "succeeded", "failed", "stopped", "partial-succeeded", "paused"}
	seen := map[string]bool{}
	changed := false
	deadline := time.Now().Add(25 * time.Second)
	for {
		for _, s := range statuses {
			if v, _ := m.value("dify_workflow_runs", "app", "demo", "status", s); v > 0 {
				seen[s] = true
			}
		}
		if !changed {
			now := snapshot(m)
			if len(now) != len(first) {
				changed = true
			}
			for k, v := range now {
				if w, ok := first[k]; !ok || w != v {
					changed = true
				}
			}
		}
		if changed && len(seen) == len(statuses) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 25s: series changed %v, statuses seen %v", changed, seen)
		}
		time.Sleep(time.Second)
		m = e.scrape()
		if v := m.mustValue(t, "dify_up", "app", "demo"); v != 1 {
			t.Errorf("dify_up{app=demo} = %v, want 1", v)
		}
	}
}

// TestSecretsInDifyErrorMessages has Dify (or a proxy in front of it) echo
// the key and the run's inputs in its error messages: the exporter shows
// Dify's message on the landing page and must clean the secrets out first.
func TestSecretsInDifyErrorMessages(t *testing.T) {
	srv := newDify(t)
	srv.AddApp(secretKey, difytest.App{Name: "A", Mode: "workflow"})
	id := putRun(srv, secretKey, "running", 1)
	e := startExporter(t, baseEnv("DIFY_API_KEY="+secretKey), "--dify.url="+srv.URL(), "--log.level=debug",
		"--dify.run-id="+id)
	e.scrape()
	tests := []struct {
		name  string
		fault difytest.Fault
	}{
		{"401 echoing the key", difytest.Fault{Status: 401, ContentType: "application/json",
			Body: `{"code":"unauthorized","message":"Access token is invalid: Bearer ` + secretKey + `","status":401}`}},
		{"500 echoing the key", difytest.Fault{Status: 500, ContentType: "text/plain",
			Body: "upstream error; request headers: Authorization: Bearer " + secretKey}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv.SetFault(difytest.EndpointRun, tc.fault)
			m := e.scrape()
			if v := m.mustValue(t, "dify_up", "app", "default"); tc.fault.Status == 401 && v != 0 {
				t.Errorf("dify_up = %v, want 0", v)
			}
			code, page := e.get("/")
			if code != http.StatusOK {
				t.Fatalf("GET /: %d", code)
			}
			if tc.fault.Status == 401 && !strings.Contains(page, "Access token is invalid") {
				t.Errorf("landing page does not show Dify's message:\n%s", grepLines(page, "<tr><td>default"))
			}
			if !strings.Contains(page, "down") && tc.fault.Status == 401 {
				t.Errorf("landing page does not show the app down")
			}
			srv.ClearFaults()
		})
	}
	checkNoSecrets(t, e, secretKey)
}

// TestScrapeTimeoutSharedRefresh: two scrapes at once share one refresh,
// but each must still end within its own scrape timeout, whoever started
// the refresh (an HA pair of Prometheus servers with different timeouts,
// or a curl with no header next to Prometheus).
func TestScrapeTimeoutSharedRefresh(t *testing.T) {
	srv, e, id := startWithRun(t, 42)
	e.scrape()
	srv.SetFault(difytest.EndpointRun, difytest.Fault{Hang: true})

	tests := []struct {
		name          string
		first, second string // timeout headers; "" sends none (10 s default)
	}{
		{"same timeouts", "1", "1"},
		{"longer first", "5", "1"},
		{"no header first", "", "1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			header := func(v string) http.Header {
				if v == "" {
					return nil
				}
				return http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {v}}
			}
			firstDone := make(chan struct{})
			go func() {
				defer close(firstDone)
				e.do(http.MethodGet, "/metrics", header(tc.first), nil)
			}()
			time.Sleep(200 * time.Millisecond) // let the first scrape start the refresh
			start := time.Now()
			code, body := e.do(http.MethodGet, "/metrics", header(tc.second), nil)
			took := time.Since(start)
			if code != http.StatusOK {
				t.Errorf("second scrape: %d", code)
			}
			if took > 3*time.Second {
				t.Errorf("second scrape with a %s s timeout took %v while sharing a refresh with a %q s scrape", tc.second, took, tc.first)
			} else if v := parseMetrics(t, body).mustValue(t, "dify_workflow_run_tokens", "run_id", id); v != 42 {
				t.Errorf("tokens = %v, want the last good 42", v)
			}
			<-firstDone
		})
	}
}

// TestRegisteredRunsDifyDoesNotKnow: registered IDs Dify answers 404 for
// are dropped at the next scrape, so bogus registrations cannot hold the
// cap full for good.
func TestRegisteredRunsDifyDoesNotKnow(t *testing.T) {
	srv := newDify(t)
	srv.AddApp(secretKey, difytest.App{Name: "Bot", Mode: "advanced-chat"})
	known := putRun(srv, secretKey, "succeeded", 5)
	e := startExporter(t, baseEnv("DIFY_API_KEY="+secretKey), "--dify.url="+srv.URL(),
		"--web.enable-registration", "--runs.max=2")
	reg := func(id string) int {
		code, _ := e.post("/api/v1/runs", `{"app":"default","run_id":"`+id+`"}`)
		return code
	}
	for i := range 2 {
		if code := reg(difytest.NewRunID()); code != http.StatusAccepted {
			t.Fatalf("registration %d: %d, want 202", i, code)
		}
	}
	if code := reg(known); code != http.StatusTooManyRequests {
		t.Fatalf("registration past the cap: %d, want 429", code)
	}
	m := e.scrape()
	if v, _ := m.value("dify_exporter_run_errors_total", "app", "default", "reason", "not_found"); v != 2 {
		t.Errorf("run_errors_total{reason=not_found} = %v, want 2", v)
	}
	if v := m.mustValue(t, "dify_exporter_tracked_runs", "app", "default", "source", "registered"); v != 0 {
		t.Errorf("tracked registered runs after 404s = %v, want 0", v)
	}
	if code := reg(known); code != http.StatusAccepted {
		t.Fatalf("registration after the 404s were dropped: %d, want 202", code)
	}
	m = e.scrape()
	if v := m.mustValue(t, "dify_workflow_run_tokens", "run_id", known); v != 5 {
		t.Errorf("tokens = %v, want 5", v)
	}
	if v := m.mustValue(t, "dify_up", "app", "default"); v != 1 {
		t.Errorf("dify_up = %v, want 1", v)
	}
}

// TestReloadKeepsRuns: an app whose URL, key and limits are unchanged keeps
// its registered and discovered runs across a reload.
func TestReloadKeepsRuns(t *testing.T) {
	srv := newDify(t)
	srv.AddApp(secretKey, difytest.App{Name: "A", Mode: "workflow"})
	srv.AddApp(secretKeyB, difytest.App{Name: "B", Mode: "advanced-chat"})
	discovered := putRun(srv, secretKey, "succeeded", 4)
	registered := putRun(srv, secretKeyB, "succeeded", 6)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "c.yml")
	cfg := fmt.Sprintf("apps:\n  - name: a\n    url: %s\n    api_key_env: KEY_A\n    discovery: {workflow_logs: true}\n  - name: b\n    url: %s\n    api_key_env: KEY_B\n",
		srv.URL(), srv.URL())
	writeFile(t, cfgPath, cfg)
	e := startExporter(t, baseEnv("KEY_A="+secretKey, "KEY_B="+secretKeyB), "--config.file="+cfgPath, "--web.enable-registration")
	if code, body := e.post("/api/v1/runs", `{"app":"b","run_id":"`+registered+`"}`); code != http.StatusAccepted {
		t.Fatalf("register: %d %q", code, body)
	}
	m := e.scrape()
	m.mustValue(t, "dify_workflow_run_tokens", "app", "a", "run_id", discovered)
	m.mustValue(t, "dify_workflow_run_tokens", "app", "b", "run_id", registered)

	writeFile(t, cfgPath, cfg+"  - name: c\n    url: "+srv.URL()+"\n    api_key_env: KEY_A\n")
	if code, body := e.post("/-/reload", ""); code != http.StatusOK {
		t.Fatalf("reload: %d %q", code, body)
	}
	m = e.scrape()
	if v := m.mustValue(t, "dify_exporter_tracked_runs", "app", "b", "source", "registered"); v != 1 {
		t.Errorf("registered runs of b after a reload = %v, want 1", v)
	}
	if v := m.mustValue(t, "dify_exporter_tracked_runs", "app", "a", "source", "discovered"); v != 1 {
		t.Errorf("discovered runs of a after a reload = %v, want 1", v)
	}
	m.mustValue(t, "dify_workflow_run_tokens", "app", "b", "run_id", registered)
	if v := m.mustValue(t, "dify_up", "app", "c"); v != 1 {
		t.Errorf("new app c: dify_up = %v, want 1", v)
	}
}

// TestConcurrentUse scrapes, reloads, registers and edits the IDs file all
// at once; the exporter (built with -race where possible) must keep
// answering and exit cleanly.
func TestConcurrentUse(t *testing.T) {
	srv := newDify(t)
	srv.AddApp(secretKey, difytest.App{Name: "A", Mode: "workflow"})
	var ids []string
	for i := range 20 {
		status := "succeeded"
		if i%3 == 0 {
			status = "running"
		}
		ids = append(ids, putRun(srv, secretKey, status, i))
	}
	dir := t.TempDir()
	idsPath := filepath.Join(dir, "ids")
	writeFile(t, idsPath, strings.Join(ids[:5], "\n"))
	cfgPath := filepath.Join(dir, "c.yml")
	writeFile(t, cfgPath, fmt.Sprintf("apps:\n  - name: a\n    url: %s\n    api_key_env: KEY_A\n    run_ids_file: ids\n    discovery: {workflow_logs: true}\n", srv.URL()))
	e := startExporter(t, baseEnv("KEY_A="+secretKey), "--config.file="+cfgPath, "--web.enable-registration")

	var wg sync.WaitGroup
	errs := make(chan string, 100)
	worker := func(name string, f func(i int) (int, int)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 15 {
				if code, want := f(i); code != want {
					errs <- fmt.Sprintf("%s %d: %d, want %d", name, i, code, want)
				}
			}
		}()
	}
	hc := &http.Client{Timeout: 20 * time.Second}
	req := func(method, path, body string) int {
		r, _ := http.NewRequest(method, "http://"+e.addr+path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(r)
		if err != nil {
			return -1
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for range 3 {
		worker("scrape", func(int) (int, int) { return req("GET", "/metrics", ""), 200 })
	}
	worker("landing", func(int) (int, int) { return req("GET", "/", ""), 200 })
	worker("reload", func(int) (int, int) { return req("POST", "/-/reload", ""), 200 })
	worker("register", func(i int) (int, int) {
		return req("POST", "/api/v1/runs", `{"app":"a","run_id":"`+ids[i]+`"}`), 202
	})
	worker("ids file", func(i int) (int, int) {
		os.WriteFile(idsPath, []byte(strings.Join(ids[i:i+5], "\n")), 0o600)
		os.Chtimes(idsPath, time.Now().Add(time.Duration(i)*time.Second), time.Now().Add(time.Duration(i)*time.Second))
		return 0, 0
	})
	wg.Wait()
	close(errs)
	for s := range errs {
		t.Error(s)
	}
	m := e.scrape()
	if v := m.mustValue(t, "dify_up", "app", "a"); v != 1 {
		t.Errorf("dify_up = %v", v)
	}
	if v := m.mustValue(t, "dify_exporter_tracked_runs", "app", "a", "source", "file"); v != 5 {
		t.Errorf("tracked file runs = %v, want 5", v)
	}
}

// TestShards: two replicas with --total-shards=2 split the same run IDs
// between them, each run on exactly one.
func TestShards(t *testing.T) {
	srv := newDify(t)
	srv.AddApp(secretKey, difytest.App{Name: "A", Mode: "workflow"})
	var args []string
	var ids []string
	for i := range 40 { // a one-sided split of 40 is a 2^-39 chance
		id := putRun(srv, secretKey, "succeeded", i)
		ids = append(ids, id)
		args = append(args, "--dify.run-id="+id)
	}
	args = append(args, "--dify.url="+srv.URL(), "--total-shards=2")
	owner := map[string]int{}
	for shard := range 2 {
		e := startExporter(t, baseEnv("DIFY_API_KEY="+secretKey), append(args, fmt.Sprintf("--shard=%d", shard))...)
		m := e.scrape()
		n := m.mustValue(t, "dify_exporter_tracked_runs", "app", "default", "source", "static")
		got := 0
		for _, id := range ids {
			if len(m.find("dify_workflow_run_tokens", "run_id", id)) == 1 {
				got++
				if prev, ok := owner[id]; ok {
					t.Errorf("run %s on shards %d and %d", id, prev, shard)
				}
				owner[id] = shard
			}
		}
		if float64(got) != n || got == 0 || got == len(ids) {
			t.Errorf("shard %d exports %d runs, tracks %v, of %d", shard, got, n, len(ids))
		}
	}
	if len(owner) != len(ids) {
		t.Errorf("%d of %d runs exported by some shard", len(owner), len(ids))
	}
}

// TestBasicAuth checks that --web.config.file (exporter-toolkit) guards
// every endpoint, registration included.
func TestBasicAuth(t *testing.T) {
	srv := newDify(t)
	srv.AddApp(secretKey, difytest.App{Name: "A", Mode: "workflow"})
	id := putRun(srv, secretKey, "succeeded", 1)
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webCfg := filepath.Join(dir, "web.yml")
	writeFile(t, webCfg, fmt.Sprintf("basic_auth_users:\n  prometheus: %s\n", hash))
	e := startExporter(t, baseEnv("DIFY_API_KEY="+secretKey), "--dify.url="+srv.URL(), "--dify.run-id="+id,
		"--web.config.file="+webCfg, "--web.enable-registration")
	for _, path := range []string{"/metrics", "/", "/-/reload", "/api/v1/runs"} {
		if code, _ := e.do(http.MethodPost, path, nil, nil); code != http.StatusUnauthorized {
			t.Errorf("POST %s without credentials: %d, want 401", path, code)
		}
	}
	auth := http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("prometheus:s3cret"))}}
	code, body := e.do(http.MethodGet, "/metrics", auth, nil)
	if code != http.StatusOK || !strings.Contains(body, `dify_up{app="default"} 1`) {
		t.Errorf("GET /metrics with credentials: %d, want 200 with dify_up 1", code)
	}
	wrong := http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("prometheus:nope"))}}
	if code, _ := e.do(http.MethodGet, "/metrics", wrong, nil); code != http.StatusUnauthorized {
		t.Errorf("GET /metrics with a wrong password: %d, want 401", code)
	}
}

// Every reload makes new Dify clients; the replaced ones' kept-alive
// connections must not pile up (each holds two goroutines and an fd).
func TestReloadsCloseConnections(t *testing.T) {
	_, e, _ := startWithRun(t, 1)
	e.scrape()
	m := e.scrape()
	g0, fd0 := m.mustValue(t, "go_goroutines"), m.mustValue(t, "process_open_fds")
	const reloads = 100
	for range reloads {
		if code, body := e.post("/-/reload", ""); code != http.StatusOK {
			t.Fatalf("POST /-/reload: %d %s", code, body)
		}
		m = e.scrape()
	}
	g, fd := m.mustValue(t, "go_goroutines"), m.mustValue(t, "process_open_fds")
	// Leaking, each reload would leave 2 goroutines and 1 fd behind.
	if g > g0+reloads/5 || fd > fd0+reloads/5 {
		t.Errorf("after %d reloads: goroutines %v → %v, open fds %v → %v; want about the same", reloads, g0, g, fd0, fd)
	}
}
