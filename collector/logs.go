package collector

import (
	"context"
	"errors"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/go-kit/log/level"

	"github.com/dify-exporter/dify_exporter/client"
)

// Discovery reads GET /v1/workflows/logs newest first (offset paging is
// safe that way: rows inserted meanwhile only push older rows to later
// pages, so a row may be read twice, never skipped). Every new page is
// read, however many, until the deadline; a pass cut short leaves a
// backlog that the next refresh resumes where it stopped.
//
// Where a window starts and stops is decided in the rows' own frame (their
// served created_at), never on the exporter's clock or a Date header: a
// database session not in UTC dates every row hours off, and whether the
// created_at__after filter compares in that frame or as a true instant
// depends on the database. So the filter is only a coarse bound, widened by
// the rows' measured offset, and paging stops at the first believable row
// older than the window. A row whose date cannot be believed (see
// rowJudge) is taken in for its run but never moves the window.

// logCursor is where discovery stands in an app's logs.
type logCursor struct {
	// newest is the newest believable row time read (rows' frame); the
	// next window starts there, less the overlap.
	newest time.Time
	// anchored is set once a read found a believable row; until then each
	// read is a first look, reaching back the lookback from the newest.
	anchored bool
	// once is set after the first read: rows logged later are new to the
	// exporter.
	once bool
	// readAt is the exporter's time of the last answer to a first page: a
	// run whose row is newer than newest ran (started, or finished on
	// releases that log at finish) after it.
	readAt time.Time
	// backlog is an older part of a window not read yet.
	backlog *logWindow
	// hiddenBefore is set when a first look could not read its newest
	// rows (a page of undecodable rows): those rows, read later, are old
	// unless their run's own time is at or after it.
	hiddenBefore time.Time
}

// restart reads the lookback again on the next refresh.
func (c *logCursor) restart() {
	c.anchored, c.backlog = false, nil
}

// logWindow is one query of the logs, from page onwards.
type logWindow struct {
	// after is the created_at__after sent: a coarse bound.
	after time.Time
	// from is the window's start in the rows' frame: the first believable
	// row older than it ends the window. Zero in a first look, until its
	// first believable row sets it lookback before that row.
	from     time.Time
	lookback time.Duration
	page     int
	// total is the query's row count when page was reached, to skip the
	// rows inserted since; -1 when unknown (the pages are then re-read).
	total int
	// countFrom: an untracked row served before this is not new.
	countFrom time.Time
	firstPass bool
	// atFinish: the release writes a row when its run finishes.
	atFinish bool
	// arrivals: a row newer than prevNewest is a run that started (or
	// finished) since prevRead, which dates Dify's host clock.
	arrivals   bool
	prevNewest time.Time
	// prevRead is the exporter's time of the last read of the newest rows.
	prevRead time.Time
	// countRunsFrom, if set: a row whose run's own time is before it is
	// not new (see logCursor.hiddenBefore).
	countRunsFrom time.Time
	// top, in a backlog left by a pass cut short, is the oldest
	// believable row that pass read (rows' frame): the backlog is the
	// rows below it.
	top time.Time
}

// logsPass is the outcome of reading one window.
type logsPass struct {
	complete bool
	// stopped is where an incomplete read stopped (next page), with the
	// query's total then.
	stopped, total int
	rows           []int64 // believable row times read, sorted, for the planner's index
	// from is the window's start (a first look finds it).
	from time.Time
	// hidden is set when a first look met a page of undecodable rows
	// before its first believable row.
	hidden bool
}

// coarseAfter is the created_at__after for a window starting at from
// (rows' frame): low enough that any database's comparison returns every
// row of the window, the rows' offset being what it is.
func (a *App) coarseAfter(from, now time.Time, lookback time.Duration) time.Time {
	switch off, ok := a.clocks.rows, a.clocks.rowsKnown; {
	case from.IsZero():
		// A first look: rows may be a zone and a clock away.
		return now.Add(-lookback - 2*maxRowsOffset)
	case !ok:
		return from.Add(-maxRowsOffset)
	default:
		// PostgreSQL compares an offset-aware value as a true instant:
		// rows dated late by off are off earlier in truth.
		return from.Add(-max(off, 0) - time.Minute)
	}
}

// readLogs reads this refresh's windows: the new rows (extended down to
// coverFrom, a row time, so that covered unfinished runs refresh in bulk),
// then any backlog. It reports whether everything was read.
func (a *App) readLogs(ctx context.Context, cfg AppConfig, gen uint64, st *refreshState, caps capabilities, coverFrom int64) bool {
	a.mu.Lock()
	now := a.now()
	main := logWindow{page: 1, total: -1, countFrom: a.logs.newest.Add(-logsOverlap), firstPass: !a.logs.once,
		atFinish: caps.vis == logsAtFinish, lookback: cfg.Lookback,
		arrivals: a.logs.once && a.logs.anchored && !a.logs.readAt.IsZero(), prevNewest: a.logs.newest, prevRead: a.logs.readAt,
		countRunsFrom: a.logs.hiddenBefore}
	if a.logs.anchored {
		main.from = a.logs.newest.Add(-logsOverlap)
		if c := time.Unix(0, coverFrom); coverFrom != 0 && c.Before(main.from) {
			// A served row time: the row is at or after it, no overlap.
			main.from = c
		}
	}
	main.after = a.coarseAfter(main.from, now, cfg.Lookback)
	backlog := a.logs.backlog
	resumed := false
	switch {
	case backlog == nil || main.from.IsZero():
	case !backlog.top.IsZero() && main.from.Before(backlog.top):
		// The main window reaches into the backlog: the rest of a pass
		// cut short. Read again from the newest, it would be cut at the
		// same page and the oldest rows never refreshed; so the backlog
		// (the least recently read rows) is read first, down to the
		// older of the two starts, and the main window then stops where
		// the backlog begins.
		resumed = true
		if backlog.from.After(main.from) {
			backlog.from = main.from
			if main.after.Before(backlog.after) {
				// Older rows join the query's end: pages keep their
				// rows, but the total no longer says how many were
				// inserted.
				backlog.after, backlog.total = main.after, -1
			}
		}
		main.from = backlog.top
	case !backlog.from.Before(main.from):
		backlog = nil // the main window reads it all
	}
	a.mu.Unlock()

	if resumed {
		if !a.readBacklog(ctx, cfg, gen, st, backlog) || ctx.Err() != nil {
			return false
		}
		backlog = nil
	}

	pass := a.readWindow(ctx, cfg, gen, st, main, true)
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
	a.store.forget(nanos(forgetBefore.Add(-logsOverlap)))
	if main.firstPass && pass.hidden {
		// Rows the first look could not read are old: runs that ran
		// since it are known by their own (host) times.
		a.logs.hiddenBefore = a.lastReadOnDify(a.logs.readAt)
	} else if pass.complete {
		a.logs.hiddenBefore = time.Time{}
	}
	switch {
	case pass.complete:
		a.logs.once = true
		if backlog == nil {
			a.logs.backlog = nil
		}
	case pass.stopped > 1:
		// Read the newest part: go on from the new rows next time, and
		// keep the rest as a backlog (an older backlog merges into it:
		// the same query from an earlier start holds both). The backlog
		// begins below the oldest row read.
		a.logs.once = true
		b := main
		b.page, b.total, b.from, b.arrivals = pass.stopped, pass.total, pass.from, false
		b.top = time.Time{}
		if len(pass.rows) > 0 {
			b.top = time.Unix(0, pass.rows[0])
		}
		if backlog != nil {
			b.after, b.from, b.total, b.countFrom = backlog.after, backlog.from, -1, backlog.countFrom
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
	return a.readBacklog(ctx, cfg, gen, st, backlog)
}

// readBacklog reads the backlog b (the cursor's) on from where it stopped,
// and reports whether it was read to its end.
func (a *App) readBacklog(ctx context.Context, cfg AppConfig, gen uint64, st *refreshState, b *logWindow) bool {
	bp := a.readWindow(ctx, cfg, gen, st, *b, false)
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case bp.complete:
		a.logs.backlog = nil
	case bp.stopped > b.page:
		b.page, b.total = bp.stopped, bp.total
	}
	return bp.complete
}

// readWindow pages through one window until it ends or the deadline. The
// first page is read alone; the pages after it that the window surely
// reaches (see pagesAhead) are then read concurrently, within the app's
// concurrency, and taken in page order: the stop rule and the way rows are
// taken in are those of a read one page after another.
func (a *App) readWindow(ctx context.Context, cfg AppConfig, gen uint64, st *refreshState, w logWindow, newest bool) (pass logsPass) {
	defer func() { pass.from = w.from }()
	page := w.page
	if ctx.Err() != nil {
		pass.stopped = page
		return pass
	}
	p, err := a.readPage(ctx, ctx, cfg, st, w, page, newest)
	if err != nil {
		pass.stopped = page
		return pass
	}
	if w.total >= 0 && page > 1 {
		// Rows inserted since the backlog was left pushed its rows down:
		// skip whole pages of them (rounding down re-reads).
		if shift := (p.Total - w.total) / logsPageSize; shift > 0 {
			page += shift
			if p, err = a.readPage(ctx, ctx, cfg, st, w, page, newest); err != nil {
				pass.stopped = page
				return pass
			}
		}
	}

	// Pages read ahead and not needed (the window ended) are cancelled
	// and their calls not counted as failures.
	ahead, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	type fetched struct {
		page int
		p    client.LogPage
		err  error
	}
	results := make(chan fetched, max(cfg.Concurrency, 1))
	got := make(map[int]fetched)
	launched, inflight := page, 0
	for {
		pass.total = p.Total
		old := a.takePage(p, gen, &w, &pass)
		if len(p.Entries) == 0 && p.Skipped > 0 && w.from.IsZero() {
			pass.hidden = true
		}
		// A page of undecodable rows says nothing of where the window
		// ends: paging goes on.
		if old || !p.HasMore || len(p.Entries) == 0 && p.Skipped == 0 {
			pass.complete = true
			return pass
		}
		want := page + max(a.pagesAhead(w, pass, max(cfg.Concurrency, 1)), 1)
		if last := (p.Total + logsPageSize - 1) / logsPageSize; want > last {
			want = max(last, page+1)
		}
		page++
		for {
			for launched < want && inflight < cap(results) {
				launched++
				inflight++
				wg.Add(1)
				go func(n int) {
					defer wg.Done()
					p, err := a.readPage(ahead, ctx, cfg, st, w, n, false)
					results <- fetched{n, p, err}
				}(launched)
			}
			if _, ok := got[page]; ok {
				break
			}
			r := <-results
			inflight--
			got[r.page] = r
		}
		r := got[page]
		delete(got, page)
		if r.err != nil {
			pass.stopped = page
			return pass
		}
		p = r.p
	}
}

// readPage asks for one page of a window. A call cancelled because the
// window ended (ctx done, scrape not) is neither counted nor recorded.
func (a *App) readPage(ctx, scrape context.Context, cfg AppConfig, st *refreshState, w logWindow, page int, newest bool) (client.LogPage, error) {
	p, err := cfg.API.WorkflowLogs(ctx, client.LogsQuery{CreatedAfter: w.after, Page: page, Limit: logsPageSize})
	if err != nil && ctx.Err() != nil && scrape.Err() == nil {
		return p, err
	}
	a.countError(err)
	st.record(err)
	if err != nil {
		return p, err
	}
	if p.SkipErr != nil {
		st.record(p.SkipErr) // said on the landing page; the page is used
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.clocks.observeDate(p.Date, a.now())
	if newest && page == 1 {
		a.logs.readAt = a.now()
	}
	return p, nil
}

// pagesAhead is how many pages past those taken the window surely
// reaches (the next one is read in any case): the rows the index holds between the window's start and the
// oldest row taken were there at the last read. Below what the index
// holds (a first look, a backlog), the rows' rate so far estimates the
// rest, read at most limit pages ahead so that a wrong guess wastes few
// calls.
func (a *App) pagesAhead(w logWindow, pass logsPass, limit int) int {
	if w.from.IsZero() || len(pass.rows) == 0 {
		return 0
	}
	from, oldest := nanos(w.from), pass.rows[0]
	if oldest <= from {
		return 0
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	below, ok := a.rows.rowsFrom(oldest)
	if !ok {
		below = 0
	}
	known, reaches := a.rows.rowsFrom(from)
	if !reaches {
		// The index begins after the window's start: what it holds
		// down to its oldest row, then the rows' rate.
		known = len(a.rows.times)
	}
	n := pagesFor(max(known-below, 0), logsPageSize)
	if reaches {
		return n
	}
	indexed := oldest
	if len(a.rows.times) > 0 {
		indexed = min(indexed, a.rows.times[0])
	}
	newestRead := pass.rows[len(pass.rows)-1]
	if span := newestRead - oldest; span > 0 && indexed > from {
		est := float64(len(pass.rows)) * float64(indexed-from) / float64(span)
		n += min(pagesFor(int(min(est, float64(limit*logsPageSize))), logsPageSize), limit)
	}
	return n
}

// takePage takes in one page's entries. It reports whether the page
// reached believable rows older than the window.
func (a *App) takePage(p client.LogPage, gen uint64, w *logWindow, pass *logsPass) (old bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if n := p.Skipped; n > 0 {
		a.counters.runErrors.WithLabelValues(a.name, client.KindBadResponse.String()).Add(float64(n))
	}
	seen := a.now()
	judge := a.judgeRows(p.Entries, seen, w.atFinish)
	for _, e := range p.Entries {
		logged := e.LoggedAt
		if !judge.plausible(logged, e.Run.CreatedAt, e.Run.FinishedAt) {
			a.badRow(e.Run.ID)
			// Remembered past any forgetting: the row comes back whatever
			// the window.
			a.discovered(e, math.MaxInt64, false, gen, w)
			continue
		}
		if w.from.IsZero() {
			// A first look reaches back the lookback from the newest row.
			w.from = logged.Add(-w.lookback)
			pass.from = w.from
		}
		if logged.Before(w.from) {
			old = true
			continue
		}
		if w.arrivals && logged.After(w.prevNewest) {
			if t := rowTime(e.Run, w.atFinish); !t.IsZero() {
				a.clocks.observeArrival(t, w.prevRead, seen)
			}
		}
		if logged.After(a.logs.newest) || !a.logs.anchored {
			a.logs.newest, a.logs.anchored = logged, true
		}
		pass.rows = append(pass.rows, logged.UnixNano())
		a.discovered(e, logged.UnixNano(), true, gen, w)
	}
	slices.Sort(pass.rows)
	return old
}

// rowTime is the run's own time its log row was written at: its start,
// or its finish on releases that log at finish.
func rowTime(r client.Run, atFinish bool) time.Time {
	if atFinish && !r.FinishedAt.IsZero() {
		return r.FinishedAt
	}
	return r.CreatedAt
}

// judgeRows measures a page's rows against their runs' own times and
// returns the judge of their dates. Call with a.mu held.
func (a *App) judgeRows(entries []client.LogEntry, seen time.Time, atFinish bool) rowJudge {
	offsets := make([]time.Duration, 0, len(entries))
	dates := make([]time.Time, 0, len(entries))
	for _, e := range entries {
		if !client.PlausibleTime(e.LoggedAt) {
			continue
		}
		dates = append(dates, e.LoggedAt)
		if t := rowTime(e.Run, atFinish); !t.IsZero() {
			offsets = append(offsets, e.LoggedAt.Sub(t))
		}
	}
	off, ok := a.clocks.observeRows(offsets)
	// Dify's clock now, in the rows' frame; a page of rows mostly ahead
	// of it shows the clock is (the Date header may be a proxy's).
	ref := seen
	if a.clocks.skewKnown {
		ref = seen.Add(a.clocks.skew)
	}
	if len(dates) >= 3 {
		slices.SortFunc(dates, time.Time.Compare)
		if m := dates[(len(dates)-1)/2].Add(-off); m.After(ref) {
			ref = m
		}
	}
	return rowJudge{offset: off, hasOffset: ok, latest: ref.Add(off + maxRowsAhead)}
}

// isNew reports whether a row read for the first time belongs to a run
// that ran while the exporter watched. A believable row is new by its
// date (the window); a row whose date cannot be believed, or one a first
// look could not read, by its run's own time against the last read.
// Call with a.mu held.
func (a *App) isNew(e client.LogEntry, believable bool, w *logWindow) bool {
	t := rowTime(e.Run, w.atFinish)
	switch {
	case believable:
		return w.countRunsFrom.IsZero() || !t.Before(w.countRunsFrom)
	case w.prevRead.IsZero() || t.IsZero():
		return false
	}
	return !t.Before(a.lastReadOnDify(w.prevRead))
}

// lastReadOnDify is a read's time on Dify's host clock, less the Date
// header's resolution. Call with a.mu held.
func (a *App) lastReadOnDify(read time.Time) time.Time {
	return read.Add(a.clocks.skew - time.Second)
}

// maxBadRows bounds the rows remembered as counted broken.
const maxBadRows = 10000

// badRow counts a row whose date cannot be believed, once. Call with a.mu
// held.
func (a *App) badRow(id string) {
	if _, ok := a.badRows[id]; ok {
		return
	}
	if len(a.badRows) >= maxBadRows {
		clear(a.badRows)
	}
	a.badRows[id] = struct{}{}
	a.counters.runErrors.WithLabelValues(a.name, reasonBadTimestamp).Inc()
	level.Debug(a.logger).Log("msg", "Log row with an unbelievable date: its run is tracked, discovery's window ignores it",
		"run_id", id)
}

// discovered takes in one log entry, logged at its row time (Unix ns,
// clamped), believable or not: the log carries the run's current values,
// all but the workflow ID, which the version map supplies. Call with a.mu
// held.
func (a *App) discovered(e client.LogEntry, logged int64, believable bool, gen uint64, w *logWindow) {
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
			s.forgotten[id] = logged
			a.countFinish(e.Run)
		}
		return
	case s.isForgotten(id):
		return // expired, evicted or counted: not again
	case believable && !w.firstPass && e.LoggedAt.Before(w.countFrom):
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
			s.remember(id, logged, true)
		case !w.firstPass:
			a.countFinish(e.Run)
			fallthrough
		default:
			s.remember(id, logged, false)
		}
		return
	}
	if r.gone {
		return
	}
	if fresh && !w.firstPass && a.isNew(e, believable, w) {
		r.countable = true
	}
	if r.loggedAt == 0 && believable {
		r.loggedAt = logged
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
}
