// Package pages serves the operator's pages: the landing page (each app's
// health, runs and last refreshes), the run lookup, each refresh's log,
// and the configuration as understood. They are server-rendered with
// html/template, which escapes every value Dify supplied; the run lookup
// and the refreshes have JSON twins (?format=json) for scripts. Nothing
// on them is secret: keys never reach the collector's errors, and run
// inputs and outputs are never decoded.
package pages

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/dify-exporter/dify_exporter/collector"
)

//go:embed templates/*.html
var templateFiles embed.FS

// ReloadStatus is what the pages show of the configuration's loading.
type ReloadStatus struct {
	LoadedAt time.Time // when the running configuration was loaded
	FailedAt time.Time // the last failed reload after LoadedAt; zero if none
	Err      string    // its error (config errors never carry keys)
}

// Config is what the pages show.
type Config struct {
	Exporter *collector.Exporter
	// LastReload says when the configuration was loaded and how the last
	// reload since failed.
	LastReload func() ReloadStatus
	// ShownConfig, if set, is the running configuration as YAML, without
	// keys.
	ShownConfig  func() string
	Telemetry    string
	Registration bool
	Version      string
	// Now is the clock for ages; time.Now if nil.
	Now func() time.Time
}

// Paths the pages take.
const (
	PathLanding   = "/"
	PathRuns      = "/runs"
	PathRefreshes = "/refreshes"
	PathConfig    = "/config"
)

// DefaultRunPage is the run lookup's page size unless ?limit= says.
const DefaultRunPage = 100

type pages struct {
	c    Config
	tmpl *template.Template
}

// Register mounts the pages on mux.
func Register(mux *http.ServeMux, c Config) {
	if c.Now == nil {
		c.Now = time.Now
	}
	p := &pages{c: c}
	p.tmpl = template.Must(template.New("").Funcs(template.FuncMap{
		"ts":       formatTime,
		"ago":      p.ago,
		"dur":      formatDuration,
		"kept":     keptText,
		"why":      whyText,
		"runsURL":  runsURL,
		"logURL":   logURL,
		"statuses": func() []string { return statusOrder },
		"statusFilters": func() []string {
			return []string{"running", "paused", "succeeded", "partial-succeeded", "failed", "stopped", "unfinished", "stale", "new", "gone"}
		},
		"refreshView": func(app string, list []collector.Refresh) any {
			return struct {
				Name      string
				Refreshes []collector.Refresh
			}{app, list}
		},
	}).ParseFS(templateFiles, "templates/*.html"))
	mux.HandleFunc(PathLanding, p.landing)
	mux.HandleFunc(PathRuns, p.runs)
	mux.HandleFunc(PathRefreshes, p.refreshes)
	mux.HandleFunc(PathConfig, p.config)
}

// statusOrder is the order of the status counts on the landing page.
var statusOrder = []string{"running", "paused", "succeeded", "partial-succeeded", "failed", "stopped", "new", "gone", "other"}

func (p *pages) render(w http.ResponseWriter, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'")
	if err := p.tmpl.ExecuteTemplate(w, name, data); err != nil {
		// Headers are gone: say it in the page.
		fmt.Fprintf(w, "\n<p>page error: %s</p>\n", template.HTMLEscapeString(err.Error()))
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v) //nolint:errcheck // the client went away
}

func wantsJSON(r *http.Request) bool { return r.URL.Query().Get("format") == "json" }

// appView is one app on the landing page.
type appView struct {
	collector.Overview
	Refreshes []collector.Refresh
}

func (p *pages) landing(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != PathLanding {
		http.NotFound(w, r)
		return
	}
	var apps []appView
	for _, a := range p.c.Exporter.Apps() {
		apps = append(apps, appView{Overview: a.Overview(), Refreshes: a.Refreshes()})
	}
	p.render(w, "landing.html", struct {
		Config
		Reload ReloadStatus
		Apps   []appView
	}{p.c, p.c.LastReload(), apps})
}

// appLookup is the lookup's answer for one app.
type appLookup struct {
	App string `json:"app"`
	collector.RunPage
	NextURL string `json:"-"`
}

// runs serves the run lookup: ?app=, ?run_id= (a full ID or a prefix),
// ?status=, ?limit=, ?after= (the previous page's next).
func (p *pages) runs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	query := collector.RunQuery{RunID: strings.TrimSpace(q.Get("run_id")), Status: q.Get("status"), After: q.Get("after"), Limit: DefaultRunPage}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > collector.MaxRunPage {
			http.Error(w, fmt.Sprintf("limit must be a number from 1 to %d", collector.MaxRunPage), http.StatusBadRequest)
			return
		}
		query.Limit = n
	}
	all := p.c.Exporter.Apps()
	var apps []*collector.App
	switch name := q.Get("app"); {
	case name != "":
		a := p.c.Exporter.App(name)
		if a == nil {
			http.Error(w, fmt.Sprintf("unknown app %q", clip(name)), http.StatusNotFound)
			return
		}
		apps = []*collector.App{a}
	case query.RunID != "":
		apps = all // a run ID alone is looked for in every app
	case len(all) > 0:
		apps = all[:1]
	}
	var results []appLookup
	for _, a := range apps {
		page, err := a.LookupRuns(query)
		if errors.Is(err, collector.ErrBadStatus) {
			http.Error(w, fmt.Sprintf("status %q: %v", clip(query.Status), err), http.StatusBadRequest)
			return
		}
		res := appLookup{App: a.Name(), RunPage: page}
		if page.Next != "" {
			v := url.Values{"app": {a.Name()}, "after": {page.Next}, "limit": {strconv.Itoa(query.Limit)}}
			for _, k := range []string{"run_id", "status"} {
				if q.Get(k) != "" {
					v.Set(k, q.Get(k))
				}
			}
			res.NextURL = "runs?" + v.Encode()
		}
		results = append(results, res)
	}
	if wantsJSON(r) {
		if results == nil {
			results = []appLookup{}
		}
		writeJSON(w, struct {
			Apps []appLookup `json:"apps"`
		}{results})
		return
	}
	var names []string
	for _, a := range all {
		names = append(names, a.Name())
	}
	p.render(w, "runs.html", struct {
		App, RunID, Status string
		Limit              int
		Names              []string
		Results            []appLookup
	}{q.Get("app"), query.RunID, query.Status, query.Limit, names, results})
}

// refreshes serves an app's last refreshes (?app=), or one refresh with
// its log (?app=&id=).
func (p *pages) refreshes(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	a := p.c.Exporter.App(q.Get("app"))
	if a == nil {
		http.Error(w, fmt.Sprintf("unknown app %q: want ?app=NAME", clip(q.Get("app"))), http.StatusNotFound)
		return
	}
	if q.Get("id") == "" {
		list := a.Refreshes()
		if wantsJSON(r) {
			if list == nil {
				list = []collector.Refresh{}
			}
			writeJSON(w, struct {
				App       string              `json:"app"`
				Refreshes []collector.Refresh `json:"refreshes"`
			}{a.Name(), list})
			return
		}
		p.render(w, "refreshes.html", struct {
			App       string
			Refreshes []collector.Refresh
		}{a.Name(), list})
		return
	}
	id, err := strconv.ParseUint(q.Get("id"), 10, 64)
	if err != nil {
		http.Error(w, "id must be a refresh number", http.StatusBadRequest)
		return
	}
	rec, log, ok := a.RefreshLog(id)
	if !ok {
		http.Error(w, fmt.Sprintf("refresh %d of %s is no longer kept (the last %d are)", id, a.Name(), len(a.Refreshes())), http.StatusNotFound)
		return
	}
	if wantsJSON(r) {
		writeJSON(w, struct {
			App string `json:"app"`
			collector.Refresh
			Log []string `json:"log"`
		}{a.Name(), rec, strings.Split(strings.TrimSuffix(log, "\n"), "\n")})
		return
	}
	p.render(w, "refresh.html", struct {
		App     string
		Refresh collector.Refresh
		Log     string
	}{a.Name(), rec, log})
}

func (p *pages) config(w http.ResponseWriter, _ *http.Request) {
	shown := ""
	if p.c.ShownConfig != nil {
		shown = p.c.ShownConfig()
	}
	p.render(w, "config.html", struct {
		Reload ReloadStatus
		Shown  string
	}{p.c.LastReload(), shown})
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

func (p *pages) ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return formatDuration(p.c.Now().Sub(t)) + " ago"
}

func formatDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0s"
	case d < time.Millisecond:
		return d.String()
	case d < time.Second:
		return d.Round(100 * time.Microsecond).String()
	case d < time.Minute:
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// keptText says in words how a run is kept current.
func keptText(i collector.RunInfo) string {
	switch i.Kept {
	case collector.KeptByLogs:
		return "covered by the log pages: each refresh's logs read updates it"
	case collector.KeptByDetail:
		return "a detail call each refresh"
	case collector.KeptAwaitingLogRow:
		if i.DueAt.IsZero() {
			return "waiting for its log row (written when it finishes); re-checked by a detail call on the next refresh"
		}
		return "waiting for its log row (written when it finishes); re-check by a detail call at " + formatTime(i.DueAt)
	case collector.KeptNew:
		return "not fetched yet: a detail call on the next refresh"
	case collector.KeptUnverified:
		return "registered; Dify has not confirmed it exists yet: a detail call on the next refresh"
	case collector.KeptGone:
		return "Dify answered 404: kept while listed, not asked again"
	case collector.KeptFinished:
		if !i.ExpiresAt.IsZero() {
			return "finished: no more calls; retention drops it at " + formatTime(i.ExpiresAt)
		}
		return "finished: no more calls; kept while listed"
	}
	return string(i.Kept)
}

// whyText says in words why a run is not tracked.
func whyText(d collector.Departure) string {
	at := ""
	if !d.At.IsZero() {
		at = " at " + formatTime(d.At)
	}
	switch d.Why {
	case collector.WhyNeverSeen:
		return "never seen: no source named it (not in the run lists, not registered, not in the logs read), or it left longer ago than the exporter remembers"
	case collector.WhyRefused:
		return "its registration was refused" + at + ": " + d.Detail
	case collector.WhyNotFound:
		return "Dify answered 404 for it" + at
	case collector.WhyExpired:
		return "expired by retention" + at + " (finished longer ago than --runs.retention)"
	case collector.WhyEvicted:
		return "evicted by the cap (--runs.max)" + at + ": " + d.Detail
	case collector.WhyUnlisted:
		return "removed from the run list or IDs file" + at
	case collector.WhyOtherShard:
		return fmt.Sprintf("belongs to shard %d (this replica is another)%s", d.Shard, at)
	case collector.WhySeenUntracked:
		return "seen in the logs but not tracked: the cap was full, or it left longer ago than the exporter remembers; its finish was counted"
	}
	return string(d.Why)
}

// runsURL is the run lookup's link for an app and a filter.
func runsURL(app, status, after string) string {
	v := url.Values{"app": {app}}
	if status != "" {
		v.Set("status", status)
	}
	if after != "" {
		v.Set("after", after)
	}
	return "runs?" + v.Encode()
}

// logURL is the link to one refresh's log.
func logURL(app string, id uint64) string {
	return "refreshes?" + url.Values{"app": {app}, "id": {strconv.FormatUint(id, 10)}}.Encode()
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
