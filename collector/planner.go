package collector

import (
	"cmp"
	"slices"
	"time"
)

// The planner decides which calls a refresh makes to keep every
// unfinished run current at the least cost the server's release allows.
// It is pure: the app hands it what it knows, it hands back a plan.
//
// Cost per refresh, in API calls (see docs/dify-releases.md):
//   - logs at start (Dify 1.11.0 on): pages(new rows + rows back to the
//     oldest covered unfinished run) + one detail call per unfinished run
//     left uncovered; the cover is chosen to minimise the sum.
//   - logs at finish (0.8.2 to 1.10.1): new pages only; a known unfinished
//     run is re-checked with a detail call on a backoff (1, 2, 4, 5 min),
//     in case its log row was lost.
//   - no logs (chatflow, discovery off, before 0.8.2): one detail call per
//     unfinished run, least recently refreshed first, as the deadline
//     allows.

const (
	// recheckMin and recheckMax bound the backoff between detail checks
	// of a run that logs-at-finish releases say has not finished.
	recheckMin = time.Minute
	recheckMax = 5 * time.Minute
)

// candidate is one run the planner may refresh.
type candidate struct {
	id string
	// known is false until the run's values (with its workflow ID) are
	// known: such a run needs a detail call whatever the strategy.
	known bool
	// inLogs is set for a run with a log row; loggedAt is the row's
	// served time (Unix ns), used to count the rows above it.
	inLogs   bool
	loggedAt int64
	// refreshedAt is the exporter's time of the run's last good data.
	refreshedAt time.Time
	// recheckAt is when a logs-at-finish release's run is due a detail
	// check (zero: due now).
	recheckAt time.Time
}

// planInput is what the app knows when planning.
type planInput struct {
	vis       visibility
	discovery bool
	now       time.Time
	// windowFrom is the served time (Unix ns) down to which discovery
	// reads the logs anyway; rows at or after it cost nothing extra.
	windowFrom int64
	// rowsFrom estimates how many log rows have a served time at or
	// after t; ok is false when it cannot tell (rows never read).
	rowsFrom func(t int64) (n int, ok bool)
	pageSize int
	runs     []candidate
}

// plan is what a refresh does beyond discovery's own window.
type plan struct {
	// coverFrom, if non-zero, extends the logs read down to the row at
	// this served time, so its unfinished runs refresh in bulk.
	coverFrom int64
	// covered lists the runs the logs are expected to refresh; one the
	// logs do not return falls back to a detail call.
	covered []string
	// detail lists the runs to fetch one by one, least recently
	// refreshed first, so a refresh cut short continues next time.
	detail []string
	// extraPages is the predicted cost of the cover, in log pages.
	extraPages int
}

func pagesFor(rows, pageSize int) int { return (rows + pageSize - 1) / pageSize }

// makePlan plans one refresh.
func makePlan(in planInput) plan {
	var p plan
	var detail []candidate
	var coverable []candidate // logs-at-start runs that a deeper read could refresh
	for _, c := range in.runs {
		switch {
		case !c.known:
			detail = append(detail, c)
		case !in.discovery || in.vis == noLogs || !c.inLogs && in.vis == logsAtStart:
			detail = append(detail, c)
		case in.vis == logsAtFinish:
			// Its row appears when it finishes; until then its numbers
			// do not change. Re-check now and then in case the row was
			// lost.
			if !in.now.Before(c.recheckAt) {
				detail = append(detail, c)
			}
		case c.loggedAt >= in.windowFrom:
			p.covered = append(p.covered, c.id)
		default:
			coverable = append(coverable, c)
		}
	}
	if len(coverable) > 0 {
		// Newest row first: covering the k newest costs the pages down to
		// the k-th; the rest cost a detail call each.
		slices.SortFunc(coverable, func(a, b candidate) int { return cmp.Compare(b.loggedAt, a.loggedAt) })
		base, ok := in.rowsFrom(in.windowFrom)
		if !ok {
			base = 0
		}
		// Discovery reads at least one page, whatever it finds.
		basePages := max(pagesFor(base, in.pageSize), 1)
		best, bestCost, bestPages := 0, len(coverable), 0
		for k := 1; k <= len(coverable); k++ {
			rows, ok := in.rowsFrom(coverable[k-1].loggedAt)
			if !ok {
				break // rows never read that far back: no estimate
			}
			extra := max(pagesFor(max(rows, base), in.pageSize)-basePages, 0)
			if cost := extra + len(coverable) - k; cost < bestCost {
				best, bestCost, bestPages = k, cost, extra
			}
		}
		for _, c := range coverable[:best] {
			p.covered = append(p.covered, c.id)
		}
		if best > 0 {
			p.coverFrom, p.extraPages = coverable[best-1].loggedAt, bestPages
		}
		detail = append(detail, coverable[best:]...)
	}
	// Least recently refreshed first (never refreshed before all), ties
	// by ID so that the order is the same each time.
	slices.SortFunc(detail, func(a, b candidate) int {
		if c := a.refreshedAt.Compare(b.refreshedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	for _, c := range detail {
		p.detail = append(p.detail, c.id)
	}
	return p
}

// nextRecheck is the backoff after the n-th detail check that found a
// logs-at-finish run still unfinished.
func nextRecheck(n uint8) time.Duration {
	d := recheckMin << min(n, 8)
	return min(d, recheckMax)
}

// rowIndex remembers the served times of the log rows last read, sorted,
// to estimate what reading further back costs. It is bounded: past max
// rows the oldest are dropped (and deeper reads are not estimated).
type rowIndex struct {
	times []int64 // ascending
	max   int
}

// replaceFrom puts the rows read at or after from in place of those the
// index held there.
func (x *rowIndex) replaceFrom(from int64, rows []int64) {
	i, _ := slices.BinarySearch(x.times, from)
	x.times = append(x.times[:i], rows...)
	slices.Sort(x.times[i:])
	if over := len(x.times) - x.max; over > 0 {
		x.times = slices.Delete(x.times, 0, over)
	}
}

// rowsFrom counts the rows at or after t; ok is false when t is older
// than every row the index holds.
func (x *rowIndex) rowsFrom(t int64) (int, bool) {
	if len(x.times) == 0 || t < x.times[0] {
		return 0, false
	}
	i, _ := slices.BinarySearch(x.times, t)
	return len(x.times) - i, true
}
