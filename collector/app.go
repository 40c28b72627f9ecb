package collector

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"golang.org/x/sync/errgroup"

	"github.com/dify-exporter/dify_exporter/client"
)

// API is the part of the Dify client the collector uses; *client.Client
// implements it.
type API interface {
	Run(ctx context.Context, id string) (client.Run, error)
	WorkflowLogs(ctx context.Context, q client.LogsQuery) (client.LogPage, error)
	Info(ctx context.Context) (client.AppInfo, error)
}

// AppConfig describes one Dify app to export.
type AppConfig struct {
	// Name is the app label.
	Name string
	API  API
	// RunIDs are the statically configured runs (flags, config file).
	RunIDs []string
	// Discovery turns on discovery from the workflow logs, reaching back
	// Lookback on the first refresh.
	Discovery bool
	Lookback  time.Duration
	// Retention and MaxRuns bound discovered and registered runs.
	Retention time.Duration
	MaxRuns   int
	// Concurrency bounds parallel requests to the app's API.
	Concurrency int
	// Shard and TotalShards select this replica's share of the runs.
	Shard, TotalShards int
	// Fingerprint identifies the app's connection settings; an app whose
	// fingerprint is unchanged keeps its state across a reload.
	Fingerprint string
}

const (
	logsPageSize = 100
	// logsOverlap re-reads a little of the last window: log rows are
	// written by several workers, so one may commit after a newer one. Each
	// scrape re-reads this much of the logs, so it is kept short.
	logsOverlap = 10 * time.Second
	// infoRefresh is how often GET /info is asked again when nothing else
	// needs it (names and modes change rarely).
	infoRefresh = 10 * time.Minute
	maxInterned = 10000
)

// App tracks the runs of one Dify app.
type App struct {
	name     string // the app label, fixed for the App's life
	counters *counters
	logger   log.Logger
	now      func() time.Time

	mu        sync.Mutex
	cfg       AppConfig // replaced by reloads; a refresh works on a copy
	store     *store
	versions  map[string]string // workflow version → workflow_id, learnt from detail calls
	names     map[string]string // interned workflow IDs and versions
	watermark time.Time         // newest log created_at seen
	// discoveredOnce is set after the first complete read of the logs:
	// runs logged later are new to the exporter.
	discoveredOnce bool
	gen            uint64 // refresh generation
	info           client.AppInfo
	infoAt         time.Time
	up             bool
	lastErr        string
	lastDur        time.Duration
	stale          int
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
	}
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
		// again, forget what the old one taught, retry runs it lost.
		a.infoAt = time.Time{}
		clear(a.versions)
		for _, r := range a.store.runs {
			r.gone = false
		}
	}
	if c.Discovery && !old.Discovery {
		a.watermark = time.Time{} // read back the lookback again
	}
	if c.Shard != old.Shard || c.TotalShards != old.TotalShards {
		a.store.shard = newShardFilter(c)
		for id := range a.store.runs {
			if !a.store.shard.keeps(id) {
				a.store.delete(id)
			}
		}
	}
	a.store.max = c.MaxRuns
	for a.store.nCapped > a.store.max && a.store.evictOldestTerminal() {
	}
}

// SetRunIDs replaces the runs listed by a listed source (static or file).
func (a *App) SetRunIDs(src Source, ids []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	keep := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		keep[id] = struct{}{}
		a.store.add(id, src) //nolint:errcheck // listed sources are never capped
	}
	for id, r := range a.store.runs {
		if r.sources&src != 0 {
			if _, ok := keep[id]; !ok {
				a.store.removeSource(id, src)
			}
		}
	}
}

// Register tracks a run posted to the registration endpoint.
func (a *App) Register(id string) error {
	id, err := client.ParseRunID(id)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	_, tracked := a.store.runs[id]
	r, err := a.store.add(id, SourceRegistered)
	if err == nil && r == nil {
		return ErrOtherShard
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
	return Status{Name: a.name, Mode: a.info.Mode, Refreshed: a.gen > 0 && a.lastDur > 0, Up: a.up, LastError: a.lastErr,
		Tracked: len(a.store.runs), Stale: a.stale}
}

// refreshState collects the outcome of one refresh.
type refreshState struct {
	mu          sync.Mutex
	answered    bool  // some request got an answer proving the key works
	refused     error // the key or app was refused
	unreachable bool
	lastErr     error
}

func (s *refreshState) record(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.answered = true
		return
	}
	switch kind := client.KindOf(err); {
	case kind == client.KindNotFound:
		s.answered = true // a 404 on a run still proves the key
		return
	case refusal(kind):
		if s.refused == nil {
			s.refused = err
		}
	case kind == client.KindUnreachable:
		s.unreachable = true
	}
	s.lastErr = err
}

// refusal reports whether Dify refused the key or the app itself.
func refusal(k client.Kind) bool {
	switch k {
	case client.KindUnauthorized, client.KindForbidden, client.KindNotWorkflowApp, client.KindAppUnavailable:
		return true
	}
	return false
}

// abandon reports whether the rest of the refresh is pointless: the key or
// app was refused, or the API cannot be reached (after the retries).
func abandon(err error) bool {
	k := client.KindOf(err)
	return refusal(k) || k == client.KindUnreachable
}

// refresh brings the app's runs up to date, within ctx's deadline.
func (a *App) refresh(ctx context.Context) {
	start := a.now()
	a.mu.Lock()
	cfg := a.cfg
	a.gen++
	gen := a.gen
	needInfo := a.infoAt.IsZero() || start.Sub(a.infoAt) > infoRefresh
	a.mu.Unlock()

	st := &refreshState{}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	if cfg.Discovery {
		a.discover(ctx, cfg, gen, st)
	}
	toFetch := a.runsToFetch(gen)
	// Something must prove the key works each refresh: when neither the
	// logs nor any run are asked for, /info is.
	if st.refused == nil && !st.unreachable && (needInfo || (!cfg.Discovery && len(toFetch) == 0)) {
		info, err := cfg.API.Info(ctx)
		a.countError(err)
		st.record(err)
		if err == nil {
			a.mu.Lock()
			a.info, a.infoAt = info, a.now()
			a.mu.Unlock()
		}
	}
	if st.refused != nil || st.unreachable {
		cancel(errAbandoned) // the runs are marked stale, not fetched
	}
	a.fetchRuns(ctx, cancel, cfg, gen, toFetch, st)
	a.resolveVersions()

	a.mu.Lock()
	defer a.mu.Unlock()
	a.store.expire(a.now(), cfg.Retention)
	a.up = st.answered && st.refused == nil
	prevErr := a.lastErr
	switch {
	case st.refused != nil:
		a.lastErr = st.refused.Error()
	case st.lastErr != nil:
		a.lastErr = st.lastErr.Error()
	default:
		a.lastErr = ""
	}
	// Log when a failure starts, changes or ends, not on every scrape.
	switch {
	case a.lastErr != "" && a.lastErr != prevErr:
		level.Warn(a.logger).Log("msg", "Refresh failed; serving last good values", "up", a.up, "err", a.lastErr)
	case a.lastErr == "" && prevErr != "":
		level.Info(a.logger).Log("msg", "Refresh recovered")
	case a.lastErr != "":
		level.Debug(a.logger).Log("msg", "Refresh still failing", "err", a.lastErr)
	}
	a.stale = 0
	for _, r := range a.store.runs {
		if r.stale {
			a.stale++
		}
	}
	a.lastDur = a.now().Sub(start)
}

// runsToFetch lists the runs whose details must be fetched this refresh.
// Of discovered runs waiting for their version's workflow ID, one per
// version is enough: resolveVersions completes the others.
func (a *App) runsToFetch(gen uint64) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var ids []string
	asked := make(map[string]bool)
	for id, r := range a.store.runs {
		if !r.needsFetch(gen) {
			continue
		}
		if !r.known && r.version != "" && r.freshAt == gen {
			if asked[r.version] {
				continue
			}
			asked[r.version] = true
		}
		ids = append(ids, id)
	}
	return ids
}

// fetchRuns fetches run details with bounded concurrency. A refused key
// or an unreachable API cancels the rest: every other call would fail too.
func (a *App) fetchRuns(ctx context.Context, cancel context.CancelCauseFunc, cfg AppConfig, gen uint64, ids []string, st *refreshState) {
	var g errgroup.Group
	g.SetLimit(cfg.Concurrency)
	for _, id := range ids {
		if ctx.Err() != nil {
			a.skip(ctx, id)
			continue
		}
		g.Go(func() error {
			if ctx.Err() != nil {
				a.skip(ctx, id)
				return nil
			}
			run, err := cfg.API.Run(ctx, id)
			if err != nil && context.Cause(ctx) == errAbandoned {
				a.skip(ctx, id)
				return nil
			}
			st.record(err)
			a.countError(err)
			if abandon(err) {
				cancel(errAbandoned)
			}
			a.apply(id, run, err, gen)
			return nil
		})
	}
	g.Wait() //nolint:errcheck // the goroutines return no errors
}

// errAbandoned cancels a refresh's remaining calls once one shows that
// they would all fail.
var errAbandoned = errors.New("refresh abandoned")

// skip marks a run that this refresh could not fetch. Runs skipped for
// lack of time are counted as timeouts; those skipped because the refresh
// was abandoned are not (its cause is counted once).
func (a *App) skip(ctx context.Context, id string) {
	if context.Cause(ctx) != errAbandoned {
		a.counters.runErrors.WithLabelValues(a.name, client.KindTimeout.String()).Inc()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if r, ok := a.store.runs[id]; ok && r.known {
		r.stale = true
	}
}

// apply stores the outcome of fetching one run.
func (a *App) apply(id string, run client.Run, err error, gen uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r, ok := a.store.runs[id]
	if !ok {
		return // removed meanwhile
	}
	if err != nil {
		if client.KindOf(err) == client.KindNotFound {
			a.store.drop(id, r)
			return
		}
		r.stale = r.known
		return
	}
	if r.version != "" && run.WorkflowID != "" {
		a.versions[r.version] = run.WorkflowID
	}
	a.update(id, r, run, gen)
}

// resolveVersions completes discovered runs whose workflow version was
// learnt from another run's detail call this refresh.
func (a *App) resolveVersions() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range a.store.runs {
		if r.known || r.gone || r.version == "" {
			continue
		}
		if wf, ok := a.versions[r.version]; ok {
			r.run.WorkflowID, r.known = wf, true
		}
	}
}

// update moves a tracked run to new values and counts its finish.
func (a *App) update(id string, r *trackedRun, run client.Run, gen uint64) {
	prev := r.run.Status
	run.ID = id
	if run.WorkflowID != "" {
		run.WorkflowID = a.intern(run.WorkflowID)
	}
	r.run = run
	r.known = run.WorkflowID != "" || r.known
	r.stale = false
	r.freshAt = gen
	if !run.Status.Known() && prev != run.Status {
		a.counters.runErrors.WithLabelValues(a.name, "unknown_status").Inc()
	}
	if !run.Status.Terminal() {
		r.countable = true
		return
	}
	if !r.terminalSince.IsZero() {
		return // already seen terminal (and counted if it was to be)
	}
	a.store.markTerminal(id, r, a.now())
	// Count only finishes that happen while the exporter watches, judged
	// by what it saw, not by Dify's clock (which may be off by hours).
	if r.countable {
		a.counters.runsFinished.WithLabelValues(a.name, string(run.Status)).Inc()
		a.counters.tokens.WithLabelValues(a.name).Add(float64(run.TotalTokens))
		a.counters.duration.WithLabelValues(a.name).Observe(run.Elapsed.Seconds())
		r.countable = false
	}
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

// discover reads the workflow logs newer than the watermark.
func (a *App) discover(ctx context.Context, cfg AppConfig, gen uint64, st *refreshState) {
	a.mu.Lock()
	after := a.watermark.Add(-logsOverlap)
	if a.watermark.IsZero() {
		after = a.now().Add(-cfg.Lookback)
	}
	newest := a.watermark
	firstPass := !a.discoveredOnce
	a.mu.Unlock()

	// Bound the pages of one refresh: past the cap, older runs would only
	// be evicted again.
	maxPages := cfg.MaxRuns/logsPageSize + 2
	var entries []client.LogEntry
	failed := false
	for page := 1; page <= maxPages; page++ {
		p, err := cfg.API.WorkflowLogs(ctx, client.LogsQuery{CreatedAfter: after, Page: page, Limit: logsPageSize})
		a.countError(err)
		st.record(err)
		if err != nil {
			failed = true // the watermark stays: the next refresh reads this window again
			break
		}
		entries = append(entries, p.Entries...)
		if !p.HasMore || len(p.Entries) == 0 {
			break
		}
	}
	// Oldest first, so that the cap evicts the oldest runs, not the newest.
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		if e.LoggedAt.After(newest) {
			newest = e.LoggedAt
		}
		a.discovered(e, gen, firstPass)
	}
	// Past the page bound the window counts as read: what is older would
	// not fit under the cap anyway.
	if !failed {
		a.mu.Lock()
		if newest.After(a.watermark) {
			a.watermark = newest
		}
		a.discoveredOnce = true
		a.mu.Unlock()
	}
	// The logs return nothing older than the window's start again; and a
	// pass returns at most maxPages pages, so no more need remembering.
	a.mu.Lock()
	a.store.forget(after.UnixNano(), maxPages*logsPageSize)
	a.mu.Unlock()
}

// discovered takes in one log entry: the log carries the run's current
// values, all but the workflow ID, which the version map supplies.
func (a *App) discovered(e client.LogEntry, gen uint64, firstPass bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.store.forgotten[e.Run.ID]; ok {
		return // expired or evicted: not again
	}
	prior, tracked := a.store.runs[e.Run.ID]
	// New to the logs and never fetched: if logged after the exporter's
	// first look at the logs, it ran while the exporter watched.
	fresh := !tracked || (prior.sources&SourceDiscovered == 0 && prior.run.Status == "")
	r, err := a.store.add(e.Run.ID, SourceDiscovered)
	if err != nil || r == nil || r.gone {
		return
	}
	if fresh && !firstPass {
		r.countable = true
	}
	if r.loggedAt == 0 && !e.LoggedAt.IsZero() {
		r.loggedAt = e.LoggedAt.UnixNano()
	}
	if r.version == "" && e.Version != "" {
		r.version = a.intern(e.Version)
	}
	run := e.Run
	if r.known {
		run.WorkflowID = r.run.WorkflowID
	} else if wf, ok := a.versions[r.version]; ok && r.version != "" {
		run.WorkflowID = wf
	}
	// Without a workflow ID the values are kept but not exposed until one
	// detail call teaches the version's workflow ID.
	a.update(e.Run.ID, r, run, gen)
}

func (a *App) countError(err error) {
	if err == nil {
		return
	}
	a.counters.runErrors.WithLabelValues(a.name, client.KindOf(err).String()).Inc()
}
