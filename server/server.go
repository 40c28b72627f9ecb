// Package server holds the exporter's HTTP side: the endpoints (metrics,
// health, reload, registration, and the operator pages of package pages), the server's timeouts and
// its connection limit. It knows the collector but not how apps are
// configured: reloads go through a Reloader.
package server

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/common/version"

	"github.com/dify-exporter/dify_exporter/collector"
	"github.com/dify-exporter/dify_exporter/exposition"
	"github.com/dify-exporter/dify_exporter/server/pages"
)

// Reloader is the configuration side the endpoints drive.
type Reloader interface {
	// Reload reads the configuration again; on error the running one stays.
	Reload() error
	// SyncFiles re-reads the run-ID files that changed.
	SyncFiles()
	// LastReload says when the running configuration was loaded and how
	// the last reload since failed, if one did.
	LastReload() ReloadStatus
}

// ReloadStatus is what the pages show of the configuration's loading.
type ReloadStatus = pages.ReloadStatus

// ConfigShower is a Reloader that can show the running configuration,
// without keys, on the configuration page.
type ConfigShower interface {
	ShownConfig() string
}

// Timeouts bound how long one connection may hold the server.
type Timeouts struct {
	// ReadHeader bounds reading a request's headers, Read the whole
	// request with its body (registration bodies are at most 1 MiB).
	ReadHeader, Read time.Duration
	// Write bounds writing a response; a scrape's answer gets it from
	// when it is rendered, after the scrape's wait.
	Write time.Duration
	// Idle closes a keep-alive connection with no request for this long.
	Idle time.Duration
}

// DefaultTimeouts fit the endpoints: a registration body of 1 MiB over a
// slow link, Prometheus scraping every minute or more on a kept-alive
// connection.
var DefaultTimeouts = Timeouts{ReadHeader: 10 * time.Second, Read: 30 * time.Second, Write: 30 * time.Second, Idle: 2 * time.Minute}

// Config is what the endpoints serve.
type Config struct {
	Exporter *collector.Exporter
	Reloader Reloader
	// Metrics renders the expositions once the exporter is refreshed; its
	// render limit is --web.max-requests.
	Metrics *exposition.Renderer
	Logger  log.Logger

	TelemetryPath string
	// TimeoutOffset is subtracted from the scrape timeout to leave time
	// to answer.
	TimeoutOffset time.Duration
	Registration  bool
	// MaxScrapeTimeout bounds the timeout a scrape may ask for with
	// X-Prometheus-Scrape-Timeout-Seconds; 0 means
	// DefaultMaxScrapeTimeout.
	MaxScrapeTimeout time.Duration
	Timeouts         Timeouts
}

// reservedPaths are the endpoints the telemetry path may not take.
var reservedPaths = map[string]string{
	"/-/healthy":   "the health check",
	"/-/ready":     "the readiness check",
	"/-/reload":    "the reload endpoint",
	"/api/v1/runs": "the registration endpoint",
	"/runs":        "the run lookup",
	"/refreshes":   "the refreshes page",
	"/config":      "the configuration page",
}

// CheckTelemetryPath refuses a metrics path the mux cannot serve beside
// the other endpoints.
func CheckTelemetryPath(p string) error {
	switch {
	case p == "":
		return errors.New("must not be empty: want a path like /metrics")
	case p[0] != '/':
		return fmt.Errorf("%q must start with /, like /metrics", p)
	case p == "/":
		return errors.New(`"/" is the landing page: want a path like /metrics`)
	case reservedPaths[p] != "":
		return fmt.Errorf("%q is %s: want a path like /metrics", p, reservedPaths[p])
	case path.Clean(p) != p || strings.ContainsAny(p, " \t\r\n{}%?#"):
		return fmt.Errorf("%q is not a plain path: want one like /metrics (no trailing /, //, spaces, {}, %%, ? or #)", p)
	}
	return nil
}

// NewHandler returns the exporter's endpoints. The telemetry path must
// have passed CheckTelemetryPath.
func NewHandler(c Config) (http.Handler, error) {
	if err := CheckTelemetryPath(c.TelemetryPath); err != nil {
		return nil, fmt.Errorf("telemetry path %w", err)
	}
	if c.Logger == nil {
		c.Logger = log.NewNopLogger()
	}
	mux := http.NewServeMux()
	if c.MaxScrapeTimeout <= 0 {
		c.MaxScrapeTimeout = DefaultMaxScrapeTimeout
	}
	mux.Handle(c.TelemetryPath, metricsHandler{c})
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "Healthy\n")
	})
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "Ready\n")
	})
	mux.HandleFunc("/-/reload", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost && r.Method != http.MethodPut {
			w.Header().Set("Allow", "POST, PUT")
			http.Error(w, "use POST or PUT to reload", http.StatusMethodNotAllowed)
			return
		}
		if err := c.Reloader.Reload(); err != nil {
			http.Error(w, "reload failed, running configuration kept: "+err.Error(), http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "Reloaded\n")
	})
	if c.Registration {
		mux.Handle("/api/v1/runs", registrationHandler{exp: c.Exporter, logger: c.Logger})
	}
	shown := func() string { return "" }
	if cs, ok := c.Reloader.(ConfigShower); ok {
		shown = cs.ShownConfig
	}
	pages.Register(mux, pages.Config{Exporter: c.Exporter, LastReload: c.Reloader.LastReload, ShownConfig: shown,
		Telemetry: c.TelemetryPath, Registration: c.Registration, Version: version.Version})
	return mux, nil
}

// NewServer returns an http.Server for the endpoints with t's limits and
// the connection limit of its listeners (nil for none). WriteTimeout is
// the default that every response gets; for a scrape it counts from when
// its answer is rendered, after its wait.
func NewServer(h http.Handler, t Timeouts, limit *ConnLimit) *http.Server {
	var hook func(net.Conn, http.ConnState)
	if limit != nil {
		hook = limit.ConnState
	}
	return &http.Server{
		ConnState:         hook,
		Handler:           h,
		ReadHeaderTimeout: t.ReadHeader,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
	}
}
