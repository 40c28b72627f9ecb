package helm

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/dify-exporter/dify_exporter/alerts"
	"github.com/dify-exporter/dify_exporter/dashboards"
)

func TestChartFilesMatchSources(t *testing.T) {
	for _, tc := range []struct {
		file, source string
		want         []byte
	}{
		{RulesFile, "alerts/dify.rules.yml", alerts.Rules},
		{DashboardFile, "dashboards/dify-overview.json", dashboards.Overview},
	} {
		got, err := os.ReadFile(filepath.Join(ChartDir, tc.file))
		if err != nil {
			t.Fatalf("%v; run `go run ./deploy/kubernetes/gen` to create it", err)
		}
		if !bytes.Equal(got, tc.want) {
			t.Errorf("%s/%s differs from %s; run `go run ./deploy/kubernetes/gen` to regenerate it", ChartDir, tc.file, tc.source)
		}
	}
}
