package collector

import (
	"cmp"
	"context"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/dify-exporter/dify_exporter/client"
	"github.com/dify-exporter/dify_exporter/client/difytest"
)

// TestFaults injects each fault the simulated Dify can produce into the
// run detail call and checks what a user sees: the refresh ends by the
// scrape deadline, the last good values are served and marked stale,
// dify_up and the error reason are right, and all recovers by itself.
func TestFaults(t *testing.T) {
	tests := []struct {
		name    string
		inject  func(*difytest.Server)
		recover func(*difytest.Server)
		reason  string
		retries int
		// wantUp is dify_up during the fault.
		wantUp float64
		// deadline is the scrape's; 1s unless set (the 50 MiB body takes
		// seconds to stream under the race detector).
		deadline time.Duration
	}{
		{name: "500 burst", inject: fault(difytest.Fault{Status: 500}), reason: "server_error"},
		{name: "502 from a proxy, HTML body", inject: fault(difytest.Fault{Status: 502, Body: "<html><body>Bad Gateway</body></html>", ContentType: "text/html"}), reason: "server_error"},
		{name: "503", inject: fault(difytest.Fault{Status: 503}), reason: "server_error"},
		{name: "503 burst shorter than the retries", inject: fault(difytest.Fault{Status: 503, Times: 2}), retries: 2, wantUp: 1},
		{name: "hanging API", inject: fault(difytest.Fault{Hang: true}), reason: "timeout"},
		{name: "connection reset mid-body", inject: fault(difytest.Fault{Truncate: true}), reason: "bad_response"},
		{name: "connection reset before an answer", inject: fault(difytest.Fault{Reset: true}), reason: "unreachable"},
		{name: "malformed JSON", inject: fault(difytest.Fault{Status: 200, Body: "{not json"}), reason: "bad_response"},
		{name: "truncated JSON", inject: fault(difytest.Fault{Status: 200, Body: `{"id": "fb47b2e6-5e43-4f90-be01-`}), reason: "bad_response"},
		{name: "50 MiB body", inject: fault(difytest.Fault{BodySize: 50 << 20}), reason: "bad_response", deadline: 20 * time.Second},
		// A web page where Dify's JSON should be: the URL is not the API's.
		{name: "HTML with status 200", inject: fault(difytest.Fault{Status: 200, Body: "<!DOCTYPE html><html>login</html>", ContentType: "text/html"}), reason: "wrong_url"},
		{name: "key revoked", inject: func(s *difytest.Server) { s.RevokeKey(testKey) },
			recover: func(s *difytest.Server) { s.AddApp(testKey, difytest.App{Name: "Translator", Mode: "workflow"}) }, reason: "unauthorized"},
		{name: "app disabled", inject: func(s *difytest.Server) { s.DisableApp(testKey, "The app's API service has been disabled.") },
			recover: func(s *difytest.Server) { s.DisableApp(testKey, "") }, reason: "forbidden"},
		{name: "429 with Retry-After", inject: fault(difytest.Fault{Status: 429, RetryAfter: "30"}), retries: 2, reason: "rate_limited"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			running := runID(1)
			var api *client.Client
			f := newFixture(t, func(c *AppConfig) {
				c.RunIDs = []string{running}
				api = c.API.(*client.Client)
				if tc.retries != 0 {
					api, _ = client.New(client.Config{URL: api.URL(), APIKey: testKey, Timeout: 5 * time.Second, MaxRetries: tc.retries})
					c.API = api
				}
			})
			t.Cleanup(api.CloseIdleConnections)
			r := putPaused(f, running) // keeps its numbers, unlike a running run
			f.refresh(t)

			tc.inject(f.srv)
			deadline := cmp.Or(tc.deadline, time.Second)
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			start := time.Now()
			f.exp.Refresh(ctx)
			took := time.Since(start)
			cancel()
			// A correctness bound, not a speed goal: the deadline holds.
			if took > deadline+2*time.Second {
				t.Errorf("refresh took %v with a %v deadline", took, deadline)
			}
			wantStale := 0.0
			if tc.reason != "" {
				wantStale = 1
				if got := value(t, f.reg, "dify_exporter_run_errors_total", map[string]string{"reason": tc.reason}); got < 1 {
					t.Errorf("errors{reason=%q} = %v, want >= 1", tc.reason, got)
				}
			}
			if got := value(t, f.reg, "dify_up", nil); got != tc.wantUp {
				t.Errorf("dify_up = %v during the fault, want %v", got, tc.wantUp)
			}
			if got := value(t, f.reg, "dify_exporter_runs_stale", nil); got != wantStale {
				t.Errorf("stale runs = %v during the fault, want %v", got, wantStale)
			}
			if got := value(t, f.reg, "dify_workflow_run_tokens", map[string]string{"run_id": running}); got != 150 {
				t.Errorf("tokens = %v during the fault, want the last good 150", got)
			}

			f.srv.ClearFaults()
			if tc.recover != nil {
				tc.recover(f.srv)
			}
			r.TotalTokens = 200
			f.srv.PutRun(testKey, r)
			f.advance(time.Minute) // past any Retry-After, which is honoured across scrapes
			f.refresh(t)
			if got := value(t, f.reg, "dify_up", nil); got != 1 {
				t.Errorf("dify_up = %v after the fault, want 1", got)
			}
			if got := value(t, f.reg, "dify_exporter_runs_stale", nil); got != 0 {
				t.Errorf("stale runs = %v after the fault, want 0", got)
			}
			if got := value(t, f.reg, "dify_workflow_run_tokens", map[string]string{"run_id": running}); got != 200 {
				t.Errorf("tokens = %v after the fault, want the new 200", got)
			}
			f.srv.Close()
		})
	}
}

func fault(f difytest.Fault) func(*difytest.Server) {
	return func(s *difytest.Server) { s.SetFault(difytest.EndpointRun, f) }
}

func TestConnectionRefused(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	api, err := client.New(client.Config{URL: "http://" + addr + "/v1", APIKey: testKey, MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	exp := New([]AppConfig{{Name: "gone", API: api, RunIDs: []string{runID(1)}}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	exp.Refresh(ctx)
	st := exp.App("gone").Status()
	if st.Up || st.LastError == "" {
		t.Errorf("status = %+v, want down with an error", st)
	}
	if got := testutil.ToFloat64(exp.counters.runErrors.WithLabelValues("gone", "unreachable")); got != 1 {
		t.Errorf("unreachable errors = %v, want 1", got)
	}
	api.CloseIdleConnections()
}
