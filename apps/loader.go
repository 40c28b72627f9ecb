package apps

import (
	"errors"
	"os"
	"time"

	"github.com/dify-exporter/dify_exporter/config"
)

// Loader turns the command line or the config file into a config.
type Loader struct {
	// ConfigFile, if set, is read; else the single app of the flags is.
	ConfigFile string
	// Defaults are the flags' values that a file's apps may override.
	Defaults config.Defaults
	// The single app of the flags: --dify.app-name, --dify.api-key-file,
	// --dify.run-id, --dify.run-ids-file.
	AppName, KeyFile, RunIDsFile string
	RunIDs                       []string
	// Demo, if set, replaces the single app by the built-in simulated Dify.
	Demo *Demo
}

// Demo is the built-in simulated Dify: its URL and the key it accepts.
type Demo struct{ URL, Key string }

// Load reads the config file, or builds a one-app config from the flags.
func (l *Loader) Load() (*config.Config, error) {
	if l.ConfigFile != "" {
		cfg, err := config.Load(l.ConfigFile, l.Defaults)
		if err != nil {
			return nil, err
		}
		return cfg, cfg.CheckKeys()
	}
	d := l.Defaults
	app := config.App{
		Name: l.AppName, URL: d.URL, APIKeyFile: l.KeyFile, RunIDsFile: l.RunIDsFile,
		Discovery: d.Discovery, Runs: d.Runs, Timeout: d.Timeout, Concurrency: d.Concurrency, RateLimit: d.RateLimit,
		TimeOffset: d.TimeOffset,
	}
	if app.APIKeyFile == "" {
		app.APIKeyEnv = "DIFY_API_KEY"
	}
	if l.Demo != nil {
		app.Name, app.URL, app.APIKeyFile, app.APIKeyEnv = "demo", l.Demo.URL, "", "DIFY_DEMO_KEY"
		app.Discovery = config.Discovery{WorkflowLogs: true, Lookback: time.Hour}
	}
	app.RunIDs = l.RunIDs
	cfg, err := config.FromFlags(app)
	if err != nil {
		return nil, err
	}
	if l.Demo != nil {
		return cfg, nil
	}
	if l.KeyFile == "" && os.Getenv("DIFY_API_KEY") == "" {
		return nil, errors.New("no Dify API key: give --dify.api-key-file=FILE or set DIFY_API_KEY")
	}
	return cfg, cfg.CheckKeys()
}

// Key returns an app's API key: the demo's own, or from its file or env.
func (l *Loader) Key(a config.App) (string, error) {
	if l.Demo != nil && a.URL == l.Demo.URL {
		return l.Demo.Key, nil
	}
	return a.APIKey()
}
