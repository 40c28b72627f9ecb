package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dify-exporter/dify_exporter/client"
	"github.com/dify-exporter/dify_exporter/client/difytest"
)

const (
	wfKey   = "app-wf-SECRETKEY-0123456789"
	chatKey = "app-chat-SECRETKEY-9876543210"
	acKey   = "app-ac-SECRETKEY-5555555555"
	runID   = "fb47b2e6-5e43-4f90-be01-d5c5a088d156"
	wfID    = "7c3e33d4-2a8b-4e5f-9b1a-d3c6e8f12345"
	unknown = "00000000-0000-4000-8000-000000000000"

	// User data that must never leave the client.
	secretInput  = "TOPSECRET-INPUT-7731"
	secretOutput = "TOPSECRET-OUTPUT-4412"
	userAgent    = "dify_exporter-test/1.2.3"
)

var t0 = time.Unix(1705407629, 0).UTC()

// wantRun is the documented example run (Dify's API documentation) as client.Run.
var wantRun = client.Run{
	ID: runID, WorkflowID: wfID, Status: client.StatusSucceeded,
	TotalTokens: 150, TotalSteps: 3, Elapsed: 1230 * time.Millisecond,
	CreatedAt: t0, FinishedAt: t0.Add(time.Second),
}

func newServer(t *testing.T) *difytest.Server {
	t.Helper()
	s := difytest.NewServer()
	t.Cleanup(s.Close)
	s.AddApp(wfKey, difytest.App{Name: "Translator", Mode: "workflow"})
	s.AddApp(chatKey, difytest.App{Name: "Chat", Mode: "chat"})
	s.AddApp(acKey, difytest.App{Name: "Support", Mode: "advanced-chat"})
	s.PutRun(wfKey, difytest.Run{
		ID: runID, WorkflowID: wfID, Status: "succeeded",
		Inputs:     map[string]any{"query": secretInput},
		Outputs:    map[string]any{"result": secretOutput},
		TotalSteps: 3, TotalTokens: 150, CreatedAt: t0, FinishedAt: t0.Add(time.Second), ElapsedTime: 1.23,
	})
	return s
}

type observed struct {
	mu    sync.Mutex
	calls []string // "endpoint code"
}

func (o *observed) observe(endpoint, code string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls = append(o.calls, endpoint+" "+code)
}

func (o *observed) get() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.calls)
}

func newClient(t *testing.T, s *difytest.Server, key string, mod func(*client.Config)) (*client.Client, *observed) {
	t.Helper()
	obs := &observed{}
	cfg := client.Config{URL: s.URL(), APIKey: key, UserAgent: userAgent, Timeout: 5 * time.Second, Observe: obs.observe}
	if mod != nil {
		mod(&cfg)
	}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatalf("client.New: %v", err)
	}
	return c, obs
}

func asError(t *testing.T, err error) *client.Error {
	t.Helper()
	var e *client.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *client.Error", err, err)
	}
	return e
}

// noSecrets fails if text contains an API key or user data.
func noSecrets(t *testing.T, what, text string) {
	t.Helper()
	for _, s := range []string{wfKey, chatKey, acKey, "SECRETKEY", secretInput, secretOutput} {
		if strings.Contains(text, s) {
			t.Errorf("%s leaks %q: %s", what, s, text)
		}
	}
}

func TestErrorClasses(t *testing.T) {
	type tc struct {
		name     string
		era      difytest.Era
		key      string
		id       string
		setup    func(s *difytest.Server)
		mod      func(*client.Config)
		kind     client.Kind
		status   int
		contains []string
		requests int // server requests on the run endpoint
	}
	cases := []tc{
		{name: "401 revoked key", key: wfKey, id: runID,
			setup: func(s *difytest.Server) { s.RevokeKey(wfKey) },
			kind:  client.KindUnauthorized, status: 401,
			contains: []string{"dify run", "key refused", "unauthorized", "Access token is invalid"}, requests: 1},
		{name: "401 unknown key", key: "app-SECRETKEY-neveradded", id: runID,
			kind: client.KindUnauthorized, status: 401,
			contains: []string{"dify run", "key refused", "Access token is invalid"}, requests: 1},
		{name: "403 disabled app", key: wfKey, id: runID,
			setup: func(s *difytest.Server) { s.DisableApp(wfKey, "The app's API service has been disabled.") },
			kind:  client.KindForbidden, status: 403,
			contains: []string{"dify run", "forbidden", "The app's API service has been disabled."}, requests: 1},
		{name: "400 not_workflow_app (chat key)", key: chatKey, id: runID,
			kind: client.KindNotWorkflowApp, status: 400,
			contains: []string{"dify run", "not_workflow_app", "Please check if your app mode matches the right API route."}, requests: 1},
		{name: "404 not_found newest", era: difytest.EraNewest, key: wfKey, id: unknown,
			kind: client.KindNotFound, status: 404,
			contains: []string{"dify run", "not_found", "Workflow run not found."}, requests: 1},
		{name: "404 not_found era D", era: difytest.EraD, key: wfKey, id: unknown,
			kind: client.KindNotFound, status: 404,
			contains: []string{"dify run", "not_found", "Workflow run not found."}, requests: 1},
		{name: "404 foreign run newest", key: acKey, id: runID,
			kind: client.KindNotFound, status: 404, contains: []string{"dify run", "not_found"}, requests: 1},
		{name: "200 all-null era C", era: difytest.EraC, key: wfKey, id: unknown,
			kind: client.KindNotFound, status: 200, contains: []string{"dify run", "not found"}, requests: 1},
		{name: "200 all-null era A", era: difytest.EraA, key: wfKey, id: unknown,
			kind: client.KindNotFound, status: 200, contains: []string{"dify run", "not found"}, requests: 1},
		{name: "429 with Retry-After, no retries", key: wfKey, id: runID,
			setup: func(s *difytest.Server) {
				s.SetFault(difytest.EndpointRun, difytest.Fault{Status: 429, RetryAfter: "7"})
			},
			mod:  func(c *client.Config) { c.MaxRetries = -1 },
			kind: client.KindRateLimited, status: 429,
			contains: []string{"dify run", "429", "too_many_requests"}, requests: 1},
		{name: "500", key: wfKey, id: runID,
			setup: func(s *difytest.Server) { s.SetFault(difytest.EndpointRun, difytest.Fault{Status: 500}) },
			kind:  client.KindServerError, status: 500,
			contains: []string{"dify run", "500", "internal_server_error"}, requests: 3},
		{name: "502", key: wfKey, id: runID,
			setup: func(s *difytest.Server) { s.SetFault(difytest.EndpointRun, difytest.Fault{Status: 502}) },
			kind:  client.KindServerError, status: 502,
			contains: []string{"dify run", "502", "bad_gateway"}, requests: 3},
		{name: "503", key: wfKey, id: runID,
			setup: func(s *difytest.Server) { s.SetFault(difytest.EndpointRun, difytest.Fault{Status: 503}) },
			kind:  client.KindServerError, status: 503,
			contains: []string{"dify run", "503", "service_unavailable"}, requests: 3},
		{name: "502 HTML page from a proxy", key: wfKey, id: runID,
			setup: func(s *difytest.Server) {
				s.SetFault(difytest.EndpointRun, difytest.Fault{Status: 502, Body: "<html><body>502 Bad Gateway</body></html>", ContentType: "text/html"})
			},
			mod:  func(c *client.Config) { c.MaxRetries = -1 },
			kind: client.KindServerError, status: 502,
			contains: []string{"dify run", "502", "text/html"}, requests: 1},
		{name: "malformed JSON on 200", key: wfKey, id: runID,
			setup: func(s *difytest.Server) {
				s.SetFault(difytest.EndpointRun, difytest.Fault{Status: 200, Body: `{"id": "fb47b2e6-5e43-4f90-be01-d5c5a088d156", "status": `})
			},
			kind: client.KindBadResponse, status: 200, contains: []string{"dify run", "undecodable"}, requests: 1},
		{name: "HTML on 200 (a login page in front)", key: wfKey, id: runID,
			setup: func(s *difytest.Server) {
				s.SetFault(difytest.EndpointRun, difytest.Fault{Status: 200, Body: "<!doctype html><title>Login</title>", ContentType: "text/html; charset=utf-8"})
			},
			kind: client.KindWrongURL, status: 200, contains: []string{"dify run", "HTML", "/v1/workflows/run/" + runID, "not Dify's service API"}, requests: 1},
		{name: "untyped HTML on 200", key: wfKey, id: runID,
			setup: func(s *difytest.Server) {
				s.SetFault(difytest.EndpointRun, difytest.Fault{Status: 200, Body: "\n  <html><body>hi</body></html>", ContentType: "text/plain"})
			},
			kind: client.KindWrongURL, status: 200, contains: []string{"dify run", "HTML"}, requests: 1},
		{name: "404 unknown route (werkzeug)", key: wfKey, id: runID,
			setup: func(s *difytest.Server) { s.SetFault(difytest.EndpointRun, difytest.Fault{Status: 404}) },
			kind:  client.KindWrongURL, status: 404, contains: []string{"dify run", "unknown route", "not Dify's service API"}, requests: 1},
		{name: "truncated body", key: wfKey, id: runID,
			setup: func(s *difytest.Server) { s.SetFault(difytest.EndpointRun, difytest.Fault{Truncate: true}) },
			kind:  client.KindBadResponse, contains: []string{"dify run"}, requests: 3},
		{name: "body over MaxBodyBytes", key: wfKey, id: runID,
			setup: func(s *difytest.Server) { s.SetFault(difytest.EndpointRun, difytest.Fault{BodySize: 64 << 10}) },
			mod:   func(c *client.Config) { c.MaxBodyBytes = 4096 },
			kind:  client.KindBadResponse, status: 200, contains: []string{"dify run", "4096"}, requests: 1},
		{name: "connection reset", key: wfKey, id: runID,
			setup: func(s *difytest.Server) { s.SetFault(difytest.EndpointRun, difytest.Fault{Reset: true}) },
			kind:  client.KindUnreachable, contains: []string{"dify run"}, requests: 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t)
			s.SetEra(tc.era)
			if tc.setup != nil {
				tc.setup(s)
			}
			c, obs := newClient(t, s, tc.key, tc.mod)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			r, err := c.Run(ctx, tc.id)
			if err == nil {
				t.Fatalf("Run = %+v, nil; want a %v error", r, tc.kind)
			}
			if r != (client.Run{}) {
				t.Errorf("Run returned %+v with its error; want the zero Run", r)
			}
			e := asError(t, err)
			if e.Kind != tc.kind || client.KindOf(err) != tc.kind {
				t.Errorf("Kind = %v, want %v (error: %v)", e.Kind, tc.kind, err)
			}
			if e.Status != tc.status {
				t.Errorf("Status = %d, want %d (error: %v)", e.Status, tc.status, err)
			}
			if e.Endpoint != client.EndpointRun {
				t.Errorf("Endpoint = %q, want %q", e.Endpoint, client.EndpointRun)
			}
			for _, want := range tc.contains {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			noSecrets(t, "error", err.Error())
			noSecrets(t, "error value", fmt.Sprintf("%+v %#v", err, e))
			if got := s.Requests(difytest.EndpointRun); tc.kind == client.KindUnreachable && got < tc.requests || tc.kind != client.KindUnreachable && got != tc.requests {
				t.Errorf("server saw %d requests, want %d", got, tc.requests)
			}
			if got := len(obs.get()); got != tc.requests {
				t.Errorf("Observe called %d times (%v), want once per attempt (%d)", got, obs.get(), tc.requests)
			}
		})
	}
}

func TestRateLimitedRetryAfter(t *testing.T) {
	s := newServer(t)
	s.SetFault(difytest.EndpointRun, difytest.Fault{Status: 429, RetryAfter: "7"})
	c, _ := newClient(t, s, wfKey, func(c *client.Config) { c.MaxRetries = -1 })
	_, err := c.Run(context.Background(), runID)
	e := asError(t, err)
	if e.Kind != client.KindRateLimited || e.RetryAfter != 7*time.Second {
		t.Errorf("got Kind %v RetryAfter %v, want rate_limited 7s (%v)", e.Kind, e.RetryAfter, err)
	}
	if e.Kind.String() != "rate_limited" {
		t.Errorf("Kind.String() = %q", e.Kind.String())
	}

	// A Retry-After of 1s is waited out, and the retry succeeds.
	s.ResetRequests()
	s.SetFault(difytest.EndpointRun, difytest.Fault{Status: 429, RetryAfter: "1", Times: 1})
	c, _ = newClient(t, s, wfKey, nil)
	start := time.Now()
	r, err := c.Run(context.Background(), runID)
	if err != nil {
		t.Fatalf("Run after one 429: %v", err)
	}
	if r != wantRun {
		t.Errorf("Run = %+v, want %+v", r, wantRun)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("retried after %v, before the server's Retry-After of 1s", d)
	}
	if n := s.Requests(difytest.EndpointRun); n != 2 {
		t.Errorf("server saw %d requests, want 2", n)
	}
}

func TestRetries(t *testing.T) {
	t.Run("503 twice then success", func(t *testing.T) {
		t.Parallel()
		s := newServer(t)
		s.SetFault(difytest.EndpointRun, difytest.Fault{Status: 503, Times: 2})
		c, obs := newClient(t, s, wfKey, nil)
		r, err := c.Run(context.Background(), runID)
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		if r != wantRun {
			t.Errorf("Run = %+v, want %+v", r, wantRun)
		}
		if n := s.Requests(difytest.EndpointRun); n != 3 {
			t.Errorf("server saw %d requests, want 3", n)
		}
		if got, want := obs.get(), []string{"run 503", "run 503", "run 200"}; !slices.Equal(got, want) {
			t.Errorf("Observe calls = %v, want %v", got, want)
		}
	})
	t.Run("MaxRetries -1 means no retries", func(t *testing.T) {
		t.Parallel()
		s := newServer(t)
		s.SetFault(difytest.EndpointRun, difytest.Fault{Status: 503, Times: 1})
		c, obs := newClient(t, s, wfKey, func(c *client.Config) { c.MaxRetries = -1 })
		_, err := c.Run(context.Background(), runID)
		if k := client.KindOf(err); k != client.KindServerError {
			t.Errorf("Kind = %v, want server_error (%v)", k, err)
		}
		if n := s.Requests(difytest.EndpointRun); n != 1 {
			t.Errorf("server saw %d requests, want 1", n)
		}
		if got, want := obs.get(), []string{"run 503"}; !slices.Equal(got, want) {
			t.Errorf("Observe calls = %v, want %v", got, want)
		}
	})
	t.Run("MaxRetries 1", func(t *testing.T) {
		t.Parallel()
		s := newServer(t)
		s.SetFault(difytest.EndpointRun, difytest.Fault{Status: 500})
		c, _ := newClient(t, s, wfKey, func(c *client.Config) { c.MaxRetries = 1 })
		_, err := c.Run(context.Background(), runID)
		if k := client.KindOf(err); k != client.KindServerError {
			t.Errorf("Kind = %v, want server_error (%v)", k, err)
		}
		if n := s.Requests(difytest.EndpointRun); n != 2 {
			t.Errorf("server saw %d requests, want 2", n)
		}
	})
	// Every 4xx is final, whatever MaxRetries says.
	for _, st := range []int{400, 401, 403, 404, 405, 408, 422} {
		t.Run(fmt.Sprintf("%d not retried", st), func(t *testing.T) {
			t.Parallel()
			s := newServer(t)
			s.SetFault(difytest.EndpointRun, difytest.Fault{Status: st})
			c, _ := newClient(t, s, wfKey, func(c *client.Config) { c.MaxRetries = 5 })
			_, err := c.Run(context.Background(), runID)
			if err == nil {
				t.Fatal("Run succeeded")
			}
			if n := s.Requests(difytest.EndpointRun); n != 1 {
				t.Errorf("server saw %d requests for a %d, want 1", n, st)
			}
		})
	}
}

func TestRetriesRespectDeadline(t *testing.T) {
	cases := []struct {
		name  string
		fault difytest.Fault
		kinds []client.Kind
	}{
		{"5xx always", difytest.Fault{Status: 503}, []client.Kind{client.KindServerError, client.KindTimeout}},
		{"429 Retry-After beyond the deadline", difytest.Fault{Status: 429, RetryAfter: "30"}, []client.Kind{client.KindRateLimited, client.KindTimeout}},
		{"reset always", difytest.Fault{Reset: true}, []client.Kind{client.KindUnreachable, client.KindTimeout}},
		{"slow 5xx", difytest.Fault{Status: 502, Latency: 120 * time.Millisecond}, []client.Kind{client.KindServerError, client.KindTimeout}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t)
			s.SetFault(difytest.EndpointRun, tc.fault)
			c, _ := newClient(t, s, wfKey, func(c *client.Config) { c.MaxRetries = 50 })
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err := c.Run(ctx, runID)
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("Run returned after %v, well past the caller's 300ms deadline", d)
			}
			if k := client.KindOf(err); !slices.Contains(tc.kinds, k) {
				t.Errorf("Kind = %v, want one of %v (%v)", k, tc.kinds, err)
			}
			noSecrets(t, "error", fmt.Sprint(err))
		})
	}
}

func TestTimeouts(t *testing.T) {
	t.Run("hang with a context deadline", func(t *testing.T) {
		t.Parallel()
		s := newServer(t)
		s.SetFault(difytest.EndpointRun, difytest.Fault{Hang: true})
		c, obs := newClient(t, s, wfKey, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := c.Run(ctx, runID)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Run returned after %v", d)
		}
		e := asError(t, err)
		if e.Kind != client.KindTimeout || e.Endpoint != client.EndpointRun {
			t.Errorf("got %v (%v), want timeout on run", e.Kind, err)
		}
		if !strings.Contains(err.Error(), "dify run") {
			t.Errorf("error %q does not name the endpoint", err)
		}
		for _, call := range obs.get() {
			if call != "run error" {
				t.Errorf("Observe(%s), want \"run error\" when no response arrived", call)
			}
		}
		if len(obs.get()) == 0 {
			t.Error("Observe never called")
		}
	})
	t.Run("per-attempt Timeout", func(t *testing.T) {
		t.Parallel()
		s := newServer(t)
		s.SetFault(difytest.EndpointLogs, difytest.Fault{Hang: true})
		c, _ := newClient(t, s, wfKey, func(c *client.Config) { c.Timeout = 200 * time.Millisecond; c.MaxRetries = -1 })
		start := time.Now()
		_, err := c.WorkflowLogs(context.Background(), client.LogsQuery{})
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("WorkflowLogs returned after %v with a 200ms per-attempt Timeout", d)
		}
		if k := client.KindOf(err); k != client.KindTimeout {
			t.Errorf("Kind = %v, want timeout (%v)", k, err)
		}
	})
	t.Run("latency within Timeout succeeds", func(t *testing.T) {
		t.Parallel()
		s := newServer(t)
		s.SetFault(difytest.EndpointRun, difytest.Fault{Latency: 100 * time.Millisecond})
		c, _ := newClient(t, s, wfKey, func(c *client.Config) { c.Timeout = 3 * time.Second })
		if _, err := c.Run(context.Background(), runID); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	t.Run("cancelled context sends nothing", func(t *testing.T) {
		t.Parallel()
		s := newServer(t)
		c, _ := newClient(t, s, wfKey, nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := c.Run(ctx, runID)
		if k := client.KindOf(err); k != client.KindTimeout {
			t.Errorf("Kind = %v, want timeout (%v)", k, err)
		}
		if n := s.Requests(difytest.EndpointRun); n != 0 {
			t.Errorf("server saw %d requests", n)
		}
	})
}

func TestRequestHeaders(t *testing.T) {
	s := newServer(t)
	s.SetServerVersion("1.13.0-fix1")
	c, obs := newClient(t, s, wfKey, nil)
	ctx := context.Background()
	if _, err := c.Run(ctx, runID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WorkflowLogs(ctx, client.LogsQuery{}); err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info != (client.AppInfo{Name: "Translator", Mode: "workflow"}) {
		t.Errorf("Info = %+v", info)
	}
	srv, err := c.Server(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if srv.ServerVersion != "1.13.0-fix1" {
		t.Errorf("Server = %+v, want version 1.13.0-fix1", srv)
	}
	for _, ep := range []difytest.Endpoint{difytest.EndpointRun, difytest.EndpointLogs, difytest.EndpointInfo, difytest.EndpointIndex} {
		r := s.LastRequest(ep)
		if r == nil {
			t.Errorf("%s: no request", ep)
			continue
		}
		if r.Method != http.MethodGet {
			t.Errorf("%s: method %s", ep, r.Method)
		}
		wantAuth := "Bearer " + wfKey
		if ep == difytest.EndpointIndex {
			wantAuth = ""
		}
		if _, present := r.Header["Authorization"]; ep == difytest.EndpointIndex && present {
			t.Errorf("GET /v1/ carries an Authorization header")
		}
		if got := r.Header.Get("Authorization"); got != wantAuth {
			t.Errorf("%s: Authorization = %q, want %q", ep, got, wantAuth)
		}
		if got := r.Header.Get("User-Agent"); got != userAgent {
			t.Errorf("%s: User-Agent = %q, want %q", ep, got, userAgent)
		}
		if got := r.Header.Get("Accept"); got != "application/json" {
			t.Errorf("%s: Accept = %q", ep, got)
		}
	}
	if got := s.LastRequest(difytest.EndpointRun).URL.Path; got != "/v1/workflows/run/"+runID {
		t.Errorf("run path = %q", got)
	}
	if got := s.LastRequest(difytest.EndpointIndex).URL.Path; got != "/v1/" {
		t.Errorf("index path = %q", got)
	}
	want := []string{"run 200", "logs 200", "info 200", "index 200"}
	if got := obs.get(); !slices.Equal(got, want) {
		t.Errorf("Observe calls = %v, want %v", got, want)
	}
}

func TestInfoEras(t *testing.T) {
	s := newServer(t)
	c, _ := newClient(t, s, acKey, nil)
	for _, tc := range []struct {
		era  difytest.Era
		want client.AppInfo
	}{
		{difytest.EraNewest, client.AppInfo{Name: "Support", Mode: "advanced-chat"}},
		{difytest.EraB, client.AppInfo{Name: "Support", Mode: "advanced-chat"}},
		{difytest.EraA, client.AppInfo{Name: "Support"}}, // era A has no mode
	} {
		s.SetEra(tc.era)
		got, err := c.Info(context.Background())
		if err != nil {
			t.Errorf("era %v: %v", tc.era, err)
			continue
		}
		if got != tc.want || !got.WorkflowMode() {
			t.Errorf("era %v: Info = %+v (WorkflowMode %v), want %+v", tc.era, got, got.WorkflowMode(), tc.want)
		}
	}
	s.RevokeKey(acKey)
	_, err := c.Info(context.Background())
	if e := asError(t, err); e.Kind != client.KindUnauthorized || e.Endpoint != client.EndpointInfo || !strings.Contains(err.Error(), "dify info") {
		t.Errorf("revoked key: %v (kind %v)", err, e.Kind)
	}
	noSecrets(t, "error", err.Error())
}

// releases covers every era of the run-detail endpoint and every change
// of the logs the client reads (docs/dify-releases.md).
var releases = strings.Fields("0.8.1 1.0.0 1.1.3 1.3.0 1.3.1 1.6.0 1.7.0 1.9.1 1.10.1 1.11.0 1.12.1 1.13.0 1.13.1 1.14.1")

func TestRunAcrossReleases(t *testing.T) {
	running := "0c0b8a3e-3a57-4b8e-9d3c-2f1d7e6a5b41"
	for _, v := range releases {
		t.Run(v, func(t *testing.T) {
			s := newServer(t)
			s.SetServerVersion(v)
			s.PutRun(wfKey, difytest.Run{
				ID: strings.ToUpper(running), WorkflowID: wfID, Status: "paused",
				Inputs:     map[string]any{"q": secretInput, "nested": map[string]any{"x": secretInput}},
				Outputs:    map[string]any{"partial": secretOutput},
				TotalSteps: 2, TotalTokens: 40, CreatedAt: t0, ElapsedTime: 0.5,
			})
			c, _ := newClient(t, s, wfKey, nil)
			ctx := context.Background()
			got, err := c.Run(ctx, runID)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if got != wantRun {
				t.Errorf("Run =\n %+v, want\n %+v", got, wantRun)
			}
			// Asked in upper case, answered in lower case.
			got, err = c.Run(ctx, strings.ToUpper(runID))
			if err != nil || got != wantRun {
				t.Errorf("Run(upper) = %+v, %v; want %+v", got, err, wantRun)
			}
			// A paused run: finished_at null, outputs {} or a string; Dify
			// keeps its tokens and steps with elapsed_time 0.
			got, err = c.Run(ctx, running)
			if err != nil {
				t.Fatalf("Run(paused): %v", err)
			}
			want := client.Run{ID: running, WorkflowID: wfID, Status: client.StatusPaused, TotalSteps: 2, TotalTokens: 40, CreatedAt: t0}
			if got != want {
				t.Errorf("Run(paused) =\n %+v, want\n %+v", got, want)
			}
			noSecrets(t, "run", fmt.Sprintf("%+v %#v", got, got))

			// An unknown run: not found, except on 1.13.0, whose uncaught
			// error is a 500 (a server error, retried).
			_, err = c.Run(ctx, unknown)
			wantKind := client.KindNotFound
			if v == "1.13.0" {
				wantKind = client.KindServerError
			}
			if k := client.KindOf(err); k != wantKind {
				t.Errorf("Run(unknown): kind %v (%v), want %v", k, err, wantKind)
			}
		})
	}
}

func TestRunEraBReadsForeignRuns(t *testing.T) {
	// Eras A and B do not scope runs to the app (docs/dify-releases.md): the
	// client just reports what it gets.
	s := newServer(t)
	s.SetEra(difytest.EraB)
	c, _ := newClient(t, s, acKey, nil)
	got, err := c.Run(context.Background(), runID)
	if err != nil || got != wantRun {
		t.Errorf("Run = %+v, %v; want %+v", got, err, wantRun)
	}
}

func TestRunIDMismatch(t *testing.T) {
	s := newServer(t)
	other := strings.Replace(wfBody(), runID, unknown, 1)
	s.SetFault(difytest.EndpointRun, difytest.Fault{Status: 200, Body: other})
	c, _ := newClient(t, s, wfKey, nil)
	_, err := c.Run(context.Background(), runID)
	if k := client.KindOf(err); k != client.KindBadResponse {
		t.Errorf("Kind = %v, want bad_response for an answer about another run (%v)", k, err)
	}
	noSecrets(t, "error", fmt.Sprint(err))
}

func wfBody() string {
	return `{"id":"` + runID + `","workflow_id":"` + wfID + `","status":"succeeded","inputs":"{\"query\": \"` + secretInput +
		`\"}","outputs":{"result":"` + secretOutput + `"},"error":null,"total_steps":3,"total_tokens":150,"created_at":1705407629,"finished_at":1705407630,"elapsed_time":1.23}`
}

func TestUserDataNeverInErrors(t *testing.T) {
	// Bodies that carry user data and fail to decode for another reason.
	bodies := []string{
		strings.Replace(wfBody(), `"total_tokens":150`, `"total_tokens":"many"`, 1),
		strings.Replace(wfBody(), `"created_at":1705407629`, `"created_at":"yesterday"`, 1),
		strings.Replace(wfBody(), `"status":"succeeded"`, `"status":["succeeded"]`, 1),
		wfBody()[:len(wfBody())-40],
		strings.Replace(wfBody(), `{"result"`, `{"result" `+secretOutput, 1),
		`{"code":"invalid_param","message":"bad","status":400,"inputs":"` + secretInput + `"}`,
	}
	for i, body := range bodies {
		s := newServer(t)
		s.SetFault(difytest.EndpointRun, difytest.Fault{Status: 200, Body: body})
		c, _ := newClient(t, s, wfKey, nil)
		r, err := c.Run(context.Background(), runID)
		if err == nil {
			// The last body decodes (no id → not found), others must fail.
			t.Errorf("body %d: Run = %+v, want an error", i, r)
			continue
		}
		noSecrets(t, fmt.Sprintf("body %d: error", i), fmt.Sprintf("%v %+v", err, err))
	}
}

// The Error type promises that its text never contains the API key. A
// proxy or gateway that quotes the bearer token back in its error message
// must not make the client break that promise.
func TestErrorNeverEchoesKeyFromServer(t *testing.T) {
	for _, st := range []int{401, 403, 400, 502} {
		s := newServer(t)
		s.SetFault(difytest.EndpointRun, difytest.Fault{Status: st,
			Body: `{"code":"unauthorized","message":"invalid token ` + wfKey + `","status":` + fmt.Sprint(st) + `}`})
		c, _ := newClient(t, s, wfKey, func(c *client.Config) { c.MaxRetries = -1 })
		_, err := c.Run(context.Background(), runID)
		if err == nil {
			t.Fatalf("%d: no error", st)
		}
		if strings.Contains(err.Error(), wfKey) {
			t.Errorf("%d: error text contains the API key the server echoed: %s", st, err)
		}
	}
}

func TestInvalidRunIDsSendNothing(t *testing.T) {
	s := newServer(t)
	c, obs := newClient(t, s, wfKey, nil)
	ids := []string{
		"../info",
		"../../v1/info",
		"x?y=1",
		runID + "?x=1",
		runID[:35] + "/",
		"",
		"fb47b2e6-5e43-4f90-be01-d5c5a088d1\xff\xfe",
		"\xff\xfe\xfd",
		strings.Repeat("a", 10<<10),
		strings.Repeat("../", 4000),
		"{" + runID + "}",
		strings.ReplaceAll(runID, "-", ""),
		" " + runID[1:],
		runID[:35] + "\n",
		"%2e%2e%2finfo",
	}
	for _, id := range ids {
		r, err := c.Run(context.Background(), id)
		if err == nil {
			t.Errorf("Run(%.40q) = %+v, nil; want a refusal", id, r)
			continue
		}
		e := asError(t, err)
		if e.Endpoint != client.EndpointRun || e.Status != 0 {
			t.Errorf("Run(%.40q): endpoint %q status %d", id, e.Endpoint, e.Status)
		}
		if e.Kind == client.KindNotFound || e.Kind == client.KindServerError {
			t.Errorf("Run(%.40q): kind %v suggests the server was asked", id, e.Kind)
		}
		if len(err.Error()) > 300 {
			t.Errorf("Run(%.40q): error is %d bytes: the refused ID is echoed in full", id, len(err.Error()))
		}
		if strings.Contains(err.Error(), wfKey) {
			t.Errorf("Run(%.40q): error contains the key", id)
		}
	}
	for _, ep := range []difytest.Endpoint{difytest.EndpointRun, difytest.EndpointInfo, difytest.EndpointLogs, difytest.EndpointIndex} {
		if n := s.Requests(ep); n != 0 {
			t.Errorf("invalid IDs reached the server: %d requests on %s", n, ep)
		}
	}
	if calls := obs.get(); len(calls) != 0 {
		t.Errorf("Observe called for refused IDs: %v", calls)
	}
}

func TestNewErrors(t *testing.T) {
	const pw = "hunter2-PASSWORD"
	cases := []struct {
		name, url, key, want string
	}{
		{"bad scheme", "ftp://dify.example.com/v1", wfKey, "scheme"},
		{"no scheme", "dify.example.com/v1", wfKey, "scheme"},
		{"no host", "http:///v1", wfKey, "no host"},
		{"user info", "https://admin:" + pw + "@dify.example.com/v1", wfKey, "user info"},
		{"user info, bad scheme", "ftp://admin:" + pw + "@dify.example.com/v1", wfKey, "invalid Dify URL"},
		{"user info, no host", "http://admin:" + pw + "@/v1", wfKey, "invalid Dify URL"},
		{"user info, unparsable", "http://admin:" + pw + "@dify.example.com:port/v1", wfKey, "invalid Dify URL"},
		{"query", "https://dify.example.com/v1?x=1", wfKey, "query"},
		{"fragment", "https://dify.example.com/v1#x", wfKey, "fragment"},
		{"empty key", "https://dify.example.com/v1", "", "key"},
		{"key with newline", "https://dify.example.com/v1", wfKey + "\n", "key"},
		{"key with CR LF injection", "https://dify.example.com/v1", wfKey + "\r\nX-Evil: 1", "key"},
		{"key with space", "https://dify.example.com/v1", "app-SECRETKEY x", "key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := client.New(client.Config{URL: tc.url, APIKey: tc.key})
			if err == nil {
				t.Fatalf("New(%q) = %v, nil; want an error", tc.url, c.URL())
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			if strings.Contains(err.Error(), pw) {
				t.Errorf("error echoes the URL's password: %s", err)
			}
			if tc.key != "" && strings.Contains(err.Error(), strings.TrimSpace(strings.SplitN(tc.key, "\r", 2)[0])) {
				t.Errorf("error echoes the API key: %q", err)
			}
			noSecrets(t, "New error", err.Error())
		})
	}
	// And the good ones.
	for _, u := range []string{"http://127.0.0.1:5001/v1", "https://api.dify.ai/v1/", "https://dify.example.com"} {
		c, err := client.New(client.Config{URL: u, APIKey: wfKey})
		if err != nil {
			t.Errorf("New(%q): %v", u, err)
			continue
		}
		if strings.HasSuffix(c.URL(), "/") {
			t.Errorf("URL() = %q keeps a trailing slash", c.URL())
		}
	}
}

func TestWorkflowLogsQuery(t *testing.T) {
	s := newServer(t)
	c, _ := newClient(t, s, wfKey, nil)
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	after := time.Date(2024, 1, 16, 17, 50, 29, 987654321, zone) // 12:20:29.98 UTC
	if _, err := c.WorkflowLogs(context.Background(), client.LogsQuery{CreatedAfter: after, Page: 2, Limit: 50}); err != nil {
		t.Fatal(err)
	}
	q := s.LastRequest(difytest.EndpointLogs).URL.Query()
	if got := q.Get("page"); got != "2" {
		t.Errorf("page = %q", got)
	}
	if got := q.Get("limit"); got != "50" {
		t.Errorf("limit = %q", got)
	}
	ca := q.Get("created_at__after")
	if !strings.HasSuffix(ca, "Z") || !strings.HasPrefix(ca, "2024-01-16T12:20:29") {
		t.Errorf("created_at__after = %q, want UTC ISO-8601 2024-01-16T12:20:29…Z", ca)
	}
	if p, err := time.Parse(time.RFC3339Nano, ca); err != nil || p.After(after) {
		t.Errorf("created_at__after = %q (%v) is not RFC 3339 or is later than %v (the bound is inclusive)", ca, err, after)
	}
	// Zero query: no parameters at all (Dify's defaults).
	if _, err := c.WorkflowLogs(context.Background(), client.LogsQuery{}); err != nil {
		t.Fatal(err)
	}
	if raw := s.LastRequest(difytest.EndpointLogs).URL.RawQuery; raw != "" {
		t.Errorf("zero LogsQuery sent %q", raw)
	}
}

func TestWorkflowLogsDecodeAndPaging(t *testing.T) {
	// Releases up to 1.10.1 write a run's log row when it finishes (dated
	// then); later ones when it starts, so the running run is listed too.
	atFinish := strings.Fields("1.1.3 1.3.0 1.6.0 1.7.0 1.9.1 1.10.1")
	atStart := strings.Fields("1.11.0 1.12.1 1.13.0 1.13.1 1.14.1")
	for _, v := range append(atFinish, atStart...) {
		t.Run(v, func(t *testing.T) {
			listsRunning := slices.Contains(atStart, v)
			s := difytest.NewServer()
			t.Cleanup(s.Close)
			s.SetServerVersion(v)
			s.AddApp(wfKey, difytest.App{Name: "W", Mode: "workflow"})
			var ids []string
			for i := range 5 {
				id := difytest.NewRunID()
				ids = append(ids, id)
				r := difytest.Run{
					ID: strings.ToUpper(id), WorkflowID: wfID, Status: "succeeded", Version: "draft",
					Inputs:     map[string]any{"q": secretInput},
					Outputs:    map[string]any{"a": secretOutput},
					TotalSteps: i + 1, TotalTokens: 100 * (i + 1), ElapsedTime: 0.25 * float64(i+1),
					CreatedAt: t0.Add(time.Duration(i) * time.Minute), FinishedAt: t0.Add(time.Duration(i)*time.Minute + 2*time.Second),
				}
				if i == 4 {
					r.Status, r.FinishedAt, r.Version = "running", time.Time{}, "2025-01-16 12:00:00.000000"
				}
				s.PutRun(wfKey, r)
			}
			c, _ := newClient(t, s, wfKey, nil)
			ctx := context.Background()
			logged := func(i int) time.Time { // the log row's time
				if listsRunning {
					return t0.Add(time.Duration(i) * time.Minute)
				}
				return t0.Add(time.Duration(i)*time.Minute + 2*time.Second)
			}
			total := 4
			if listsRunning {
				total = 5
			}

			p, err := c.WorkflowLogs(ctx, client.LogsQuery{Page: 1, Limit: 2})
			if err != nil {
				t.Fatal(err)
			}
			if p.Page != 1 || p.Limit != 2 || p.Total != total || !p.HasMore || len(p.Entries) != 2 {
				t.Fatalf("page 1 = %+v", p)
			}
			e := p.Entries[0]
			if listsRunning {
				// Newest first: run 4 (running: no numbers yet), then run 3.
				want4 := client.Run{ID: ids[4], WorkflowID: "", Status: client.StatusRunning, CreatedAt: t0.Add(4 * time.Minute)}
				if e.Run != want4 || e.Version != "2025-01-16 12:00:00.000000" || !e.LoggedAt.Equal(logged(4)) {
					t.Errorf("entry 0 = %+v, want run %+v", e, want4)
				}
				e = p.Entries[1]
			}
			want3 := client.Run{ID: ids[3], Status: client.StatusSucceeded, TotalSteps: 4, TotalTokens: 400,
				Elapsed: time.Second, CreatedAt: t0.Add(3 * time.Minute), FinishedAt: t0.Add(3*time.Minute + 2*time.Second)}
			if e.Run != want3 || e.Version != "draft" || !e.LoggedAt.Equal(logged(3)) {
				t.Errorf("entry for run 3 = %+v, want run %+v logged at %v", e, want3, logged(3))
			}
			for _, e := range p.Entries {
				if e.Run.ID != strings.ToLower(e.Run.ID) {
					t.Errorf("run ID %q not lower-cased", e.Run.ID)
				}
			}
			noSecrets(t, "log page", fmt.Sprintf("%+v", p))

			p, err = c.WorkflowLogs(ctx, client.LogsQuery{Page: (total + 1) / 2, Limit: 2})
			if err != nil {
				t.Fatal(err)
			}
			if p.Total != total || p.HasMore || len(p.Entries) != 2-total%2 || p.Entries[len(p.Entries)-1].Run.ID != ids[0] {
				t.Errorf("last page = %+v", p)
			}

			// created_at__after is inclusive and filters on the log time.
			p, err = c.WorkflowLogs(ctx, client.LogsQuery{CreatedAfter: logged(3), Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			if p.Total != total-3 || len(p.Entries) != total-3 || p.Entries[len(p.Entries)-1].Run.ID != ids[3] {
				t.Errorf("after run 3: %+v", p)
			}
		})
	}
}

func TestWorkflowLogsErrors(t *testing.T) {
	s := newServer(t)
	c, _ := newClient(t, s, chatKey, nil)
	// No release checks the app mode: a chat key gets an empty list.
	for _, v := range releases[1:] {
		s.SetServerVersion(v)
		p, err := c.WorkflowLogs(context.Background(), client.LogsQuery{})
		if err != nil || len(p.Entries) != 0 || p.Total != 0 {
			t.Errorf("chat key, %s: %+v, %v", v, p, err)
		}
	}
	// Before 0.8.2 there is no logs route: Flask's 404 for an unknown URL,
	// which the client reads as a URL that is not the service API's (the
	// collector does not ask such a release for logs at all).
	s.SetServerVersion("0.8.1")
	_, err := c.WorkflowLogs(context.Background(), client.LogsQuery{})
	e := asError(t, err)
	if e.Kind != client.KindWrongURL || e.Endpoint != client.EndpointLogs || e.Status != 404 || !strings.Contains(err.Error(), "dify logs") {
		t.Errorf("0.8.1: %v (%v)", err, e.Kind)
	}
	noSecrets(t, "error", err.Error())
	s.SetServerVersion(difytest.DefaultVersion)

	// A log row whose run id is not a UUID is skipped, and counted.
	s.SetFault(difytest.EndpointLogs, difytest.Fault{Status: 200,
		Body: `{"page":1,"limit":20,"total":1,"has_more":false,"data":[{"workflow_run":{"id":"../info","status":"succeeded"},"created_at":1705407629}]}`})
	p, err := c.WorkflowLogs(context.Background(), client.LogsQuery{})
	if err != nil || len(p.Entries) != 0 || p.Skipped != 1 || client.KindOf(p.SkipErr) != client.KindBadResponse ||
		!strings.Contains(fmt.Sprint(p.SkipErr), "invalid run ID") {
		t.Errorf("bad run id in logs: %+v, %v", p, err)
	}
	// Rows with a null workflow_run are skipped.
	s.SetFault(difytest.EndpointLogs, difytest.Fault{Status: 200,
		Body: `{"page":1,"limit":20,"total":2,"has_more":false,"data":[{"workflow_run":null,"created_at":1705407629},{"workflow_run":{"id":"` + runID + `","status":"failed"},"created_at":1705407629}]}`})
	p, err = c.WorkflowLogs(context.Background(), client.LogsQuery{})
	if err != nil || len(p.Entries) != 1 || p.Entries[0].Run.ID != runID || p.Entries[0].Run.Status != client.StatusFailed {
		t.Errorf("null workflow_run: %+v, %v", p, err)
	}

	// And as the simulated Dify serves it: a log row whose run row is gone.
	s.ClearFaults()
	s.AddApp(wfKey, difytest.App{Name: "Translator", Mode: "workflow"})
	gone := difytest.NewRunID()
	s.PutRun(wfKey, difytest.Run{ID: gone, Status: "succeeded", CreatedAt: t0.Add(time.Minute), FinishedAt: t0.Add(time.Minute)})
	s.DeleteRunKeepLog(wfKey, gone)
	c, _ = newClient(t, s, wfKey, nil)
	p, err = c.WorkflowLogs(context.Background(), client.LogsQuery{})
	if err != nil || p.Total != 2 || len(p.Entries) != 1 || p.Entries[0].Run.ID != runID {
		t.Errorf("orphan log row: %+v, %v", p, err)
	}
}

func TestConcurrentUse(t *testing.T) {
	s := newServer(t)
	c, obs := newClient(t, s, wfKey, nil)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if r, err := c.Run(context.Background(), runID); err != nil || r != wantRun {
				t.Errorf("Run = %+v, %v", r, err)
			}
		})
	}
	wg.Wait()
	if n := len(obs.get()); n != 16 {
		t.Errorf("Observe called %d times, want 16", n)
	}
}
