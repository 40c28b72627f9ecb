package e2e

import (
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/dify-exporter/dify_exporter/client/difytest"
)

// TestTimeZoneEndToEnd: a Dify on a MySQL metadb in UTC+8 dates every log
// row 8 h late while its runs' own times stay right. The exporter measures
// and exposes the rows' offset and leaves the runs' times alone, so a real
// Prometheus evaluating the shipped rules (with their real `for`) raises
// DifyWorkflowRunStuck for a run running 2 h and never for one started a
// minute ago, while DifyLogRowsTimeZone goes pending.
func TestTimeZoneEndToEnd(t *testing.T) {
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
	srv.SetDatabase(difytest.MySQL, 8*time.Hour)
	srv.AddApp(apiKey, difytest.App{Name: "Shanghai", Mode: "workflow"})
	recent, stuck := difytest.NewRunID(), difytest.NewRunID()
	recentCreated := time.Now().Add(-time.Minute)
	srv.PutRun(apiKey, difytest.Run{ID: stuck, Status: "running", CreatedAt: time.Now().Add(-2 * time.Hour)})
	srv.PutRun(apiKey, difytest.Run{ID: recent, Status: "running", CreatedAt: recentCreated})
	// Runs keep starting and finishing, as in production: their log rows,
	// written at start, date Dify's clock.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		sim := difytest.NewSimulator(srv, difytest.SimConfig{Key: apiKey, NewRuns: 2, Seed: 3})
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case now := <-tick.C:
				sim.Step(now)
			}
		}
	}()
	t.Cleanup(func() { close(stop); wg.Wait() })

	// The stuck run is older than discovery's lookback: it is listed.
	prom := startExporterAndPrometheus(t, e, root, exporterBin, promBin, srv.URL(), []string{"--dify.run-id=" + stuck}, nil)

	sel := fmt.Sprintf(`job=%q, app=%q`, jobName, appName)
	e.poll("the exporter exposes the log rows' 8 h offset", func() (bool, string) {
		v, err := prom.value(fmt.Sprintf(`dify_exporter_log_rows_offset_seconds{%s}`, sel))
		return err == nil && v == 8*3600, fmt.Sprintf("rows offset %v (%v)", v, err)
	})
	e.poll("DifyLogRowsTimeZone is pending", func() (bool, string) {
		s, err := prom.instant(`ALERTS{alertname="DifyLogRowsTimeZone", alertstate="pending"}`)
		return err == nil && len(s) > 0, fmt.Sprintf("not pending (%v)", err)
	})
	if v, err := prom.value(fmt.Sprintf(`dify_exporter_dify_time_offset_seconds{%s}`, sel)); err != nil || v != 0 {
		t.Errorf("correction of run times = %v (%v), want 0: the runs' own times are right", v, err)
	}
	e.poll("the recent run's created time is within a minute of the truth", func() (bool, string) {
		v, err := prom.value(fmt.Sprintf(`dify_workflow_run_created_timestamp_seconds{%s, run_id=%q}`, sel, recent))
		d := math.Abs(v - float64(recentCreated.Unix()))
		return err == nil && d < 60, fmt.Sprintf("created %v, off by %vs (%v)", v, d, err)
	})
	// DifyWorkflowRunStuck waits 1m: it fires for the run running 2 h and
	// never for the one started a minute ago.
	deadline := time.Now().Add(100 * time.Second)
	fired := false
	for time.Now().Before(deadline) && !fired {
		s, err := prom.instant(`ALERTS{alertname="DifyWorkflowRunStuck", alertstate="firing"}`)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range s {
			switch a.Metric["run_id"] {
			case recent:
				t.Fatalf("DifyWorkflowRunStuck fired for the run started a minute ago: its time was shifted")
			case stuck:
				fired = true
			}
		}
		time.Sleep(2 * time.Second)
	}
	if !fired {
		t.Errorf("DifyWorkflowRunStuck did not fire for the run running 2 h")
	}
}
