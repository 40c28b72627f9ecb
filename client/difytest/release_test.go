package difytest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseRelease(t *testing.T) {
	for _, c := range []struct {
		in   string
		want release
	}{
		{"1.13.0", release{1, 13, 0, false}},
		{"1.13.0-fix1", release{1, 13, 0, false}},
		{"v0.6.15", release{0, 6, 15, false}},
		{" 1.14.1 ", release{1, 14, 1, false}},
		{"1.10.1rc2", release{1, 10, 1, false}},
		{"1.13", release{newest: true}},
		{"", release{newest: true}},
		{"latest", release{newest: true}},
		{"1.x.0", release{newest: true}},
	} {
		if got := parseRelease(c.in); got != c.want {
			t.Errorf("parseRelease(%q) = %+v, want %+v", c.in, got, c.want)
		}
	}
	// An unparsable version behaves as the newest release.
	s := newTestServer(t)
	s.SetServerVersion("nightly")
	if got := get(t, s, "/v1/workflows/run/00000000-0000-4000-8000-000000000000", "Bearer "+wfKey); got.status != 404 || got.body != bodyRunNotFound {
		t.Errorf("nightly: %d %s", got.status, got.body)
	}
	if got := get(t, s, "/v1/", ""); !strings.Contains(got.body, `"server_version":"nightly"`) {
		t.Errorf("index: %s", got.body)
	}
	for e, v := range map[Era]string{EraNewest: "1.14.1", EraD: "1.13.3", EraC: "1.9.0", EraB: "1.6.0", EraA: "1.1.3", Era(9): "1.14.1"} {
		if e.Version() != v {
			t.Errorf("%v.Version() = %s, want %s", e, e.Version(), v)
		}
	}
}

// newReleaseServer is a server imitating version v with one workflow app
// (wfKey) and one chatflow app (acKey) and no runs.
func newReleaseServer(t *testing.T, v string) *Server {
	t.Helper()
	s := NewServer()
	t.Cleanup(s.Close)
	s.SetServerVersion(v)
	s.AddApp(wfKey, App{Name: "W", Mode: "workflow"})
	s.AddApp(acKey, App{Name: "A", Mode: "advanced-chat"})
	return s
}

func TestLogEntryByRelease(t *testing.T) {
	// The documented example run, finished a second after it started.
	run := func(exc, trig, typ, loggedAt, details string) string {
		return `{"page":1,"limit":20,"total":1,"has_more":false,"data":[{"id":"LOG","workflow_run":{"id":"fb47b2e6-5e43-4f90-be01-d5c5a088d156","version":"2025-01-16 12:00:00.000000",` +
			`"status":"succeeded","error":null,"elapsed_time":1.23,"total_tokens":150,"total_steps":3,"created_at":1705407629,"finished_at":1705407630` + exc + trig + `},` +
			`"created_from":"service-api","created_by_role":"end_user","created_by_account":null,"created_by_end_user":{"id":"USER","type":"` + typ + `","is_anonymous":false,"session_id":"user_workflow_123"},` +
			`"created_at":` + loggedAt + details + `}]}`
	}
	const exc, trig, details = `,"exceptions_count":0`, `,"triggered_from":"app-run"`, `,"details":null`
	answers := []answer{
		{vLogsAbsent, 404, bodyURLNotFound},
		// Logged at finish, end-user type with an underscore.
		{"1.0.0 1.1.3 1.3.0 1.3.1 1.6.0 1.7.0 1.9.1", 200, run(exc, "", "service_api", "1705407630", "")},
		{"1.10.1", 200, run(exc, trig, "service-api", "1705407630", details)},
		// Logged at start.
		{vAtStart, 200, run(exc, trig, "service-api", "1705407629", details)},
	}
	for _, v := range versions {
		t.Run(v, func(t *testing.T) {
			want := pick(t, answers, v)
			s := newReleaseServer(t, v)
			s.PutRun(wfKey, Run{ID: runA, WorkflowID: wfID, Status: "succeeded", TotalSteps: 3, TotalTokens: 150,
				CreatedAt: t0, FinishedAt: t0.Add(time.Second), ElapsedTime: 1.23, User: "user_workflow_123"})
			got := get(t, s, "/v1/workflows/logs", "Bearer "+wfKey)
			var m struct {
				Data []struct {
					ID   string `json:"id"`
					User struct {
						ID string `json:"id"`
					} `json:"created_by_end_user"`
				} `json:"data"`
			}
			body := want.body
			if got.status == 200 {
				if err := json.Unmarshal([]byte(got.body), &m); err != nil || len(m.Data) != 1 {
					t.Fatalf("%v %s", err, got.body)
				}
				body = strings.NewReplacer("LOG", m.Data[0].ID, "USER", m.Data[0].User.ID).Replace(body)
			}
			if in(vPySpacing, v) {
				body = string(pySpacing([]byte(body)))
			}
			if got.status != want.status || got.body != body {
				t.Errorf("got %d %s\nwant %d %s", got.status, got.body, want.status, body)
			}
		})
	}
}

func TestLogsFilterByRelease(t *testing.T) {
	after := "2024-01-16T12:21:29Z" // t0 + 1 minute
	cases := []struct {
		name    string
		q       url.Values
		answers []answer // body: the total
	}{
		{"created_at__after", url.Values{"created_at__after": {after}}, []answer{
			{"0.8.1", 404, ""},
			{"1.0.0", 200, "3"}, // ignored: the whole history
			{"1.0.1 1.1.3 1.3.0 1.3.1 1.6.0 1.7.0 1.9.1 1.10.1 1.11.0 1.12.1 1.13.0 1.13.1 1.14.1", 200, "2"},
		}},
		{"created_at__before", url.Values{"created_at__before": {after}}, []answer{
			{"0.8.1", 404, ""},
			{"1.0.0", 200, "3"},
			{"1.0.1 1.1.3 1.3.0 1.3.1 1.6.0 1.7.0 1.9.1 1.10.1 1.11.0 1.12.1 1.13.0 1.13.1 1.14.1", 200, "2"},
		}},
		{"invalid bound", url.Values{"created_at__after": {"yesterday"}}, []answer{
			{"0.8.1", 404, ""},
			{"1.0.0", 200, "3"},
			{"1.0.1 1.1.3 1.3.0 1.3.1 1.6.0 1.7.0 1.9.1 1.10.1 1.11.0 1.12.1 1.13.0 1.13.1 1.14.1", 400, ""},
		}},
		{"session filter", url.Values{"created_by_end_user_session_id": {"alice"}}, []answer{
			{"0.8.1", 404, ""},
			{"1.0.0 1.0.1 1.1.3 1.3.0 1.3.1", 200, "3"}, // from 1.5.0
			{"1.6.0 1.7.0 1.9.1 1.10.1 1.11.0 1.12.1 1.13.0 1.13.1 1.14.1", 200, "1"},
		}},
	}
	for _, v := range append([]string{"1.0.1"}, versions...) {
		s := newReleaseServer(t, v)
		for i, user := range []string{"alice", "bob", "carol"} {
			at := t0.Add(time.Duration(i) * time.Minute)
			s.PutRun(wfKey, Run{Status: "succeeded", CreatedAt: at, FinishedAt: at, User: user})
		}
		for _, c := range cases {
			t.Run(c.name+"/"+v, func(t *testing.T) {
				want := pick(t, c.answers, v)
				p, r := getLogs(t, s, wfKey, c.q)
				if r.status != want.status || r.status == 200 && fmt.Sprint(p.Total) != want.body {
					t.Errorf("got %d total %d (%s), want %d total %s", r.status, p.Total, r.body, want.status, want.body)
				}
			})
		}
	}
}

func TestLogRowsByRelease(t *testing.T) {
	clock := t0.Add(10 * time.Minute)
	for _, v := range strings.Fields(vLogsPresent) {
		t.Run(v, func(t *testing.T) {
			atStart := in(vAtStart, v)
			if atStart == in(vAtFinish, v) {
				t.Fatalf("%s is in neither or both of vAtStart and vAtFinish", v)
			}
			s := newReleaseServer(t, v)
			s.SetClock(func() time.Time { return clock })
			id := NewRunID()
			s.PutRun(wfKey, Run{ID: id, Status: "running", CreatedAt: t0, TotalTokens: 50, TotalSteps: 2})
			p, _ := getLogs(t, s, wfKey, nil)
			switch {
			case atStart && (p.Total != 1 || p.Data[0].WorkflowRun.Status != "running" || p.Data[0].CreatedAt != t0.Unix()):
				t.Errorf("running run, logged at start: %+v", p)
			case !atStart && p.Total != 0:
				t.Errorf("running run listed before it finished: %+v", p)
			}
			finished := t0.Add(90 * time.Second)
			s.PutRun(wfKey, Run{ID: id, Status: "succeeded", CreatedAt: t0, FinishedAt: finished, TotalTokens: 70})
			s.PutRun(wfKey, Run{ID: id, Status: "succeeded", CreatedAt: t0, FinishedAt: finished, TotalTokens: 71})
			wantLogged := finished
			if atStart {
				wantLogged = t0
			}
			p, _ = getLogs(t, s, wfKey, nil)
			if p.Total != 1 || p.Data[0].WorkflowRun.ID != id || p.Data[0].CreatedAt != wantLogged.Unix() || p.Data[0].WorkflowRun.TotalTokens != 71 {
				t.Errorf("finished run: %+v, want one row logged at %d", p, wantLogged.Unix())
			}

			// Never a row for debugger runs nor for chatflow runs.
			s.PutRun(wfKey, Run{Status: "succeeded", CreatedFrom: "debugger", CreatedAt: t0, FinishedAt: t0})
			s.PutRun(acKey, Run{Status: "succeeded", CreatedAt: t0, FinishedAt: t0})
			if p, _ := getLogs(t, s, acKey, nil); p.Total != 0 {
				t.Errorf("chatflow run listed: %+v", p)
			}
			// A lost row (client disconnected) exists only at finish.
			lost := NewRunID()
			s.PutRun(wfKey, Run{ID: lost, Status: "running", CreatedAt: t0.Add(time.Second)})
			s.PutRun(wfKey, Run{ID: lost, Status: "failed", CreatedAt: t0.Add(time.Second), FinishedAt: finished, NoLogRow: true})
			s.PutRun(wfKey, Run{ID: lost, Status: "failed", CreatedAt: t0.Add(time.Second), FinishedAt: finished})
			// A run finished with no FinishedAt is logged at the host's clock;
			// one put with no CreatedAt was created at it.
			noTimes := NewRunID()
			s.PutRun(wfKey, Run{ID: noTimes, Status: "stopped"})
			if r, _ := s.Run(wfKey, noTimes); !r.CreatedAt.Equal(clock) {
				t.Errorf("default CreatedAt %v, want the clock %v", r.CreatedAt, clock)
			}
			p, _ = getLogs(t, s, wfKey, url.Values{"limit": {"100"}})
			got := map[string]int64{}
			for _, d := range p.Data {
				got[d.WorkflowRun.ID] = d.CreatedAt
			}
			want := map[string]int64{id: wantLogged.Unix(), noTimes: clock.Unix()}
			if atStart {
				want[lost] = t0.Add(time.Second).Unix()
			}
			if fmt.Sprint(got) != fmt.Sprint(want) || p.Total != len(want) {
				t.Errorf("rows (run → logged at) %v, want %v", got, want)
			}
		})
	}
}

func TestRunRowNumbers(t *testing.T) {
	type numbers struct {
		Status      string  `json:"status"`
		TotalTokens int     `json:"total_tokens"`
		TotalSteps  int     `json:"total_steps"`
		ElapsedTime float64 `json:"elapsed_time"`
		FinishedAt  *int64  `json:"finished_at"`
		Error       *string `json:"error"`
		Outputs     any     `json:"outputs"`
	}
	fin := t0.Add(8 * time.Second).Unix()
	steps := []struct {
		name string
		put  Run
		want numbers
		// wantOutputs per outputs form: object (1.13.0 on) and raw string.
		object, raw any
	}{
		{"running with numbers put: the row has none yet",
			Run{Status: "running", TotalTokens: 100, TotalSteps: 5, ElapsedTime: 3, FinishedAt: t0.Add(time.Hour), Error: "x", Outputs: map[string]any{"a": 1}},
			numbers{Status: "running"}, map[string]any{}, nil},
		{"paused: tokens and steps written, elapsed 0",
			Run{Status: "paused", TotalTokens: 40, TotalSteps: 2, ElapsedTime: 0.5, Outputs: map[string]any{"partial": 1}},
			numbers{Status: "paused", TotalTokens: 40, TotalSteps: 2}, map[string]any{}, "{}"},
		{"resumed: the pause's numbers stay",
			Run{Status: "running", TotalTokens: 90, TotalSteps: 4, ElapsedTime: 6},
			numbers{Status: "running", TotalTokens: 40, TotalSteps: 2}, map[string]any{}, "{}"},
		{"finished: everything written",
			Run{Status: "failed", TotalTokens: 120, TotalSteps: 6, ElapsedTime: 7.5, FinishedAt: t0.Add(8 * time.Second), Error: "boom", Outputs: map[string]any{"r": 2}},
			numbers{Status: "failed", TotalTokens: 120, TotalSteps: 6, ElapsedTime: 7.5, FinishedAt: &fin, Error: ptr("boom")},
			map[string]any{"r": 2.0}, `{"r": 2}`},
	}
	for _, v := range []string{"1.12.1", "1.13.0", "1.14.1"} {
		t.Run(v, func(t *testing.T) {
			s := newReleaseServer(t, v)
			id := NewRunID()
			for _, st := range steps {
				r := st.put
				r.ID, r.CreatedAt = id, t0
				s.PutRun(wfKey, r)
				want := st.want
				want.Outputs = st.raw
				if v != "1.12.1" {
					want.Outputs = st.object
				}
				var detail numbers
				got := get(t, s, "/v1/workflows/run/"+id, "Bearer "+wfKey)
				if err := json.Unmarshal([]byte(got.body), &detail); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(detail, want) {
					t.Errorf("%s: detail\n got %+v\nwant %+v", st.name, detail, want)
				}
				// The log entry reads the same row (logs have no outputs).
				var page struct {
					Data []struct {
						Run numbers `json:"workflow_run"`
					} `json:"data"`
				}
				got = get(t, s, "/v1/workflows/logs", "Bearer "+wfKey)
				if err := json.Unmarshal([]byte(got.body), &page); err != nil || len(page.Data) != 1 {
					t.Fatalf("%v %s", err, got.body)
				}
				want.Outputs = nil
				if !reflect.DeepEqual(page.Data[0].Run, want) {
					t.Errorf("%s: log entry\n got %+v\nwant %+v", st.name, page.Data[0].Run, want)
				}
				// Run still returns what was put.
				if stored, _ := s.Run(wfKey, id); stored.TotalTokens != r.TotalTokens || stored.Status != r.Status {
					t.Errorf("%s: Run() = %+v, want the put %+v", st.name, stored, r)
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// Dify's processes run in UTC: a run's own times are served right in
// every setting; only a log row's created_at follows the database
// session's zone, and the filter compares as the database does.
func TestDatabaseZone(t *testing.T) {
	created, finished := t0, t0.Add(time.Minute)
	iso := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	naive := func(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05") }
	for _, db := range []struct {
		name string
		kind Database
	}{{"postgres", PostgreSQL}, {"mysql", MySQL}} {
		for _, zone := range []time.Duration{0, 8 * time.Hour, -5 * time.Hour, 5*time.Hour + 45*time.Minute} {
			for _, v := range []string{"1.1.3", "1.10.1", "1.14.1"} {
				t.Run(fmt.Sprint(db.name, "/", zone, "/", v), func(t *testing.T) {
					s := newReleaseServer(t, v)
					s.SetDatabase(db.kind, zone)
					s.PutRun(wfKey, Run{ID: runA, Status: "succeeded", CreatedAt: created, FinishedAt: finished})
					got := get(t, s, "/v1/workflows/run/"+runA, "Bearer "+wfKey)
					var d struct {
						CreatedAt  any `json:"created_at"`
						FinishedAt any `json:"finished_at"`
					}
					if err := json.Unmarshal([]byte(got.body), &d); err != nil {
						t.Fatalf("%v: %s", err, got.body)
					}
					wantC, wantF := any(float64(created.Unix())), any(float64(finished.Unix()))
					if v == "1.1.3" {
						wantC, wantF = "Tue, 16 Jan 2024 12:20:29 -0000", "Tue, 16 Jan 2024 12:21:29 -0000"
					}
					if d.CreatedAt != wantC || d.FinishedAt != wantF {
						t.Errorf("detail created_at %v finished_at %v, want %v %v: run times never shift", d.CreatedAt, d.FinishedAt, wantC, wantF)
					}
					logged := created // the row's true time
					if v != "1.14.1" {
						logged = finished // written at finish
					}
					served := logged.Add(zone) // naive in the session zone, read as UTC
					p, r := getLogs(t, s, wfKey, nil)
					if r.status != 200 || p.Total != 1 {
						t.Fatalf("logs: %d %s", r.status, r.body)
					}
					var e struct {
						Data []struct {
							CreatedAt int64 `json:"created_at"`
							Run       struct {
								CreatedAt  int64 `json:"created_at"`
								FinishedAt int64 `json:"finished_at"`
							} `json:"workflow_run"`
						} `json:"data"`
					}
					_ = json.Unmarshal([]byte(r.body), &e)
					if got := e.Data[0]; got.CreatedAt != served.Unix() || got.Run.CreatedAt != created.Unix() || got.Run.FinishedAt != finished.Unix() {
						t.Errorf("entry %+v, want the row at %d, the run's times unshifted (%d, %d)", got, served.Unix(), created.Unix(), finished.Unix())
					}
					// A naive bound is compared in the rows' own frame on
					// both databases; an offset-aware one as a true instant
					// on PostgreSQL only.
					awareFrame := served
					if db.kind == PostgreSQL {
						awareFrame = logged
					}
					for _, c := range []struct {
						bound string
						at    time.Time
					}{
						{naive(served), served}, {naive(served.Add(time.Second)), time.Time{}},
						{iso(awareFrame), awareFrame}, {iso(awareFrame.Add(time.Second)), time.Time{}},
					} {
						want := 1
						if c.at.IsZero() {
							want = 0
						}
						if p, _ := getLogs(t, s, wfKey, url.Values{"created_at__after": {c.bound}}); p.Total != want {
							t.Errorf("created_at__after=%s: total %d, want %d", c.bound, p.Total, want)
						}
					}
				})
			}
		}
	}
}

// A row's date can be broken apart from its run's (a glitch of the
// database's clock, a restored backup): it is served as set.
func TestBrokenLogDate(t *testing.T) {
	s := newReleaseServer(t, DefaultVersion)
	s.SetDatabase(MySQL, 8*time.Hour)
	for _, at := range []time.Time{time.Unix(9999999999, 0), time.Unix(0, 0), time.Unix(-86400, 0)} {
		id := NewRunID()
		s.PutRun(wfKey, Run{ID: id, Status: "running", CreatedAt: t0, LogCreatedAt: at})
		_, r := getLogs(t, s, wfKey, url.Values{"keyword": {id}})
		var e struct {
			Data []struct {
				CreatedAt int64 `json:"created_at"`
				Run       struct {
					CreatedAt int64 `json:"created_at"`
				} `json:"workflow_run"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(r.body), &e); err != nil || len(e.Data) != 1 {
			t.Fatalf("%v %s", err, r.body)
		}
		if e.Data[0].CreatedAt != at.Unix() || e.Data[0].Run.CreatedAt != t0.Unix() {
			t.Errorf("row at %d, run at %d; want %d and %d", e.Data[0].CreatedAt, e.Data[0].Run.CreatedAt, at.Unix(), t0.Unix())
		}
	}
}

func TestClock(t *testing.T) {
	behind := time.Now().Add(-5 * time.Hour).Truncate(time.Second)
	s := newTestServer(t)
	for _, path := range []string{"/v1/", "/v1/info", "/v1/nope", "/nope"} {
		got := get(t, s, path, "Bearer "+wfKey)
		d, err := http.ParseTime(got.header.Get("Date"))
		if err != nil || time.Since(d).Abs() > time.Minute {
			t.Errorf("%s: Date %q with the default clock", path, got.header.Get("Date"))
		}
	}
	s.SetClock(func() time.Time { return behind })
	s.SetFault(EndpointInfo, Fault{Status: 503})
	for _, path := range []string{"/v1/", "/v1/info", "/v1/workflows/run/" + runA, "/v1/nope", "/nope"} {
		got := get(t, s, path, "Bearer "+wfKey)
		if d := got.header.Get("Date"); d != behind.UTC().Format(http.TimeFormat) {
			t.Errorf("%s: Date %q, want %q", path, d, behind.UTC().Format(http.TimeFormat))
		}
	}
	// A front end (nginx) dates the answers with its own clock.
	ahead := time.Now().Add(time.Hour).Truncate(time.Second)
	s.SetFrontEndClock(func() time.Time { return ahead })
	if d := get(t, s, "/v1/info", "Bearer "+wfKey).header.Get("Date"); d != ahead.UTC().Format(http.TimeFormat) {
		t.Errorf("behind a front end: Date %q, want its clock %q", d, ahead.UTC().Format(http.TimeFormat))
	}
	s.SetFrontEndClock(nil)
	s.SetClock(nil)
	if d, _ := http.ParseTime(get(t, s, "/v1/", "").header.Get("Date")); time.Since(d).Abs() > time.Minute {
		t.Errorf("SetClock(nil) did not restore time.Now: Date %v", d)
	}
}

func TestLogTies(t *testing.T) {
	s := newReleaseServer(t, DefaultVersion)
	s.SetSeed(1)
	older, newer := NewRunID(), NewRunID()
	tie := map[string]bool{NewRunID(): true, NewRunID(): true, NewRunID(): true}
	s.PutRun(wfKey, Run{ID: older, Status: "succeeded", CreatedAt: t0.Add(-time.Second)})
	for id := range tie {
		s.PutRun(wfKey, Run{ID: id, Status: "succeeded", CreatedAt: t0})
	}
	s.PutRun(wfKey, Run{ID: newer, Status: "succeeded", CreatedAt: t0.Add(time.Second)})
	orders := map[string]bool{}
	for range 30 {
		p, _ := getLogs(t, s, wfKey, nil)
		ids := p.runIDs()
		if len(ids) != 5 || ids[0] != newer || ids[4] != older || !tie[ids[1]] || !tie[ids[2]] || !tie[ids[3]] || ids[1] == ids[2] || ids[2] == ids[3] || ids[1] == ids[3] {
			t.Fatalf("page %v", ids)
		}
		orders[strings.Join(ids[1:4], ",")] = true
	}
	if len(orders) < 2 {
		t.Errorf("ties came in one order in 30 answers: %v", orders)
	}
	// Paging one row at a time through the tie can repeat or skip one.
	incomplete := 0
	for range 30 {
		seen := map[string]bool{}
		for page := 2; page <= 4; page++ {
			p, _ := getLogs(t, s, wfKey, url.Values{"limit": {"1"}, "page": {fmt.Sprint(page)}})
			if len(p.Data) != 1 || !tie[p.Data[0].WorkflowRun.ID] {
				t.Fatalf("page %d: %v", page, p.runIDs())
			}
			seen[p.Data[0].WorkflowRun.ID] = true
		}
		if len(seen) < 3 {
			incomplete++
		}
	}
	if incomplete == 0 {
		t.Error("paging through a tie never repeated a row in 30 passes")
	}
}

func TestDeleteRunKeepLog(t *testing.T) {
	s := newReleaseServer(t, DefaultVersion)
	gone, kept := NewRunID(), NewRunID()
	s.PutRun(wfKey, Run{ID: gone, Status: "succeeded", CreatedAt: t0, FinishedAt: t0})
	s.PutRun(wfKey, Run{ID: kept, Status: "succeeded", CreatedAt: t0.Add(time.Second), FinishedAt: t0})
	s.DeleteRunKeepLog(wfKey, gone)
	got := get(t, s, "/v1/workflows/logs", "Bearer "+wfKey)
	var p struct {
		Total int `json:"total"`
		Data  []struct {
			Run         *struct{ ID string } `json:"workflow_run"`
			CreatedFrom string               `json:"created_from"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(got.body), &p); err != nil {
		t.Fatal(err)
	}
	if p.Total != 2 || len(p.Data) != 2 || p.Data[0].Run == nil || p.Data[0].Run.ID != kept || p.Data[1].Run != nil ||
		p.Data[1].CreatedFrom != "service-api" || !strings.Contains(got.body, `"workflow_run":null`) {
		t.Errorf("logs %s", got.body)
	}
	// A status filter joins the run rows: the orphan is not listed.
	if q, _ := getLogs(t, s, wfKey, url.Values{"status": {"succeeded"}}); q.Total != 1 || q.Data[0].WorkflowRun.ID != kept {
		t.Errorf("status filter: %+v", q)
	}
	if _, ok := s.Run(wfKey, gone); ok {
		t.Error("Run finds the deleted run")
	}
	if got := get(t, s, "/v1/workflows/run/"+gone, "Bearer "+wfKey); got.status != 404 {
		t.Errorf("detail of the deleted run: %d", got.status)
	}
}
