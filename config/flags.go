package config

import (
	"errors"
	"fmt"
	"math"
	"reflect"

	promconfig "github.com/prometheus/common/config"

	"github.com/dify-exporter/dify_exporter/client"
)

// FromFlags validates the one app that the command line describes when no
// config file is given, with the same rules as an app of a file, and
// returns it as a config. Errors name the flag at fault.
func FromFlags(a App) (*Config, error) {
	if !nameRE.MatchString(a.Name) {
		return nil, fmt.Errorf("--dify.app-name %s: want [a-zA-Z0-9_.-]+", shorten(a.Name))
	}
	if nameLooksLikeKey(a.Name) {
		return nil, errors.New("--dify.app-name looks like an API key: the name is the app label, shown in every metric; give the key with --dify.api-key-file or DIFY_API_KEY")
	}
	if (a.APIKeyFile == "") == (a.APIKeyEnv == "") {
		return nil, fmt.Errorf("app %q: want exactly one API key source (--dify.api-key-file or the DIFY_API_KEY environment variable)", a.Name)
	}
	if reflect.DeepEqual(a.HTTPClientConfig, promconfig.HTTPClientConfig{}) {
		// The same defaults as an app of a file (follow redirects, HTTP/2).
		a.HTTPClientConfig = promconfig.DefaultHTTPClientConfig
	}
	if err := checkHTTPConfig(&a.HTTPClientConfig); err != nil {
		return nil, fmt.Errorf("app %q: http_client_config: %v", a.Name, err)
	}
	u, err := checkURL(a.URL)
	if err != nil {
		return nil, fmt.Errorf("--dify.url %s", err)
	}
	a.URL = u
	seen := make(map[string]bool, len(a.RunIDs))
	ids := make([]string, 0, len(a.RunIDs))
	for _, raw := range a.RunIDs {
		id, err := client.ParseRunID(raw)
		if err != nil {
			return nil, fmt.Errorf("--dify.run-id: %w", err)
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	a.RunIDs = ids
	switch {
	case a.Runs.Retention <= 0:
		return nil, fmt.Errorf("--runs.retention must be > 0, got %s", a.Runs.Retention)
	case a.Runs.Max < 1:
		return nil, fmt.Errorf("--runs.max must be >= 1, got %d", a.Runs.Max)
	case a.Timeout <= 0:
		return nil, fmt.Errorf("--dify.timeout must be > 0, got %s", a.Timeout)
	case a.Concurrency < 1:
		return nil, fmt.Errorf("--dify.concurrency must be >= 1, got %d", a.Concurrency)
	case !(a.RateLimit >= 0) || math.IsInf(a.RateLimit, 0):
		return nil, fmt.Errorf("--dify.rate-limit must be >= 0, got %v", a.RateLimit)
	case a.Discovery.Lookback < 0:
		return nil, fmt.Errorf("--discovery.lookback must be >= 0, got %s", a.Discovery.Lookback)
	}
	return &Config{Apps: []App{a}}, nil
}
