package apps

import (
	"fmt"

	promconfig "github.com/prometheus/common/config"
	"go.yaml.in/yaml/v3"

	"github.com/dify-exporter/dify_exporter/config"
)

// shownApp is an app as the exporter understood it, defaults applied, in
// the config file's own keys. The key itself is never part of it: only
// where it is read from.
type shownApp struct {
	Name       string   `yaml:"name"`
	URL        string   `yaml:"url"`
	APIKeyFile string   `yaml:"api_key_file,omitempty"`
	APIKeyEnv  string   `yaml:"api_key_env,omitempty"`
	RunIDs     []string `yaml:"run_ids,omitempty"`
	RunIDsFile string   `yaml:"run_ids_file,omitempty"`
	Discovery  struct {
		WorkflowLogs bool   `yaml:"workflow_logs"`
		Lookback     string `yaml:"lookback"`
	} `yaml:"discovery"`
	Runs struct {
		Retention string `yaml:"retention"`
		Max       int    `yaml:"max"`
	} `yaml:"runs"`
	Timeout          string                      `yaml:"timeout"`
	Concurrency      int                         `yaml:"concurrency"`
	RateLimit        float64                     `yaml:"rate_limit"`
	TimeOffset       string                      `yaml:"time_offset"`
	HTTPClientConfig promconfig.HTTPClientConfig `yaml:"http_client_config,omitempty"`
}

// ShownConfig is the running configuration as YAML, defaults applied.
// Keys never appear: not the environment's nor a file's contents, and
// http_client_config's secrets print as <secret>.
func (s *State) ShownConfig() string {
	s.mu.Lock()
	cfg := s.cfg
	s.mu.Unlock()
	if cfg == nil {
		return ""
	}
	shown := make([]shownApp, 0, len(cfg.Apps))
	for _, a := range cfg.Apps {
		shown = append(shown, show(a))
	}
	b, err := yaml.Marshal(map[string]any{"apps": shown})
	if err != nil {
		return fmt.Sprintf("# cannot show the configuration: %v\n", err)
	}
	return string(b)
}

func show(a config.App) shownApp {
	s := shownApp{Name: a.Name, URL: a.URL, APIKeyFile: a.APIKeyFile, APIKeyEnv: a.APIKeyEnv,
		RunIDs: a.RunIDs, RunIDsFile: a.RunIDsFile, Timeout: a.Timeout.String(), Concurrency: a.Concurrency,
		RateLimit: a.RateLimit, TimeOffset: a.TimeOffset.String(), HTTPClientConfig: a.HTTPClientConfig}
	s.Discovery.WorkflowLogs, s.Discovery.Lookback = a.Discovery.WorkflowLogs, a.Discovery.Lookback.String()
	s.Runs.Retention, s.Runs.Max = a.Runs.Retention.String(), a.Runs.Max
	return s
}
