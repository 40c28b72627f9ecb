package apps

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/dify-exporter/dify_exporter/collector"
	"github.com/dify-exporter/dify_exporter/config"
)

// The configuration page shows the apps as understood, defaults applied,
// and never a key: not a key file's contents.
func TestShownConfigHidesKeys(t *testing.T) {
	dir := t.TempDir()
	const key = "app-shownconfigsecret0000000000"
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "dify.yml")
	yml := `apps:
  - name: shop
    url: http://dify.example/v1
    api_key_file: key
    http_client_config:
      proxy_url: http://proxy.example:3128
`
	if err := os.WriteFile(file, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	loader := &Loader{ConfigFile: file, Defaults: config.Defaults{Runs: config.RunLimits{Retention: 2 * time.Hour, Max: 77},
		Timeout: 7 * time.Second, Concurrency: 3, Discovery: config.Discovery{Lookback: time.Hour}}}
	cfg, err := loader.Load()
	if err != nil {
		t.Fatal(err)
	}
	s := NewState(collector.New(nil), loader, 0, 1, log.NewNopLogger())
	if got := s.ShownConfig(); got != "" {
		t.Errorf("before a configuration is applied: %q", got)
	}
	if err := s.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	shown := s.ShownConfig()
	for _, secret := range []string{key, strings.TrimPrefix(key, "app-")} {
		if strings.Contains(shown, secret) {
			t.Errorf("the shown configuration holds the secret %q:\n%s", secret, shown)
		}
	}
	for _, want := range []string{"name: shop", "api_key_file: " + keyFile, "retention: 2h0m0s", "max: 77", "timeout: 7s",
		"concurrency: 3", "time_offset: auto", "proxy_url: http://proxy.example:3128"} {
		if !strings.Contains(shown, want) {
			t.Errorf("the shown configuration lacks %q:\n%s", want, shown)
		}
	}
}
