package exposition

import (
	"bytes"
	"testing"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
)

// TestGatheredExemplars checks that the gathered families' exemplars reach
// an OpenMetrics scrape as client_golang writes them, and that the text
// format, which has no exemplars, is written as before.
func TestGatheredExemplars(t *testing.T) {
	const runID = "0b6a3c1e-7f2d-4a8b-9c0d-1e2f3a4b5c6d"
	ex := prometheus.Labels{"run_id": runID}
	reg := prometheus.NewPedanticRegistry()
	dur := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "dify_workflow_run_duration_seconds",
		Help: "Elapsed time.", Buckets: []float64{1, 5, 60}}, []string{"app"})
	dur.WithLabelValues("translator").(prometheus.ExemplarObserver).ObserveWithExemplar(3.5, ex)
	fin := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dify_workflow_runs_finished_total",
		Help: "Finished runs."}, []string{"app", "status"})
	fin.WithLabelValues("translator", "failed").(prometheus.ExemplarAdder).AddWithExemplar(1, ex)
	reg.MustRegister(dur, fin)
	c, m := NewCache(), model{}
	run := set(finished("translator", runID, "failed"))
	c.Set(*run.set)
	m.apply(run)

	ours := Handler(c, reg, log.NewNopLogger())
	// The same collectors, so the same exemplar timestamps.
	ref := promhttp.HandlerFor(m.reference(t, dur, fin), promhttp.HandlerOpts{EnableOpenMetrics: true})
	for _, tc := range []struct {
		accept   string
		exemplar bool
	}{
		{prometheusAccept, true},
		{"application/openmetrics-text;version=1.0.0", true},
		{"text/plain;version=0.0.4", false},
		{"", false},
	} {
		got, gotFmt := scrape(t, ours, tc.accept, "")
		want, wantFmt := scrape(t, ref, tc.accept, "")
		if gotFmt != wantFmt {
			t.Fatalf("Accept %q: Content-Type %q, client_golang's %q", tc.accept, gotFmt, wantFmt)
		}
		if d := diff(parse(t, want, wantFmt), withoutOwnFamilies(t, parse(t, got, gotFmt))); d != "" {
			t.Errorf("Accept %q: exposition differs from client_golang's:\n%s\nours:\n%s", tc.accept, d, got)
		}
		hist := []byte(`dify_workflow_run_duration_seconds_bucket{app="translator",le="5.0"} 1 # {run_id="` + runID + `"} 3.5 `)
		counter := []byte(`dify_workflow_runs_finished_total{app="translator",status="failed"} 1.0 # {run_id="` + runID + `"} 1.0 `)
		for _, line := range [][]byte{hist, counter} {
			if has := bytes.Contains(got, line); has != tc.exemplar {
				t.Errorf("Accept %q (%s): has %q = %v, want %v; exposition:\n%s", tc.accept, gotFmt, line, has, tc.exemplar, got)
			}
		}
		if !tc.exemplar && bytes.Contains(got, []byte(" # {")) {
			t.Errorf("Accept %q: exemplar in the %s format:\n%s", tc.accept, gotFmt, got)
		}
		if tc.exemplar && gotFmt.FormatType() != expfmt.TypeOpenMetrics {
			t.Errorf("Accept %q: format %s, want OpenMetrics", tc.accept, gotFmt)
		}
	}
}
