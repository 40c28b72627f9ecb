package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dify-exporter/dify_exporter/client"
	"github.com/dify-exporter/dify_exporter/client/difytest"
	"github.com/dify-exporter/dify_exporter/collector"
	"github.com/dify-exporter/dify_exporter/exposition"
)

func TestRequestedTimeout(t *testing.T) {
	const offset = 500 * time.Millisecond
	tests := []struct {
		header string
		max    time.Duration
		want   time.Duration // minus the offset
	}{
		{"", time.Minute, DefaultScrapeTimeout - offset},
		{"10", time.Minute, 9500 * time.Millisecond},
		{"1.5", time.Minute, time.Second},
		{"0.2", time.Minute, 200 * time.Millisecond}, // shorter than the offset: not cut to nothing
		{"0", time.Minute, DefaultScrapeTimeout - offset},
		{"-3", time.Minute, DefaultScrapeTimeout - offset},
		{"NaN", time.Minute, DefaultScrapeTimeout - offset},
		{"ten", time.Minute, DefaultScrapeTimeout - offset},
		{"60", time.Minute, time.Minute - offset},
		{"61", time.Minute, time.Minute - offset},
		{"3600", time.Minute, time.Minute - offset},
		{"3600", DefaultMaxScrapeTimeout, 2*time.Minute - offset},
		{"+Inf", time.Minute, time.Minute - offset},
		{"1e300", time.Minute, time.Minute - offset},
		{"9.3e9", time.Minute, time.Minute - offset},
		// A cap below the default bounds the default too.
		{"", 5 * time.Second, 5*time.Second - offset},
		{"ten", 5 * time.Second, 5*time.Second - offset},
	}
	for _, tc := range tests {
		r := httptest.NewRequest("GET", "/metrics", nil)
		if tc.header != "" {
			r.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", tc.header)
		}
		if got := refreshTimeout(RequestedTimeout(r, tc.max), offset); got != tc.want {
			t.Errorf("header %q, cap %v: timeout %v, want %v", tc.header, tc.max, got, tc.want)
		}
	}
}

// scrapeFixture is a simulated Dify with one running run of app "t", the
// exporter over it, and its endpoints served on loopback as the binary
// serves them (default timeouts and limits), counting the /metrics
// requests in their handler.
type scrapeFixture struct {
	dify     *difytest.Server
	runID    string
	cache    *exposition.Cache
	addr     string
	inFlight atomic.Int64
}

const fixtureKey = "app-scrapefixturekey000000000"

func newScrapeFixture(t *testing.T, offset time.Duration) *scrapeFixture {
	t.Helper()
	f := &scrapeFixture{dify: difytest.NewServer(), runID: difytest.NewRunID(), cache: exposition.NewCache()}
	t.Cleanup(f.dify.Close)
	f.dify.AddApp(fixtureKey, difytest.App{Name: "T", Mode: "workflow"})
	f.dify.PutRun(fixtureKey, difytest.Run{ID: f.runID, Status: "running"})
	// A Dify call that hangs is not given up on by the client before the
	// refresh's deadline.
	api, err := client.New(client.Config{URL: f.dify.URL(), APIKey: fixtureKey, Timeout: 10 * time.Minute, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.CloseIdleConnections)
	exp := collector.New([]collector.AppConfig{{Name: "t", API: api, RunIDs: []string{f.runID}}}, collector.WithRunCache(f.cache))
	reg := prometheus.NewRegistry()
	reg.MustRegister(exp)
	c := Config{
		Exporter: exp, Reloader: fakeReloader{}, TelemetryPath: "/metrics",
		Metrics:       exposition.NewRenderer(f.cache, reg, 40, nil), // --web.max-requests' default
		TimeoutOffset: offset, Timeouts: DefaultTimeouts,
	}
	h, err := NewHandler(c)
	if err != nil {
		t.Fatal(err)
	}
	counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metrics" {
			f.inFlight.Add(1)
			defer f.inFlight.Add(-1)
		}
		h.ServeHTTP(w, r)
	})
	f.addr = serveHandler(t, counted, c.Timeouts, 512) // --web.max-connections' default
	return f
}

// waitInFlight waits until n /metrics requests are in their handler.
func (f *scrapeFixture) waitInFlight(t *testing.T, n int64) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); f.inFlight.Load() < n; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d /metrics requests in flight after 30s, want %d", f.inFlight.Load(), n)
		}
	}
}

// prometheusAccept is what Prometheus 2.42 asks for.
const prometheusAccept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"

// scrape is a scrape as Prometheus makes it with a 10s timeout: it fails
// if the answer (gzipped, decompressed here) is not complete by then.
func (f *scrapeFixture) scrape() (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+f.addr+"/metrics", nil)
	req.Header.Set("Accept", prometheusAccept)
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", "10")
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// series is a series a scrape must hold: its name, label pairs its
// labels include (as written, like `app="t"`), and its value.
type series struct {
	name   string
	labels []string
	value  float64
}

func (s series) String() string {
	return fmt.Sprintf("%s{%s} %g", s.name, strings.Join(s.labels, ","), s.value)
}

// checkScrape checks that a scrape was answered in time and holds want.
func checkScrape(t *testing.T, what string, code int, body string, err error, want ...series) {
	t.Helper()
	if err != nil || code != http.StatusOK {
		t.Errorf("%s: status %d, error %v; want 200 within the 10s timeout", what, code, err)
		return
	}
	for _, w := range want {
		seen := false
	lines:
		for line := range strings.Lines(body) {
			if !strings.HasPrefix(line, w.name+"{") {
				continue
			}
			for _, l := range w.labels {
				if !strings.Contains(line, l) {
					continue lines
				}
			}
			seen = true
			if v, err := strconv.ParseFloat(strings.TrimSpace(line[strings.LastIndexByte(line, ' '):]), 64); err != nil || v != w.value {
				t.Errorf("%s: %s, want %s", what, strings.TrimSpace(line), w)
			}
			break
		}
		if !seen {
			t.Errorf("%s: no %s in the answer", what, w)
		}
	}
}

func up(v float64) series { return series{"dify_up", []string{`app="t"`}, v} }

// running is the run's status series for "running".
func (f *scrapeFixture) running(v float64) series {
	return series{"dify_workflow_run_status", []string{`app="t"`, fmt.Sprintf(`run_id=%q`, f.runID), `status="running"`}, v}
}

// 40 clients asking for an hour's timeout while Dify hangs wait for the
// refresh they share without taking a render slot: Prometheus' scrapes
// are answered within their 10s, with the last good values and dify_up 0
// from their own deadline.
func TestLongWaitersDuringHangLeaveScrapesAnswered(t *testing.T) {
	f := newScrapeFixture(t, 2*time.Second) // the answer comes 8s into a 10s scrape
	code, body, err := f.scrape()
	checkScrape(t, "scrape before the hang", code, body, err, up(1), f.running(1))
	if t.Failed() {
		t.FailNow()
	}

	// Not seen: Dify hangs. The last good values stay.
	f.dify.PutRun(fixtureKey, difytest.Run{ID: f.runID, Status: "succeeded", TotalTokens: 9, FinishedAt: time.Now()})
	for _, e := range []difytest.Endpoint{difytest.EndpointRun, difytest.EndpointInfo, difytest.EndpointIndex} {
		f.dify.SetFault(e, difytest.Fault{Hang: true})
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var returned atomic.Int64
	for range 40 {
		go func() {
			req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+f.addr+"/metrics", nil)
			req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", "3600")
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			if resp, err := (&http.Client{Transport: tr}).Do(req); err == nil {
				resp.Body.Close()
			}
			if ctx.Err() == nil {
				returned.Add(1)
			}
		}()
	}
	f.waitInFlight(t, 40)

	type result struct {
		code int
		body string
		err  error
	}
	results := make([]result, 3)
	var wg sync.WaitGroup
	for i := range results { // overlapping, a second apart
		wg.Add(1)
		go func() {
			defer wg.Done()
			var r result
			r.code, r.body, r.err = f.scrape()
			results[i] = r
		}()
		time.Sleep(time.Second)
	}
	wg.Wait()
	if n := returned.Load(); n != 0 {
		t.Fatalf("%d of the 40 long waiters were answered during the hang; the test needs them waiting", n)
	}
	for i, r := range results {
		checkScrape(t, fmt.Sprintf("scrape %d during the hang", i+1), r.code, r.body, r.err,
			up(0), series{"dify_exporter_runs_stale", []string{`app="t"`}, 1}, f.running(1))
	}
}

// 45 clients that ask for an hour's timeout and never read their (large)
// answer hold neither a render slot nor anything else a scrape needs:
// Prometheus' scrapes get 200 within their 10s while they hang on.
func TestNeverReadingClientsLeaveScrapesAnswered(t *testing.T) {
	f := newScrapeFixture(t, 500*time.Millisecond)
	// 3,000 runs of another app make an answer of about 4 MB, more than
	// the socket buffers take.
	for i := range 3000 {
		f.cache.Set(exposition.RunValues{App: "bulk", WorkflowID: "9f5c2e4a-1b7d-4c3e-8a6f-2d9e0b1c3a4f", RunID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i),
			Status: "succeeded", Tokens: int64(i), Steps: 3, Elapsed: time.Second, Created: time.Unix(1.7e9, 0), Finished: time.Unix(1.7e9+1, 0)})
	}
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	for range 45 {
		conn, err := d.Dial("tcp", f.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		fmt.Fprintf(conn, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Prometheus-Scrape-Timeout-Seconds: 3600\r\n\r\n")
	}
	f.waitInFlight(t, 45)

	for i := range 5 {
		code, body, err := f.scrape()
		checkScrape(t, fmt.Sprintf("scrape %d beside the 45 clients", i+1), code, body, err,
			up(1), f.running(1), series{"dify_workflow_run_tokens", []string{`app="bulk"`, `run_id="00000000-0000-4000-8000-000000002999"`}, 2999})
	}
	if n := f.inFlight.Load(); n < 45 {
		t.Fatalf("only %d of the 45 clients that never read are still being written to: their answer fits the socket buffers and the test proves nothing", n)
	}
}

// slowCollector makes a render wait until it is let through.
type slowCollector struct {
	entered, open chan struct{}
	closed        atomic.Bool
}

func (c *slowCollector) Describe(chan<- *prometheus.Desc) {}

func (c *slowCollector) Collect(chan<- prometheus.Metric) {
	if c.closed.Load() {
		c.entered <- struct{}{}
		<-c.open
	}
}

// Past --web.max-requests renders, a scrape is answered at once with the
// last exposition, its Age said; with none rendered yet, 503.
func TestPastRenderLimit(t *testing.T) {
	slow := &slowCollector{entered: make(chan struct{}), open: make(chan struct{})}
	reg := prometheus.NewRegistry()
	reg.MustRegister(slow)
	c := testConfig()
	c.Metrics = exposition.NewRenderer(exposition.NewCache(), reg, 1, nil)
	addr := serve(t, c, 0)
	get := func() (*http.Response, string) {
		t.Helper()
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	blocked := func() chan struct{} {
		slow.closed.Store(true)
		done := make(chan struct{})
		go func() { get(); close(done) }()
		<-slow.entered
		slow.closed.Store(false)
		return done
	}

	done := blocked()
	if resp, body := get(); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("past the limit with nothing rendered: %d %q, want 503", resp.StatusCode, body)
	}
	close(slow.open)
	<-done
	_, last := get()
	time.Sleep(1100 * time.Millisecond) // an Age of a second
	slow.open = make(chan struct{})
	done = blocked()
	resp, body := get()
	if resp.StatusCode != http.StatusOK || body != last || resp.Header.Get("Age") == "" {
		t.Errorf("past the limit: %d, Age %q, the last exposition %v; want 200, an Age, the last one",
			resp.StatusCode, resp.Header.Get("Age"), body == last)
	}
	close(slow.open)
	<-done
	if _, body := get(); !strings.Contains(body, "\n"+exposition.OverLimitName+" 2\n") {
		t.Errorf("the two scrapes past the limit are not counted in\n%s", body)
	}
}
