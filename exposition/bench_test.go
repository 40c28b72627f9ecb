package exposition_test

import (
	"bytes"
	stdgzip "compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"

	"github.com/dify-exporter/dify_exporter/client"
	"github.com/dify-exporter/dify_exporter/client/difytest"
	"github.com/dify-exporter/dify_exporter/collector"
	"github.com/dify-exporter/dify_exporter/exposition"
)

// Prometheus' scrape headers (2.42 and later).
const (
	prometheusAccept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
	benchKey         = "app-benchmarkbenchmarkbench"
	benchWorkflow    = "5c9b7d3e-1f2a-4b6c-8d9e-0a1b2c3d4e5f"
)

var sizes = []int{1000, 10000, 100000}

// benchRuns are n finished runs as the collector benchmark makes them:
// created 250 ms apart, ending a minute before now.
func benchRuns(now time.Time, n int) []difytest.Run {
	runs := make([]difytest.Run, n)
	for i := range n {
		created := now.Add(-time.Minute - time.Duration(n-i)*250*time.Millisecond)
		runs[i] = difytest.Run{ID: difytest.NewRunID(), WorkflowID: benchWorkflow, Status: "succeeded",
			TotalSteps: 2, TotalTokens: 10 + i, CreatedAt: created, FinishedAt: created.Add(time.Second), ElapsedTime: 0.5}
	}
	return runs
}

// BenchmarkScrapeBefore is today's path: the collector refreshes (one log
// page) and promhttp gathers, encodes and gzips every series.
//
//	go test -run '^$' -bench Scrape -benchmem -benchtime 20x ./exposition/
func BenchmarkScrapeBefore(b *testing.B) {
	for _, n := range sizes {
		b.Run(fmt.Sprintf("runs=%d", n), func(b *testing.B) {
			srv := difytest.NewServer()
			defer srv.Close()
			srv.AddApp(benchKey, difytest.App{Name: "Translator", Mode: "workflow"})
			for _, r := range benchRuns(time.Now(), n) {
				srv.PutRun(benchKey, r)
			}
			api, err := client.New(client.Config{URL: srv.URL(), APIKey: benchKey, Timeout: 30 * time.Second, MaxRetries: -1})
			if err != nil {
				b.Fatal(err)
			}
			before := heapInUse()
			exp := collector.New([]collector.AppConfig{{Name: "translator", API: api, Discovery: true,
				Lookback: time.Duration(n)*250*time.Millisecond + time.Hour, MaxRuns: n, Concurrency: 4}})
			refresh(exp)
			perRun := float64(heapInUse()-before) / float64(n)
			if got := exp.App("translator").Status().Tracked; got != n {
				b.Fatalf("tracked %d runs, want %d", got, n)
			}
			reg := prometheus.NewRegistry()
			reg.MustRegister(exp, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
			h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
			serve := func() int {
				refresh(exp)
				return scrape(b, h)
			}
			size := serve()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				serve()
			}
			b.ReportMetric(perRun, "retained-B/run")
			b.ReportMetric(float64(size), "gzip-B")
		})
	}
}

func refresh(exp *collector.Exporter) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	exp.Refresh(ctx)
}

// BenchmarkScrapeAfter serves the same runs from the cache, next to the
// per-app families and the Go and process collectors, through Handler.
func BenchmarkScrapeAfter(b *testing.B) {
	for _, n := range sizes {
		b.Run(fmt.Sprintf("runs=%d", n), func(b *testing.B) {
			runs := benchRuns(time.Now(), n)
			before := heapInUse()
			c := exposition.NewCache()
			for _, r := range runs {
				c.Set(values(r))
			}
			perRun := float64(heapInUse()-before) / float64(n)
			h := exposition.Handler(c, appRegistry(), log.NewNopLogger())
			size := scrape(b, h)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				scrape(b, h)
			}
			b.StopTimer()
			b.ReportMetric(perRun, "retained-B/run")
			b.ReportMetric(float64(size), "gzip-B")
			b.ReportMetric(peakRSS(), "peak-RSS-MB")
			runtime.KeepAlive(runs)
		})
	}
}

// values is the run as the collector would hand it to the cache.
func values(r difytest.Run) exposition.RunValues {
	return exposition.RunValues{App: "translator", WorkflowID: r.WorkflowID, RunID: r.ID, Status: r.Status,
		Tokens: int64(r.TotalTokens), Steps: int64(r.TotalSteps), Elapsed: time.Duration(r.ElapsedTime * float64(time.Second)),
		Created: r.CreatedAt, Finished: r.FinishedAt}
}

// appRegistry has per-app families shaped like the collector's for one
// app, and the Go and process collectors.
func appRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	gauge := func(name string, labels []string, values ...[]string) {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: name + "."}, labels)
		for i, v := range values {
			g.WithLabelValues(v...).Set(float64(i))
		}
		reg.MustRegister(g)
	}
	counter := func(name string, labels []string, values ...[]string) {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: name + "."}, labels)
		for i, v := range values {
			c.WithLabelValues(v...).Add(float64(i))
		}
		reg.MustRegister(c)
	}
	app := []string{"translator"}
	byStatus := func(statuses []string) [][]string {
		var v [][]string
		for _, s := range statuses {
			v = append(v, []string{"translator", s})
		}
		return v
	}
	gauge("dify_up", []string{"app"}, app)
	gauge("dify_app_info", []string{"app", "name", "mode"}, []string{"translator", "Translator", "workflow"})
	gauge("dify_scrape_duration_seconds", []string{"app"}, app)
	gauge("dify_exporter_runs_stale", []string{"app"}, app)
	gauge("dify_workflow_runs", []string{"app", "status"}, byStatus(exposition.Statuses)...)
	gauge("dify_exporter_tracked_runs", []string{"app", "source"}, byStatus([]string{"static", "file", "discovered", "registered"})...)
	counter("dify_workflow_runs_finished_total", []string{"app", "status"}, byStatus(exposition.Statuses[1:5])...)
	counter("dify_workflow_tokens_total", []string{"app"}, app)
	counter("dify_exporter_api_requests_total", []string{"app", "endpoint", "code"},
		[]string{"translator", "logs", "200"}, []string{"translator", "run", "200"}, []string{"translator", "info", "200"})
	counter("dify_exporter_run_errors_total", []string{"app", "reason"}, byStatus([]string{"timeout", "not_found"})...)
	hist := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "dify_workflow_run_duration_seconds", Help: "Duration.",
		Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600}}, app[:0:0])
	hist.WithLabelValues().Observe(0.5)
	reg.MustRegister(hist)
	return reg
}

// scrape requests h as Prometheus does and returns the body's size.
func scrape(b *testing.B, h http.Handler) int {
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept", prometheusAccept)
	req.Header.Set("Accept-Encoding", "gzip")
	rec := &discardRecorder{header: http.Header{}}
	h.ServeHTTP(rec, req)
	if rec.code != 0 && rec.code != 200 {
		b.Fatalf("status %d", rec.code)
	}
	return rec.n
}

// discardRecorder counts the body instead of keeping it.
type discardRecorder struct {
	header http.Header
	code   int
	n      int
}

func (r *discardRecorder) Header() http.Header  { return r.header }
func (r *discardRecorder) WriteHeader(code int) { r.code = code }
func (r *discardRecorder) Write(p []byte) (int, error) {
	r.n += len(p)
	return len(p), nil
}

// heapInUse is the heap's live objects after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// peakRSS is the process's peak resident set (VmHWM) in MB, the whole
// benchmark binary's: run one size alone to read it.
func peakRSS() float64 {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// BenchmarkCompression compresses the text of 10,000 runs with each
// candidate: CPU per scrape and the size Prometheus receives.
func BenchmarkCompression(b *testing.B) {
	c := exposition.NewCache()
	for _, r := range benchRuns(time.Now(), 10000) {
		c.Set(values(r))
	}
	var text bytes.Buffer
	if err := c.Write(&text, expfmt.NewFormat(expfmt.TypeTextPlain), nil); err != nil {
		b.Fatal(err)
	}
	type compressor interface {
		io.WriteCloser
		Reset(io.Writer)
	}
	candidates := []struct {
		name string
		new  func() compressor
	}{
		{"none", nil},
	}
	for _, l := range []int{1, 2, 4, 6} {
		candidates = append(candidates,
			struct {
				name string
				new  func() compressor
			}{fmt.Sprintf("stdlib-gzip-%d", l), func() compressor { w, _ := stdgzip.NewWriterLevel(nil, l); return w }},
			struct {
				name string
				new  func() compressor
			}{fmt.Sprintf("klauspost-gzip-%d", l), func() compressor { w, _ := gzip.NewWriterLevel(nil, l); return w }})
	}
	for _, l := range []zstd.EncoderLevel{zstd.SpeedFastest, zstd.SpeedDefault} {
		candidates = append(candidates, struct {
			name string
			new  func() compressor
		}{"zstd-" + l.String(), func() compressor {
			w, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(l), zstd.WithEncoderConcurrency(1))
			return w
		}})
	}
	for _, cand := range candidates {
		b.Run(cand.name, func(b *testing.B) {
			var out countWriter
			if cand.new == nil {
				for b.Loop() {
					out = 0
					out.Write(text.Bytes())
				}
				b.ReportMetric(float64(out), "B")
				return
			}
			w := cand.new()
			b.SetBytes(int64(text.Len()))
			for b.Loop() {
				out = 0
				w.Reset(&out)
				w.Write(text.Bytes())
				w.Close()
			}
			b.ReportMetric(float64(out), "B")
		})
	}
}

type countWriter int

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }
