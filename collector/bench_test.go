package collector

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// BenchmarkScrape measures a warm scrape (refresh, gather, text encoding)
// of an app with n tracked finished runs, discovered from the logs, and
// the heap the exporter retains per run.
//
//	go test -run '^$' -bench Scrape -benchmem ./collector/
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
