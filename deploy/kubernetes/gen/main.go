// Command gen rewrites the generated Kubernetes manifests of dify_exporter:
// prometheusrule.yaml (from alerts/dify.rules.yml) and dashboard-configmap.yaml (from
// dashboards/dify-overview.json), and the Helm chart's copies of those two sources in
// deploy/helm/dify-exporter/files (Helm reads no file outside the chart). Run it from the
// repository root:
//
//	go run ./deploy/kubernetes/gen
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/dify-exporter/dify_exporter/alerts"
	"github.com/dify-exporter/dify_exporter/dashboards"
	"github.com/dify-exporter/dify_exporter/deploy/helm"
	"github.com/dify-exporter/dify_exporter/deploy/kubernetes"
)

func main() {
	dir := flag.String("dir", "deploy/kubernetes", "directory to write the manifests to")
	chart := flag.String("chart", "deploy/helm/dify-exporter", "Helm chart directory to write files/ of")
	flag.Parse()
	if err := run(*dir, *chart); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(dir, chart string) error {
	if _, err := os.Stat(filepath.Join(dir, "kustomization.yaml")); err != nil {
		return fmt.Errorf("%s does not look like deploy/kubernetes (run from the repository root or pass -dir): %w", dir, err)
	}
	if _, err := os.Stat(filepath.Join(chart, "Chart.yaml")); err != nil {
		return fmt.Errorf("%s does not look like the Helm chart (run from the repository root or pass -chart): %w", chart, err)
	}
	rule, err := kubernetes.PrometheusRule(alerts.Rules)
	if err != nil {
		return err
	}
	cm, err := kubernetes.DashboardConfigMap(dashboards.Overview)
	if err != nil {
		return err
	}
	for path, content := range map[string][]byte{
		filepath.Join(dir, kubernetes.PrometheusRuleFile):     rule,
		filepath.Join(dir, kubernetes.DashboardConfigMapFile): cm,
		filepath.Join(chart, helm.RulesFile):                  alerts.Rules,
		filepath.Join(chart, helm.DashboardFile):              dashboards.Overview,
	} {
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, content) {
			fmt.Println("unchanged", path)
			continue
		}
		if err := os.WriteFile(path, content, 0o644); err != nil {
			return err
		}
		fmt.Println("wrote", path)
	}
	return nil
}
