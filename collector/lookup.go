package collector

import (
	"container/heap"
	"errors"
	"hash/fnv"
	"slices"
	"strings"
	"time"

	"github.com/dify-exporter/dify_exporter/client"
)

// Why says why a run is not tracked.
type Why string

// The reasons a run is not tracked, as the run lookup names them.
const (
	// WhyNeverSeen: no source ever named the run (or it left longer ago
	// than the departures remembered).
	WhyNeverSeen Why = "never_seen"
	// WhyRefused: its registration was refused (Detail says why).
	WhyRefused Why = "refused"
	// WhyNotFound: Dify answered 404 for it.
	WhyNotFound Why = "not_found"
	// WhyExpired: finished for longer than the retention.
	WhyExpired Why = "expired"
	// WhyEvicted: the cap (--runs.max) made room for a newer run.
	WhyEvicted Why = "evicted"
	// WhyUnlisted: it left the static list or the IDs file.
	WhyUnlisted Why = "unlisted"
	// WhyOtherShard: it belongs to another replica's shard (Shard).
	WhyOtherShard Why = "other_shard"
	// WhySeenUntracked: the logs listed it but it is not tracked (the cap
	// was full, or it left before the departures remembered).
	WhySeenUntracked Why = "seen_in_logs_untracked"
)

// Departure is a run that is not tracked, and why.
type Departure struct {
	RunID  string    `json:"run_id"`
	Why    Why       `json:"why"`
	Detail string    `json:"detail,omitempty"`
	At     time.Time `json:"at,omitzero"`
	// Shard is the replica that owns the run, for WhyOtherShard.
	Shard int `json:"shard,omitempty"`
}

// departures remembers the last keptDepartures runs that left or were
// refused, by ID. Call with the inspector's lock held.
type departures struct {
	ring  [keptDepartures]Departure
	next  int
	index map[string]int // run ID → its slot in ring
}

func (d *departures) add(e Departure) {
	if old := d.ring[d.next].RunID; old != "" && d.index[old] == d.next {
		delete(d.index, old)
	}
	d.ring[d.next] = e
	d.index[e.RunID] = d.next
	d.next = (d.next + 1) % keptDepartures
}

func (d *departures) get(id string) (Departure, bool) {
	i, ok := d.index[id]
	if !ok {
		return Departure{}, false
	}
	return d.ring[i], true
}

// depart notes that a run stops being tracked, or was refused. Call with
// the app's lock held.
func (s *store) depart(id string, why Why, detail string) {
	in := s.insp
	if in == nil {
		return
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.departed.add(Departure{RunID: id, Why: why, Detail: detail, At: in.now()})
	if r := in.cur; r != nil {
		r.RunsDeparted++
		r.line(in.now(), "level", "debug", "msg", "Run not tracked any more", "run_id", id, "why", string(why), "detail", detail)
	}
}

// runError is a run's last failed detail call.
type runError struct {
	err string
	at  time.Time
}

// boundedErrors keeps the last errors of at most keptRunErrors runs.
type boundedErrors struct {
	m     map[string]runError
	order []string // insertion order, oldest first
}

func (b *boundedErrors) put(id string, e runError) {
	if _, ok := b.m[id]; !ok {
		if len(b.order) >= keptRunErrors {
			delete(b.m, b.order[0])
			b.order = append(b.order[:0], b.order[1:]...)
		}
		b.order = append(b.order, id)
	}
	b.m[id] = e
}

// noteRunError keeps a run's last failed detail call.
func (a *App) noteRunError(id string, err error) {
	if err == nil {
		return
	}
	in := a.insp
	in.mu.Lock()
	defer in.mu.Unlock()
	in.runErrors.put(id, runError{err: client.RedactKeys(err.Error()), at: in.now()})
}

// Kept says how a tracked run is kept current.
type Kept string

// The ways a tracked run is kept current.
const (
	// KeptFinished: terminal; no more calls (ExpiresAt, if set, is when
	// retention drops it).
	KeptFinished Kept = "finished"
	// KeptGone: Dify answered 404; kept, not fetched, while listed.
	KeptGone Kept = "gone"
	// KeptUnverified: registered, waiting for Dify to confirm it exists
	// (a detail call on the next refresh).
	KeptUnverified Kept = "unverified"
	// KeptNew: not fetched yet: a detail call on the next refresh (one per
	// workflow version for runs the logs brought in).
	KeptNew Kept = "new"
	// KeptByLogs: the log pages refresh it in bulk.
	KeptByLogs Kept = "log_pages"
	// KeptAwaitingLogRow: the release writes its log row when it
	// finishes; a detail call re-checks it at DueAt.
	KeptAwaitingLogRow Kept = "awaiting_log_row"
	// KeptByDetail: a detail call each refresh.
	KeptByDetail Kept = "detail_call"
)

// RunInfo is what the exporter knows of one tracked run. It holds no
// inputs or outputs (the exporter never decodes them).
type RunInfo struct {
	RunID      string    `json:"run_id"`
	WorkflowID string    `json:"workflow_id,omitempty"`
	Sources    []string  `json:"sources"`
	Status     string    `json:"status,omitempty"`
	Stale      bool      `json:"stale"`
	CreatedAt  time.Time `json:"created_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	Tokens     int64     `json:"total_tokens"`
	Steps      int64     `json:"total_steps"`
	// Elapsed is Dify's elapsed_time.
	Elapsed     time.Duration `json:"elapsed_ns"`
	RefreshedAt time.Time     `json:"refreshed_at,omitzero"`
	Kept        Kept          `json:"kept"`
	// DueAt is when the next call for it is due, if not the next refresh.
	DueAt time.Time `json:"due_at,omitzero"`
	// ExpiresAt is when retention drops a finished discovered or
	// registered run.
	ExpiresAt   time.Time `json:"expires_at,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// RunQuery selects tracked runs. Pages are in run ID order; After is the
// last ID of the previous page.
type RunQuery struct {
	// RunID, if set, matches the runs whose ID starts with it.
	RunID string
	// Status, if set, is a run status, or "unfinished", "stale", "new"
	// (not fetched yet) or "gone".
	Status string
	After  string
	Limit  int
}

// RunPage is one page of a run lookup.
type RunPage struct {
	Runs []RunInfo `json:"runs"`
	// Matched counts every tracked run the query matches.
	Matched int `json:"matched"`
	// Next is the After of the next page; empty on the last.
	Next string `json:"next,omitempty"`
	// Untracked says why the run asked for by its full ID is not tracked.
	Untracked *Departure `json:"untracked,omitempty"`
}

// MaxRunPage bounds a lookup page.
const MaxRunPage = 500

// ErrBadStatus is returned for a status filter the lookup does not know.
var ErrBadStatus = errors.New(`unknown status: want a run status, "unfinished", "stale", "new" or "gone"`)

// LookupRuns returns a page of the app's tracked runs that match q. It
// costs one pass over the runs and a heap of one page.
func (a *App) LookupRuns(q RunQuery) (RunPage, error) {
	match, err := statusMatcher(q.Status)
	if err != nil {
		return RunPage{}, err
	}
	limit := q.Limit
	if limit <= 0 || limit > MaxRunPage {
		limit = MaxRunPage
	}
	prefix := strings.ToLower(q.RunID)
	a.mu.Lock()
	defer a.mu.Unlock()
	var page RunPage
	if len(prefix) == 36 {
		// A full ID: one map look-up, no pass over the runs.
		if r, ok := a.store.runs[prefix]; ok && match(r) {
			page.Matched = 1
			if prefix > q.After {
				page.Runs = []RunInfo{a.runInfo(prefix, r)}
			}
		} else if !ok {
			d := a.whyUntracked(prefix)
			page.Untracked = &d
		}
		return page, nil
	}
	h := &idHeap{}
	for id, r := range a.store.runs {
		if !strings.HasPrefix(id, prefix) || !match(r) {
			continue
		}
		page.Matched++
		if id <= q.After {
			continue
		}
		if h.Len() < limit+1 {
			heap.Push(h, id)
		} else if id < (*h)[0] {
			(*h)[0] = id
			heap.Fix(h, 0)
		}
	}
	ids := []string(*h)
	slices.Sort(ids)
	if len(ids) > limit {
		ids = ids[:limit]
		page.Next = ids[limit-1]
	}
	for _, id := range ids {
		page.Runs = append(page.Runs, a.runInfo(id, a.store.runs[id]))
	}
	return page, nil
}

// idHeap is a max-heap of run IDs: the page's last ID is at the top.
type idHeap []string

func (h idHeap) Len() int           { return len(h) }
func (h idHeap) Less(i, j int) bool { return h[i] > h[j] }
func (h idHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *idHeap) Push(x any)        { *h = append(*h, x.(string)) }
func (h *idHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func statusMatcher(s string) (func(*trackedRun) bool, error) {
	switch s {
	case "":
		return func(*trackedRun) bool { return true }, nil
	case "unfinished":
		return (*trackedRun).unfinished, nil
	case "stale":
		return func(r *trackedRun) bool { return r.stale }, nil
	case "new":
		return func(r *trackedRun) bool { return !r.known && !r.gone }, nil
	case "gone":
		return func(r *trackedRun) bool { return r.gone }, nil
	}
	st := client.Status(s)
	if !st.Known() {
		return nil, ErrBadStatus
	}
	return func(r *trackedRun) bool { return r.known && !r.gone && r.run.Status == st }, nil
}

// runInfo describes a tracked run. Call with a.mu held.
func (a *App) runInfo(id string, r *trackedRun) RunInfo {
	offset := a.offsetOf(r)
	info := RunInfo{RunID: id, WorkflowID: r.run.WorkflowID, Status: string(r.run.Status), Stale: r.stale,
		CreatedAt: shift(r.run.CreatedAt, offset), FinishedAt: shift(r.run.FinishedAt, offset),
		Tokens: r.run.TotalTokens, Steps: r.run.TotalSteps, Elapsed: r.run.Elapsed,
		RefreshedAt: r.refreshedAt.Time()}
	for _, s := range sourceNames {
		if r.sources&s.s != 0 {
			info.Sources = append(info.Sources, s.name)
		}
	}
	caps := capabilitiesOf(a.server.release, a.info.Mode)
	a.insp.mu.Lock()
	_, covered := a.insp.covered[id]
	if e, ok := a.insp.runErrors.m[id]; ok {
		info.LastError, info.LastErrorAt = e.err, e.at
	}
	a.insp.mu.Unlock()
	switch {
	case r.gone:
		info.Kept = KeptGone
	case r.unverified:
		info.Kept = KeptUnverified
	case !r.known:
		info.Kept = KeptNew
	case r.run.Status.Terminal():
		info.Kept = KeptFinished
		if cappedOnly(r.sources) && !r.terminalSince.IsZero() {
			info.ExpiresAt = r.terminalSince.Time().Add(a.cfg.Retention)
		}
	case a.cfg.Discovery && caps.vis == logsAtFinish:
		info.Kept, info.DueAt = KeptAwaitingLogRow, r.recheckAt.Time()
	case covered:
		info.Kept = KeptByLogs
	default:
		info.Kept = KeptByDetail
	}
	return info
}

// whyUntracked says why a run is not tracked. Call with a.mu held.
func (a *App) whyUntracked(id string) Departure {
	a.insp.mu.Lock()
	d, ok := a.insp.departed.get(id)
	a.insp.mu.Unlock()
	switch {
	case ok:
		d.Shard = a.store.shard.of(id)
		return d
	case !a.store.shard.keeps(id):
		return Departure{RunID: id, Why: WhyOtherShard, Shard: a.store.shard.of(id)}
	case a.store.isPending(id) || a.store.isForgotten(id):
		return Departure{RunID: id, Why: WhySeenUntracked}
	}
	return Departure{RunID: id, Why: WhyNeverSeen}
}

// of is the shard that keeps id.
func (f shardFilter) of(id string) int {
	if f.total <= 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(id))
	return int(h.Sum32() % f.total)
}

// Overview is the app's tracked runs counted for the landing page.
type Overview struct {
	Status
	// RefreshAge is the age of the least recently refreshed unfinished
	// run's data.
	RefreshAge time.Duration
	RunCounts
	// Departed counts the departures remembered.
	Departed int
}

// RunCounts counts an app's tracked runs by source and status, as of
// the end of refresh CountedBy (0: counted now, before any refresh): a
// count costs a pass over every run, so the landing page does not pay it.
type RunCounts struct {
	CountedBy uint64
	// BySource and ByStatus count the tracked runs; a run with several
	// sources counts under each. "new" counts runs not fetched yet,
	// "gone" those Dify answered 404 for.
	BySource map[string]int
	ByStatus map[string]int
}

// Overview returns the app's health and its runs' counts.
func (a *App) Overview() Overview {
	st := a.Status()
	a.mu.Lock()
	defer a.mu.Unlock()
	o := Overview{Status: st, RefreshAge: a.oldest}
	a.insp.mu.Lock()
	o.RunCounts = a.insp.counts
	o.Departed = len(a.insp.departed.index)
	a.insp.mu.Unlock()
	if o.BySource == nil {
		o.RunCounts = a.countRuns()
	}
	return o
}

// countRuns counts the runs by source and status. Call with a.mu held.
func (a *App) countRuns() RunCounts {
	var bySource [4]int
	byStatus := make([]int, len(client.Statuses))
	var fresh, gone, other int
	for _, r := range a.store.runs {
		for i, s := range sourceNames {
			if r.sources&s.s != 0 {
				bySource[i]++
			}
		}
		switch {
		case r.gone:
			gone++
		case !r.known:
			fresh++
		default:
			if i := slices.Index(client.Statuses, r.run.Status); i >= 0 {
				byStatus[i]++
			} else {
				other++
			}
		}
	}
	c := RunCounts{BySource: make(map[string]int), ByStatus: make(map[string]int)}
	for i, s := range sourceNames {
		c.BySource[s.name] = bySource[i]
	}
	for i, s := range client.Statuses {
		c.ByStatus[string(s)] = byStatus[i]
	}
	c.ByStatus["new"], c.ByStatus["gone"], c.ByStatus["other"] = fresh, gone, other
	return c
}
