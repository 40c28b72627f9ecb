package server

import (
	"html/template"
	"net/http"

	"github.com/prometheus/common/version"

	"github.com/dify-exporter/dify_exporter/collector"
)

var landingTemplate = template.Must(template.New("landing").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Dify Exporter</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}.down{color:#b00}.up{color:#070}</style>
</head><body>
<h1>Dify Exporter</h1>
<p>Prometheus exporter for the workflow runs of Dify apps. Version {{.Version}}.</p>
<ul><li><a href="{{.Telemetry}}">Metrics</a></li><li><a href="-/healthy">Health</a></li>{{if .Registration}}<li>Registration: <code>POST /api/v1/runs</code> is on</li>{{end}}</ul>
<h2>Configuration</h2>
<p>Loaded {{.Reload.LoadedAt.UTC.Format "2006-01-02 15:04:05 MST"}}.</p>
{{if not .Reload.FailedAt.IsZero}}<p class="down" id="reload-failed">Reload failed {{.Reload.FailedAt.UTC.Format "2006-01-02 15:04:05 MST"}}; the configuration above is still running: {{.Reload.Err}}</p>
{{end}}<h2>Apps</h2>
<table><tr><th>App</th><th>Mode</th><th>Dify release</th><th>Dify API</th><th>Tracked runs</th><th>Stale runs</th><th>Last error</th></tr>
{{range .Apps}}<tr><td>{{.Name}}</td><td>{{.Mode}}</td><td>{{.ServerVersion}}</td><td>{{if not .Refreshed}}not scraped yet{{else if .Up}}<span class="up">up</span>{{else}}<span class="down">down</span>{{end}}</td><td>{{.Tracked}}</td><td>{{.Stale}}</td><td>{{.LastError}}</td></tr>
{{if .Note}}<tr><td></td><td colspan="6" class="note">Discovery: {{.Note}}</td></tr>
{{end}}{{if .TimeOffsetNote}}<tr><td></td><td colspan="6" class="note">Time: {{.TimeOffsetNote}}</td></tr>
{{end}}{{end}}</table>
</body></html>
`))

// landingPage lists the apps, their health and last error, and a failed
// reload. Nothing on it is secret: errors never carry keys.
type landingPage struct {
	exp          *collector.Exporter
	reloader     Reloader
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
		Reload       ReloadStatus
		Apps         []collector.Status
	}{version.Version, p.telemetry, p.registration, p.reloader.LastReload(), apps})
}
