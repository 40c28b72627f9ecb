// Package exposition serves the per-run series of Dify workflow runs from
// a cache instead of client_golang's gather: each run's labels are escaped
// and rendered once, when the run is set, and a scrape writes them out
// family by family next to the families a prometheus.Gatherer returns
// (per-app and exporter metrics, Go and process collectors), as one
// exposition in the text format or OpenMetrics, compressed as the client
// asks.
package exposition

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dify-exporter/dify_exporter/client"
)

// Family declares a per-run metric family. All of them are gauges.
type Family struct {
	Name, Help string
	// Labels are the variable label names, in the order Desc takes them.
	Labels []string
}

// Desc is the family's descriptor, for a collector that describes it.
func (f *Family) Desc() *prometheus.Desc {
	return prometheus.NewDesc(f.Name, f.Help, f.Labels, nil)
}

// RunLabels are the label names of every per-run series.
var RunLabels = []string{"app", "workflow_id", "run_id"}

// The per-run families: the one place they are declared.
var (
	RunCreated = &Family{"dify_workflow_run_created_timestamp_seconds",
		"Unix time the workflow run was created.", RunLabels}
	RunElapsed = &Family{"dify_workflow_run_elapsed_seconds",
		"Elapsed time of the workflow run in seconds (Dify's elapsed_time).", RunLabels}
	RunFinished = &Family{"dify_workflow_run_finished_timestamp_seconds",
		"Unix time the workflow run finished; absent while it has not.", RunLabels}
	RunStatus = &Family{"dify_workflow_run_status",
		"Status of the workflow run: 1 for its current status, 0 for the others.",
		[]string{"app", "workflow_id", "run_id", "status"}}
	RunSteps = &Family{"dify_workflow_run_steps",
		"Steps executed by the workflow run (Dify's total_steps).", RunLabels}
	RunTokens = &Family{"dify_workflow_run_tokens",
		"Total tokens used by the workflow run (Dify's total_tokens).", RunLabels}
)

// RunFamilies are the per-run families sorted by name, the order a scrape
// writes them in.
var RunFamilies = []*Family{RunCreated, RunElapsed, RunFinished, RunStatus, RunSteps, RunTokens}

// Statuses are the values of RunStatus's status label, one series each.
var Statuses = func() []string {
	s := make([]string, len(client.Statuses))
	for i, st := range client.Statuses {
		s[i] = string(st)
	}
	return s
}()
