package apps

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/dify-exporter/dify_exporter/client/difytest"
)

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
	t.Setenv("KEY_A", secretKey)
	e := start(t, fileLoader(cfgPath), wiring{})

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

	// Fix it and reload as SIGHUP does.
	writeFile(t, cfgPath, cfg(ra, rb+", "+rb2, ""))
	if err := e.state.Reload(); err != nil {
		t.Fatalf("reload of the fixed file: %v", err)
	}
	m = e.scrape()
	if v := m.mustValue(t, "dify_exporter_config_last_reload_successful"); v != 1 {
		t.Errorf("reload_successful after a good reload = %v, want 1", v)
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
	e.checkNoSecrets(secretKey, secretKeyB, secretInput, secretOut)
}

// TestReloadKeepsRuns: an app whose URL, key and limits are unchanged keeps
// its registered and discovered runs across a reload.
func TestReloadKeepsRuns(t *testing.T) {
	srv := newDify(t)
	srv.AddApp(secretKey, difytest.App{Name: "A", Mode: "workflow"})
	srv.AddApp(secretKeyB, difytest.App{Name: "B", Mode: "advanced-chat"})
	discovered := putRun(srv, secretKey, "succeeded", 4)
	registered := putRun(srv, secretKeyB, "succeeded", 6)
	cfgPath := filepath.Join(t.TempDir(), "c.yml")
	cfg := fmt.Sprintf("apps:\n  - name: a\n    url: %s\n    api_key_env: KEY_A\n    discovery: {workflow_logs: true}\n  - name: b\n    url: %s\n    api_key_env: KEY_B\n",
		srv.URL(), srv.URL())
	writeFile(t, cfgPath, cfg)
	t.Setenv("KEY_A", secretKey)
	t.Setenv("KEY_B", secretKeyB)
	e := start(t, fileLoader(cfgPath), wiring{registration: true})
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

// Every reload makes new Dify clients; the replaced ones' kept-alive
// connections must not pile up. In one process with the simulated Dify, a
// leaked connection holds three goroutines (the client's two, the
// server's one) and two file descriptors.
func TestReloadsCloseConnections(t *testing.T) {
	_, e, _ := startWithRun(t, 1)
	const probed = "Dify app reachable"
	e.waitLog(probed, 1)
	e.scrape()
	g0, fd0 := runtime.NumGoroutine(), openFDs(t)
	const reloads = 100
	for i := range reloads {
		if code, body := e.post("/-/reload", ""); code != http.StatusOK {
			t.Fatalf("POST /-/reload: %d %s", code, body)
		}
		e.scrape()
		// Each reload probes the apps in the background. A probe still
		// running when its client is replaced puts its connection back
		// in the replaced client's pool afterwards, where it stays until
		// the idle timeout: wait, to count only what reloads leave.
		e.waitLog(probed, i+2)
	}
	g, fd := runtime.NumGoroutine(), openFDs(t)
	if g > g0+reloads/5 || fd > fd0+reloads/5 {
		t.Errorf("after %d reloads: goroutines %v → %v, open fds %v → %v; want about the same", reloads, g0, g, fd0, fd)
	}
}

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("counting open files (Linux only): %v", err)
	}
	return len(fds)
}
