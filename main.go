// Command dify_exporter exports the workflow runs of Dify apps as
// Prometheus metrics.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"
	sloggokit "github.com/tjhop/slog-gokit"

	"github.com/dify-exporter/dify_exporter/apps"
	"github.com/dify-exporter/dify_exporter/collector"
	"github.com/dify-exporter/dify_exporter/config"
	"github.com/dify-exporter/dify_exporter/exposition"
	"github.com/dify-exporter/dify_exporter/server"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// flags holds the parsed command line.
type flags struct {
	configFile   string
	configCheck  bool
	url          string
	keyFile      string
	appName      string
	runIDs       []string
	runIDsFile   string
	timeout      time.Duration
	concurrency  int
	rateLimit    float64
	offset       time.Duration
	discovery    bool
	lookback     time.Duration
	retention    time.Duration
	maxRuns      int
	shard        int
	totalShards  int
	registration bool
	demo         bool
	telemetry    string
	maxConns     int
	maxRequests  int
	maxTimeout   time.Duration
	timeOffset   config.TimeOffset
	minInterval  time.Duration
	logLevel     string
	logFormat    string
	web          *web.FlagConfig
}

func parseFlags(args []string) (*flags, error) {
	f := &flags{}
	app := kingpin.New("dify_exporter", "Prometheus exporter for the workflow runs of Dify apps.")
	app.Flag("config.file", "YAML file of Dify apps; reloaded on SIGHUP and POST /-/reload.").StringVar(&f.configFile)
	app.Flag("config.check", "Validate the configuration (--config.file or the --dify.* flags) and its keys, and exit.").BoolVar(&f.configCheck)
	app.Flag("dify.url", "Dify service API base URL (self-hosted: http://host/v1).").Default("https://api.dify.ai/v1").StringVar(&f.url)
	app.Flag("dify.api-key-file", "File holding the app's API key; else the env var DIFY_API_KEY is used.").StringVar(&f.keyFile)
	app.Flag("dify.app-name", "The app label when no config file is used.").Default("default").StringVar(&f.appName)
	app.Flag("dify.run-id", "A workflow run ID to export (repeatable).").StringsVar(&f.runIDs)
	app.Flag("dify.run-ids-file", "File of run IDs, one per line, # comments; re-read when it changes.").StringVar(&f.runIDsFile)
	app.Flag("dify.timeout", "Timeout of each request to Dify.").Default("10s").DurationVar(&f.timeout)
	app.Flag("dify.concurrency", "Parallel requests per app.").Default("8").IntVar(&f.concurrency)
	app.Flag("dify.rate-limit", "Requests per second per app (0 = no limit).").Default("0").Float64Var(&f.rateLimit)
	app.Flag("timeout-offset", "Subtracted from Prometheus' scrape timeout to leave time to answer.").Default("0.5s").DurationVar(&f.offset)
	app.Flag("discovery.workflow-logs", "Discover runs from GET /v1/workflows/logs.").BoolVar(&f.discovery)
	app.Flag("discovery.lookback", "How far back discovery reaches on start.").Default("1h").DurationVar(&f.lookback)
	app.Flag("runs.retention", "How long a finished discovered or registered run stays exposed.").Default("1h").DurationVar(&f.retention)
	app.Flag("runs.max", "Discovered and registered runs tracked per app.").Default("1000").IntVar(&f.maxRuns)
	app.Flag("shard", "This replica's shard (0-based).").Default("0").IntVar(&f.shard)
	app.Flag("total-shards", "Number of replicas sharing the runs.").Default("1").IntVar(&f.totalShards)
	app.Flag("web.enable-registration", "Accept run IDs on POST /api/v1/runs.").BoolVar(&f.registration)
	app.Flag("web.telemetry-path", "Path of the metrics.").Default("/metrics").StringVar(&f.telemetry)
	app.Flag("web.max-connections", "Open HTTP connections; at the limit a new one replaces the longest-idle one, or waits if none is idle (0 = no limit).").Default("512").IntVar(&f.maxConns)
	app.Flag("web.max-requests", "Expositions rendered at once; a scrape past the limit is answered with the last one rendered (0 = no limit). Scrapes waiting for a refresh or reading their answer do not count.").Default("40").IntVar(&f.maxRequests)
	app.Flag("web.max-scrape-timeout", "Largest X-Prometheus-Scrape-Timeout-Seconds honoured; a longer one is cut to this.").Default(server.DefaultMaxScrapeTimeout.String()).DurationVar(&f.maxTimeout)
	app.Flag("dify.time-offset", "Correction of the runs' own times: auto (Dify's host clock difference, from its Date headers when its runs agree), 0 (never correct), or a duration to add, such as 10m or -5h. Log rows dated off by a database zone need none.").Default("auto").SetValue(timeOffsetValue{&f.timeOffset})
	app.Flag("refresh.min-interval", "Scrapes within this time of the last complete refresh (an HA Prometheus pair, dashboards) are served from it without calling Dify.").Default("5s").DurationVar(&f.minInterval)
	app.Flag("demo", "Run against a built-in simulated Dify with live runs.").BoolVar(&f.demo)
	app.Flag("log.level", "Only log messages with this severity or above: debug, info, warn, error.").Default("info").EnumVar(&f.logLevel, "debug", "info", "warn", "error")
	app.Flag("log.format", "Log format: logfmt or json.").Default("logfmt").EnumVar(&f.logFormat, "logfmt", "json")
	f.web = kingpinflag.AddFlags(app, ":9866")
	app.Version(version.Print("dify_exporter"))
	app.HelpFlag.Short('h')
	if _, err := app.Parse(args); err != nil {
		for _, a := range args {
			if a == "--dify.api-key" || strings.HasPrefix(a, "--dify.api-key=") {
				// Not kingpin's error: it may quote the value.
				return nil, errors.New("unknown flag --dify.api-key: API keys are never flags: use --dify.api-key-file=FILE or the env var DIFY_API_KEY")
			}
		}
		return nil, err
	}
	switch {
	case f.totalShards < 1:
		return nil, fmt.Errorf("--total-shards must be at least 1, not %d", f.totalShards)
	case f.shard < 0 || f.shard >= f.totalShards:
		return nil, fmt.Errorf("--shard must be in [0, %d), not %d", f.totalShards, f.shard)
	case f.offset < 0:
		return nil, errors.New("--timeout-offset must not be negative")
	case f.maxConns < 0:
		return nil, errors.New("--web.max-connections must not be negative")
	case f.maxRequests < 0:
		return nil, errors.New("--web.max-requests must not be negative")
	case f.maxTimeout <= 0:
		return nil, errors.New("--web.max-scrape-timeout must be positive")
	case f.minInterval < 0:
		return nil, errors.New("--refresh.min-interval must not be negative")
	}
	if err := server.CheckTelemetryPath(f.telemetry); err != nil {
		return nil, fmt.Errorf("--web.telemetry-path %w", err)
	}
	return f, nil
}

// timeOffsetValue parses --dify.time-offset.
type timeOffsetValue struct{ t *config.TimeOffset }

func (v timeOffsetValue) Set(s string) error {
	t, err := config.ParseTimeOffset(s)
	if err != nil {
		return err
	}
	*v.t = t
	return nil
}

func (v timeOffsetValue) String() string { return v.t.String() }

// newLogger builds the go-kit logger; base is the logger before ts and
// caller are added, for the slog bridge (which adds its own).
func newLogger(f *flags, w *os.File) (logger log.Logger, slogger *slog.Logger) {
	var base log.Logger
	if f.logFormat == "json" {
		base = log.NewJSONLogger(log.NewSyncWriter(w))
	} else {
		base = log.NewLogfmtLogger(log.NewSyncWriter(w))
	}
	base = level.NewFilter(base, level.Allow(level.ParseDefault(f.logLevel, level.InfoValue())))
	var slogLevel slog.Level
	_ = slogLevel.UnmarshalText([]byte(f.logLevel))
	slogger = slog.New(sloggokit.NewGoKitHandler(renameSlogTime(base), slogLevel))
	logger = log.With(base, "ts", log.DefaultTimestampUTC, "caller", collector.Caller)
	return logger, slogger
}

// renameSlogTime gives the lines that libraries log through slog the same
// "ts" key as the exporter's own lines (the bridge names it "time").
func renameSlogTime(next log.Logger) log.Logger {
	return log.LoggerFunc(func(kv ...any) error {
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i] == "time" {
				if t, ok := kv[i+1].(time.Time); ok {
					kv[i], kv[i+1] = "ts", t.UTC().Format(time.RFC3339Nano)
				}
			}
		}
		return next.Log(kv...)
	})
}

// run is main returning its exit code, so that deferred clean-ups run.
func run(args []string, stderr *os.File) int {
	f, err := parseFlags(args)
	if err != nil {
		fmt.Fprintln(stderr, "dify_exporter:", err)
		return 2
	}
	logger, slogger := newLogger(f, stderr)
	fail := func(msg string, err error) int {
		level.Error(logger).Log("msg", msg, "err", err)
		return 1
	}

	loader := &apps.Loader{
		ConfigFile: f.configFile, AppName: f.appName, KeyFile: f.keyFile, RunIDsFile: f.runIDsFile, RunIDs: f.runIDs,
		Defaults: config.Defaults{
			URL:         f.url,
			Runs:        config.RunLimits{Retention: f.retention, Max: f.maxRuns},
			Timeout:     f.timeout,
			Concurrency: f.concurrency,
			RateLimit:   f.rateLimit,
			Discovery:   config.Discovery{WorkflowLogs: f.discovery, Lookback: f.lookback},
			TimeOffset:  f.timeOffset,
		},
	}
	var stopDemo func()
	if f.demo {
		url, key, stop, err := startDemo()
		if err != nil {
			return fail("Cannot start the demo", err)
		}
		stopDemo = stop
		defer stopDemo()
		loader.Demo = &apps.Demo{URL: url, Key: key}
		level.Info(logger).Log("msg", "Demo mode: exporting a simulated Dify", "url", url)
	}

	runs := exposition.NewCache()
	exp := collector.New(nil, collector.WithLogger(logger), collector.WithRunCache(runs), collector.WithMinInterval(f.minInterval))
	state := apps.NewState(exp, loader, f.shard, f.totalShards, logger)
	cfg, err := loader.Load()
	if err != nil {
		return fail("Invalid configuration", err)
	}
	if f.configCheck {
		// What start-up does, short of serving, and the run-ID files.
		if err := state.Check(cfg); err != nil {
			return fail("Invalid configuration", err)
		}
		if f.configFile == "" {
			level.Info(logger).Log("msg", "Configuration is valid", "flags", "--dify.*", "apps", len(cfg.Apps))
		} else {
			level.Info(logger).Log("msg", "Configuration is valid", "file", f.configFile, "apps", len(cfg.Apps))
		}
		return 0
	}
	if f.configFile != "" && (f.url != "https://api.dify.ai/v1" || f.keyFile != "" || len(f.runIDs) > 0 || f.runIDsFile != "" || f.appName != "default") {
		level.Warn(logger).Log("msg", "--config.file is given: the single-app --dify.* flags are ignored")
	}

	if err := state.Apply(cfg); err != nil {
		return fail("Invalid configuration", err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(exp, state.ReloadOK(),
		versioncollector.NewCollector("dify_exporter"),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	handler, err := server.NewHandler(server.Config{
		Exporter: exp, Reloader: state, Metrics: exposition.NewRenderer(runs, reg, f.maxRequests, logger), Logger: logger,
		TelemetryPath: f.telemetry, TimeoutOffset: f.offset, Registration: f.registration,
		MaxScrapeTimeout: f.maxTimeout, Timeouts: server.DefaultTimeouts,
	})
	if err != nil {
		return fail("Invalid configuration", err)
	}
	limit := server.NewConnLimit(f.maxConns)
	srv := server.NewServer(handler, server.DefaultTimeouts, limit)
	listeners, err := server.Listen(f.web, limit, slogger)
	if err != nil {
		return fail("Cannot listen", err)
	}

	level.Info(logger).Log("msg", "Starting dify_exporter", "version", version.Info(), "apps", len(cfg.Apps))
	errc := make(chan error, 1)
	go func() {
		errc <- web.ServeMultiple(listeners, srv, f.web, slogger)
	}()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	for {
		select {
		case err := <-errc:
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fail("HTTP server failed", err)
			}
			return 0
		case s := <-sig:
			if s == syscall.SIGHUP {
				_ = state.Reload() // it logs and exposes its own failure
				continue
			}
			level.Info(logger).Log("msg", "Shutting down", "signal", s)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := srv.Shutdown(ctx)
			cancel()
			if err != nil {
				return fail("Shutdown", err)
			}
			return 0
		}
	}
}
