package exposition

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// prometheusAccept is the Accept header of Prometheus 2.42 and later.
const prometheusAccept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"

var (
	t0 = time.Date(2026, 11, 30, 12, 0, 0, 250_000_000, time.UTC)
	wf = "5c9b7d3e-1f2a-4b6c-8d9e-0a1b2c3d4e5f"
)

func finished(app, id, status string) RunValues {
	return RunValues{App: app, WorkflowID: wf, RunID: id, Status: status, Tokens: 150, Steps: 3,
		Elapsed: 1250 * time.Millisecond, Created: t0, Finished: t0.Add(2 * time.Second)}
}

func running(app, id string) RunValues {
	return RunValues{App: app, WorkflowID: wf, RunID: id, Status: "running", Tokens: 40, Steps: 1,
		Elapsed: 300 * time.Millisecond, Created: t0}
}

// op changes both the cache and the model the reference registry is
// built from.
type op struct {
	set       *RunValues
	del       [2]string // app, run ID
	deleteApp string
}

func set(v RunValues) op                             { return op{set: &v} }
func del(app, id string) op                          { return op{del: [2]string{app, id}} }
func deleteApp(app string) op                        { return op{deleteApp: app} }
func with(v RunValues, f func(*RunValues)) RunValues { f(&v); return v }

// model is the state the ops leave, kept independently of the cache.
type model map[string]map[string]RunValues

func (m model) apply(o op) {
	switch {
	case o.set != nil:
		if m[o.set.App] == nil {
			m[o.set.App] = map[string]RunValues{}
		}
		m[o.set.App][o.set.RunID] = *o.set
	case o.del[0] != "":
		delete(m[o.del[0]], o.del[1])
	case o.deleteApp != "":
		delete(m, o.deleteApp)
	}
}

// reference is what client_golang exposes for the model's runs: const
// metrics from the family declarations, next to the gathered collectors.
func (m model) reference(t *testing.T, gathered ...prometheus.Collector) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(gathered...)
	var ms []prometheus.Metric
	gauge := func(f *Family, v float64, labels ...string) {
		ms = append(ms, prometheus.MustNewConstMetric(f.Desc(), prometheus.GaugeValue, v, labels...))
	}
	for _, runs := range m {
		for _, r := range runs {
			l := []string{r.App, r.WorkflowID, r.RunID}
			gauge(RunTokens, float64(r.Tokens), l...)
			gauge(RunSteps, float64(r.Steps), l...)
			gauge(RunElapsed, r.Elapsed.Seconds(), l...)
			if !r.Created.IsZero() {
				gauge(RunCreated, float64(r.Created.UnixNano())/1e9, l...)
			}
			if !r.Finished.IsZero() {
				gauge(RunFinished, float64(r.Finished.UnixNano())/1e9, l...)
			}
			for _, s := range []string{"running", "succeeded", "failed", "stopped", "partial-succeeded", "paused"} {
				v := 0.0
				if s == r.Status {
					v = 1
				}
				gauge(RunStatus, v, append(l, s)...)
			}
		}
	}
	reg.MustRegister(constCollector(ms))
	return reg
}

type constCollector []prometheus.Metric

func (c constCollector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }
func (c constCollector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c {
		ch <- m
	}
}

// appCollectors are per-app families like the collector's, named to sort
// before, among and after the per-run families.
func appCollectors() []prometheus.Collector {
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "dify_app_info", Help: "Dify app."}, []string{"app", "name", "mode"})
	info.WithLabelValues("translator", "Translator", "workflow").Set(1)
	dur := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "dify_workflow_run_duration_seconds",
		Help: "Elapsed time.", Buckets: []float64{1, 5, 60}}, []string{"app"})
	dur.WithLabelValues("translator").Observe(1.25)
	fin := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dify_workflow_runs_finished_total",
		Help: "Finished runs."}, []string{"app", "status"})
	fin.WithLabelValues("translator", "failed").Add(2)
	up := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "dify_up", Help: `1 if "up".`}, []string{"app"})
	up.WithLabelValues("translator").Set(1)
	return []prometheus.Collector{info, dur, fin, up}
}

func TestExpositionMatchesClientGolang(t *testing.T) {
	const (
		a = "translator"
		b = "support-bot"
	)
	id := func(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }
	for _, tc := range []struct {
		name string
		ops  []op
	}{
		{"empty", nil},
		{"running", []op{set(running(a, id(1)))}},
		{"succeeded", []op{set(finished(a, id(1), "succeeded"))}},
		{"failed", []op{set(finished(a, id(1), "failed"))}},
		{"stopped", []op{set(finished(a, id(1), "stopped"))}},
		{"partial-succeeded", []op{set(finished(a, id(1), "partial-succeeded"))}},
		{"paused", []op{set(with(running(a, id(1)), func(v *RunValues) { v.Status = "paused" }))}},
		{"unknown status", []op{set(finished(a, id(1), "archived"))}},
		{"no created time", []op{set(with(running(a, id(1)), func(v *RunValues) { v.Created = time.Time{} }))}},
		{"one finished among running", []op{set(running(a, id(1))), set(finished(a, id(2), "failed"))}},
		{"updated to finished", []op{set(running(a, id(1))), set(running(a, id(2))),
			set(finished(a, id(1), "succeeded"))}},
		{"updated values only", []op{set(finished(a, id(1), "failed")),
			set(with(finished(a, id(1), "failed"), func(v *RunValues) { v.Tokens, v.Steps = 1_500_000, 7 }))}},
		{"workflow id learnt later", []op{set(with(running(a, id(1)), func(v *RunValues) { v.WorkflowID = "" })),
			set(running(a, id(1)))}},
		{"set twice unchanged", []op{set(running(a, id(1))), set(running(a, id(1)))}},
		{"deleted first of three", []op{set(running(a, id(1))), set(finished(a, id(2), "failed")),
			set(finished(a, id(3), "stopped")), del(a, id(1))}},
		{"deleted then set again", []op{set(running(a, id(1))), del(a, id(1)), set(finished(a, id(1), "failed"))}},
		{"deleted unknown run and app", []op{set(running(a, id(1))), del(a, id(9)), del("nope", id(1))}},
		{"deleted all runs", []op{set(running(a, id(1))), del(a, id(1))}},
		{"deleted app", []op{set(running(a, id(1))), set(finished(b, id(2), "failed")), deleteApp(a)}},
		{"two apps", []op{set(finished(b, id(2), "failed")), set(running(a, id(1))), set(running(b, id(3)))}},
		{"labels to escape", []op{set(with(finished(`quote"back\slash`, "id\nnewline", "failed"),
			func(v *RunValues) { v.WorkflowID = `wf"\` }))}},
		{"big values", []op{set(with(finished(a, id(1), "succeeded"), func(v *RunValues) {
			v.Tokens, v.Steps, v.Elapsed = 1<<40, 0, 36*time.Hour
		}))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, m := NewCache(), model{}
			for _, o := range tc.ops {
				m.apply(o)
				switch {
				case o.set != nil:
					c.Set(*o.set)
				case o.del[0] != "":
					c.Delete(o.del[0], o.del[1])
				default:
					c.DeleteApp(o.deleteApp)
				}
			}
			gathered := prometheus.NewPedanticRegistry()
			gathered.MustRegister(appCollectors()...)
			ours := Handler(c, gathered, log.NewNopLogger())
			ref := promhttp.HandlerFor(m.reference(t, appCollectors()...), promhttp.HandlerOpts{EnableOpenMetrics: true})
			for _, h := range []struct{ accept, encoding string }{
				{"text/plain;version=0.0.4", ""},
				{prometheusAccept, "gzip"},
				{"text/plain", "zstd"},
			} {
				got, gotFmt := scrape(t, ours, h.accept, h.encoding)
				want, wantFmt := scrape(t, ref, h.accept, h.encoding)
				if gotFmt != wantFmt {
					t.Errorf("Accept %q: Content-Type %q, client_golang's %q", h.accept, gotFmt, wantFmt)
				}
				if d := diff(parse(t, want, wantFmt), withoutOwnFamilies(t, parse(t, got, gotFmt))); d != "" {
					t.Errorf("Accept %q, Accept-Encoding %q: exposition differs from client_golang's:\n%s\nours:\n%s",
						h.accept, h.encoding, d, got)
				}
			}
			text, _ := scrape(t, ours, "", "")
			promtoolCheck(t, text)
		})
	}
}

// withoutOwnFamilies checks that a Renderer's own families are in lines,
// which client_golang's exposition lacks, and leaves them out.
func withoutOwnFamilies(t *testing.T, lines []string) []string {
	t.Helper()
	n := 0
	lines = slices.DeleteFunc(lines, func(l string) bool {
		own := strings.HasPrefix(l, RenderedTimestampName+" ") || strings.HasPrefix(l, strings.TrimSuffix(OverLimitName, "_total"))
		if own {
			n++
		}
		return own
	})
	if n != 4 { // each family's header line and its one series
		t.Errorf("%d lines of the Renderer's own families, want 4", n)
	}
	return lines
}

// scrape gets h's body, decompressed, and its format.
func scrape(t *testing.T, h http.Handler, accept, encoding string) ([]byte, expfmt.Format) {
	t.Helper()
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept", accept)
	req.Header.Set("Accept-Encoding", encoding)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var r io.Reader = rec.Body
	switch ce := rec.Header().Get("Content-Encoding"); ce {
	case "gzip":
		gz, err := gzip.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		r = gz
	case "zstd":
		z, err := zstd.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		defer z.Close()
		r = z
	case "", "identity":
	default:
		t.Fatalf("Content-Encoding %q", ce)
	}
	body, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return body, expfmt.Format(rec.Header().Get("Content-Type"))
}

// parse decodes an exposition into one line per family header and per
// series, sorted, failing on what the parser refuses.
func parse(t *testing.T, body []byte, f expfmt.Format) []string {
	t.Helper()
	if f.FormatType() == expfmt.TypeOpenMetrics && !bytes.HasSuffix(body, []byte("# EOF\n")) {
		t.Errorf("OpenMetrics without # EOF at its end")
	}
	// Parsers drop a family without series; Prometheus' lint does not.
	lines := strings.Split(string(body), "\n")
	for i, l := range lines {
		if name, ok := strings.CutPrefix(l, "# TYPE "); ok {
			name, _, _ = strings.Cut(name, " ")
			if i+1 == len(lines) || !strings.HasPrefix(lines[i+1], name) {
				t.Errorf("family %s has no series", name)
			}
		}
	}
	lines = nil
	dec := expfmt.NewDecoder(bytes.NewReader(body), f)
	seen := map[string]bool{}
	for {
		var mf dto.MetricFamily
		err := dec.Decode(&mf)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s does not parse: %v\n%s", f, err, body)
		}
		if seen[mf.GetName()] {
			t.Errorf("family %s twice", mf.GetName())
		}
		seen[mf.GetName()] = true
		lines = append(lines, fmt.Sprintf("%s %s %q", mf.GetName(), mf.GetType(), mf.GetHelp()))
		for _, m := range mf.Metric {
			m.TimestampMs = nil
			if m.Counter != nil {
				m.Counter.CreatedTimestamp = nil
			}
			if m.Histogram != nil {
				m.Histogram.CreatedTimestamp = nil
			}
			slices.SortFunc(m.Label, func(a, b *dto.LabelPair) int { return strings.Compare(a.GetName(), b.GetName()) })
			lines = append(lines, mf.GetName()+" "+m.String())
		}
	}
	slices.Sort(lines)
	return lines
}

func diff(want, got []string) string {
	var d []string
	for _, l := range want {
		if !slices.Contains(got, l) {
			d = append(d, "- "+l)
		}
	}
	for _, l := range got {
		if !slices.Contains(want, l) {
			d = append(d, "+ "+l)
		}
	}
	if len(d) == 0 && len(want) != len(got) {
		d = append(d, fmt.Sprintf("%d lines, want %d", len(got), len(want)))
	}
	return strings.Join(d, "\n")
}

// promtoolCheck lints a text exposition with promtool, which CI installs.
func promtoolCheck(t *testing.T, text []byte) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool not installed")
		}
		t.Skip("promtool not installed")
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = bytes.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}
