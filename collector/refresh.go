package collector

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/go-kit/log/level"
	"golang.org/x/sync/errgroup"

	"github.com/dify-exporter/dify_exporter/client"
)

// refreshState collects the outcome of one refresh.
type refreshState struct {
	mu          sync.Mutex
	answered    bool  // some request got an answer proving the key works
	refused     error // the key or app was refused
	unreachable bool
	// wait is how long Dify asked the exporter to wait (a 429's
	// Retry-After): no more calls until then.
	wait    time.Duration
	lastErr error
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
	if d, ok := client.RetryAfter(err); ok {
		s.wait = max(s.wait, d)
	}
	s.lastErr = err
}

// halt stops the refresh before any call, for err (wait -1: no new
// wait is learnt).
func (s *refreshState) halt(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wait, s.lastErr = -1, err
}

// failed reports whether the rest of the refresh is pointless.
func (s *refreshState) failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused != nil || s.unreachable || s.wait != 0
}

// view is the app's health as this refresh has found it so far.
func (s *refreshState) view() (up bool, lastErr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.refused != nil:
		lastErr = s.refused.Error()
	case s.lastErr != nil:
		lastErr = s.lastErr.Error()
	}
	return s.answered && s.refused == nil, lastErr
}

// refusal reports whether Dify refused the key or the app itself.
func refusal(k client.Kind) bool {
	switch k {
	case client.KindUnauthorized, client.KindForbidden, client.KindNotWorkflowApp, client.KindAppUnavailable, client.KindWrongURL:
		return true
	}
	return false
}

// abandon reports whether the rest of the refresh is pointless: the key or
// app was refused, or the API cannot be reached (after the retries).
func abandon(err error) bool {
	k := client.KindOf(err)
	_, wait := client.RetryAfter(err)
	return refusal(k) || k == client.KindUnreachable || wait
}

// errWaiting is the state of an app that Dify asked to wait (a 429 with
// Retry-After): the refresh makes no call and serves the last values.
type errWaiting struct{ until time.Time }

func (e errWaiting) Error() string {
	return "Dify answered 429 Too Many Requests and asked to wait until " + e.until.UTC().Format(time.RFC3339) +
		": no calls until then; runs are served from their last values"
}

// errAbandoned cancels a refresh's remaining calls once one shows that
// they would all fail.
var errAbandoned = errors.New("refresh abandoned")

// refresh brings the app's runs up to date, within ctx's deadline.
func (a *App) refresh(ctx context.Context) {
	start := a.now()
	st := &refreshState{}
	a.mu.Lock()
	cfg := a.cfg
	a.gen++
	gen := a.gen
	a.inflight = st
	a.beginRefresh(ctx, gen) // inspect: hook
	needInfo := a.infoAt.IsZero() || start.Sub(a.infoAt) > infoRefresh
	needServer := a.server.at.IsZero() || start.Sub(a.server.at) > infoRefresh
	waitUntil := a.waitUntil
	a.mu.Unlock()

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	if start.Before(waitUntil) {
		// Honoured across scrapes: Dify said when to come back.
		st.halt(errWaiting{waitUntil})
	}
	if needServer && !st.failed() {
		a.probeServer(ctx, cfg, st)
	}
	if needInfo && !st.failed() {
		a.fetchInfo(ctx, cfg, st)
	}
	a.mu.Lock()
	a.adoptVersion(cfg.API.SeenVersion()) // an upgrade shows in any answer
	caps := capabilitiesOf(a.server.release, a.info.Mode)
	discovery := cfg.Discovery && caps.vis != noLogs
	p := a.plan(start, discovery, caps)
	a.notePlan(p) // inspect: hook
	a.mu.Unlock()

	logsRead := false
	if discovery && !st.failed() {
		logsRead = a.readLogs(ctx, cfg, gen, st, caps, p.coverFrom)
	}
	a.mu.Lock()
	toFetch := a.afterLogs(p, gen, logsRead && caps.vis == logsAtFinish)
	a.mu.Unlock()
	// Something must prove the key works each refresh: when neither the
	// logs nor any run are asked for, /info is.
	if !needInfo && !discovery && len(toFetch) == 0 && !st.failed() {
		a.fetchInfo(ctx, cfg, st)
	}
	if st.failed() {
		cancel(errAbandoned) // the runs are marked stale, not fetched
	}
	a.fetchRuns(ctx, cancel, cfg, gen, toFetch, st, caps)
	a.resolveVersions()

	a.mu.Lock()
	defer a.mu.Unlock()
	if st.wait > 0 {
		a.waitUntil = a.now().Add(st.wait)
	}
	a.store.expire(a.now(), cfg.Retention)
	a.logClocks()
	a.publish(st, gen, false)
	a.lastDur = a.now().Sub(start)
	a.endRefresh(st) // inspect: hook
	a.inflight = nil
}

// Probe checks every app's URL, key and release in the background of a
// start or reload, so that a wrong URL or key is logged (and shown on the
// landing page) within seconds, not at the first scrape. What it learns
// spares the first refresh the same calls.
func (e *Exporter) Probe(ctx context.Context) {
	var wg sync.WaitGroup
	for _, a := range e.Apps() {
		wg.Go(func() { a.probe(ctx) })
	}
	wg.Wait()
}

func (a *App) probe(ctx context.Context) {
	st := &refreshState{}
	a.mu.Lock()
	cfg := a.cfg
	a.mu.Unlock()
	a.probeServer(ctx, cfg, st)
	if !st.failed() {
		a.fetchInfo(ctx, cfg, st)
	}
	up, lastErr := st.view()
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.hasEnded || !up {
		// A refresh's word stands until a probe finds the app broken.
		a.up, a.lastErr = up, lastErr
	}
	if up {
		level.Info(a.logger).Log("msg", "Dify app reachable", "version", a.server.version, "mode", a.info.Mode)
	} else {
		level.Warn(a.logger).Log("msg", "Dify app probe failed", "err", lastErr)
	}
}

// probeServer reads Dify's release (GET /v1/, no key needed) and clock.
func (a *App) probeServer(ctx context.Context, cfg AppConfig, st *refreshState) {
	s, err := cfg.API.Server(ctx)
	a.countError(err)
	if client.KindOf(err) == client.KindUnreachable {
		st.record(err) // nothing else will get through either
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		// A proxy may hide /v1/: every answer's X-Version names the
		// release all the same.
		if v := cfg.API.SeenVersion(); v != "" {
			a.server.at = a.now()
			a.adoptVersion(v)
		}
		return
	}
	a.clocks.observeDate(s.Date, a.now())
	a.server.at = a.now()
	a.adoptVersion(s.ServerVersion)
}

// adoptVersion takes the server's release as an answer named it. Call
// with a.mu held.
func (a *App) adoptVersion(v string) {
	if v == "" || v == a.server.version {
		return
	}
	a.server.version, a.server.release = v, parseRelease(v)
	level.Info(a.logger).Log("msg", "Dify server", "version", v)
}

// fetchInfo reads GET /v1/info, which also proves the key.
func (a *App) fetchInfo(ctx context.Context, cfg AppConfig, st *refreshState) {
	info, err := cfg.API.Info(ctx)
	a.countError(err)
	st.record(err)
	if err != nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.info, a.infoAt = info, a.now()
	caps := capabilitiesOf(a.server.release, info.Mode)
	if note := caps.note(a.server.release, info.Mode, a.cfg.Discovery); note != a.server.note {
		a.server.note = note
		if note != "" {
			level.Warn(a.logger).Log("msg", "Discovery is limited", "why", note)
		}
	}
}

// plan hands the planner what the app knows. Call with a.mu held.
func (a *App) plan(now time.Time, discovery bool, caps capabilities) plan {
	in := planInput{vis: caps.vis, discovery: discovery, now: now, pageSize: logsPageSize, rowsFrom: a.rows.rowsFrom}
	// Discovery reads from the newest row, less the overlap, in the rows'
	// own frame (as the runs' loggedAt are).
	if a.logs.anchored {
		in.windowFrom = nanos(a.logs.newest.Add(-logsOverlap))
	}
	firstOfVersion := versionAsker()
	for id, r := range a.store.runs {
		if !r.unfinished() || !firstOfVersion(r) {
			continue
		}
		in.runs = append(in.runs, candidate{id: id, known: r.known, inLogs: r.loggedAt != 0, loggedAt: r.loggedAt,
			refreshedAt: r.refreshedAt.Time(), recheckAt: r.recheckAt.Time()})
	}
	// Runs the cap left untracked are refreshed too, to count their
	// finish: by the logs, or by a detail call where that is cheaper.
	for id, at := range a.store.pending {
		in.runs = append(in.runs, candidate{id: id, known: true, inLogs: true, loggedAt: at})
	}
	return makePlan(in)
}

// versionAsker reports, run by run, whether a detail call is worth it for
// the run's workflow version: of the discovered runs waiting for their
// version's workflow ID, one call per version is enough (resolveVersions
// completes the others). Runs that are known or have no version always are.
func versionAsker() func(*trackedRun) bool {
	asked := make(map[string]bool)
	return func(r *trackedRun) bool {
		if r.known || r.version == "" {
			return true
		}
		if asked[r.version] {
			return false
		}
		asked[r.version] = true
		return true
	}
}

// afterLogs lists the detail calls left once the logs are read: the
// planner's, covered runs the logs did not refresh, and runs the logs
// brought in without their workflow ID (one per workflow version). Call
// with a.mu held.
func (a *App) afterLogs(p plan, gen uint64, unfinishedConfirmed bool) []string {
	planned := make(map[string]bool, len(p.detail))
	for _, id := range p.detail {
		planned[id] = true
	}
	// A registered run the logs just confirmed waits for its version's
	// workflow ID like a discovered one: one call per version.
	firstOfVersion := versionAsker()
	ids := make([]string, 0, len(p.detail))
	for _, id := range p.detail {
		if r, ok := a.store.runs[id]; !ok || firstOfVersion(r) || r.freshAt != gen {
			ids = append(ids, id)
		}
	}
	for _, id := range p.covered {
		if r, ok := a.store.runs[id]; ok && r.unfinished() && r.freshAt != gen || a.store.isPending(id) {
			ids = append(ids, id)
		}
	}
	for id, r := range a.store.runs {
		if r.known || r.gone || r.addedGen != gen || planned[id] || !firstOfVersion(r) {
			continue
		}
		ids = append(ids, id)
	}
	if unfinishedConfirmed {
		// The logs were read to the end without these runs' rows: they
		// have not finished, and their numbers do not change before.
		now := a.now()
		for id, r := range a.store.runs {
			if r.known && r.unfinished() && r.freshAt != gen && !planned[id] {
				r.refreshedAt, r.stale, r.freshAt = instantOf(now), false, gen
			}
		}
	}
	// A run the logs refreshed needs no call.
	kept := ids[:0]
	for _, id := range ids {
		if r, ok := a.store.runs[id]; ok && r.unfinished() && (r.freshAt != gen || !r.known) || a.store.isPending(id) {
			kept = append(kept, id)
		}
	}
	return kept
}

// publish makes a refresh's outcome visible. Call with a.mu held. A
// provisional view is one taken at a scrape's deadline while the refresh
// goes on: runs not refreshed yet count as stale.
func (a *App) publish(st *refreshState, gen uint64, provisional bool) {
	prevErr := a.lastErr
	a.up, a.lastErr = st.view()
	now := a.now()
	a.stale, a.oldest = 0, 0
	for _, r := range a.store.runs {
		if provisional && r.known && r.unfinished() && r.freshAt != gen {
			a.stale++
		} else if r.stale {
			a.stale++
		}
		if r.known && r.unfinished() && !r.refreshedAt.IsZero() {
			a.oldest = max(a.oldest, now.Sub(r.refreshedAt.Time()))
		}
	}
	if provisional {
		if a.lastErr == "" {
			a.lastErr = "refresh still running at the scrape's deadline"
		}
		return
	}
	a.hasEnded = true
	// Log when a failure starts, changes or ends, not on every scrape.
	switch {
	case a.lastErr != "" && a.lastErr != prevErr:
		msg := "Refresh failed; serving last good values"
		if a.store.nKnown() == 0 {
			msg = "Refresh failed; no values to serve yet"
		}
		level.Warn(a.logger).Log("msg", msg, "up", a.up, "err", a.lastErr)
	case a.lastErr == "" && prevErr != "":
		level.Info(a.logger).Log("msg", "Refresh recovered")
	case a.lastErr != "":
		level.Debug(a.logger).Log("msg", "Refresh still failing", "err", a.lastErr)
	}
}

// checkpoint publishes the running refresh's view for a scrape whose
// deadline has come: a hanging Dify is not reported healthy because a
// longer refresh is still waiting on it.
func (a *App) checkpoint() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.inflight != nil {
		a.publish(a.inflight, a.gen, true)
	}
}

// fetchRuns fetches run details with bounded concurrency, in the order
// given. A refused key or an unreachable API cancels the rest: every
// other call would fail too.
func (a *App) fetchRuns(ctx context.Context, cancel context.CancelCauseFunc, cfg AppConfig, gen uint64, ids []string, st *refreshState, caps capabilities) {
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
				return nil //nolint:nilerr // skip counts it; the group carries no errors
			}
			run, err := cfg.API.Run(ctx, id)
			if err != nil && errors.Is(context.Cause(ctx), errAbandoned) {
				a.skip(ctx, id)
				return nil
			}
			st.record(err)
			a.countError(err)
			if abandon(err) {
				cancel(errAbandoned)
			}
			a.apply(id, run, err, gen, caps)
			return nil
		})
	}
	g.Wait() //nolint:errcheck // the goroutines return no errors
}

// skip marks a run that this refresh could not fetch. Runs skipped for
// lack of time are counted as timeouts; those skipped because the refresh
// was abandoned are not (its cause is counted once).
func (a *App) skip(ctx context.Context, id string) {
	if !errors.Is(context.Cause(ctx), errAbandoned) {
		a.counters.runErrors.WithLabelValues(a.name, client.KindTimeout.String()).Inc()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if r, ok := a.store.runs[id]; ok && r.known {
		r.stale = true
	}
}

// apply stores the outcome of fetching one run.
func (a *App) apply(id string, run client.Run, err error, gen uint64, caps capabilities) {
	a.noteRunError(id, err) // inspect: hook
	a.mu.Lock()
	defer a.mu.Unlock()
	r, ok := a.store.runs[id]
	if !ok {
		a.applyPending(id, run, err)
		return
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
	if caps.vis == logsAtFinish && !run.Status.Terminal() {
		r.recheckAt = instantOf(a.now().Add(nextRecheck(r.rechecks)))
		r.rechecks = min(r.rechecks+1, 8)
	}
}

// applyPending counts the finish of a run the cap left untracked. Call
// with a.mu held.
func (a *App) applyPending(id string, run client.Run, err error) {
	at, ok := a.store.pending[id]
	switch {
	case !ok:
	case client.KindOf(err) == client.KindNotFound:
		delete(a.store.pending, id)
	case err == nil && run.Status.Terminal():
		delete(a.store.pending, id)
		a.store.forgotten[id] = at
		run.ID = id // as registered, not as Dify's answer spells it
		a.countFinish(run)
	}
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

// update moves a tracked run to new values and counts its finish. Call
// with a.mu held.
func (a *App) update(id string, r *trackedRun, run client.Run, gen uint64) {
	prev := r.run.Status
	run.ID = id
	if run.WorkflowID != "" {
		run.WorkflowID = a.intern(run.WorkflowID)
	}
	a.noteChange(id, r.run, run) // inspect: hook
	r.run = run
	r.known = run.WorkflowID != "" || r.known
	r.stale = false
	r.freshAt = gen
	r.refreshedAt = instantOf(a.now())
	a.store.verified(r)
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
		a.countFinish(run)
		r.countable = false
	}
}

// countFinish counts one run seen reaching a terminal status.
func (a *App) countFinish(run client.Run) {
	a.counters.finish(a.name, run)
}
