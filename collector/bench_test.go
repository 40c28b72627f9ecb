package collector

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/dify-exporter/dify_exporter/client/difytest"
	"github.com/dify-exporter/dify_exporter/exposition"
)

// BenchmarkScrapeHTTP measures a warm scrape as Prometheus makes it: the
// refresh (one log page from the simulated Dify), then /metrics through
// the run cache's handler with Prometheus' Accept header and gzip, of an
// app with n tracked finished runs; and the heap kept per run.
//
//	go test -run '^$' -bench ScrapeHTTP -benchmem ./collector/
func BenchmarkScrapeHTTP(b *testing.B) {
	for _, n := range []int{1000, 10000, 100000} {
		b.Run(fmt.Sprintf("runs=%d", n), func(b *testing.B) {
			f := newFixture(b, withDiscovery(n))
			cfg := f.exp.App("translator").cfg
			cfg.Lookback = 24 * time.Hour // 100,000 runs 250 ms apart span 7 h
			cache := exposition.NewCache()
			exp := New([]AppConfig{cfg}, WithClock(f.now), WithRunCache(cache))
			reg := prometheus.NewRegistry()
			reg.MustRegister(exp)
			h := exposition.Handler(cache, reg, log.NewNopLogger())
			putLoggedRuns(f.srv, f.now(), n, "succeeded")

			before := heapInUse()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			exp.Refresh(ctx)
			cancel()
			serve(b, exp, h) // fills the cache
			perRun := float64(heapInUse()-before) / float64(n)
			if got := exp.App("translator").Status().Tracked; got != n {
				b.Fatalf("tracked %d runs, want %d", got, n)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				serve(b, exp, h)
			}
			b.ReportMetric(perRun, "retained-B/run")
			// Peak RSS of the whole test process, the simulated Dify and
			// its n runs included: an upper bound for the exporter's.
			b.ReportMetric(peakRSSMiB(), "peak-RSS-MiB")
		})
	}
}

// peakRSSMiB is the process's VmHWM, 0 where /proc is missing.
func peakRSSMiB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}

// prometheusAccept is the Accept header of Prometheus 2.42's scrapes.
const prometheusAccept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"

func serve(b *testing.B, exp *Exporter, h http.Handler) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	exp.Refresh(ctx)
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept", prometheusAccept)
	req.Header.Set("Accept-Encoding", "gzip")
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", "10")
	w := &discardWriter{header: http.Header{}}
	h.ServeHTTP(w, req)
	if w.code != 0 && w.code != http.StatusOK || w.n == 0 {
		b.Fatalf("scrape answered %d with %d bytes", w.code, w.n)
	}
}

type discardWriter struct {
	header http.Header
	code   int
	n      int
}

func (w *discardWriter) Header() http.Header         { return w.header }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }
func (w *discardWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

// BenchmarkScrape measures the path client_golang gives without the run
// cache (refresh, gather, text encoding, no compression), for comparison.
//
//	go test -run '^$' -bench 'Scrape$' -benchmem ./collector/
func BenchmarkScrape(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("runs=%d", n), func(b *testing.B) {
			f := newFixture(b, withDiscovery(n))
			f.reg = prometheus.NewRegistry() // as main uses: not pedantic
			f.reg.MustRegister(f.exp)
			putLoggedRuns(f.srv, f.now(), n, "succeeded")

			before := heapInUse()
			f.refresh(b)
			perRun := float64(heapInUse()-before) / float64(n)
			if got := f.exp.App("translator").Status().Tracked; got != n {
				b.Fatalf("tracked %d runs, want %d", got, n)
			}

			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				scrape(b, f)
			}
			b.ReportMetric(perRun, "retained-B/run")
		})
	}
}

func scrape(b *testing.B, f *fixture) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	f.exp.Refresh(ctx)
	cancel()
	mfs, err := f.reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	enc := expfmt.NewEncoder(io.Discard, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			b.Fatal(err)
		}
	}
}

// heapInUse is the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkRegistrationFlood registers 100,000 distinct IDs against a cap
// of 1,000 and reports the heap retained afterwards.
func BenchmarkRegistrationFlood(b *testing.B) {
	for b.Loop() {
		before := heapInUse()
		exp := New([]AppConfig{{Name: "flood", API: nil, MaxRuns: 1000}})
		accepted := 0
		for i := range 100000 {
			if exp.Register("flood", fmt.Sprintf("00000000-0000-4000-8000-%012x", i)) == nil {
				accepted++
			}
		}
		b.ReportMetric(float64(heapInUse()-before), "retained-B")
		b.ReportMetric(float64(accepted), "accepted")
		prometheus.NewRegistry().MustRegister(exp) // keep exp alive until measured
	}
}

// BenchmarkDetailFairness: a chatflow app (no usable logs) with 2,000
// unfinished runs, Dify answering in 30 ms, a 3 s deadline: how many
// refreshes until every run is refreshed, and how far apart the runs'
// refresh counts are after 5 refreshes.
//
//	go test -run '^$' -bench DetailFairness -benchtime 1x ./collector/
func BenchmarkDetailFairness(b *testing.B) {
	for b.Loop() {
		f := newFixture(b, nil)
		f.srv.AddApp(testKey, difytest.App{Name: "Support", Mode: "advanced-chat"})
		const n = 2000
		cfg := f.exp.App("translator").cfg
		cfg.MaxRuns = 20000 // room for 2,000 unverified registrations
		cfg.Concurrency = 8 // --dify.concurrency's default
		f.exp.SetApps([]AppConfig{cfg})
		for i := range n {
			id := runID(i)
			putPaused(f, id)
			if err := f.exp.Register("translator", id); err != nil {
				b.Fatal(err)
			}
		}
		f.srv.SetFault(difytest.EndpointRun, difytest.Fault{Latency: 30 * time.Millisecond})
		counts := map[string]int{}
		all := 0
		for refresh := 1; refresh <= 5; refresh++ {
			f.advance(15 * time.Second)
			refreshCounting(f, 3*time.Second, counts)
			if all == 0 && len(counts) == n {
				all = refresh
			}
		}
		lo, hi := n, 0
		for i := range n {
			c := counts[runID(i)]
			lo, hi = min(lo, c), max(hi, c)
		}
		b.ReportMetric(float64(all), "refreshes-to-all")
		b.ReportMetric(float64(hi-lo), "spread")
	}
}
