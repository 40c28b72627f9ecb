package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/version"

	"github.com/dify-exporter/dify_exporter/collector"
)

// defaultScrapeTimeout applies when a scrape does not say its timeout
// (a curl, say).
const defaultScrapeTimeout = 10 * time.Second

// maxScrapeTimeout bounds the scrape timeout a request may ask for.
const maxScrapeTimeout = time.Hour

func newMux(f *flags, exp *collector.Exporter, state *appState, reg *prometheus.Registry, logger log.Logger) *http.ServeMux {
	mux := http.NewServeMux()
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      promErrorLogger{logger},
		ErrorHandling: promhttp.ContinueOnError,
	})
	mux.HandleFunc(f.telemetry, func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), scrapeTimeout(r, f.offset))
		defer cancel()
		state.syncFiles()
		exp.Refresh(ctx)
		metrics.ServeHTTP(w, r)
	})
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
		if err := state.reload(); err != nil {
			http.Error(w, "reload failed, running configuration kept: "+err.Error(), http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "Reloaded\n")
	})
	if f.registration {
		mux.Handle("/api/v1/runs", registrationHandler{exp: exp, logger: logger})
	}
	mux.Handle("/", landingPage{exp: exp, telemetry: f.telemetry, registration: f.registration})
	return mux
}

// scrapeTimeout is Prometheus' scrape timeout minus the offset, as
// blackbox_exporter computes it.
func scrapeTimeout(r *http.Request, offset time.Duration) time.Duration {
	timeout := defaultScrapeTimeout
	if v := r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds"); v != "" {
		// Ignore what no Prometheus sends (NaN, Inf, days) rather than
		// overflow into an already-expired deadline.
		if s, err := strconv.ParseFloat(v, 64); err == nil && s > 0 && s <= maxScrapeTimeout.Seconds() {
			timeout = time.Duration(s * float64(time.Second))
		}
	}
	if timeout > offset {
		timeout -= offset
	}
	return timeout
}

type promErrorLogger struct{ logger log.Logger }

func (l promErrorLogger) Println(v ...any) {
	level.Error(l.logger).Log("msg", "Error gathering metrics", "err", fmt.Sprint(v...))
}

// maxRegistrationBody bounds one registration request.
const maxRegistrationBody = 1 << 20

type registration struct {
	App   string `json:"app"`
	RunID string `json:"run_id"`
}

// registrationHandler serves POST /api/v1/runs: one {"app","run_id"}
// object or an array of them. Entries before a refused one stay accepted.
type registrationHandler struct {
	exp    *collector.Exporter
	logger log.Logger
}

func (h registrationHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "use POST", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRegistrationBody+1))
	if err != nil {
		http.Error(w, "cannot read body", http.StatusBadRequest)
		return
	}
	if len(body) > maxRegistrationBody {
		http.Error(w, fmt.Sprintf("body larger than %d bytes", maxRegistrationBody), http.StatusRequestEntityTooLarge)
		return
	}
	var regs []registration
	body = bytes.TrimSpace(body)
	if len(body) > 0 && body[0] == '[' {
		err = json.Unmarshal(body, &regs)
	} else {
		var one registration
		err = json.Unmarshal(body, &one)
		regs = []registration{one}
	}
	if err != nil {
		http.Error(w, `body must be {"app": NAME, "run_id": UUID} or an array of them`, http.StatusBadRequest)
		return
	}
	accepted, elsewhere := 0, 0
	for i, reg := range regs {
		err := h.exp.Register(reg.App, reg.RunID)
		if errors.Is(err, collector.ErrOtherShard) && len(regs) > 1 {
			elsewhere++ // a batch goes to every replica; each takes its share
			continue
		}
		if err != nil {
			code := http.StatusBadRequest
			switch {
			case errors.Is(err, collector.ErrCapFull):
				code = http.StatusTooManyRequests
			case errors.Is(err, collector.ErrOtherShard):
				code = http.StatusMisdirectedRequest
			}
			msg := err.Error()
			if len(regs) > 1 {
				msg = fmt.Sprintf("entry %d: %s (%d before it accepted)", i, msg, accepted)
			}
			level.Debug(h.logger).Log("msg", "Registration refused", "err", msg)
			http.Error(w, msg, code)
			return
		}
		accepted++
	}
	w.WriteHeader(http.StatusAccepted)
	if elsewhere > 0 {
		fmt.Fprintf(w, "accepted %d; %d belong to other shards\n", accepted, elsewhere)
		return
	}
	fmt.Fprintf(w, "accepted %d\n", accepted)
}

var landingTemplate = template.Must(template.New("landing").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Dify Exporter</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}.down{color:#b00}.up{color:#070}</style>
</head><body>
<h1>Dify Exporter</h1>
<p>Prometheus exporter for the workflow runs of Dify apps. Version {{.Version}}.</p>
<ul><li><a href="{{.Telemetry}}">Metrics</a></li><li><a href="-/healthy">Health</a></li>{{if .Registration}}<li>Registration: <code>POST /api/v1/runs</code> is on</li>{{end}}</ul>
<h2>Apps</h2>
<table><tr><th>App</th><th>Mode</th><th>Dify API</th><th>Tracked runs</th><th>Stale runs</th><th>Last error</th></tr>
{{range .Apps}}<tr><td>{{.Name}}</td><td>{{.Mode}}</td><td>{{if not .Refreshed}}not scraped yet{{else if .Up}}<span class="up">up</span>{{else}}<span class="down">down</span>{{end}}</td><td>{{.Tracked}}</td><td>{{.Stale}}</td><td>{{.LastError}}</td></tr>
{{end}}</table>
</body></html>
`))

// landingPage lists the apps, their health and last error. Nothing on it
// is secret: errors never carry keys.
type landingPage struct {
	exp          *collector.Exporter
	telemetry    string
	registration bool
}

func (p landingPage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	var apps []collector.Status
	for _, a := range p.exp.Apps() {
		apps = append(apps, a.Status())
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	landingTemplate.Execute(w, struct {
		Version      string
		Telemetry    string
		Registration bool
		Apps         []collector.Status
	}{version.Version, p.telemetry, p.registration, apps})
}
