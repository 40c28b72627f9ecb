package collector

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// rowsEvery makes an index of n rows one second apart ending at end.
func rowsEvery(end time.Time, n int) *rowIndex {
	x := &rowIndex{max: maxIndexedRows}
	rows := make([]int64, n)
	for i := range rows {
		rows[i] = end.Add(-time.Duration(n-1-i) * time.Second).UnixNano()
	}
	x.replaceFrom(rows[0], rows)
	return x
}

func TestMakePlan(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	ago := func(d time.Duration) int64 { return now.Add(-d).UnixNano() }
	// 3,000 rows a second apart: the newest 100 fit one page.
	idx := rowsEvery(now, 3000)
	window := ago(30 * time.Second) // discovery reads ~30 rows anyway
	unfinished := func(id string, logged time.Duration) candidate {
		return candidate{id: id, known: true, inLogs: true, loggedAt: ago(logged)}
	}
	tests := []struct {
		name       string
		vis        visibility
		discovery  bool
		runs       []candidate
		wantCover  []string
		wantDetail []string
		wantPages  int
	}{
		{
			name: "in discovery's window: free", vis: logsAtStart, discovery: true,
			runs:      []candidate{unfinished("a", 5*time.Second), unfinished("b", 20*time.Second)},
			wantCover: []string{"a", "b"},
		},
		{
			name: "a page further down is cheaper than its 150 detail calls", vis: logsAtStart, discovery: true,
			runs: func() []candidate {
				var c []candidate
				for i := range 150 {
					c = append(c, unfinished(fmt.Sprintf("r%03d", i), time.Duration(40+i)*time.Second))
				}
				return c
			}(),
			wantCover: func() []string {
				var ids []string
				for i := range 150 {
					ids = append(ids, fmt.Sprintf("r%03d", i))
				}
				return ids
			}(),
			wantPages: 1,
		},
		{
			name: "a run paused for days costs one detail call, not pages", vis: logsAtStart, discovery: true,
			runs:       []candidate{unfinished("new", 10*time.Second), unfinished("old", 2900*time.Second)},
			wantCover:  []string{"new"},
			wantDetail: []string{"old"},
		},
		{
			name: "older than every row read: no estimate, a detail call", vis: logsAtStart, discovery: true,
			runs:       []candidate{unfinished("ancient", 48*time.Hour)},
			wantDetail: []string{"ancient"},
		},
		{
			name: "not yet known: a detail call whatever the strategy", vis: logsAtStart, discovery: true,
			runs:       []candidate{{id: "x", inLogs: true, loggedAt: ago(time.Second)}},
			wantDetail: []string{"x"},
		},
		{
			name: "registered without a row yet: a detail call", vis: logsAtStart, discovery: true,
			runs:       []candidate{{id: "reg", known: true}},
			wantDetail: []string{"reg"},
		},
		{
			name: "logs at finish: an unfinished run waits for its row", vis: logsAtFinish, discovery: true,
			runs: []candidate{{id: "waiting", known: true, recheckAt: now.Add(time.Minute)}},
		},
		{
			name: "logs at finish: a re-check falls due", vis: logsAtFinish, discovery: true,
			runs:       []candidate{{id: "due", known: true, recheckAt: now.Add(-time.Second)}},
			wantDetail: []string{"due"},
		},
		{
			name: "no logs: detail calls, least recently refreshed first", vis: noLogs, discovery: false,
			runs: []candidate{
				{id: "b", known: true, refreshedAt: now.Add(-time.Minute)},
				{id: "c", known: true, refreshedAt: now.Add(-time.Second)},
				{id: "a", known: true, refreshedAt: now.Add(-time.Minute)},
				{id: "never", known: true},
			},
			wantDetail: []string{"never", "a", "b", "c"},
		},
		{
			name: "discovery off on a release with logs: detail calls", vis: logsAtStart, discovery: false,
			runs:       []candidate{unfinished("a", time.Second)},
			wantDetail: []string{"a"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := makePlan(planInput{vis: tc.vis, discovery: tc.discovery, now: now, windowFrom: window,
				rowsFrom: idx.rowsFrom, pageSize: 100, runs: tc.runs})
			got := slices.Clone(p.covered)
			slices.Sort(got)
			if !slices.Equal(got, tc.wantCover) {
				t.Errorf("covered = %v, want %v", got, tc.wantCover)
			}
			if !slices.Equal(p.detail, tc.wantDetail) {
				t.Errorf("detail = %v, want %v", p.detail, tc.wantDetail)
			}
			if p.extraPages != tc.wantPages {
				t.Errorf("extra pages = %d, want %d", p.extraPages, tc.wantPages)
			}
			if len(tc.wantCover) > 0 && p.extraPages > 0 && p.coverFrom == 0 {
				t.Errorf("extra pages planned but no coverFrom")
			}
		})
	}
}

// The cover is the cheapest split: pages down to the k-th newest row plus
// one detail call for each older run, for every k.
func TestMakePlanMinimisesCalls(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	idx := rowsEvery(now, 5000)
	for _, spread := range []time.Duration{time.Second, 7 * time.Second, 40 * time.Second} {
		var runs []candidate
		for i := range 60 {
			runs = append(runs, candidate{id: fmt.Sprint(i), known: true, inLogs: true,
				loggedAt: now.Add(-time.Duration(i+1) * spread).UnixNano()})
		}
		in := planInput{vis: logsAtStart, discovery: true, now: now, windowFrom: now.UnixNano(),
			rowsFrom: idx.rowsFrom, pageSize: 100, runs: runs}
		p := makePlan(in)
		got := p.extraPages + len(p.detail)
		// Brute force over every split, counting the pages beyond the one
		// discovery reads anyway.
		best := len(runs)
		for k := 1; k <= len(runs); k++ {
			rows, _ := idx.rowsFrom(runs[k-1].loggedAt)
			if c := pagesFor(rows, 100) - 1 + len(runs) - k; c < best {
				best = c
			}
		}
		if got != best {
			t.Errorf("spread %v: plan costs %d calls, the best split %d", spread, got, best)
		}
	}
}

func TestNextRecheckBacksOff(t *testing.T) {
	var got []time.Duration
	for n := range uint8(6) {
		got = append(got, nextRecheck(n))
	}
	want := []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 5 * time.Minute, 5 * time.Minute, 5 * time.Minute}
	if !slices.Equal(got, want) {
		t.Errorf("backoff = %v, want %v", got, want)
	}
}

func TestRowIndex(t *testing.T) {
	x := rowIndex{max: 5}
	x.replaceFrom(10, []int64{10, 20, 30})
	x.replaceFrom(25, []int64{40, 30, 50}) // replaces 30, adds 40 and 50
	if !slices.Equal(x.times, []int64{10, 20, 30, 40, 50}) {
		t.Fatalf("times = %v", x.times)
	}
	x.replaceFrom(60, []int64{60, 70}) // past max: the oldest go
	if !slices.Equal(x.times, []int64{30, 40, 50, 60, 70}) {
		t.Fatalf("times = %v, want the newest 5", x.times)
	}
	for _, tc := range []struct {
		t    int64
		n    int
		know bool
	}{{30, 5, true}, {45, 3, true}, {71, 0, true}, {29, 0, false}} {
		if n, ok := x.rowsFrom(tc.t); n != tc.n || ok != tc.know {
			t.Errorf("rowsFrom(%d) = %d, %v; want %d, %v", tc.t, n, ok, tc.n, tc.know)
		}
	}
}

func TestParseRelease(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		vis  visibility
	}{
		{"1.14.1", "1.14.1", logsAtStart},
		{"v1.11.0", "1.11.0", logsAtStart},
		{"1.10.1", "1.10.1", logsAtFinish},
		{"1.13.0-fix1", "1.13.0", logsAtStart},
		{"0.8.2", "0.8.2", logsAtFinish},
		{"0.8.1", "0.8.1", noLogs},
		{"0.6.15", "0.6.15", noLogs},
		{"", "unknown", logsAtStart},
		{"main", "unknown", logsAtStart},
		{"1.x", "unknown", logsAtStart},
	} {
		r := parseRelease(tc.in)
		if r.String() != tc.want {
			t.Errorf("parseRelease(%q) = %v, want %v", tc.in, r, tc.want)
		}
		if c := capabilitiesOf(r, "workflow"); c.vis != tc.vis {
			t.Errorf("%q: visibility %v, want %v", tc.in, c.vis, tc.vis)
		}
		if c := capabilitiesOf(r, "advanced-chat"); c.vis != noLogs {
			t.Errorf("%q chatflow: visibility %v, want none", tc.in, c.vis)
		}
	}
}
