package collector

import (
	"context"
	"sync"
	"time"

	"github.com/go-kit/log"

	"github.com/dify-exporter/dify_exporter/client"
)

// API is the part of the Dify client the collector uses; *client.Client
// implements it.
type API interface {
	Run(ctx context.Context, id string) (client.Run, error)
	WorkflowLogs(ctx context.Context, q client.LogsQuery) (client.LogPage, error)
	Info(ctx context.Context) (client.AppInfo, error)
	Server(ctx context.Context) (client.ServerInfo, error)
	// SeenVersion is the release named by the X-Version header of the
	// latest answer ("" if none), which every Dify answer carries.
	SeenVersion() string
}

// AppConfig describes one Dify app to export.
type AppConfig struct {
	// Name is the app label.
	Name string
	API  API
	// RunIDs are the statically configured runs (flags, config file).
	RunIDs []string
	// Discovery turns on discovery from the workflow logs, reaching back
	// Lookback (on Dify's clock) on the first refresh.
	Discovery bool
	Lookback  time.Duration
	// Retention and MaxRuns bound discovered and registered runs.
	Retention time.Duration
	MaxRuns   int
	// Concurrency bounds parallel requests to the app's API.
	Concurrency int
	// Shard and TotalShards select this replica's share of the runs.
	Shard, TotalShards int
	// TimeOffset, when FixedTimeOffset is set, is added to the runs' times
	// instead of the measured correction of Dify's host clock (0: never
	// correct); see clocks.go.
	TimeOffset      time.Duration
	FixedTimeOffset bool
	// Fingerprint identifies the app's connection settings; an app whose
	// fingerprint is unchanged keeps its state across a reload.
	Fingerprint string
}

const (
	logsPageSize = 100
	// logsOverlap re-reads a little of the last window: log rows are
	// written by several workers, so one may commit after a newer one.
	logsOverlap = 10 * time.Second
	// infoRefresh is how often GET /info and GET / are asked again (names,
	// modes and releases change rarely).
	infoRefresh = 10 * time.Minute
	maxInterned = 10000
	// maxIndexedRows bounds the row index the planner estimates with.
	maxIndexedRows = 100000
)

// App tracks the runs of one Dify app.
type App struct {
	name     string // the app label, fixed for the App's life
	counters *counters
	logger   log.Logger
	now      func() time.Time
	insp     *inspector // what the operator pages show (inspect.go)

	mu       sync.Mutex
	cfg      AppConfig // replaced by reloads; a refresh works on a copy
	store    *store
	versions map[string]string // workflow version → workflow_id, learnt from detail calls
	names    map[string]string // interned workflow IDs and versions
	logs     logCursor
	rows     rowIndex
	gen      uint64 // refresh generation
	// inflight is the running refresh's outcome so far, for a scrape
	// whose deadline comes first.
	inflight *refreshState

	info   client.AppInfo
	infoAt time.Time
	server serverState
	clocks clockState
	// waitUntil is when Dify\'s last 429 said to come back.
	waitUntil time.Time
	// badRows holds the log rows counted as dated unbelievably (by run
	// ID), so that a row read again is not counted again.
	badRows  map[string]struct{}
	up       bool
	lastErr  string
	lastDur  time.Duration
	stale    int
	oldest   time.Duration // age of the least recently refreshed unfinished run's data
	hasEnded bool          // a refresh has ended
}

// serverState is what GET /v1/ and the Date headers tell of the server.
type serverState struct {
	version string
	release release
	at      time.Time // when the version was last read
	note    string    // what the release hides from discovery
}

// withDefaults fills in what a config left zero.
func withDefaults(cfg AppConfig) AppConfig {
	if cfg.MaxRuns <= 0 {
		cfg.MaxRuns = 1000
	}
	if cfg.Retention <= 0 {
		cfg.Retention = time.Hour
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	return cfg
}

func newShardFilter(cfg AppConfig) shardFilter {
	return shardFilter{uint32(cfg.Shard), uint32(max(cfg.TotalShards, 1))}
}

func newApp(cfg AppConfig, c *counters, now func() time.Time, logger log.Logger) *App {
	cfg = withDefaults(cfg)
	a := &App{
		name: cfg.Name, cfg: cfg, counters: c, now: now, logger: logger,
		store:    newStore(cfg.MaxRuns, newShardFilter(cfg)),
		versions: make(map[string]string),
		names:    make(map[string]string),
		rows:     rowIndex{max: maxIndexedRows},
		clocks:   newClockState(cfg),
		badRows:  make(map[string]struct{}),
	}
	a.insp = newInspector(now)                                     // inspect: hook
	a.logger, a.store.insp = refreshLogger{a.insp, logger}, a.insp // inspect: hook
	a.SetRunIDs(SourceStatic, cfg.RunIDs)
	c.initApp(cfg.Name)
	return a
}

// Name returns the app label.
func (a *App) Name() string { return a.name }

// reconfigure applies a reloaded config to the app, keeping its runs and
// counters' view: only what changed is reset.
func (a *App) reconfigure(c AppConfig) {
	c = withDefaults(c)
	a.mu.Lock()
	defer a.mu.Unlock()
	old := a.cfg
	a.cfg = c
	if c.Fingerprint != old.Fingerprint {
		// Maybe another app (or server) behind the new key: ask /info
		// and the release again, forget what the old one taught, retry
		// runs it lost.
		a.infoAt, a.server.at = time.Time{}, time.Time{}
		clear(a.versions)
		clear(a.store.refuted)
		for _, r := range a.store.runs {
			r.gone = false
		}
	}
	if c.FixedTimeOffset != old.FixedTimeOffset || c.TimeOffset != old.TimeOffset {
		a.clocks = newClockState(c)
	}
	if c.Discovery && !old.Discovery {
		a.logs.restart() // read back the lookback again
	}
	if c.Shard != old.Shard || c.TotalShards != old.TotalShards {
		a.store.shard = newShardFilter(c)
		for id := range a.store.runs {
			if !a.store.shard.keeps(id) {
				a.store.depart(id, WhyOtherShard, "") // inspect: hook
				a.store.delete(id)
			}
		}
	}
	a.store.max = c.MaxRuns
	for a.store.nCapped > a.store.max && a.store.evictOldestTerminal(0) {
	}
}

// SetRunIDs replaces the runs listed by a listed source (static or file).
func (a *App) SetRunIDs(src Source, ids []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	keep := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		keep[id] = struct{}{}
		a.store.add(id, src, 0) //nolint:errcheck // listed sources are never capped
	}
	for id, r := range a.store.runs {
		if r.sources&src != 0 {
			if _, ok := keep[id]; !ok {
				a.store.removeSource(id, src)
			}
		}
	}
}

// maxClientKey bounds a registering client's name as the claims keep it.
const maxClientKey = 64

// Register tracks a run posted to the registration endpoint by client
// from (any name that tells clients apart; see store.register).
func (a *App) Register(from, id string) error {
	id, err := client.ParseRunID(id)
	if err != nil {
		return err
	}
	if len(from) > maxClientKey {
		from = from[:maxClientKey]
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	_, tracked := a.store.runs[id]
	r, err := a.store.register(id, from, a.now())
	if err == nil && r == nil {
		return ErrOtherShard
	}
	if err != nil || r == nil {
		a.store.depart(id, WhyRefused, refusedWhy(err)) // inspect: hook
	}
	if err == nil && !tracked {
		// Registration happens while a run goes (a chatflow posts its own
		// ID): its finish, even before the next scrape, is counted.
		r.countable = true
	}
	return err
}

// Status is a summary of the app for the landing page.
type Status struct {
	Name, Mode string
	// ServerVersion is Dify's release as GET /v1/ reports it.
	ServerVersion string
	// Note says what the release hides from discovery, if anything.
	Note string
	// TimeOffset is the correction added to the runs' times; TimeOffsetNote
	// says what Dify's clocks show when something is off (its host clock,
	// its log rows' dates), and what is corrected.
	TimeOffset     time.Duration
	TimeOffsetNote string
	// Refreshed is false until the first refresh ends.
	Refreshed bool
	Up        bool
	LastError string
	Tracked   int
	Stale     int
}

// Status returns a summary of the app.
func (a *App) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	return Status{Name: a.name, Mode: a.info.Mode, ServerVersion: a.server.version, Note: a.server.note,
		TimeOffset: a.clocks.correction(), TimeOffsetNote: a.clocks.clockNote(),
		Refreshed: a.hasEnded, Up: a.up, LastError: a.lastErr,
		Tracked: len(a.store.runs), Stale: a.stale}
}

// intern shares one copy of each workflow ID and version string among
// the app's runs. The table is bounded: a server sending endless distinct
// values only costs the sharing.
func (a *App) intern(v string) string {
	if s, ok := a.names[v]; ok {
		return s
	}
	if len(a.names) >= maxInterned {
		clear(a.names)
	}
	a.names[v] = v
	return v
}

func (a *App) countError(err error) {
	if err == nil {
		return
	}
	a.insp.noteError(err) // inspect: hook
	a.counters.runErrors.WithLabelValues(a.name, client.KindOf(err).String()).Inc()
}
