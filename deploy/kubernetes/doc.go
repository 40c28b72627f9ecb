// Package kubernetes holds the Kubernetes manifests of dify_exporter (Deployment, Service,
// ServiceMonitor, PrometheusRule, Grafana dashboard ConfigMap, kustomization) and the code
// that generates the two derived ones from alerts/dify.rules.yml and
// dashboards/dify-overview.json. Regenerate them after changing either source:
//
//	go run ./deploy/kubernetes/gen
//
// The tests fail when a generated manifest drifts from its source.
package kubernetes

//go:generate go run ./gen -dir . -chart ../helm/dify-exporter
