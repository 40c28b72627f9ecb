package apps

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dify-exporter/dify_exporter/client/difytest"
)

func TestEndpoints(t *testing.T) {
	srv := newDify(t)
	srv.AddApp(secretKey, difytest.App{Name: "Translator", Mode: "workflow"})
	id1 := putRun(srv, secretKey, "succeeded", 10)
	id2 := putRun(srv, secretKey, "paused", 20)
	t.Setenv("DIFY_API_KEY", secretKey)
	loader := flagsLoader(srv.URL(), id1, id2)
	loader.AppName = "translator"
	e := start(t, loader, wiring{})

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
	srv, e, id := startWithRun(t, 42)

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
			t.Errorf("scrape %d: status paused = %v, want 1", i, v)
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
			e := start(t, fileLoader(twoAppsConfig(t, srv.URL(), ra, rb)), wiring{})
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

// TestShards: two replicas with --total-shards=2 split the same run IDs
// between them, each run on exactly one.
func TestShards(t *testing.T) {
	srv := newDify(t)
	srv.AddApp(secretKey, difytest.App{Name: "A", Mode: "workflow"})
	t.Setenv("DIFY_API_KEY", secretKey)
	var ids []string
	for i := range 40 { // a one-sided split of 40 is a 2^-39 chance
		ids = append(ids, putRun(srv, secretKey, "succeeded", i))
	}
	owner := map[string]int{}
	for shard := range 2 {
		e := start(t, flagsLoader(srv.URL(), ids...), wiring{shard: shard, totalShards: 2})
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

// TestConcurrentUse scrapes, reloads, registers and edits the IDs file all
// at once (go test -race watches): the exporter must keep answering.
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
	t.Setenv("KEY_A", secretKey)
	e := start(t, fileLoader(cfgPath), wiring{registration: true})

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
		r, _ := http.NewRequest(method, e.url+path, strings.NewReader(body))
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
