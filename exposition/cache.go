package exposition

import (
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RunValues are one run's values as the per-run families show them.
type RunValues struct {
	App, WorkflowID, RunID string
	// Status outside Statuses sets every status series to 0.
	Status        string
	Tokens, Steps int64
	Elapsed       time.Duration
	// A zero Created or Finished leaves its series out.
	Created, Finished time.Time
}

// Cache holds the rendered per-run series of every app's runs. It is safe
// for concurrent use; a scrape copies what it writes out under a read
// lock, so a slow client never holds up Set.
type Cache struct {
	mu   sync.RWMutex
	apps []*appRuns // sorted by name
}

// appRuns are one app's runs, in a stable order: a new run goes last, a
// deleted one is replaced by the last.
type appRuns struct {
	name string
	// prefix is the app label pair and the comma after it, shared by
	// every series of the app.
	prefix string
	runs   []run
	index  map[string]int32
}

// Value slots in run.data, in the order of RunFamilies without status.
const (
	slotCreated = iota
	slotElapsed
	slotFinished
	slotSteps
	slotTokens
	nSlots
)

// run is one run: the values Set compares and the rendered text a scrape
// copies out.
type run struct {
	id, workflowID string
	tokens, steps  int64
	elapsed        time.Duration
	// created and finished are Unix nanoseconds, 0 when absent.
	created, finished int64
	// status indexes Statuses, -1 for an unknown status.
	status int8
	// data is the run's label pairs after the app's
	// (workflow_id="…",run_id="…") and then its values, each slot ending
	// at ends[slot+1]; an absent value is empty.
	data string
	ends [nSlots + 1]uint32
}

// NewCache returns an empty cache.
func NewCache() *Cache { return &Cache{} }

// Set stores v's run, rendering it again only if v differs from what the
// cache holds for it.
func (c *Cache) Set(v RunValues) {
	r := run{
		id: v.RunID, workflowID: v.WorkflowID, tokens: v.Tokens, steps: v.Steps,
		elapsed: v.Elapsed, created: unixNano(v.Created), finished: unixNano(v.Finished),
		status: int8(slices.Index(Statuses, v.Status)),
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	a := c.app(v.App, true)
	if i, ok := a.index[v.RunID]; ok {
		old := &a.runs[i]
		if old.sameValues(&r) {
			return
		}
		r.render(v)
		*old = r
		return
	}
	r.render(v)
	a.index[v.RunID] = int32(len(a.runs))
	a.runs = append(a.runs, r)
}

// Delete forgets a run. Deleting a run the cache does not hold is a no-op.
func (c *Cache) Delete(app, runID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a := c.app(app, false)
	if a == nil {
		return
	}
	i, ok := a.index[runID]
	if !ok {
		return
	}
	last := len(a.runs) - 1
	if int(i) != last {
		a.runs[i] = a.runs[last]
		a.index[a.runs[i].id] = i
	}
	a.runs[last] = run{}
	a.runs = a.runs[:last]
	delete(a.index, runID)
	if len(a.runs) == 0 {
		c.deleteApp(app)
	}
}

// DeleteApp forgets every run of an app.
func (c *Cache) DeleteApp(app string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deleteApp(app)
}

// Len returns the number of runs the cache holds.
func (c *Cache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	n := 0
	for _, a := range c.apps {
		n += len(a.runs)
	}
	return n
}

func (c *Cache) deleteApp(app string) {
	c.apps = slices.DeleteFunc(c.apps, func(a *appRuns) bool { return a.name == app })
}

// app returns the app's runs, adding them if create is set.
func (c *Cache) app(name string, create bool) *appRuns {
	i, found := slices.BinarySearchFunc(c.apps, name, func(a *appRuns, name string) int {
		return strings.Compare(a.name, name)
	})
	if found {
		return c.apps[i]
	}
	if !create {
		return nil
	}
	a := &appRuns{name: name, prefix: `app="` + escapeLabel(name) + `",`, index: make(map[string]int32)}
	c.apps = slices.Insert(c.apps, i, a)
	return a
}

func (r *run) sameValues(o *run) bool {
	return r.workflowID == o.workflowID && r.tokens == o.tokens && r.steps == o.steps &&
		r.elapsed == o.elapsed && r.created == o.created && r.finished == o.finished &&
		r.status == o.status
}

// render fills in r.data and r.ends from v. Values are formatted as
// expfmt formats them.
func (r *run) render(v RunValues) {
	b := make([]byte, 0, 96+5*16)
	b = append(b, `workflow_id="`...)
	b = appendEscaped(b, v.WorkflowID)
	b = append(b, `",run_id="`...)
	b = appendEscaped(b, v.RunID)
	b = append(b, '"')
	r.ends[0] = uint32(len(b))
	for slot := range nSlots {
		switch slot {
		case slotCreated:
			if !v.Created.IsZero() {
				b = appendFloat(b, unixSeconds(v.Created))
			}
		case slotElapsed:
			b = appendFloat(b, v.Elapsed.Seconds())
		case slotFinished:
			if !v.Finished.IsZero() {
				b = appendFloat(b, unixSeconds(v.Finished))
			}
		case slotSteps:
			b = appendFloat(b, float64(v.Steps))
		case slotTokens:
			b = appendFloat(b, float64(v.Tokens))
		}
		r.ends[slot+1] = uint32(len(b))
	}
	r.data = string(b)
}

func (r *run) labels() string { return r.data[:r.ends[0]] }

func (r *run) value(slot int) string { return r.data[r.ends[slot]:r.ends[slot+1]] }

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// unixSeconds is how the collector has always turned times into values.
func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// appendFloat formats f as expfmt's text encoder does.
func appendFloat(b []byte, f float64) []byte {
	switch f {
	case 0:
		return append(b, '0')
	case 1:
		return append(b, '1')
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}

// appendEscaped escapes a label value for the text format and
// OpenMetrics alike.
func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b = append(b, `\\`...)
		case '"':
			b = append(b, `\"`...)
		case '\n':
			b = append(b, `\n`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

func escapeLabel(s string) string { return string(appendEscaped(nil, s)) }
