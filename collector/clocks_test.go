package collector

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dify-exporter/dify_exporter/client"
	"github.com/dify-exporter/dify_exporter/client/difytest"
)

// Dify's clocks as real releases have them (see clocks.go): each case
// runs an app through refreshes with new runs arriving between them and
// checks discovery, counters, exported times and the cost in log pages.

// clockScenario drives one app. host is Dify's host clock; trueAt puts a
// time on it back on the exporter's clock (the truth exported times must
// match).
type clockScenario struct {
	f    *fixture
	host func() time.Time
	skew time.Duration // host clock minus the exporter's
	// runs are every run put, with whether a log row lists it yet.
	runs      []string
	unlisted  map[string]bool
	running   []string
	finishing int // runs finished since the first refresh
	pages     []int
}

func newClockScenario(t *testing.T, version string, skew time.Duration) *clockScenario {
	f := withVersion(newFixture(t, withDiscovery(1000)), version)
	s := &clockScenario{f: f, skew: skew, unlisted: map[string]bool{}}
	s.host = func() time.Time { return f.now().Add(skew) }
	f.srv.SetClock(s.host)
	return s
}

// put adds a run on Dify's host clock: finished (created 3 s ago, took 2
// s) or still running.
func (s *clockScenario) put(running bool, ago time.Duration) string {
	id := difytest.NewRunID()
	created := s.host().Add(-ago - 3*time.Second)
	r := difytest.Run{ID: id, WorkflowID: wfID, Status: "succeeded", TotalTokens: 10, TotalSteps: 2,
		CreatedAt: created, FinishedAt: created.Add(2 * time.Second), ElapsedTime: 2}
	if running {
		r.Status, r.FinishedAt, r.ElapsedTime = "running", time.Time{}, 0
		s.running = append(s.running, id)
	}
	s.f.srv.PutRun(testKey, r)
	s.runs = append(s.runs, id)
	return id
}

// finishOldest finishes the oldest running run, now.
func (s *clockScenario) finishOldest() {
	if len(s.running) == 0 {
		return
	}
	id := s.running[0]
	s.running = s.running[1:]
	r, _ := s.f.srv.Run(testKey, id)
	r.Status, r.FinishedAt, r.ElapsedTime, r.TotalTokens = "succeeded", s.host(), 5, 20
	s.f.srv.PutRun(testKey, r)
	s.finishing++
}

// refresh refreshes and records the log pages it read.
func (s *clockScenario) refresh(t *testing.T) {
	t.Helper()
	before := s.f.srv.Requests(difytest.EndpointLogs)
	s.f.refresh(t)
	s.pages = append(s.pages, s.f.srv.Requests(difytest.EndpointLogs)-before)
}

// arrive puts the runs of one scrape interval: one that finished, one
// still going, and the oldest running one finishes.
func (s *clockScenario) arrive() {
	s.f.advance(15 * time.Second)
	s.put(false, 0)
	s.finishing++
	s.put(true, 0)
	s.finishOldest()
}

// checkRuns checks that every run a log row lists is exposed, with its
// times within a minute of the truth when timesRight.
func (s *clockScenario) checkRuns(t *testing.T, step string, atFinish, timesRight bool) {
	t.Helper()
	for _, id := range s.runs {
		r, _ := s.f.srv.Run(testKey, id)
		listed := !atFinish || client.Status(r.Status).Terminal()
		if !listed {
			continue
		}
		if got := status(s.f, id); got != r.Status {
			t.Errorf("%s: run %s status %q, want %q: not discovered", step, id, got, r.Status)
			continue
		}
		if !timesRight {
			continue
		}
		for _, m := range []struct {
			name string
			at   time.Time
		}{{"dify_workflow_run_created_timestamp_seconds", r.CreatedAt}, {"dify_workflow_run_finished_timestamp_seconds", r.FinishedAt}} {
			if m.at.IsZero() {
				continue
			}
			truth := m.at.Add(-s.skew)
			got := value(t, s.f.reg, m.name, map[string]string{"run_id": id})
			if d := math.Abs(got - float64(truth.Unix())); d > 60 {
				t.Errorf("%s: run %s %s = %v, %.0f s off the truth", step, id, m.name, got, d)
			}
		}
	}
}

func (s *clockScenario) checkCounters(t *testing.T, step string) {
	t.Helper()
	if got := finished(t, s.f); int(got) != s.finishing {
		t.Errorf("%s: finished_total = %v, want %d", step, got, s.finishing)
	}
}

// optional is a gauge's value, and whether it is exposed.
func optional(t *testing.T, f *fixture, name string) (float64, bool) {
	t.Helper()
	v, ok, err := lookup(f.reg, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	return v, ok
}

func TestClocksAsReleasesHaveThem(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(*difytest.Server)
		skew  time.Duration // Dify's host clock minus the exporter's
		quiet bool          // the newest row is 2 h old at start
		// wantRows is the exposed rows' offset; wantCorrection what is
		// added to the runs' times.
		wantRows, wantCorrection time.Duration
		note                     string
	}{
		{name: "UTC"},
		{name: "MySQL metadb in UTC+8", setup: func(s *difytest.Server) { s.SetDatabase(difytest.MySQL, 8*time.Hour) },
			wantRows: 8 * time.Hour, note: "log rows are dated 8h0m0s late: Dify's database session is not in UTC"},
		{name: "MySQL metadb in UTC-5", setup: func(s *difytest.Server) { s.SetDatabase(difytest.MySQL, -5*time.Hour) },
			wantRows: -5 * time.Hour, note: "log rows are dated 5h0m0s early"},
		{name: "PostgreSQL session in UTC+8", setup: func(s *difytest.Server) { s.SetDatabase(difytest.PostgreSQL, 8*time.Hour) },
			wantRows: 8 * time.Hour, note: "DB_SESSION_TIMEZONE_OVERRIDE"},
		{name: "PostgreSQL session in UTC+5:45", setup: func(s *difytest.Server) { s.SetDatabase(difytest.PostgreSQL, 5*time.Hour+45*time.Minute) },
			wantRows: 5*time.Hour + 45*time.Minute, note: "5h45m0s late"},
		{name: "host clock 10 min behind", skew: -10 * time.Minute, wantCorrection: 10 * time.Minute,
			note: "Dify's host clock is 10m0s behind the exporter's: check NTP there; exported run times are corrected"},
		{name: "quiet UTC Dify, newest row 2 h old", quiet: true},
	} {
		for _, version := range []string{"1.10.1", "1.13.3"} {
			t.Run(tc.name+"/"+version, func(t *testing.T) {
				atFinish := version == "1.10.1"
				s := newClockScenario(t, version, tc.skew)
				if tc.setup != nil {
					tc.setup(s.f.srv)
				}
				if tc.quiet {
					s.put(false, 2*time.Hour)
				} else {
					for i := range 30 {
						s.put(i%5 == 0, time.Duration(i)*10*time.Second)
					}
				}
				s.refresh(t)
				s.checkRuns(t, "first refresh", atFinish, true)
				for i := range 4 {
					s.arrive()
					s.refresh(t)
					step := fmt.Sprintf("refresh %d", i+2)
					s.checkRuns(t, step, atFinish, true)
					s.checkCounters(t, step)
				}
				for i, n := range s.pages {
					if n != 1 {
						t.Errorf("refresh %d read %d log pages, want 1 as in UTC (pages %v)", i+1, n, s.pages)
					}
				}
				if got, ok := optional(t, s.f, "dify_exporter_log_rows_offset_seconds"); !ok || got != tc.wantRows.Seconds() {
					t.Errorf("rows offset = %v (exposed %v), want %v", got, ok, tc.wantRows.Seconds())
				}
				if got := value(t, s.f.reg, "dify_exporter_dify_time_offset_seconds", nil); got != tc.wantCorrection.Seconds() {
					t.Errorf("correction = %v, want %v", got, tc.wantCorrection.Seconds())
				}
				if got, ok := optional(t, s.f, "dify_exporter_dify_clock_skew_seconds"); !ok || math.Abs(got-tc.skew.Seconds()) > 2 {
					t.Errorf("clock skew = %v (exposed %v), want %v", got, ok, tc.skew.Seconds())
				}
				note := s.f.exp.App("translator").Status().TimeOffsetNote
				if tc.note == "" && note != "" || !strings.Contains(note, tc.note) {
					t.Errorf("note = %q, want %q", note, tc.note)
				}
				if strings.Contains(note, "TZ=") {
					t.Errorf("note %q tells to set TZ, which changes nothing in Dify", note)
				}
				if got := value(t, s.f.reg, "dify_exporter_run_errors_total", map[string]string{"reason": reasonBadTimestamp}); got != 0 {
					t.Errorf("bad_timestamp = %v, want 0: every row here is dated right", got)
				}
			})
		}
	}
}

// A row dated far from its run (a clock glitch, a restored backup) is
// counted and its run tracked, but never stalls discovery: every run that
// arrives after it is discovered on the next refresh.
func TestBrokenRowDatesDoNotStallDiscovery(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version string
		at      func(now time.Time) time.Time
		counted bool // the server returns the row (the filter keeps it)
	}{
		{"300 s ahead", "1.13.3", func(now time.Time) time.Time { return now.Add(300 * time.Second) }, true},
		{"a day ahead", "1.13.3", func(now time.Time) time.Time { return now.Add(24 * time.Hour) }, true},
		{"ten years ahead", "1.13.3", func(now time.Time) time.Time { return now.AddDate(10, 0, 0) }, true},
		{"9999999999", "1.13.3", func(time.Time) time.Time { return time.Unix(9999999999, 0) }, true},
		{"at 0, filtered out", "1.13.3", func(time.Time) time.Time { return time.Unix(0, 0) }, false},
		{"at 0, no filter (1.0.0)", "1.0.0", func(time.Time) time.Time { return time.Unix(0, 0) }, true},
		{"negative, no filter (1.0.0)", "1.0.0", func(time.Time) time.Time { return time.Unix(-86400, 0) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newClockScenario(t, tc.version, 0)
			for i := range 10 {
				s.put(false, time.Duration(i)*10*time.Second)
			}
			s.refresh(t)
			s.f.advance(5 * time.Second)
			// A running run whose row is dated wrong.
			broken := difytest.NewRunID()
			created := s.host().Add(-time.Second)
			s.f.srv.PutRun(testKey, difytest.Run{ID: broken, WorkflowID: wfID, Status: "running", CreatedAt: created, LogCreatedAt: tc.at(created)})
			s.runs = append(s.runs, broken)
			s.running = append([]string{broken}, s.running...)
			for i := range 3 {
				s.arrive()
				s.refresh(t)
				step := fmt.Sprintf("refresh %d", i+2)
				if !tc.counted && i == 0 {
					s.runs = slices.DeleteFunc(s.runs, func(id string) bool { return id == broken })
					s.finishing-- // the broken run is never listed
				}
				s.checkRuns(t, step, tc.version == "1.0.0", true)
				s.checkCounters(t, step)
			}
			want := 0.0
			if tc.counted {
				want = 1
			}
			if got := value(t, s.f.reg, "dify_exporter_run_errors_total", map[string]string{"reason": reasonBadTimestamp}); got != want {
				t.Errorf("bad_timestamp = %v, want %v (once, however often the row is read)", got, want)
			}
			if got := value(t, s.f.reg, "dify_up", nil); got != 1 {
				t.Errorf("dify_up = %v", got)
			}
		})
	}
}

// A Date header is believed only within sane bounds and when the runs
// seen arriving agree: a front end with a wrong clock neither stalls
// discovery nor shifts exported times once the runs contradict it.
func TestDateHeaderOfAFrontEnd(t *testing.T) {
	for _, tc := range []struct {
		name  string
		front time.Duration // the front end's clock minus the exporter's
		host  time.Duration // Dify's host clock minus the exporter's
		// timesRightFrom is the refresh from which exported times are
		// right (0: never checked); wantSkew the skew shown at the end.
		timesRightFrom int
		wantSkew       time.Duration
	}{
		{name: "front end 1 h ahead", front: time.Hour, timesRightFrom: 2},
		{name: "front end 5 min ahead", front: 5 * time.Minute, timesRightFrom: 2},
		{name: "front end in 1970", front: -time.Duration(time.Now().Unix()) * time.Second, timesRightFrom: 1},
		// Here nothing says which clock is right but the runs: the skew
		// is shown, times stay as Dify serves them.
		{name: "Dify host 5 h behind a right front end", host: -5 * time.Hour, wantSkew: -5 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newClockScenario(t, "1.13.3", tc.host)
			s.f.srv.SetFrontEndClock(func() time.Time { return s.f.now().Add(tc.front) })
			for i := range 20 {
				s.put(i%4 == 0, time.Duration(i)*20*time.Second)
			}
			s.refresh(t)
			s.checkRuns(t, "first refresh", false, tc.timesRightFrom == 1)
			for i := range 4 {
				s.arrive()
				s.refresh(t)
				step := fmt.Sprintf("refresh %d", i+2)
				s.checkRuns(t, step, false, tc.timesRightFrom != 0 && i+2 >= tc.timesRightFrom)
				s.checkCounters(t, step)
			}
			if got, ok := optional(t, s.f, "dify_exporter_dify_clock_skew_seconds"); !ok || math.Abs(got-tc.wantSkew.Seconds()) > 60 {
				t.Errorf("clock skew = %v (exposed %v), want %v within a minute", got, ok, tc.wantSkew.Seconds())
			}
			if got := value(t, s.f.reg, "dify_exporter_dify_time_offset_seconds", nil); got != 0 {
				t.Errorf("correction = %v, want 0: the Date header is not believed", got)
			}
			if tc.host != 0 {
				if note := s.f.exp.App("translator").Status().TimeOffsetNote; !strings.Contains(note, "5h0m") || !strings.Contains(note, "behind") {
					t.Errorf("note = %q, want the host clock 5 h behind named", note)
				}
			}
		})
	}
}

// A page made only of undecodable rows is skipped and counted; the pages
// after it are read, and the rows it hid are read on the next refresh.
func TestUndecodablePageDoesNotEndThePass(t *testing.T) {
	for _, first := range []bool{true, false} {
		t.Run(fmt.Sprint("first look ", first), func(t *testing.T) {
			s := newClockScenario(t, "1.13.3", 0)
			garbage := func() {
				var rows []string
				for range 100 {
					rows = append(rows, `{"workflow_run":{"id":"not-a-uuid","status":"succeeded"},"created_at":"never"}`)
				}
				s.f.srv.SetFault(difytest.EndpointLogs, difytest.Fault{Status: 200, Times: 1,
					Body: `{"page":1,"limit":100,"total":300,"has_more":true,"data":[` + strings.Join(rows, ",") + `]}`})
			}
			if !first {
				s.refresh(t) // an empty app: the exporter starts first
			}
			for i := range 300 {
				s.put(false, time.Duration(300-i)*100*time.Millisecond)
			}
			if !first {
				s.finishing += 300
			}
			garbage()
			s.refresh(t)
			if got := value(t, s.f.reg, "dify_exporter_tracked_runs", map[string]string{"source": "discovered"}); got != 200 {
				t.Errorf("after the garbage page: %v runs tracked, want the 200 of the pages after it", got)
			}
			if got := value(t, s.f.reg, "dify_exporter_run_errors_total", map[string]string{"reason": "bad_response"}); got != 100 {
				t.Errorf("bad_response = %v, want 100", got)
			}
			s.f.advance(15 * time.Second)
			s.refresh(t)
			s.checkRuns(t, "next refresh", false, true)
			s.checkCounters(t, "next refresh")
		})
	}
}

// What is believed of the host clock, step by step: the Date header
// within sane bounds, unless the runs seen arriving contradict it.
func TestClockStateBelief(t *testing.T) {
	base := time.Unix(1_800_000_000, 0)
	type step struct {
		date     time.Duration // Date header minus the exporter's clock; 0: none
		arrivals []time.Duration
		at       time.Duration // the exporter's time since base
	}
	for _, tc := range []struct {
		name           string
		cfg            AppConfig
		steps          []step
		wantSkew       time.Duration
		wantKnown      bool
		wantCorrection time.Duration
	}{
		{name: "nothing measured"},
		{name: "Date 10 min behind, no runs", steps: []step{{date: -10 * time.Minute}},
			wantSkew: -10 * time.Minute, wantKnown: true, wantCorrection: 10 * time.Minute},
		{name: "Date 30 s behind: noise", steps: []step{{date: -30 * time.Second}},
			wantSkew: -30 * time.Second, wantKnown: true},
		{name: "Date in 1970: ignored", steps: []step{{date: -56 * 365 * 24 * time.Hour}}},
		{name: "Date 10 min behind, runs agree", steps: []step{
			{date: -10 * time.Minute}, {date: -10 * time.Minute, at: 15 * time.Second, arrivals: []time.Duration{-10*time.Minute - 5*time.Second, -10*time.Minute - 9*time.Second}}},
			wantSkew: -10 * time.Minute, wantKnown: true, wantCorrection: 10 * time.Minute},
		{name: "Date 1 h ahead, runs say right", steps: []step{
			{date: time.Hour}, {date: time.Hour, at: 15 * time.Second, arrivals: []time.Duration{-5 * time.Second, -9 * time.Second}}},
			wantSkew: 0, wantKnown: true},
		{name: "runs contradict, then an hour without arrivals", steps: []step{
			{date: time.Hour}, {date: time.Hour, at: 15 * time.Second, arrivals: []time.Duration{-5 * time.Second}},
			{date: time.Hour, at: 2 * time.Hour}},
			wantSkew: time.Hour, wantKnown: true, wantCorrection: -time.Hour},
		{name: "arrivals that disagree with each other say nothing", steps: []step{
			{date: -10 * time.Minute}, {date: -10 * time.Minute, at: 15 * time.Second, arrivals: []time.Duration{-5 * time.Second, 24 * time.Hour}}},
			wantSkew: -10 * time.Minute, wantKnown: true, wantCorrection: 10 * time.Minute},
		{name: "--dify.time-offset=0: measured, not corrected", cfg: AppConfig{FixedTimeOffset: true},
			steps: []step{{date: -10 * time.Minute}}, wantSkew: -10 * time.Minute, wantKnown: true},
		{name: "--dify.time-offset=-5h: applied as given", cfg: AppConfig{FixedTimeOffset: true, TimeOffset: -5 * time.Hour},
			steps: []step{{date: -10 * time.Minute}}, wantSkew: -10 * time.Minute, wantKnown: true, wantCorrection: -5 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClockState(tc.cfg)
			prev := base
			for _, s := range tc.steps {
				now := base.Add(s.at)
				if s.date != 0 {
					c.observeDate(now.Add(s.date), now)
				}
				for _, a := range s.arrivals {
					// a is the run's time on Dify's clock minus now.
					c.observeArrival(now.Add(a), prev, now)
				}
				c.endRefresh(now)
				prev = now
			}
			if c.skewKnown != tc.wantKnown || c.skew != tc.wantSkew {
				t.Errorf("skew %v (known %v), want %v (known %v)", c.skew, c.skewKnown, tc.wantSkew, tc.wantKnown)
			}
			if got := c.correction(); got != tc.wantCorrection {
				t.Errorf("correction %v, want %v", got, tc.wantCorrection)
			}
		})
	}
}
