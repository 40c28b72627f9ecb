package collector

import (
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/dify-exporter/dify_exporter/client"
)

func TestExemplarLabels(t *testing.T) {
	const id = "fb47b2e6-5e43-4f90-be01-000000000001"
	for _, tc := range []struct {
		name string
		run  client.Run
		want prometheus.Labels
	}{
		{"run and workflow", client.Run{ID: id, WorkflowID: wfID},
			prometheus.Labels{"run_id": id, "workflow_id": wfID}},
		{"workflow not known", client.Run{ID: id}, prometheus.Labels{"run_id": id}},
		{"no run ID", client.Run{WorkflowID: wfID}, nil},
		// 6+36+11+75 = 128 runes: just fits.
		{"workflow at the budget", client.Run{ID: id, WorkflowID: strings.Repeat("w", 75)},
			prometheus.Labels{"run_id": id, "workflow_id": strings.Repeat("w", 75)}},
		{"workflow past the budget", client.Run{ID: id, WorkflowID: strings.Repeat("w", 76)},
			prometheus.Labels{"run_id": id}},
		{"workflow not UTF-8", client.Run{ID: id, WorkflowID: "\xff"}, prometheus.Labels{"run_id": id}},
		{"run ID past the budget", client.Run{ID: strings.Repeat("r", 123), WorkflowID: wfID}, nil},
		{"run ID not UTF-8", client.Run{ID: "\xff"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := exemplarLabels(tc.run)
			if !maps.Equal(got, tc.want) || (got == nil) != (tc.want == nil) {
				t.Errorf("exemplarLabels = %v, want %v", got, tc.want)
			}
		})
	}
}

// exemplarsOf returns the exemplars of the series of name with labels:
// a counter's one, or a histogram's by bucket upper bound.
func exemplarsOf(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) map[float64]*dto.Exemplar {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[float64]*dto.Exemplar{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			if e := m.GetCounter().GetExemplar(); e != nil {
				out[0] = e
			}
			for _, b := range m.GetHistogram().GetBucket() {
				if e := b.GetExemplar(); e != nil {
					out[b.GetUpperBound()] = e
				}
			}
		}
	}
	return out
}

func exemplarLabelMap(e *dto.Exemplar) map[string]string {
	l := map[string]string{}
	for _, lp := range e.GetLabel() {
		l[lp.GetName()] = lp.GetValue()
	}
	return l
}

// TestFinishCarriesExemplar checks that a run counted finishing leaves
// itself as the exemplar of the finished and token counters and of its
// duration bucket, stamped when the exporter counted it, and that the
// next run to finish takes its place on the counters.
func TestFinishCarriesExemplar(t *testing.T) {
	first, second := runID(1), runID(2)
	f := newFixture(t, withRuns(first, second))
	putRunning(f, first)
	putRunning(f, second)
	f.refresh(t)
	if got := exemplarsOf(t, f.reg, "dify_workflow_runs_finished_total", nil); len(got) != 0 {
		t.Fatalf("exemplars before any finish: %v", got)
	}

	finish := func(id, status string, tokens int, elapsed float64) {
		r, _ := f.srv.Run(testKey, id)
		r.Status, r.FinishedAt, r.TotalTokens, r.ElapsedTime = status, f.now(), tokens, elapsed
		f.srv.PutRun(testKey, r)
	}
	finish(first, "failed", 150, 42)
	before := time.Now()
	f.refresh(t)
	after := time.Now()
	want := map[string]string{"run_id": first, "workflow_id": wfID}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		bound  float64
		value  float64
	}{
		{"dify_workflow_runs_finished_total", map[string]string{"status": "failed"}, 0, 1},
		{"dify_workflow_tokens_total", nil, 0, 150},
		{"dify_workflow_run_duration_seconds", nil, 60, 42}, // 42 s falls in le="60"
	} {
		got := exemplarsOf(t, f.reg, tc.name, tc.labels)
		if len(got) != 1 || got[tc.bound] == nil {
			t.Errorf("%s%v: exemplars %v, want one at %v", tc.name, tc.labels, got, tc.bound)
			continue
		}
		e := got[tc.bound]
		if l := exemplarLabelMap(e); !maps.Equal(l, want) {
			t.Errorf("%s: exemplar labels %v, want %v", tc.name, l, want)
		}
		if e.GetValue() != tc.value {
			t.Errorf("%s: exemplar value %v, want %v", tc.name, e.GetValue(), tc.value)
		}
		if ts := e.GetTimestamp().AsTime(); ts.Before(before) || ts.After(after) {
			t.Errorf("%s: exemplar at %v, want the refresh's time in [%v, %v]", tc.name, ts, before, after)
		}
	}
	if got := exemplarsOf(t, f.reg, "dify_workflow_runs_finished_total", map[string]string{"status": "succeeded"}); len(got) != 0 {
		t.Errorf("succeeded series has exemplars %v before a run succeeded", got)
	}

	// A later failure takes the counter's exemplar; a 2 s one lands in
	// its own bucket, leaving the 42 s one in le="60".
	finish(second, "failed", 7, 2)
	f.refresh(t)
	if e := exemplarsOf(t, f.reg, "dify_workflow_runs_finished_total", map[string]string{"status": "failed"})[0]; exemplarLabelMap(e)["run_id"] != second {
		t.Errorf("failed counter's exemplar %v, want the latest run %s", e, second)
	}
	buckets := exemplarsOf(t, f.reg, "dify_workflow_run_duration_seconds", nil)
	if len(buckets) != 2 || exemplarLabelMap(buckets[5])["run_id"] != second || exemplarLabelMap(buckets[60])["run_id"] != first {
		t.Errorf("duration exemplars %v, want %s at le=5 and %s at le=60", buckets, second, first)
	}
}
