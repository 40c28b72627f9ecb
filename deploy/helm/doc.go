// Package helm holds the Helm chart of dify_exporter (dify-exporter/) and the names of the files
// in it that are copies of the repository's sources: the chart's PrometheusRule and dashboard
// ConfigMap render them, and Helm reads no file outside the chart. Regenerate them after
// changing alerts/dify.rules.yml or dashboards/dify-overview.json:
//
//	go run ./deploy/kubernetes/gen
//
// The tests fail when a copy drifts from its source. The chart itself is rendered and checked
// by the tools module in deploy/validate.
package helm

// Paths, relative to the chart directory, of the copied sources.
const (
	RulesFile     = "files/dify.rules.yml"
	DashboardFile = "files/dify-overview.json"
)

// ChartDir is the chart's directory, relative to deploy/helm.
const ChartDir = "dify-exporter"
