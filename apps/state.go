// Package apps wires a configuration into the collector: it builds each
// app's Dify client, swaps a reloaded configuration in only when all of it
// builds, and keeps the watched run-ID files in step.
package apps

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	promconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/version"
	"golang.org/x/time/rate"

	"github.com/dify-exporter/dify_exporter/client"
	"github.com/dify-exporter/dify_exporter/collector"
	"github.com/dify-exporter/dify_exporter/config"
	"github.com/dify-exporter/dify_exporter/server"
)

// State wires a config into the collector and keeps the watched run-ID
// files in step. A failed reload leaves everything as it was.
type State struct {
	exp      *collector.Exporter
	loader   *Loader
	logger   log.Logger
	reloadOK prometheus.Gauge
	// shard and totalShards select this replica's share of the runs.
	shard, totalShards int

	mu      sync.Mutex
	files   []*idsFile
	clients []*client.Client // the running apps' clients
	status  server.ReloadStatus
	cfg     *config.Config // the running configuration
}

// idsFile is a watched file of run IDs for one app.
type idsFile struct {
	app, path string
	modTime   time.Time
	size      int64
	loaded    bool
}

// NewState returns the wiring of loader's configurations into exp, for
// replica shard of totalShards.
func NewState(exp *collector.Exporter, loader *Loader, shard, totalShards int, logger log.Logger) *State {
	return &State{exp: exp, loader: loader, logger: logger, shard: shard, totalShards: totalShards,
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dify_exporter_config_last_reload_successful",
			Help: "1 if the last configuration load succeeded.",
		})}
}

// Reload reads the configuration again; on any error the running one stays.
func (s *State) Reload() error {
	cfg, err := s.loader.Load()
	if err == nil {
		err = s.Apply(cfg)
	}
	if err != nil {
		s.reloadOK.Set(0)
		s.mu.Lock()
		s.status.FailedAt, s.status.Err = time.Now(), err.Error()
		s.mu.Unlock()
		level.Error(s.logger).Log("msg", "Reload failed; keeping the running configuration", "err", err)
		return err
	}
	level.Info(s.logger).Log("msg", "Configuration reloaded", "apps", len(cfg.Apps))
	return nil
}

// LastReload says when the running configuration was loaded and whether
// a reload failed since.
func (s *State) LastReload() server.ReloadStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// built is a config turned into what the collector runs.
type built struct {
	apps    []collector.AppConfig
	clients []*client.Client
	files   []*idsFile
}

// close drops the clients' idle connections, for clients never used or
// no longer used.
func closeClients(cs []*client.Client) {
	for _, c := range cs {
		c.CloseIdleConnections()
	}
}

// build makes every app's client, as start-up, a reload and
// --config.check all do, so that they refuse the same configurations.
func (s *State) build(cfg *config.Config) (*built, error) {
	b := &built{apps: make([]collector.AppConfig, 0, len(cfg.Apps))}
	for _, a := range cfg.Apps {
		ac, c, err := s.appConfig(a)
		if err != nil {
			closeClients(b.clients)
			return nil, fmt.Errorf("app %s: %w", a.Name, err)
		}
		b.apps = append(b.apps, ac)
		b.clients = append(b.clients, c)
		if a.RunIDsFile != "" {
			b.files = append(b.files, &idsFile{app: a.Name, path: a.RunIDsFile})
		}
	}
	return b, nil
}

// ReloadOK is dify_exporter_config_last_reload_successful, to register.
func (s *State) ReloadOK() prometheus.Collector { return s.reloadOK }

// Check builds cfg as start-up would, without applying it, and reads its
// run-ID files, which a running exporter watches (a bad one is logged, its
// last good IDs kept) but a check should report.
func (s *State) Check(cfg *config.Config) error {
	b, err := s.build(cfg)
	if err != nil {
		return err
	}
	closeClients(b.clients)
	return cfg.Check()
}

// Apply builds every app's client first and swaps them in only if all
// succeed. The replaced clients' idle connections are closed: each
// reload makes new clients, and the old ones' kept-alive connections
// would otherwise stay open (with two goroutines each) until they time
// out. A refresh still running on an old client finishes its requests.
func (s *State) Apply(cfg *config.Config) error {
	b, err := s.build(cfg)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.exp.SetApps(b.apps)
	closeClients(s.clients)
	s.clients = b.clients
	for _, a := range cfg.Apps {
		if a.RunIDsFile == "" {
			s.exp.App(a.Name).SetRunIDs(collector.SourceFile, nil)
		}
	}
	s.files = b.files
	s.syncFilesLocked()
	s.reloadOK.Set(1)
	s.status = server.ReloadStatus{LoadedAt: time.Now()}
	s.cfg = cfg
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
		defer cancel()
		s.exp.Probe(ctx)
	}()
	return nil
}

// probeTimeout bounds the background probe of the apps after a load.
const probeTimeout = 30 * time.Second

func (s *State) appConfig(a config.App) (collector.AppConfig, *client.Client, error) {
	key, err := s.loader.Key(a)
	if err != nil {
		return collector.AppConfig{}, nil, err
	}
	hc, err := httpClient(a)
	if err != nil {
		return collector.AppConfig{}, nil, err
	}
	cc := client.Config{
		URL: a.URL, APIKey: key, HTTPClient: hc, Timeout: a.Timeout,
		UserAgent: "dify_exporter/" + version.Version,
		Observe:   s.exp.RequestObserver(a.Name),
	}
	if a.RateLimit > 0 {
		cc.Limiter = rate.NewLimiter(rate.Limit(a.RateLimit), max(1, int(a.RateLimit)))
	}
	c, err := client.New(cc)
	if err != nil {
		hc.CloseIdleConnections()
		return collector.AppConfig{}, nil, err
	}
	return collector.AppConfig{
		Name: a.Name, API: c, RunIDs: a.RunIDs,
		Discovery: a.Discovery.WorkflowLogs, Lookback: a.Discovery.Lookback,
		Retention: a.Runs.Retention, MaxRuns: a.Runs.Max, Concurrency: a.Concurrency,
		Shard: s.shard, TotalShards: s.totalShards,
		TimeOffset: a.TimeOffset.Duration, FixedTimeOffset: a.TimeOffset.Fixed,
		Fingerprint: fingerprint(a, key),
	}, c, nil
}

// fingerprint identifies an app's connection; a reload that keeps it
// keeps the app's runs. The key enters only through a hash.
func fingerprint(a config.App, key string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%v\x00%v\x00%+v\x00", a.URL, key, a.Timeout, a.RateLimit, a.HTTPClientConfig)
	return hex.EncodeToString(h.Sum(nil))
}

func httpClient(a config.App) (*http.Client, error) {
	c, err := promconfig.NewClientFromConfig(a.HTTPClientConfig, "dify_exporter_"+a.Name)
	if err != nil {
		return nil, fmt.Errorf("http_client_config: %w", err)
	}
	return c, nil
}

// missingFile marks an IDs file found missing, so that it is logged once.
var missingFile = time.Unix(1, 0)

// SyncFiles re-reads the run-ID files that changed since last read.
func (s *State) SyncFiles() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.syncFilesLocked()
}

func (s *State) syncFilesLocked() {
	for _, f := range s.files {
		fi, err := os.Stat(f.path)
		if err != nil {
			if !f.modTime.Equal(missingFile) {
				level.Error(s.logger).Log("msg", "Cannot read run IDs file; keeping its last IDs", "app", f.app, "err", err)
				f.modTime = missingFile // log once, until the file is back
			}
			continue
		}
		if f.loaded && fi.ModTime().Equal(f.modTime) && fi.Size() == f.size {
			continue
		}
		f.modTime, f.size = fi.ModTime(), fi.Size()
		ids, err := config.ReadRunIDs(f.path)
		if err != nil {
			level.Error(s.logger).Log("msg", "Bad run IDs file; keeping its last IDs", "app", f.app, "err", err)
			continue
		}
		if a := s.exp.App(f.app); a != nil {
			a.SetRunIDs(collector.SourceFile, ids)
			f.loaded = true
			level.Info(s.logger).Log("msg", "Run IDs file loaded", "app", f.app, "file", f.path, "ids", len(ids))
		}
	}
}
