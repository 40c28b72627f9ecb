package server

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/dify-exporter/dify_exporter/client"
	"github.com/dify-exporter/dify_exporter/client/difytest"
	"github.com/dify-exporter/dify_exporter/collector"
	"github.com/dify-exporter/dify_exporter/exposition"
)

type fakeReloader struct{}

func (fakeReloader) Reload() error            { return nil }
func (fakeReloader) SyncFiles()               {}
func (fakeReloader) LastReload() ReloadStatus { return ReloadStatus{LoadedAt: time.Now()} }

// testConfig is a Config with no apps, serving an empty registry.
func testConfig() Config {
	return Config{
		Exporter: collector.New(nil), Reloader: fakeReloader{},
		Metrics: exposition.NewRenderer(exposition.NewCache(), prometheus.NewRegistry(), 40, nil), TelemetryPath: "/metrics",
		TimeoutOffset: 500 * time.Millisecond, Timeouts: DefaultTimeouts,
	}
}

// serve runs the endpoints of c on 127.0.0.1 as the binary does (Listen,
// NewServer, web.ServeMultiple) and returns the address.
func serve(t *testing.T, c Config, maxConns int) string {
	t.Helper()
	h, err := NewHandler(c)
	if err != nil {
		t.Fatal(err)
	}
	return serveHandler(t, h, c.Timeouts, maxConns)
}

// serveHandler serves h as serve does.
func serveHandler(t *testing.T, h http.Handler, timeouts Timeouts, maxConns int) string {
	t.Helper()
	addrs, systemd, webCfg := []string{"127.0.0.1:0"}, false, ""
	flags := &web.FlagConfig{WebListenAddresses: &addrs, WebSystemdSocket: &systemd, WebConfigFile: &webCfg}
	logger := slog.New(slog.DiscardHandler)
	limit := NewConnLimit(maxConns)
	ls, err := Listen(flags, limit, logger)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(h, timeouts, limit)
	done := make(chan error, 1)
	go func() { done <- web.ServeMultiple(ls, srv, flags, logger) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return ls[0].Addr().String()
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedWithin reads c until it is closed by the server, and reports
// whether that happened within d.
func closedWithin(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

func TestCheckTelemetryPath(t *testing.T) {
	tests := []struct {
		path string
		want string // in the error; "" for accepted
	}{
		{"/metrics", ""},
		{"/dify/metrics", ""},
		{"/-/metrics", ""},
		{"/api/v1/metrics", ""},
		{"", "empty"},
		{"metrics", "start with /"},
		{"/", "landing page"},
		{"/-/healthy", "health check"},
		{"/-/ready", "readiness"},
		{"/-/reload", "reload"},
		{"/api/v1/runs", "registration"},
		{"/metrics/", "plain path"},
		{"//metrics", "plain path"},
		{"/a/../metrics", "plain path"},
		{"/m/{x}", "plain path"},
		{"/m/{x...}", "plain path"},
		{"/m etrics", "plain path"},
		{"/metrics?x=1", "plain path"},
		{"/metrics%2F", "plain path"},
	}
	for _, tc := range tests {
		err := CheckTelemetryPath(tc.path)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v, want accepted", tc.path, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: error %v, want one containing %q", tc.path, err, tc.want)
		}
		// Whatever passes must build a mux (a refused one used to panic).
		c := testConfig()
		c.TelemetryPath = tc.path
		c.Registration = true
		if _, err := NewHandler(c); (err == nil) != (tc.want == "") {
			t.Errorf("%q: NewHandler: %v", tc.path, err)
		}
	}
}

// short are timeouts small enough for tests.
var short = Timeouts{ReadHeader: 300 * time.Millisecond, Read: 300 * time.Millisecond, Write: 300 * time.Millisecond, Idle: 300 * time.Millisecond}

func TestDrippedBodyIsCutOff(t *testing.T) {
	c := testConfig()
	c.Timeouts, c.Registration = short, true
	conn := dial(t, serve(t, c, 0))
	fmt.Fprintf(conn, "POST /api/v1/runs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
	stop := make(chan struct{})
	defer close(stop)
	go func() { // a byte every 50 ms would take 50 s
		for range 1000 {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := conn.Write([]byte(" ")); err != nil {
				return
			}
		}
	}()
	if !closedWithin(conn, 5*time.Second) {
		t.Errorf("a body dripped a byte every 50ms still holds the connection after 5s (read timeout %v)", short.Read)
	}
}

func TestIdleConnectionIsClosed(t *testing.T) {
	c := testConfig()
	c.Timeouts = short
	conn := dial(t, serve(t, c, 0))
	fmt.Fprintf(conn, "GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("GET /-/healthy: %d, close %v; want 200 kept alive", resp.StatusCode, resp.Close)
	}
	if !closedWithin(conn, 5*time.Second) {
		t.Errorf("an idle keep-alive connection is still open after 5s (idle timeout %v)", short.Idle)
	}
}

// The server's read timeout is shorter than a scrape may take; it must
// not cut the scrape's refresh short (a read deadline passing mid-handler
// cancels the request's context).
func TestLongScrapeOutlastsReadTimeout(t *testing.T) {
	dify := difytest.NewServer()
	defer dify.Close()
	const key = "app-servertestkey000000000000"
	dify.AddApp(key, difytest.App{Name: "T", Mode: "workflow"})
	id := difytest.NewRunID()
	dify.PutRun(key, difytest.Run{ID: id, Status: "running", TotalTokens: 7})
	dify.SetFault(difytest.EndpointRun, difytest.Fault{Latency: 1200 * time.Millisecond})
	api, err := client.New(client.Config{URL: dify.URL(), APIKey: key, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer api.CloseIdleConnections()
	cache := exposition.NewCache()
	exp := collector.New([]collector.AppConfig{{Name: "t", API: api, RunIDs: []string{id}}}, collector.WithRunCache(cache))
	reg := prometheus.NewRegistry()
	reg.MustRegister(exp)
	c := testConfig()
	c.Exporter, c.Metrics, c.Timeouts = exp, exposition.NewRenderer(cache, reg, 40, nil), short
	req, _ := http.NewRequest("GET", "http://"+serve(t, c, 0)+"/metrics", nil)
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", "5")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if want := `dify_workflow_run_tokens{app="t"`; !strings.Contains(string(body), want) {
		t.Errorf("a 1.2s refresh under a 5s scrape timeout and a %v read timeout: no %s in\n%s", short.Read, want, body)
	}
}

// get fetches /-/healthy on conn.
func get(t *testing.T, conn net.Conn, br *bufio.Reader) {
	t.Helper()
	fmt.Fprintf(conn, "GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("GET /-/healthy: %v", err)
	}
	resp.Body.Close()
}

// Busy connections beyond the limit wait to be accepted rather than take
// file descriptors; they are served once others close.
func TestConnectionLimitBusy(t *testing.T) {
	c := testConfig()
	addr := serve(t, c, 3)
	var busy []net.Conn
	for range 3 { // requests whose headers never end (within ReadHeader)
		conn := dial(t, addr)
		fmt.Fprintf(conn, "GET /-/healthy HTTP/1.1\r\nHost: x\r\n")
		busy = append(busy, conn)
	}
	time.Sleep(100 * time.Millisecond) // let the server accept them
	extra := dial(t, addr)             // the kernel completes the handshake
	fmt.Fprintf(extra, "GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(extra)
	extra.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := br.ReadByte(); err == nil {
		t.Fatalf("a fourth connection was served while three were busy (limit 3)")
	}
	busy[0].Close()
	extra.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("the waiting connection was not served after another closed: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("waiting connection: %d", resp.StatusCode)
	}
}

// Idle keep-alive connections at the limit make room for a new one, the
// longest-idle first: they cannot lock Prometheus out.
func TestConnectionLimitIdle(t *testing.T) {
	c := testConfig()
	addr := serve(t, c, 3)
	var idle []net.Conn
	for range 3 {
		conn := dial(t, addr)
		get(t, conn, bufio.NewReader(conn))
		idle = append(idle, conn)
		time.Sleep(20 * time.Millisecond) // an order of idleness
	}
	extra := dial(t, addr)
	get(t, extra, bufio.NewReader(extra)) // fails the test if it waits 5s
	if !closedWithin(idle[0], time.Second) {
		t.Errorf("the longest-idle connection was not closed for the new one")
	}
	for i, conn := range idle[1:] {
		if closedWithin(conn, 100*time.Millisecond) {
			t.Errorf("idle connection %d was closed too; only the oldest needed to be", i+1)
		}
	}
}

// The landing page names each app's Dify release, what it hides from
// discovery, and a time correction with its cause.
func TestLandingPageShowsReleaseAndNotes(t *testing.T) {
	srv := difytest.NewServer()
	t.Cleanup(srv.Close)
	const key = "app-landing-key-123456789"
	srv.SetServerVersion("1.10.1")
	srv.AddApp(key, difytest.App{Name: "Old", Mode: "workflow"})
	c, err := client.New(client.Config{URL: srv.URL(), APIKey: key, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.Exporter = collector.New([]collector.AppConfig{{Name: "old", API: c, Discovery: true, Lookback: time.Hour,
		TimeOffset: 8 * time.Hour, FixedTimeOffset: true}})
	cfg.Exporter.Refresh(t.Context())
	h, err := NewHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	page := w.Body.String()
	for _, want := range []string{"<td>1.10.1</td>", "runs appear only once they finish", "corrected by 8h0m0s (--dify.time-offset)"} {
		if !strings.Contains(page, want) {
			t.Errorf("landing page lacks %q:\n%s", want, page)
		}
	}
}
