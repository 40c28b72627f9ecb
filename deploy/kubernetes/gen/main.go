// Command gen rewrites the generated Kubernetes manifests of dify_exporter:
// prometheusrule.yaml (from alerts/dify.rules.yml) and dashboard-configmap.yaml (from
// dashboards/dify-overview.json). Run it from the repository root:
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
	"github.com/dify-exporter/dify_exporter/deploy/kubernetes"
)

func main() {
	dir := flag.String("dir", "deploy/kubernetes", "directory to write the manifests to")
	flag.Parse()
	if err := run(*dir); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "kustomization.yaml")); err != nil {
		return fmt.Errorf("%s does not look like deploy/kubernetes (run from the repository root or pass -dir): %w", dir, err)
	}
	rule, err := kubernetes.PrometheusRule(alerts.Rules)
	if err != nil {
		return err
	}
	cm, err := kubernetes.DashboardConfigMap(dashboards.Overview)
	if err != nil {
		return err
	}
	for name, content := range map[string][]byte{
		kubernetes.PrometheusRuleFile:     rule,
		kubernetes.DashboardConfigMapFile: cm,
	} {
		path := filepath.Join(dir, name)
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
