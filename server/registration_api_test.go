package server

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dify-exporter/dify_exporter/client"
	"github.com/dify-exporter/dify_exporter/client/difytest"
	"github.com/dify-exporter/dify_exporter/collector"
	"github.com/dify-exporter/dify_exporter/exposition"
)

const botKey = "app-registrationapikey00000000"

// registrationAPI serves registration and metrics for the chatflow app
// "bot" tracking at most maxRuns discovered and registered runs
// (--runs.max), as --web.enable-registration does.
type registrationAPI struct {
	t    *testing.T
	addr string
}

func newRegistrationAPI(t *testing.T, dify *difytest.Server, maxRuns int) *registrationAPI {
	t.Helper()
	api, err := client.New(client.Config{URL: dify.URL(), APIKey: botKey, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.CloseIdleConnections)
	cache := exposition.NewCache()
	exp := collector.New([]collector.AppConfig{{Name: "bot", API: api, MaxRuns: maxRuns, Retention: time.Hour, Concurrency: 8}},
		collector.WithRunCache(cache), collector.WithMinInterval(0))
	reg := prometheus.NewRegistry()
	reg.MustRegister(exp)
	c := testConfig()
	c.Exporter, c.Metrics, c.Registration = exp, exposition.NewRenderer(cache, reg, 40, nil), true
	return &registrationAPI{t: t, addr: serve(t, c, 0)}
}

func (r *registrationAPI) do(method, path, contentType, body string) (int, string) {
	r.t.Helper()
	req, err := http.NewRequest(method, "http://"+r.addr+path, strings.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		r.t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func (r *registrationAPI) register(body string) (int, string) {
	r.t.Helper()
	return r.do(http.MethodPost, "/api/v1/runs", "application/json", body)
}

// scrape refreshes the app and returns the exposition.
func (r *registrationAPI) scrape() exposed {
	r.t.Helper()
	code, body := r.do(http.MethodGet, "/metrics", "", "")
	if code != http.StatusOK {
		r.t.Fatalf("/metrics: %d %s", code, body)
	}
	return exposed(body)
}

// exposed is a text exposition.
type exposed string

// values returns the values of name's samples that carry every label pair
// of want ("run_id", id, …).
func (e exposed) values(name string, want ...string) []float64 {
	var out []float64
	for line := range strings.Lines(string(e)) {
		rest, ok := strings.CutPrefix(line, name+"{")
		if !ok {
			continue
		}
		labels, value, _ := strings.Cut(rest, "} ")
		has := true
		for i := 0; i+1 < len(want); i += 2 {
			has = has && strings.Contains(","+labels+",", fmt.Sprintf(",%s=%q,", want[i], want[i+1]))
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(value), 64); has && err == nil {
			out = append(out, v)
		}
	}
	return out
}

// one returns the value of the one sample of name with want's labels.
func (e exposed) one(t *testing.T, name string, want ...string) float64 {
	t.Helper()
	v := e.values(name, want...)
	if len(v) != 1 {
		t.Fatalf("want one %s%v, got %d in:\n%s", name, want, len(v), e)
	}
	return v[0]
}

func TestRegistration(t *testing.T) {
	dify := difytest.NewServer()
	t.Cleanup(dify.Close)
	dify.AddApp(botKey, difytest.App{Name: "Bot", Mode: "advanced-chat"})
	newRun := func(status string, tokens int) string {
		r := difytest.Run{ID: difytest.NewRunID(), Status: status, TotalTokens: tokens}
		if status == "succeeded" {
			r.FinishedAt = time.Now()
		}
		dify.PutRun(botKey, r)
		return r.ID
	}
	done := newRun("succeeded", 11)
	running1 := newRun("running", 12)
	running2 := newRun("paused", 13)
	e := newRegistrationAPI(t, dify, 2)

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
			code, body := e.do(tc.method, "/api/v1/runs", tc.contentType, tc.body)
			if code != tc.code {
				t.Errorf("%d %q, want %d", code, body, tc.code)
			}
			if !strings.Contains(body, tc.want) {
				t.Errorf("message %q does not contain %q", body, tc.want)
			}
		})
	}
	m := e.scrape()
	if v := m.one(t, "dify_exporter_tracked_runs", "app", "bot", "source", "registered"); v != 0 {
		t.Fatalf("refused registrations are tracked: %v", v)
	}

	// Dify's own field name, and a charset, are accepted.
	code, body := e.do(http.MethodPost, "/api/v1/runs", "application/json; charset=UTF-8", `{"app":"bot","workflow_run_id":"`+done+`"}`)
	if code != http.StatusAccepted {
		t.Fatalf("register one as workflow_run_id: %d %q", code, body)
	}
	m = e.scrape()
	if v := m.one(t, "dify_workflow_run_tokens", "app", "bot", "run_id", done); v != 11 {
		t.Errorf("registered run's tokens = %v, want 11", v)
	}
	if v := m.one(t, "dify_exporter_tracked_runs", "app", "bot", "source", "registered"); v != 1 {
		t.Errorf("tracked registered = %v, want 1", v)
	}

	// An array; the finished run makes room for the second one.
	if code, body := e.register("[" + reg("bot", running1) + ", " + reg("bot", strings.ToUpper(running2)) + "]"); code != http.StatusAccepted {
		t.Fatalf("register array: %d %q", code, body)
	}
	// The cap (2) is full of runs that have not finished.
	if code, body := e.register(reg("bot", difytest.NewRunID())); code != http.StatusTooManyRequests {
		t.Errorf("register past the cap: %d %q, want 429", code, body)
	}
	m = e.scrape()
	if v := m.one(t, "dify_workflow_run_status", "run_id", running1, "status", "running"); v != 1 {
		t.Errorf("running1 status = %v", v)
	}
	if v := m.one(t, "dify_workflow_run_status", "run_id", running2, "status", "paused"); v != 1 {
		t.Errorf("running2 status = %v", v)
	}
	if code, body := e.register(reg("bot", difytest.NewRunID())); code != http.StatusTooManyRequests {
		t.Errorf("register past the cap after a scrape: %d %q, want 429", code, body)
	}
	// Registering a run already tracked is not refused by the cap.
	if code, body := e.register(reg("bot", running1)); code != http.StatusAccepted {
		t.Errorf("re-register a tracked run: %d %q, want 202", code, body)
	}
	if v := m.one(t, "dify_exporter_tracked_runs", "app", "bot", "source", "registered"); v != 2 {
		t.Errorf("tracked registered = %v, want 2", v)
	}
	if code, page := e.do(http.MethodGet, "/", "", ""); code != http.StatusOK || !strings.Contains(page, "Registration") {
		t.Errorf("landing page should say registration is on: %d", code)
	}
}

// TestRegisteredRunsDifyDoesNotKnow: registered IDs Dify answers 404 for
// are dropped at the next scrape, so bogus registrations cannot hold the
// cap full for good.
func TestRegisteredRunsDifyDoesNotKnow(t *testing.T) {
	dify := difytest.NewServer()
	t.Cleanup(dify.Close)
	dify.AddApp(botKey, difytest.App{Name: "Bot", Mode: "advanced-chat"})
	known := difytest.NewRunID()
	dify.PutRun(botKey, difytest.Run{ID: known, Status: "succeeded", TotalTokens: 5, FinishedAt: time.Now()})
	e := newRegistrationAPI(t, dify, 2)
	reg := func(id string) int {
		code, _ := e.register(`{"app":"bot","run_id":"` + id + `"}`)
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
	if v := m.values("dify_exporter_run_errors_total", "app", "bot", "reason", "not_found"); len(v) != 1 || v[0] != 2 {
		t.Errorf("run_errors_total{reason=not_found} = %v, want 2", v)
	}
	if v := m.one(t, "dify_exporter_tracked_runs", "app", "bot", "source", "registered"); v != 0 {
		t.Errorf("tracked registered runs after 404s = %v, want 0", v)
	}
	if code := reg(known); code != http.StatusAccepted {
		t.Fatalf("registration after the 404s were dropped: %d, want 202", code)
	}
	m = e.scrape()
	if v := m.one(t, "dify_workflow_run_tokens", "run_id", known); v != 5 {
		t.Errorf("tokens = %v, want 5", v)
	}
	if v := m.one(t, "dify_up", "app", "bot"); v != 1 {
		t.Errorf("dify_up = %v, want 1", v)
	}
}
