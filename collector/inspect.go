package collector

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-kit/log"

	"github.com/dify-exporter/dify_exporter/client"
)

// What the operator pages see: the last refreshes of each app with the
// calls they made and their log lines, why a run is not tracked, and how
// each tracked run is kept current. Everything here is bounded (see the
// constants) whatever the number of runs or refreshes.

const (
	// keptRefreshes is how many refreshes each app remembers.
	keptRefreshes = 20
	// maxRefreshLines and maxRefreshLogBytes bound one refresh's log.
	maxRefreshLines    = 200
	maxRefreshLogBytes = 32 << 10
	// maxRefreshErrors bounds the distinct errors a refresh remembers.
	maxRefreshErrors = 10
	// keptDepartures is how many runs that left (or were refused) each
	// app remembers, and keptRunErrors how many runs' last errors.
	keptDepartures = 4096
	keptRunErrors  = 1024
)

// Trigger says what started a refresh.
type Trigger struct {
	// Timeout is the time the scrape gave the refresh; zero if none.
	Timeout time.Duration
}

// Calls counts the requests of one refresh to one endpoint with one
// outcome (an HTTP status code, or "error" when no response came).
type Calls struct {
	Endpoint string `json:"endpoint"`
	Code     string `json:"code"`
	Count    int    `json:"count"`
}

// RefreshError is one distinct error of a refresh and how often it came.
type RefreshError struct {
	Error string `json:"error"`
	Count int    `json:"count"`
}

// Refresh is what one refresh of an app did.
type Refresh struct {
	// ID numbers the app's refreshes from 1 since the exporter started.
	ID    uint64    `json:"id"`
	Start time.Time `json:"start"`
	// Running is set while the refresh goes on.
	Running  bool          `json:"running"`
	Duration time.Duration `json:"duration_ns"`
	// Timeout is the time the scrape gave it (0: no deadline).
	Timeout time.Duration `json:"timeout_ns"`
	// Reused counts the scrapes served from it without calling Dify
	// (within --refresh.min-interval of its end).
	Reused int     `json:"reused_by_scrapes"`
	Calls  []Calls `json:"calls"`
	// LogPages and DetailCalls count the requests to the logs and to the
	// run detail endpoints (attempts, retries included).
	LogPages    int `json:"log_pages"`
	DetailCalls int `json:"detail_calls"`
	// RunsChanged counts the runs whose values this refresh changed;
	// RunsDeparted those that stopped being tracked during it.
	RunsChanged  int `json:"runs_changed"`
	RunsDeparted int `json:"runs_departed"`
	// Tracked is the number of runs tracked at its end.
	Tracked int            `json:"tracked"`
	Errors  []RefreshError `json:"errors"`
	// Up and Err are the app's health as the refresh left it.
	Up  bool   `json:"up"`
	Err string `json:"last_error,omitempty"`
	// LogLines is the number of log lines kept; LogDropped those that did
	// not fit the bound.
	LogLines   int `json:"log_lines"`
	LogDropped int `json:"log_lines_dropped"`
}

// refreshRecord is a Refresh being written, with its log.
type refreshRecord struct {
	Refresh
	log     bytes.Buffer
	calls   map[[2]string]int
	changed map[string]struct{}
}

// inspector keeps what the pages show of one app. It has its own lock:
// the client's request observer and the logger write to it from any
// goroutine, with or without the app's lock held.
type inspector struct {
	now func() time.Time

	mu        sync.Mutex
	ring      [keptRefreshes]*refreshRecord
	next      int // where the next record goes in ring
	cur       *refreshRecord
	last      *refreshRecord // the last ended refresh
	covered   map[string]struct{}
	counts    RunCounts // as of the last refresh's end
	departed  departures
	runErrors boundedErrors
}

func newInspector(now func() time.Time) *inspector {
	return &inspector{now: now, departed: departures{index: make(map[string]int)},
		runErrors: boundedErrors{m: make(map[string]runError)}}
}

// beginRefresh opens the record of refresh gen; ctx's deadline, if any,
// is the scrape's timeout.
func (a *App) beginRefresh(ctx context.Context, gen uint64) {
	deadline, hasDeadline := ctx.Deadline()
	in := a.insp
	in.mu.Lock()
	defer in.mu.Unlock()
	r := &refreshRecord{Refresh: Refresh{ID: gen, Start: in.now(), Running: true},
		calls: make(map[[2]string]int), changed: make(map[string]struct{})}
	if hasDeadline {
		r.Timeout = time.Until(deadline) // a context's deadline is on the wall clock
	}
	in.ring[in.next] = r
	in.next = (in.next + 1) % keptRefreshes
	in.cur = r
	r.line(in.now(), "level", "debug", "msg", "Refresh started", "timeout", r.Timeout.Round(time.Millisecond))
}

// endRefresh closes the current record with the app's health. Call with
// a.mu held.
func (a *App) endRefresh(st *refreshState) {
	up, lastErr := st.view()
	counts := a.countRuns()
	in := a.insp
	in.mu.Lock()
	defer in.mu.Unlock()
	r := in.cur
	if r == nil {
		return
	}
	now := in.now()
	r.Running, r.Duration, r.Up, r.Err = false, now.Sub(r.Start), up, lastErr
	r.Tracked = len(a.store.runs)
	r.RunsChanged = len(r.changed)
	r.changed = nil
	r.line(now, "level", "debug", "msg", "Refresh ended", "up", up, "duration", r.Duration, "runs_changed", r.RunsChanged, "err", lastErr)
	in.cur, in.last = nil, r
	counts.CountedBy = r.ID
	in.counts = counts
}

// noteCall counts one request of the running refresh.
func (in *inspector) noteCall(endpoint, code string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	r := in.cur
	if r == nil {
		return
	}
	r.calls[[2]string{endpoint, code}]++
	switch endpoint {
	case client.EndpointLogs:
		r.LogPages++
	case client.EndpointRun:
		r.DetailCalls++
	}
	r.line(in.now(), "level", "debug", "msg", "Dify request", "endpoint", endpoint, "code", code)
}

// noteCall counts one request to Dify of the named app.
func (e *Exporter) noteCall(app, endpoint, code string) {
	if a := e.App(app); a != nil {
		a.insp.noteCall(endpoint, code)
	}
}

// noteReuse counts a scrape served from the last refresh of every app.
func (e *Exporter) noteReuse() {
	for _, a := range e.Apps() {
		a.insp.noteReuse()
	}
}

// refusedWhy is the detail kept of a refused registration: the error's
// text, or that another shard owns the run (err is nil).
func refusedWhy(err error) string {
	if err == nil {
		return ErrOtherShard.Error()
	}
	return err.Error()
}

// noteReuse counts a scrape served from the last refresh.
func (in *inspector) noteReuse() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.last != nil {
		in.last.Reused++
	}
}

// noteError counts an error of the running refresh.
func (in *inspector) noteError(err error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	r := in.cur
	if r == nil {
		return
	}
	msg := client.RedactKeys(err.Error())
	for i := range r.Errors {
		if r.Errors[i].Error == msg {
			r.Errors[i].Count++
			return
		}
	}
	if len(r.Errors) < maxRefreshErrors {
		r.Errors = append(r.Errors, RefreshError{Error: msg, Count: 1})
	}
}

// noteChange notes a run whose values the running refresh changes.
func (a *App) noteChange(id string, old, new client.Run) {
	if old.Status == new.Status && old.TotalTokens == new.TotalTokens && old.TotalSteps == new.TotalSteps &&
		old.Elapsed == new.Elapsed && old.FinishedAt.Equal(new.FinishedAt) && old.CreatedAt.Equal(new.CreatedAt) {
		return
	}
	in := a.insp
	in.mu.Lock()
	defer in.mu.Unlock()
	if r := in.cur; r != nil && r.changed != nil {
		r.changed[id] = struct{}{}
	}
}

// notePlan keeps which unfinished runs the logs are to refresh, for the
// run lookup. Call with a.mu held.
func (a *App) notePlan(p plan) {
	covered := make(map[string]struct{}, len(p.covered))
	for _, id := range p.covered {
		covered[id] = struct{}{}
	}
	a.insp.mu.Lock()
	a.insp.covered = covered
	a.insp.mu.Unlock()
}

// line appends one logfmt line to the record's log, within its bounds.
// Call with the inspector's lock held.
func (r *refreshRecord) line(at time.Time, kv ...any) {
	if r.LogLines >= maxRefreshLines || r.log.Len() >= maxRefreshLogBytes {
		r.LogDropped++
		return
	}
	var b strings.Builder
	b.WriteString("ts=")
	b.WriteString(at.UTC().Format("15:04:05.000"))
	for i := 0; i+1 < len(kv); i += 2 {
		k := fmt.Sprint(kv[i])
		if k == "ts" || k == "caller" {
			continue
		}
		v := client.RedactKeys(fmt.Sprint(kv[i+1]))
		if v == "" {
			continue
		}
		b.WriteByte(' ')
		b.WriteString(k)
		b.WriteByte('=')
		if strings.ContainsAny(v, " \"=") {
			fmt.Fprintf(&b, "%q", v)
		} else {
			b.WriteString(v)
		}
	}
	if s := b.String(); r.log.Len()+len(s) < maxRefreshLogBytes {
		r.log.WriteString(s)
		r.log.WriteByte('\n')
		r.LogLines++
	} else {
		r.LogDropped++
	}
}

// refreshLogger is the app's logger: it also writes each line, at every
// level, into the running refresh's log.
type refreshLogger struct {
	in   *inspector
	next log.Logger
}

func (l refreshLogger) Log(kv ...any) error {
	l.in.mu.Lock()
	if r := l.in.cur; r != nil {
		r.line(l.in.now(), kv...)
	}
	l.in.mu.Unlock()
	return l.next.Log(kv...)
}

// Caller is log.DefaultCaller for the logger given to WithLogger: it
// names the line that logged, through the apps' refresh log capture.
var Caller log.Valuer = func() any {
	var pcs [16]uintptr
	n := runtime.Callers(3, pcs[:])
	frames := runtime.CallersFrames(pcs[:n])
	for {
		f, more := frames.Next()
		if !strings.HasPrefix(f.Function, "github.com/go-kit/log") && !strings.HasSuffix(f.Function, "refreshLogger.Log") {
			return fmt.Sprintf("%s:%d", f.File[strings.LastIndexByte(f.File, '/')+1:], f.Line)
		}
		if !more {
			return ""
		}
	}
}

// Refreshes returns the app's last refreshes, newest first.
func (a *App) Refreshes() []Refresh {
	in := a.insp
	in.mu.Lock()
	defer in.mu.Unlock()
	var out []Refresh
	for i := range keptRefreshes {
		r := in.ring[(in.next-1-i+2*keptRefreshes)%keptRefreshes]
		if r == nil {
			break
		}
		out = append(out, r.snapshot())
	}
	return out
}

// RefreshLog returns refresh id and its log lines, if still kept.
func (a *App) RefreshLog(id uint64) (Refresh, string, bool) {
	in := a.insp
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, r := range in.ring {
		if r != nil && r.ID == id {
			return r.snapshot(), r.log.String(), true
		}
	}
	return Refresh{}, "", false
}

// snapshot copies the record for a reader. Call with the lock held.
func (r *refreshRecord) snapshot() Refresh {
	s := r.Refresh
	if r.Running {
		s.Duration = 0
		s.RunsChanged = len(r.changed)
	}
	s.Errors = append([]RefreshError(nil), r.Errors...)
	s.Calls = make([]Calls, 0, len(r.calls))
	for k, n := range r.calls {
		s.Calls = append(s.Calls, Calls{Endpoint: k[0], Code: k[1], Count: n})
	}
	sortCalls(s.Calls)
	return s
}

func sortCalls(c []Calls) {
	slices.SortFunc(c, func(a, b Calls) int {
		return cmp.Or(cmp.Compare(a.Endpoint, b.Endpoint), cmp.Compare(a.Code, b.Code))
	})
}
