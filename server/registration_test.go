package server

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dify-exporter/dify_exporter/client"
	"github.com/dify-exporter/dify_exporter/client/difytest"
	"github.com/dify-exporter/dify_exporter/collector"
	"github.com/dify-exporter/dify_exporter/exposition"
)

const chatKey = "app-registrationtestkey0000000"

// chatflowServer serves registration and metrics for a chatflow app at
// default settings (--runs.max 1000) with n running runs in Dify.
func chatflowServer(t *testing.T, n int) (addr string, dify *difytest.Server, ids []string) {
	t.Helper()
	dify = difytest.NewServer()
	t.Cleanup(dify.Close)
	dify.SetServerVersion("1.3.1")
	dify.AddApp(chatKey, difytest.App{Name: "Support", Mode: "advanced-chat"})
	for range n {
		id := difytest.NewRunID()
		dify.PutRun(chatKey, difytest.Run{ID: id, WorkflowID: "5d1c7a52-0b4e-4c7e-9a3d-2f6b8e1c4a90", Status: "running", TotalTokens: 3, CreatedAt: time.Now().Add(-time.Minute)})
		ids = append(ids, id)
	}
	api, err := client.New(client.Config{URL: dify.URL(), APIKey: chatKey, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.CloseIdleConnections)
	cache := exposition.NewCache()
	exp := collector.New([]collector.AppConfig{{Name: "support-bot", API: api}}, collector.WithRunCache(cache))
	reg := prometheus.NewRegistry()
	reg.MustRegister(exp)
	c := testConfig()
	c.Exporter, c.Metrics, c.Registration = exp, exposition.NewRenderer(cache, reg, 40, nil), true
	return serve(t, c, 0), dify, ids
}

// post sends entries as a JSON array (one object if there is one), with
// basic-auth user if given, and returns the status and body.
func post(t *testing.T, addr, user string, ids ...string) (int, string) {
	t.Helper()
	var body []byte
	regs := make([]map[string]string, len(ids))
	for i, id := range ids {
		regs[i] = map[string]string{"app": "support-bot", "run_id": id}
	}
	if len(regs) == 1 {
		body, _ = json.Marshal(regs[0])
	} else {
		body, _ = json.Marshal(regs)
	}
	req, _ := http.NewRequest("POST", "http://"+addr+"/api/v1/runs", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if user != "" {
		req.SetBasicAuth(user, "secret")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// scrape fetches /metrics (which refreshes the apps) and returns the runs
// exposed running.
func scrape(t *testing.T, addr string) map[string]bool {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+"/metrics", nil)
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", "20")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	running := map[string]bool{}
	for line := range strings.Lines(string(b)) {
		if !strings.HasPrefix(line, "dify_workflow_run_status{") || !strings.Contains(line, `status="running"`) || !strings.HasSuffix(line, "} 1\n") {
			continue
		}
		_, rest, _ := strings.Cut(line, `run_id="`)
		id, _, _ := strings.Cut(rest, `"`)
		running[id] = true
	}
	return running
}

func TestRegistrationBatchOf500AtDefaults(t *testing.T) {
	addr, dify, ids := chatflowServer(t, 500)
	if code, body := post(t, addr, "", ids...); code != http.StatusAccepted || body != "accepted 500\n" {
		t.Fatalf("batch of 500: %d %q, want 202 accepted 500", code, body)
	}
	running := scrape(t, addr)
	for _, id := range ids {
		if !running[id] {
			t.Fatalf("run %s not exposed running after the scrape (%d of 500 are)", id, len(running))
		}
	}
	if got := dify.Requests(difytest.EndpointRun); got != 500 {
		t.Errorf("detail calls = %d, want 500", got)
	}
}

// A client posting thousands of junk IDs in batches while another posts
// its real runs one by one: every real one is accepted and exposed, and
// Dify is asked at most once per junk ID the exporter took.
func TestRegistrationDuringAFloodFromAnotherClient(t *testing.T) {
	addr, dify, real := chatflowServer(t, 30)
	var floodCodes sync.Map
	flood := func(batches int) {
		for range batches {
			batch := make([]string, 500)
			for i := range batch {
				batch[i] = difytest.NewRunID()
			}
			code, _ := post(t, addr, "flood", batch...)
			floodCodes.Store(code, true)
		}
	}
	flood(2) // the cap is full of junk
	var wg sync.WaitGroup
	wg.Go(func() { flood(8) })
	for _, id := range real {
		if code, body := post(t, addr, "support-bot", id); code != http.StatusAccepted {
			t.Errorf("real registration during the flood: %d %q, want 202", code, body)
		}
	}
	wg.Wait()
	if _, ok := floodCodes.Load(http.StatusTooManyRequests); !ok {
		t.Errorf("the flood of 5,000 was never told 429 at a cap of 1,000")
	}
	running := scrape(t, addr)
	for _, id := range real {
		if !running[id] {
			t.Errorf("real run %s not exposed", id)
		}
	}
	if got := dify.Requests(difytest.EndpointRun); got != 1000 {
		t.Errorf("detail calls = %d, want 1000: one per tracked run (the cap), none for the junk refused", got)
	}
}

func TestRefutedRunsInABatch(t *testing.T) {
	addr, dify, real := chatflowServer(t, 2)
	junk := []string{difytest.NewRunID(), difytest.NewRunID()}
	if code, body := post(t, addr, "", append(junk, real...)...); code != http.StatusAccepted || body != "accepted 4\n" {
		t.Fatalf("first post: %d %q", code, body)
	}
	scrape(t, addr)
	dify.ResetRequests()
	code, body := post(t, addr, "", append(junk, real...)...)
	if want := "accepted 2; 2 refused: Dify answered 404 for them\n"; code != http.StatusAccepted || body != want {
		t.Errorf("batch with refuted junk: %d %q, want 202 %q", code, body, want)
	}
	if code, body := post(t, addr, "", junk[0]); code != http.StatusUnprocessableEntity || !strings.Contains(body, "404") {
		t.Errorf("one refuted ID: %d %q, want 422 naming Dify's 404", code, body)
	}
	scrape(t, addr)
	if got := dify.Requests(difytest.EndpointRun); got != 2 {
		t.Errorf("detail calls = %d, want 2: the real runs only", got)
	}
}

func TestRegistrant(t *testing.T) {
	tests := []struct {
		remote, user string
		want         string
	}{
		{"192.0.2.1:51234", "", "addr:192.0.2.1"},
		{"192.0.2.1:60000", "", "addr:192.0.2.1"}, // another connection, same client
		{"[2001:db8::1]:443", "", "addr:2001:db8::/64"},
		{"[2001:db8::ffff:1]:443", "", "addr:2001:db8::/64"}, // the same /64
		{"[2001:db8:0:1::1]:443", "", "addr:2001:db8:0:1::/64"},
		{"[::ffff:192.0.2.1]:443", "", "addr:::ffff:192.0.2.1"}, // IPv4-mapped stays whole
		{"192.0.2.1:51234", "support-bot", "user:support-bot"},
		{"@", "", "addr:@"}, // a unix socket's peer
	}
	for _, tc := range tests {
		r := httptest.NewRequest("POST", "/api/v1/runs", nil)
		r.RemoteAddr = tc.remote
		if tc.user != "" {
			r.SetBasicAuth(tc.user, "pw")
		}
		if got := registrant(r); got != tc.want {
			t.Errorf("registrant(%s, user %q) = %q, want %q", tc.remote, tc.user, got, tc.want)
		}
	}
}
