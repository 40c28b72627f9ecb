package main

// Tests of main's own job, on the built binary: flags, start-up failures
// (exit code and one clear line), --config.check, the demo, signals and
// --web.config.file. The binary is built once in TestMain and driven as a
// subprocess (so that signals reach it alone) against the in-memory Dify
// of client/difytest, on 127.0.0.1 with port 0. What the exporter does
// once wired is tested in process beside its code: apps (configuration,
// reloads, run-ID files, secrets), server (endpoints, registration).

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

const secretKey = "app-SECRETKEY0123456789abcdef"

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
	return resp.StatusCode, string(b)
}

func (e *exporter) get(path string) (int, string) {
	e.t.Helper()
	return e.do(http.MethodGet, path, nil, nil)
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
		t.Fatalf("want exactly one %s%v, got %d; metrics:\n%s", name, want, len(m.find(name, want...)), m.raw)
	}
	return v
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func newDify(t *testing.T) *difytest.Server {
	t.Helper()
	srv := difytest.NewServer()
	t.Cleanup(srv.Close)
	return srv
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
	inlineKeyCfg := filepath.Join(dir, "inline-key.yml")
	writeFile(t, inlineKeyCfg, "apps:\n  - name: a\n    api_key: "+secretKey+"\n")
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
		{"key inline in the config file", baseEnv(), []string{"--config.file=" + inlineKeyCfg}, []string{inlineKeyCfg}},
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
	if len(m.find("dify_exporter_build_info")) != 1 {
		t.Errorf("no dify_exporter_build_info")
	}
	first := snapshot(m)
	if len(first) == 0 {
		t.Fatalf("no run series in the demo:\n%s", m.raw)
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

// TestBasicAuth checks that --web.config.file (exporter-toolkit) guards
// every endpoint, registration included.
func TestBasicAuth(t *testing.T) {
	srv := newDify(t)
	srv.AddApp(secretKey, difytest.App{Name: "A", Mode: "workflow"})
	id := difytest.NewRunID()
	srv.PutRun(secretKey, difytest.Run{ID: id, Status: "succeeded", TotalTokens: 1, FinishedAt: time.Now()})
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

// TestSignals: SIGHUP reloads the configuration file, SIGTERM shuts down
// with exit code 0.
func TestSignals(t *testing.T) {
	srv := newDify(t)
	srv.AddApp(secretKey, difytest.App{Name: "A", Mode: "workflow"})
	r1, r2 := difytest.NewRunID(), difytest.NewRunID()
	for _, id := range []string{r1, r2} {
		srv.PutRun(secretKey, difytest.Run{ID: id, Status: "succeeded", TotalTokens: 1, FinishedAt: time.Now()})
	}
	cfgPath := filepath.Join(t.TempDir(), "c.yml")
	cfg := func(ids string) string {
		return fmt.Sprintf("apps:\n  - name: a\n    url: %s\n    api_key_env: KEY_A\n    run_ids: [%s]\n", srv.URL(), ids)
	}
	writeFile(t, cfgPath, cfg(r1))
	e := startExporter(t, baseEnv("KEY_A="+secretKey), "--config.file="+cfgPath)
	if m := e.scrape(); len(m.find("dify_workflow_run_tokens", "run_id", r1)) != 1 {
		t.Fatalf("run %s not exported at start:\n%s", r1, m.raw)
	}

	writeFile(t, cfgPath, cfg(r2))
	if err := e.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		m := e.scrape()
		if len(m.find("dify_workflow_run_tokens", "run_id", r2)) == 1 && len(m.find("dify_workflow_run_tokens", "run_id", r1)) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("SIGHUP reload not seen within 10s; log:\n%s", e.log())
		}
		time.Sleep(100 * time.Millisecond)
	}

	if err := e.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-e.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("no exit within 15 s of SIGTERM")
	}
	if code := e.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0; log:\n%s", code, e.log())
	}
	if !strings.Contains(e.log(), "Shutting down") {
		t.Errorf("no shutdown line logged:\n%s", e.log())
	}
}
