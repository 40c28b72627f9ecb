package e2e

import (
	"fmt"
	"path/filepath"
	"testing"
)

// startExporterAndPrometheus starts the exporter on the simulated Dify at
// difyURL (one app, discovery on, apiKey) and a Prometheus scraping it
// every second with the shipped rules and their real `for`, and waits
// until the rules are loaded. extraExporter and extraProm are added to
// their command lines.
func startExporterAndPrometheus(t *testing.T, e *env, root, exporterBin, promBin, difyURL string, extraExporter, extraProm []string) *promAPI {
	t.Helper()
	keyFile := filepath.Join(e.dir, "dify.key")
	writeFile(t, keyFile, apiKey+"\n")
	exporterAddr := freeAddr(t)
	e.start("exporter", exporterBin, append([]string{"--dify.url=" + difyURL, "--dify.api-key-file=" + keyFile,
		"--dify.app-name=" + appName, "--discovery.workflow-logs", "--web.listen-address=" + exporterAddr,
		"--refresh.min-interval=0"}, extraExporter...)...)
	e.waitReady("exporter", "http://"+exporterAddr+"/-/ready")

	promDir := filepath.Join(e.dir, "prometheus")
	mustMkdir(t, promDir)
	rulesFile := filepath.Join(root, "alerts", "dify.rules.yml")
	rules := loadRules(t, rulesFile)
	promConfig := filepath.Join(promDir, "prometheus.yml")
	writeFile(t, promConfig, fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: %s
    static_configs:
      - targets: [%q]
`, rulesFile, jobName, exporterAddr))
	promAddr := freeAddr(t)
	e.start("prometheus", promBin, append([]string{"--config.file=" + promConfig,
		"--storage.tsdb.path=" + filepath.Join(promDir, "data"), "--web.listen-address=" + promAddr}, extraProm...)...)
	prom := &promAPI{e: e, base: "http://" + promAddr}
	e.waitReady("prometheus", prom.base+"/-/ready")
	e.poll("Prometheus has loaded the rules", func() (bool, string) {
		n, err := prom.ruleCount()
		return err == nil && n == rules.count, fmt.Sprintf("%d rules loaded, want %d (%v)", n, rules.count, err)
	})
	return prom
}
