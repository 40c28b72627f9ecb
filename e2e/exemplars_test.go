package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/dify-exporter/dify_exporter/client/difytest"
)

// promExemplars is one series' answer of /api/v1/query_exemplars.
type promExemplars struct {
	SeriesLabels map[string]string `json:"seriesLabels"`
	Exemplars    []struct {
		Labels    map[string]string `json:"labels"`
		Value     string            `json:"value"`
		Timestamp float64           `json:"timestamp"`
	} `json:"exemplars"`
}

// exemplars asks Prometheus for the exemplars of the series q selects
// from start to now.
func (p *promAPI) exemplars(q string, start time.Time) ([]promExemplars, error) {
	params := url.Values{"query": {q},
		"start": {strconv.FormatInt(start.Unix(), 10)}, "end": {strconv.FormatInt(time.Now().Add(time.Minute).Unix(), 10)}}
	resp, err := httpClient.Get(p.base + "/api/v1/query_exemplars?" + params.Encode())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var r struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   []promExemplars `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("%s: %v: %.200s", resp.Status, err, body)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("%s: %s", r.Status, r.Error)
	}
	return r.Data, nil
}

// TestExemplarsEndToEnd: a burst of runs finishes while the exporter
// watches; Prometheus 2.42 with exemplar storage, scraping OpenMetrics as
// it does by default, keeps each run counted as an exemplar of its
// duration bucket and of the finished counter, and the runs behind them
// are the ones the exporter exposes, with their elapsed time. The burst
// is mostly failures: the fast burn-rate alert of the shipped rules goes
// pending.
func TestExemplarsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test skipped in -short mode")
	}
	promBin := requireTool(t, "prometheus")
	root := repoRoot(t)
	dir := t.TempDir()
	e := &env{t: t, dir: dir}
	exporterBin := buildExporter(t, root, dir)

	srv := difytest.NewServer()
	t.Cleanup(srv.Close)
	srv.AddApp(apiKey, difytest.App{Name: "Burst", Mode: "workflow"})
	// 30 runs going, to finish in six buckets of the duration histogram
	// (1, 5, 15, 30, 60, 120 s); one in ten succeeds.
	elapsed := []float64{0.5, 3, 10, 20, 45, 100}
	type run struct {
		id      string
		status  string
		elapsed float64
	}
	runs := map[string]run{}
	var order []string
	created := time.Now().Add(-2 * time.Minute)
	for i := range 30 {
		r := run{id: difytest.NewRunID(), status: "failed", elapsed: elapsed[i%len(elapsed)]}
		if i%10 == 9 {
			r.status = "succeeded"
		}
		runs[r.id] = r
		order = append(order, r.id)
		srv.PutRun(apiKey, difytest.Run{ID: r.id, Status: "running", CreatedAt: created})
	}

	prom := startExporterAndPrometheus(t, e, root, exporterBin, promBin, srv.URL(), nil, []string{"--enable-feature=exemplar-storage"})

	sel := fmt.Sprintf(`job=%q, app=%q`, jobName, appName)
	e.poll("Prometheus has scraped the runs going and the zero counters", func() (bool, string) {
		v, err := prom.value(fmt.Sprintf(`dify_workflow_runs{%s, status="running"}`, sel))
		if err != nil || v != float64(len(runs)) {
			return false, fmt.Sprintf("%v runs running (%v)", v, err)
		}
		s, err := prom.instant(fmt.Sprintf(`count_over_time(dify_workflow_runs_finished_total{%s, status="failed"}[1m]) >= 3`, sel))
		return err == nil && len(s) == 1, fmt.Sprintf("fewer than 3 samples of the finished counter (%v)", err)
	})

	finished := time.Now()
	for _, id := range order {
		r := runs[id]
		srv.PutRun(apiKey, difytest.Run{ID: id, Status: r.status, CreatedAt: created,
			FinishedAt: finished, ElapsedTime: r.elapsed, TotalSteps: 3, TotalTokens: 100})
	}
	e.poll("the exporter has counted the burst", func() (bool, string) {
		v, err := prom.value(fmt.Sprintf(`sum(dify_workflow_runs_finished_total{%s})`, sel))
		return err == nil && v == float64(len(runs)), fmt.Sprintf("%v finished (%v)", v, err)
	})

	// Every exemplar names a run of the burst, exposed by the exporter with
	// that status and elapsed time, stamped after the runs finished.
	checkExemplars := func(t *testing.T, q string, wantSeries int, statusOf func(map[string]string) string) {
		t.Helper()
		var got []promExemplars
		e.pollT(t, fmt.Sprintf("Prometheus has exemplars on %d series of %s", wantSeries, q), func() (bool, string) {
			var err error
			got, err = prom.exemplars(q, finished.Add(-time.Minute))
			return err == nil && len(got) == wantSeries, fmt.Sprintf("%d series with exemplars (%v)", len(got), err)
		})
		checked := map[string]bool{}
		for _, s := range got {
			for _, ex := range s.Exemplars {
				id := ex.Labels["run_id"]
				r, ok := runs[id]
				if !ok {
					t.Errorf("%v: exemplar %v names no run of the burst", s.SeriesLabels, ex.Labels)
					continue
				}
				if want := statusOf(s.SeriesLabels); want != "" && r.status != want {
					t.Errorf("%v: exemplar run %s is %s", s.SeriesLabels, id, r.status)
				}
				if at := time.Unix(0, int64(ex.Timestamp*1e9)); at.Before(finished.Add(-time.Second)) || at.After(time.Now()) {
					t.Errorf("%v: exemplar of %s stamped %v, before the runs finished at %v or in the future", s.SeriesLabels, id, at, finished)
				}
				if le, ok := s.SeriesLabels["le"]; ok {
					v, _ := strconv.ParseFloat(ex.Value, 64)
					bound, _ := strconv.ParseFloat(le, 64)
					if v != r.elapsed || v > bound {
						t.Errorf("bucket le=%s: exemplar of %s has value %s, want its elapsed time %v", le, id, ex.Value, r.elapsed)
					}
				}
				if ex.Labels["workflow_id"] == "" {
					t.Errorf("%v: exemplar of %s without its workflow_id", s.SeriesLabels, id)
				}
				if checked[id] {
					continue
				}
				checked[id] = true
				exposed, err := prom.instant(fmt.Sprintf(`dify_workflow_run_status{%s, run_id=%q, workflow_id=%q, status=%q} == 1`,
					sel, id, ex.Labels["workflow_id"], r.status))
				if err != nil || len(exposed) != 1 {
					t.Errorf("exemplar run %s is not exposed by the exporter as %s (%v)", id, r.status, err)
				}
			}
		}
		t.Logf("%s: %d series with exemplars of %d runs", q, len(got), len(checked))
	}
	t.Run("duration buckets", func(t *testing.T) {
		// Six buckets hold a run (le 1 to 120); an exemplar sits only on
		// the bucket its run falls in, not on the cumulative ones above.
		checkExemplars(t, fmt.Sprintf(`dify_workflow_run_duration_seconds_bucket{%s}`, sel), len(elapsed),
			func(map[string]string) string { return "" })
	})
	t.Run("finished counter", func(t *testing.T) {
		checkExemplars(t, fmt.Sprintf(`dify_workflow_runs_finished_total{%s}`, sel), 2,
			func(l map[string]string) string { return l["status"] })
	})
	t.Run("burn-rate alert", func(t *testing.T) {
		// Its `for` is 2m: pending is as far as it gets here.
		e.pollT(t, "DifyWorkflowErrorBudgetBurnFast is pending", func() (bool, string) {
			s, err := prom.instant(fmt.Sprintf(`ALERTS{alertname="DifyWorkflowErrorBudgetBurnFast", alertstate="pending", %s}`, sel))
			if err != nil || len(s) == 0 {
				ratio, _ := prom.instant(fmt.Sprintf(`app:dify_workflow_runs_errors:ratio_rate5m{%s}`, sel))
				return false, fmt.Sprintf("not pending (%v); 5m error ratio %v", err, ratio)
			}
			return true, ""
		})
	})
}
