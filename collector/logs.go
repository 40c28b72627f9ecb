package collector

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/dify-exporter/dify_exporter/client"
)

// Discovery reads GET /v1/workflows/logs newest first (offset paging is
// safe that way: rows inserted meanwhile only push older rows to later
// pages, so a row may be read twice, never skipped). Every new page is
// read, however many, until the deadline; a pass cut short leaves a
// backlog that the next refresh resumes where it stopped.

// logCursor is where discovery stands in an app's logs.
type logCursor struct {
	// watermark is Dify's time when the last complete read began; the
	// next window starts there, less the overlap. Zero: read the lookback.
	watermark time.Time
	// once is set after the first read: rows logged later are new to the
	// exporter.
	once bool
	// newest is the newest served row time seen; a window counts rows
	// newer than this (less the overlap) as new.
	newest time.Time
	// backlog is an older part of a window not read yet.
	backlog *logWindow
}

// restart reads the lookback again on the next refresh.
func (c *logCursor) restart() {
	c.watermark, c.backlog = time.Time{}, nil
}

// logWindow is one query of the logs, from page onwards.
type logWindow struct {
	after time.Time // created_at__after, on Dify's clock
	page  int
	// total is the query's row count when page was reached, to skip the
	// rows inserted since; -1 when unknown (the pages are then re-read).
	total int
	// countFrom: an untracked row served before this is not new.
	countFrom time.Time
	firstPass bool
	// clientCut stops at rows older than after: servers before 1.0.1
	// ignore the filter.
	clientCut bool
}

// logsPass is the outcome of reading one window.
type logsPass struct {
	complete bool
	// stopped is where an incomplete read stopped (next page), with the
	// query's total then.
	stopped, total int
	rows           []int64 // served row times read, for the planner's index
}

// readLogs reads this refresh's windows: the new rows (extended down to
// coverFrom, a served time, so that covered unfinished runs refresh in
// bulk), then any backlog. It reports whether everything was read.
func (a *App) readLogs(ctx context.Context, cfg AppConfig, gen uint64, st *refreshState, caps capabilities, coverFrom int64) bool {
	a.mu.Lock()
	start := a.difyNow(a.now())
	main := logWindow{after: a.logs.watermark.Add(-logsOverlap), page: 1, total: -1,
		countFrom: a.logs.newest.Add(-logsOverlap), firstPass: !a.logs.once, clientCut: !caps.filter}
	if a.logs.watermark.IsZero() {
		main.after = start.Add(-cfg.Lookback)
	}
	if coverFrom != 0 {
		// Served times are early by the zone offset; the filter compares
		// in Dify's clock. A served time is truncated to the second, so
		// the row is at or after it: no overlap is needed for a known row.
		c := time.Unix(0, coverFrom).Add(a.tz.offset)
		if c.Before(main.after) {
			main.after = c
		}
	}
	backlog := a.logs.backlog
	if backlog != nil && !backlog.after.Before(main.after) {
		backlog = nil // the main window reads it all
	}
	a.mu.Unlock()

	pass := a.readWindow(ctx, cfg, gen, st, main)
	a.mu.Lock()
	if len(pass.rows) > 0 {
		a.rows.replaceFrom(pass.rows[0], pass.rows)
	}
	// An untracked row older than every window's countFrom is not new
	// whatever it is: no need to remember it one by one.
	forgetBefore := main.countFrom
	if a.logs.backlog != nil && a.logs.backlog.countFrom.Before(forgetBefore) {
		forgetBefore = a.logs.backlog.countFrom
	}
	a.store.forget(forgetBefore.Add(-logsOverlap).UnixNano())
	switch {
	case pass.complete:
		a.logs.watermark, a.logs.once = start, true
		if backlog == nil {
			a.logs.backlog = nil
		}
	case pass.stopped > 1:
		// Read the newest part: go on from the new rows next time, and
		// keep the rest as a backlog (an older backlog merges into it:
		// the same query from an earlier start holds both).
		a.logs.watermark, a.logs.once = start, true
		b := main
		b.page, b.total = pass.stopped, pass.total
		if backlog != nil {
			b.after, b.total, b.countFrom = backlog.after, -1, backlog.countFrom
			backlog = nil
		}
		a.logs.backlog = &b
	}
	a.mu.Unlock()

	if !pass.complete {
		return false
	}
	if backlog == nil {
		return true
	}
	if ctx.Err() != nil {
		return false
	}
	bp := a.readWindow(ctx, cfg, gen, st, *backlog)
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case bp.complete:
		a.logs.backlog = nil
	case bp.stopped > backlog.page:
		backlog.page, backlog.total = bp.stopped, bp.total
	}
	return bp.complete
}

// readWindow pages through one window until it ends or the deadline.
func (a *App) readWindow(ctx context.Context, cfg AppConfig, gen uint64, st *refreshState, w logWindow) logsPass {
	var pass logsPass
	page := w.page
	adjusted := w.total < 0 || page == 1
	for {
		if ctx.Err() != nil {
			pass.stopped = page
			return pass
		}
		p, err := cfg.API.WorkflowLogs(ctx, client.LogsQuery{CreatedAfter: w.after, Page: page, Limit: logsPageSize})
		a.countError(err)
		st.record(err)
		if err != nil {
			pass.stopped = page
			return pass
		}
		if p.SkipErr != nil {
			st.record(p.SkipErr) // said on the landing page; the page is used
		}
		a.mu.Lock()
		a.observeDate(p.Date, a.now())
		a.mu.Unlock()
		if !adjusted {
			// Rows inserted since the backlog was left pushed its rows
			// down: skip whole pages of them (rounding down re-reads).
			adjusted = true
			if shift := (p.Total - w.total) / logsPageSize; shift > 0 {
				page += shift
				continue
			}
		}
		pass.total = p.Total
		old := a.takePage(p, gen, w, &pass)
		if old || !p.HasMore || len(p.Entries) == 0 {
			pass.complete = true
			return pass
		}
		page++
	}
}

// takePage takes in one page's entries. It reports whether the page
// reached rows older than the window (servers before 1.0.1 ignore the
// filter and page through the whole history).
func (a *App) takePage(p client.LogPage, gen uint64, w logWindow, pass *logsPass) (old bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if n := p.Skipped; n > 0 {
		a.counters.runErrors.WithLabelValues(a.name, client.KindBadResponse.String()).Add(float64(n))
	}
	seen := a.difyNow(a.now())
	for _, e := range p.Entries {
		logged := e.LoggedAt
		if w.clientCut && !logged.IsZero() && logged.Add(a.tz.offset).Before(w.after.Add(-logsOverlap)) {
			old = true
			continue
		}
		if logged.After(a.logs.newest) {
			// Newer than any row before: it was just written (at start,
			// or at finish on older releases), which dates Dify's times.
			if a.logs.once {
				a.tz.observe(logged, seen)
			}
			a.logs.newest = logged
		}
		pass.rows = append(pass.rows, logged.UnixNano())
		a.discovered(e, gen, w)
	}
	slices.Sort(pass.rows)
	return old
}

// discovered takes in one log entry: the log carries the run's current
// values, all but the workflow ID, which the version map supplies. Call
// with a.mu held.
func (a *App) discovered(e client.LogEntry, gen uint64, w logWindow) {
	s := a.store
	id := e.Run.ID
	r, tracked := s.runs[id]
	switch {
	case tracked:
	case s.isPending(id):
		// Seen unfinished but not tracked (the cap was full): count its
		// finish all the same.
		if e.Run.Status.Terminal() {
			delete(s.pending, id)
			s.forgotten[id] = e.LoggedAt.UnixNano()
			a.countFinish(e.Run)
		}
		return
	case s.isForgotten(id):
		return // expired, evicted or counted: not again
	case !w.firstPass && e.LoggedAt.Before(w.countFrom):
		return // an old row read again (a deeper cover): seen before
	}
	if !s.shard.keeps(id) {
		return
	}
	// New to the logs and never fetched: if logged after the exporter's
	// first look at the logs, it ran while the exporter watched.
	fresh := !tracked || (r.sources&SourceDiscovered == 0 && r.run.Status == "")
	// A refresh reads the newest rows first, so the runs it added are
	// newer than this one and stay; but a run still going outranks a
	// finished one.
	r, err := s.add(id, SourceDiscovered, gen)
	if errors.Is(err, ErrCapFull) && !e.Run.Status.Terminal() && s.evictLastFinished() {
		r, err = s.add(id, SourceDiscovered, gen)
	}
	if r != nil && !tracked {
		r.addedGen = gen
	}
	if err != nil || r == nil {
		// No room: count it all the same, and remember it.
		switch {
		case !e.Run.Status.Terminal():
			s.remember(id, e.LoggedAt.UnixNano(), true)
		case !w.firstPass:
			a.countFinish(e.Run)
			fallthrough
		default:
			s.remember(id, e.LoggedAt.UnixNano(), false)
		}
		return
	}
	if r.gone {
		return
	}
	if fresh && !w.firstPass {
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
	a.update(id, r, run, gen)
	r.utcTimes = false // the logs' times are ints in every release
}
