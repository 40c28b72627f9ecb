// Package collector turns the runs of Dify apps into Prometheus metrics.
// It tracks runs from several sources, refreshes them from Dify's API on
// each scrape and emits per-run gauges, per-app aggregates and the
// exporter's own health. It knows nothing of HTTP: a Dify API is an API.
package collector

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/dify-exporter/dify_exporter/client"
	"github.com/dify-exporter/dify_exporter/exposition"
)

// Exporter is a prometheus.Collector for a set of Dify apps.
type Exporter struct {
	counters *counters
	now      func() time.Time
	logger   log.Logger
	flight   singleflight.Group

	// minInterval: a scrape this soon after a refresh ended reuses it.
	minInterval time.Duration
	lastMu      sync.Mutex
	lastEnded   time.Time // when the last complete refresh ended

	// cache, if set, renders the per-run series instead of Collect.
	cache *exposition.Cache

	mu   sync.RWMutex
	apps []*App
	// removed are apps whose series the next refresh deletes again.
	removed []string
}

// Option configures an Exporter.
type Option func(*Exporter)

// WithLogger logs each app's failures when they start and end.
func WithLogger(l log.Logger) Option { return func(e *Exporter) { e.logger = l } }

// WithMinInterval makes scrapes that arrive within d of the end of the
// last complete refresh (an HA Prometheus pair, several dashboards) reuse
// it instead of calling Dify again.
func WithMinInterval(d time.Duration) Option { return func(e *Exporter) { e.minInterval = d } }

// WithRunCache makes Collect keep c up to date with every exposed run
// instead of emitting the per-run series itself: the /metrics handler
// writes them from c (exposition.Handler), rendered once per change.
func WithRunCache(c *exposition.Cache) Option { return func(e *Exporter) { e.cache = c } }

// WithClock replaces time.Now, for tests.
func WithClock(now func() time.Time) Option { return func(e *Exporter) { e.now = now } }

// New returns an Exporter for apps.
func New(apps []AppConfig, opts ...Option) *Exporter {
	e := &Exporter{counters: newCounters(), now: time.Now, logger: log.NewNopLogger()}
	for _, o := range opts {
		o(e)
	}
	e.SetApps(apps)
	return e
}

// SetApps replaces the exported apps, as a config reload does. An app
// that stays (by name) keeps its runs and state, whatever else changed;
// its static run list is replaced.
func (e *Exporter) SetApps(cfgs []AppConfig) {
	e.mu.Lock()
	defer e.mu.Unlock()
	old := make(map[string]*App, len(e.apps))
	for _, a := range e.apps {
		old[a.name] = a
	}
	apps := make([]*App, 0, len(cfgs))
	for _, c := range cfgs {
		a, ok := old[c.Name]
		if ok {
			a.reconfigure(c)
			a.SetRunIDs(SourceStatic, c.RunIDs)
			delete(old, c.Name)
		} else {
			a = newApp(c, e.counters, e.now, log.With(e.logger, "app", c.Name))
		}
		apps = append(apps, a)
	}
	for name := range old {
		// A refresh of the removed app may still be running and count;
		// the next refresh forgets its series again.
		e.forgetApp(name)
		e.removed = append(e.removed, name)
	}
	e.apps = apps
}

// App returns the app with this name, or nil.
func (e *Exporter) App(name string) *App {
	e.mu.RLock()
	defer e.mu.RUnlock()
	for _, a := range e.apps {
		if a.name == name {
			return a
		}
	}
	return nil
}

// Apps returns the apps in configuration order.
func (e *Exporter) Apps() []*App {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return slices.Clone(e.apps)
}

// Register tracks a run of the named app posted to the registration
// endpoint by an anonymous client.
func (e *Exporter) Register(app, runID string) error { return e.RegisterFrom(app, "", runID) }

// RegisterFrom tracks a run of the named app posted to the registration
// endpoint by client from: when the cap is full, registrations make room
// at the expense of the client holding the most unconfirmed runs.
func (e *Exporter) RegisterFrom(app, from, runID string) error {
	a := e.App(app)
	if a == nil {
		return fmt.Errorf("unknown app %q", client.RedactKeys(clip(app)))
	}
	return a.Register(from, runID)
}

// RequestObserver returns the function the app's client calls after each
// request, to count it in dify_exporter_api_requests_total.
func (e *Exporter) RequestObserver(app string) func(endpoint, code string) {
	return func(endpoint, code string) {
		e.counters.apiRequests.WithLabelValues(app, endpoint, code).Inc()
		e.noteCall(app, endpoint, code) // inspect: hook
	}
}

// Refresh brings every app up to date, each in parallel, within ctx's
// deadline. Calls that overlap share one refresh, which runs to its
// deadline even if its first caller goes away; a caller with more time
// than a shared refresh had starts another with the time left. A caller
// whose ctx ends first returns early and is served the last good values.
func (e *Exporter) Refresh(ctx context.Context) {
	if e.recent() {
		e.noteReuse() // inspect: hook
		return
	}
	for ctx.Err() == nil {
		deadline, _ := ctx.Deadline()
		leader := make(chan struct{})
		ch := e.flight.DoChan("refresh", func() (any, error) {
			close(leader)
			rctx := context.WithoutCancel(ctx)
			if !deadline.IsZero() {
				var cancel context.CancelFunc
				rctx, cancel = context.WithDeadline(rctx, deadline)
				defer cancel()
			}
			e.refreshApps(rctx)
			if rctx.Err() == nil {
				e.lastMu.Lock()
				e.lastEnded = e.now()
				e.lastMu.Unlock()
			}
			return deadline, nil
		})
		select {
		case res := <-ch:
			ran, _ := res.Val.(time.Time)
			cutShort := !ran.IsZero() && !time.Now().Before(ran)
			if !res.Shared || !cutShort || (!deadline.IsZero() && !deadline.After(ran)) {
				return
			}
		case <-ctx.Done():
			if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return
			}
			select {
			case <-leader:
				// This caller's own refresh ends at this same deadline:
				// wait the moment it takes to mark what it could not fetch.
				<-ch
			default:
				// Another caller's refresh with more time may still be
				// waiting on Dify: report what it has found so far.
				select {
				case <-ch:
				case <-time.After(checkpointGrace):
					for _, a := range e.Apps() {
						a.checkpoint()
					}
				}
			}
			return
		}
	}
}

// checkpointGrace is how long a scrape whose deadline passed waits for a
// shared refresh to mark what it could not fetch.
const checkpointGrace = 20 * time.Millisecond

// recent reports whether the last complete refresh is recent enough to
// serve as it is.
func (e *Exporter) recent() bool {
	if e.minInterval <= 0 {
		return false
	}
	e.lastMu.Lock()
	defer e.lastMu.Unlock()
	return !e.lastEnded.IsZero() && e.now().Sub(e.lastEnded) < e.minInterval
}

// forgetApp removes a removed app's series.
func (e *Exporter) forgetApp(name string) {
	e.counters.forgetApp(name)
	if e.cache != nil {
		e.cache.DeleteApp(name)
	}
}

func (e *Exporter) refreshApps(ctx context.Context) {
	e.mu.Lock()
	for _, name := range e.removed {
		if !slices.ContainsFunc(e.apps, func(a *App) bool { return a.name == name }) {
			e.forgetApp(name)
		}
	}
	e.removed = e.removed[:0]
	apps := slices.Clone(e.apps)
	e.mu.Unlock()
	var wg sync.WaitGroup
	for _, a := range apps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.refresh(ctx)
		}()
	}
	wg.Wait()
}

// Describe implements prometheus.Collector.
func (e *Exporter) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{runTokensDesc, runStepsDesc, runElapsedDesc, runStatusDesc,
		runCreatedDesc, runFinishedDesc, upDesc, appInfoDesc, serverInfoDesc, runsDesc, scrapeDurationDesc,
		trackedRunsDesc, staleRunsDesc, refreshAgeDesc, timeOffsetDesc, clockSkewDesc, rowsOffsetDesc} {
		ch <- d
	}
	for _, c := range e.counters.collectors() {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector. It serves what the last
// refresh left; it does not call Dify.
func (e *Exporter) Collect(ch chan<- prometheus.Metric) {
	for _, a := range e.Apps() {
		a.collect(ch, e.cache)
	}
	for _, c := range e.counters.collectors() {
		c.Collect(ch)
	}
}

func (a *App) collect(ch chan<- prometheus.Metric, cache *exposition.Cache) {
	a.mu.Lock()
	defer a.mu.Unlock()
	name := a.name
	ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, boolValue(a.up), name)
	if !a.infoAt.IsZero() {
		ch <- prometheus.MustNewConstMetric(appInfoDesc, prometheus.GaugeValue, 1, name, a.info.Name, a.info.Mode)
	}
	if a.server.version != "" {
		ch <- prometheus.MustNewConstMetric(serverInfoDesc, prometheus.GaugeValue, 1, name, a.server.version)
	}
	ch <- prometheus.MustNewConstMetric(scrapeDurationDesc, prometheus.GaugeValue, a.lastDur.Seconds(), name)
	ch <- prometheus.MustNewConstMetric(staleRunsDesc, prometheus.GaugeValue, float64(a.stale), name)
	ch <- prometheus.MustNewConstMetric(refreshAgeDesc, prometheus.GaugeValue, a.oldest.Seconds(), name)
	ch <- prometheus.MustNewConstMetric(timeOffsetDesc, prometheus.GaugeValue, a.clocks.correction().Seconds(), name)
	if c := &a.clocks; c.skewKnown {
		ch <- prometheus.MustNewConstMetric(clockSkewDesc, prometheus.GaugeValue, c.skew.Round(time.Second).Seconds(), name)
	}
	if c := &a.clocks; c.shown {
		ch <- prometheus.MustNewConstMetric(rowsOffsetDesc, prometheus.GaugeValue, c.shownRows.Seconds(), name)
	}

	var byStatus [6]int
	var bySource [4]int
	var ids []string // for Collect's own per-run series, without a cache
	if cache != nil {
		for _, id := range a.store.uncache {
			cache.Delete(name, id)
		}
		clear(a.store.uncache)
		a.store.uncache = a.store.uncache[:0]
	}
	for id, r := range a.store.runs {
		for i, s := range sourceNames {
			if r.sources&s.s != 0 {
				bySource[i]++
			}
		}
		if !r.known || r.gone {
			if r.cached {
				cache.Delete(name, id)
				r.cached = false
			}
			continue
		}
		if i := slices.Index(client.Statuses, r.run.Status); i >= 0 {
			byStatus[i]++
		}
		if cache != nil {
			a.setCached(cache, id, r)
		} else {
			ids = append(ids, id)
		}
	}
	if cache == nil {
		slices.Sort(ids)
		e := newRunEmitter(name)
		for _, id := range ids {
			r := a.store.runs[id]
			e.emit(ch, &r.run, a.offsetOf(r))
		}
	}
	for i, s := range statusLabels {
		ch <- prometheus.MustNewConstMetric(runsDesc, prometheus.GaugeValue, float64(byStatus[i]), name, s)
	}
	for i, s := range sourceNames {
		ch <- prometheus.MustNewConstMetric(trackedRunsDesc, prometheus.GaugeValue, float64(bySource[i]), name, s.name)
	}
}

// setCached puts an exposed run in the cache; an unchanged run costs a
// comparison. Call with a.mu held.
func (a *App) setCached(cache *exposition.Cache, id string, tr *trackedRun) {
	r, offset := &tr.run, a.offsetOf(tr)
	cache.Set(exposition.RunValues{App: a.name, WorkflowID: r.WorkflowID, RunID: id, Status: string(r.Status),
		Tokens: r.TotalTokens, Steps: r.TotalSteps, Elapsed: r.Elapsed,
		Created: shift(r.CreatedAt, offset), Finished: shift(r.FinishedAt, offset)})
	tr.cached = true
}

// offsetOf is the correction of a run's times. Call with a.mu held.
func (a *App) offsetOf(*trackedRun) time.Duration { return a.clocks.correction() }

func shift(t time.Time, d time.Duration) time.Time {
	if t.IsZero() {
		return t
	}
	return t.Add(d)
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// clip shortens user-supplied text for an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
