package difytest

import (
	"crypto/rand"
	"encoding/hex"
	"maps"
	mathrand "math/rand"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// App is a Dify app reachable with one API key.
type App struct {
	// Mode: "workflow", "advanced-chat", "chat", "agent-chat",
	// "completion", "agent".
	Name, Description, Mode, AuthorName string
	Tags                                []string
	// Unpublished makes GET /v1/parameters answer 400 app_unavailable, as
	// an app with no published workflow does.
	Unpublished bool
}

// Run is a workflow run as the server stores it.
type Run struct {
	ID, WorkflowID string
	// Version is the logs' workflow_run.version: "draft" or a publish
	// timestamp string; default "2025-01-16 12:00:00.000000".
	Version string
	// Status is any string (unknown statuses are allowed).
	Status  string
	Inputs  map[string]any
	Outputs map[string]any
	// Error "" is written as null.
	Error                   string
	TotalSteps, TotalTokens int
	CreatedAt               time.Time
	// FinishedAt zero is written as null.
	FinishedAt time.Time
	// ElapsedTime is in seconds.
	ElapsedTime float64
	// CreatedFrom is "service-api" (default), "web-app", "installed-app",
	// or "debugger" (debugger runs get no log row).
	CreatedFrom string
	// User is the end user's session id (the "user" the caller sent); it
	// appears in the log row's created_by_end_user.session_id. Default
	// "difytest-user".
	User string
	// NoLogRow loses the run's log row, as releases up to 1.10.1 do when
	// the streaming client disconnects before the run finishes: when the
	// run is first put with a finished status, no row is written, and
	// none is written later. Releases from 1.11.0 write the row at start
	// and ignore NoLogRow.
	NoLogRow bool
	// LogCreatedAt, if set, is the log row's created_at exactly as served,
	// whatever the database's clock and session zone: a row dated by a
	// clock glitch or restored from a backup. time.Unix(0, 0) and earlier
	// times are kept as given.
	LogCreatedAt time.Time
}

// Endpoint names a route of the server, for faults and request counts.
type Endpoint string

// The routes the server answers.
const (
	EndpointRun        Endpoint = "run"        // GET /v1/workflows/run/{id}
	EndpointLogs       Endpoint = "logs"       // GET /v1/workflows/logs
	EndpointInfo       Endpoint = "info"       // GET /v1/info
	EndpointIndex      Endpoint = "index"      // GET /v1/ (no auth)
	EndpointParameters Endpoint = "parameters" // GET /v1/parameters
	EndpointHealth     Endpoint = "health"     // GET /health (outside /v1, no auth)
)

var endpoints = []Endpoint{EndpointRun, EndpointLogs, EndpointInfo, EndpointIndex, EndpointParameters, EndpointHealth}

const (
	defaultRunVersion  = "2025-01-16 12:00:00.000000"
	defaultCreatedFrom = "service-api"
	defaultUser        = "difytest-user"
)

type appState struct {
	key        string
	app        App
	revoked    bool
	disabled   string
	workflowID string
	endUserID  string
	accountID  string
	runs       map[string]*runRec // by normalized run id
	logs       []*logRec          // sorted by (createdAt, seq) ascending
}

// runRec is a stored run: the Run as the test put it, and the run row as
// Dify's database holds it (row), which is what the API serves.
type runRec struct {
	app    *appState
	run    Run
	inputs string // pyDumps(run.Inputs)
	row    runRow
	log    *logRec
	// finished is set by the first put with a finished status: on
	// releases that write the log row at finish, that put writes it (or
	// loses it, NoLogRow) once and for all.
	finished bool
}

// runRow is what the workflow_runs row holds. Dify writes a run's numbers
// only when it pauses or finishes: while running, the row keeps what the
// last pause (or nothing) wrote.
type runRow struct {
	status, error string
	steps, tokens int
	elapsed       float64
	finishedAt    time.Time
	outputs       map[string]any // nil: the column is NULL
	outputsJSON   string         // pyDumps(outputs), "" when NULL
}

// logRec is a workflow_app_logs row. created_from and the end user belong
// to the row; run is nil once the run row is gone (see DeleteRunKeepLog).
type logRec struct {
	id          string
	createdAt   time.Time
	seq         uint64
	createdFrom string
	user        string
	endUserID   string
	run         *runRec
}

// Server is an in-memory Dify service API.
type Server struct {
	ts      *httptest.Server
	handler http.Handler
	done    chan struct{}
	once    sync.Once

	mu      sync.RWMutex
	version string
	b       behaviour
	clock   func() time.Time // the Dify host's clock (API and database)
	// frontEnd, if set, is the clock of a proxy in front of Dify that
	// dates every response's Date header itself, as nginx does.
	frontEnd func() time.Time
	db       Database
	dbZone   time.Duration        // the database session's zone, east of UTC
	apps     map[string]*appState // by key
	global   map[string]*runRec   // by normalized run id, for releases before 1.7.0
	seq      uint64

	rmu sync.Mutex
	rng *mathrand.Rand // orders ties in the logs

	fmu    sync.Mutex
	faults map[Endpoint]*faultState

	counts   map[Endpoint]*atomic.Int64
	inflight atomic.Int64 // handlers running, for leak checks in tests
	lmu      sync.Mutex
	last     map[Endpoint]*http.Request
}

// NewServer starts a server on a loopback httptest.Server. Close it when
// done.
func NewServer() *Server {
	s := newServer()
	s.ts = httptest.NewServer(s.handler)
	return s
}

func newServer() *Server {
	s := &Server{
		done:    make(chan struct{}),
		version: DefaultVersion,
		b:       behaviourOf(DefaultVersion),
		clock:   time.Now,
		apps:    map[string]*appState{},
		global:  map[string]*runRec{},
		rng:     mathrand.New(mathrand.NewSource(time.Now().UnixNano())),
		faults:  map[Endpoint]*faultState{},
		counts:  map[Endpoint]*atomic.Int64{},
		last:    map[Endpoint]*http.Request{},
	}
	for _, e := range endpoints {
		s.counts[e] = new(atomic.Int64)
	}
	s.handler = http.HandlerFunc(s.serveHTTP)
	return s
}

// URL is the API base URL including "/v1", e.g. "http://127.0.0.1:41234/v1".
func (s *Server) URL() string { return s.ts.URL + "/v1" }

// Close shuts the server down. It does not wait for hanging faults: they
// are released first, and open connections are closed.
func (s *Server) Close() {
	s.once.Do(func() {
		close(s.done)
		if s.ts != nil {
			s.ts.CloseClientConnections()
			s.ts.Close()
		}
	})
}

// Handler is the server's handler, for mounting it elsewhere (paths start
// with /v1).
func (s *Server) Handler() http.Handler { return s.handler }

// AddApp adds an app reachable with key (like "app-xxxx"), or replaces the
// app's settings if the key exists (its runs are kept, and a revoked key
// becomes valid again).
func (s *Server) AddApp(key string, app App) {
	s.mu.Lock()
	defer s.mu.Unlock()
	app.Tags = append([]string(nil), app.Tags...)
	if a, ok := s.apps[key]; ok {
		a.app = app
		a.revoked = false
		return
	}
	s.apps[key] = &appState{
		key: key, app: app,
		workflowID: NewRunID(), endUserID: NewRunID(), accountID: NewRunID(),
		runs: map[string]*runRec{},
	}
}

// RevokeKey makes key answer 401 "Access token is invalid".
func (s *Server) RevokeKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.apps[key]; ok {
		a.revoked = true
	}
}

// DisableApp makes the app answer 403 forbidden with message (e.g. "The
// app's API service has been disabled."); "" enables it again.
func (s *Server) DisableApp(key, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.apps[key]; ok {
		a.disabled = message
	}
}

// SetServerVersion selects the Dify release the server imitates (default
// [DefaultVersion]), as "MAJOR.MINOR.PATCH" with any suffix ("1.13.0-fix1"
// is 1.13.0); an unparsable version behaves as the newest release. GET
// /v1/, /health and the X-Version header report v as given. Log rows
// already written stay; the release decides how later puts write them.
func (s *Server) SetServerVersion(v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.version = v
	s.b = behaviourOf(v)
}

// SetEra is SetServerVersion(e.Version()): a release representative of e.
func (s *Server) SetEra(e Era) { s.SetServerVersion(e.Version()) }

// Database is the kind of Dify's metadata database, which decides how the
// logs' created_at__after/__before filter compares an offset-aware value.
type Database int

const (
	// PostgreSQL compares an offset-aware filter value as a true instant
	// (the naive column read in the session zone) and a naive one in the
	// column's own frame.
	PostgreSQL Database = iota
	// MySQL (and OceanBase): PyMySQL drops the value's offset, so any
	// value is compared in the column's own frame.
	MySQL
)

// SetDatabase sets the metadata database's kind and its session's zone
// (east of UTC). Dify forces its own processes to UTC, so the run times
// it writes (Python's naive UTC now) are right whatever the zone; but a
// log row's created_at is the database's current_timestamp in the session
// zone, stored naive and served as if it were UTC: in a session at UTC+8
// every log row is served 8 h late. That happens with a MySQL/OceanBase
// metadb (Dify 1.10.1 on sets no session zone) whose server is not in UTC,
// or PostgreSQL with DB_SESSION_TIMEZONE_OVERRIDE emptied (1.14.0 on). Rows
// already written keep their dates; the filter follows the new setting.
func (s *Server) SetDatabase(kind Database, sessionZone time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.db, s.dbZone = kind, sessionZone.Truncate(time.Second)
}

// SetFrontEndClock puts a proxy in front of Dify that dates each
// response's Date header with its own clock (nginx replaces the upstream
// Date); nil lets the API's host clock date it again.
func (s *Server) SetFrontEndClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frontEnd = now
}

// SetClock sets the Dify host's own clock (default time.Now), shared by
// the API and its database. It dates the HTTP Date header of every
// response (unless a front end does, see SetFrontEndClock), runs put
// without CreatedAt, and log rows written at finish for runs put without
// FinishedAt; so a host whose clock is wrong can be modelled. nil restores
// time.Now.
func (s *Server) SetClock(now func() time.Time) {
	if now == nil {
		now = time.Now
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clock = now
}

// SetSeed seeds the random order in which log rows with equal created_at
// are returned (Postgres orders ties arbitrarily, differently from one
// query to the next); by default the order is seeded from the time.
func (s *Server) SetSeed(seed int64) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.rng = mathrand.New(mathrand.NewSource(seed))
}

func (s *Server) now() time.Time {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.clock()
}

// behaviour is the imitated release's behaviour.
func (s *Server) current() behaviour {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.b
}

// PutRun inserts or replaces a run of the app with key. Missing fields get
// defaults (ID a new UUID, WorkflowID the app's, Version, CreatedFrom, User,
// CreatedAt the server's clock). PutRun panics if the key was never added.
//
// The API serves the run row, which, as in Dify, gets a run's numbers
// only when it pauses or finishes: a put with status "running" (or
// "scheduled") changes only the status, so a running run reads 0 tokens,
// 0 steps, elapsed_time 0.0 and finished_at null, or the tokens and steps
// of its last pause; a "paused" put writes its tokens and steps, with
// elapsed_time 0, outputs {} and finished_at null; any other status
// writes everything. [Server.Run] still returns the Run as put.
//
// Log rows (never for debugger runs, nor for apps whose mode is not
// "workflow": chatflow runs get none in any release) are written, from
// 1.11.0, by the first put of a run, with log created_at = r.CreatedAt;
// up to 1.10.1, by its first put with a status other than running, paused
// or scheduled, with log created_at = r.FinishedAt (the clock if zero),
// unless r.NoLogRow.
func (s *Server) PutRun(key string, r Run) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.apps[key]
	if !ok {
		panic("difytest: PutRun for an app key that was never added")
	}
	if r.ID == "" {
		r.ID = NewRunID()
	}
	if r.WorkflowID == "" {
		r.WorkflowID = a.workflowID
	}
	if r.Version == "" {
		r.Version = defaultRunVersion
	}
	if r.CreatedFrom == "" {
		r.CreatedFrom = defaultCreatedFrom
	}
	if r.User == "" {
		r.User = defaultUser
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = s.clock()
	}
	r.Inputs = maps.Clone(r.Inputs)
	r.Outputs = maps.Clone(r.Outputs)
	id := normID(r.ID)
	rec, exists := a.runs[id]
	if !exists {
		rec = &runRec{app: a}
		a.runs[id] = rec
	}
	rec.run = r
	if r.Inputs == nil {
		rec.inputs = "{}"
	} else {
		rec.inputs = pyDumps(r.Inputs)
	}
	rec.row.write(r)
	s.global[id] = rec

	ended := !unfinished(r.Status)
	firstEnd := ended && !rec.finished
	if ended {
		rec.finished = true
	}
	if r.CreatedFrom == "debugger" || a.app.Mode != "workflow" || rec.log != nil {
		return
	}
	switch {
	case s.b.logAtStart && !exists:
		s.writeLog(rec, r.CreatedAt, r.LogCreatedAt)
	case !s.b.logAtStart && firstEnd && !r.NoLogRow:
		at := r.FinishedAt
		if at.IsZero() {
			at = s.clock()
		}
		s.writeLog(rec, at, r.LogCreatedAt)
	}
}

// unfinished reports whether a run with status st has not written its
// numbers: Dify writes them at pause and at the end.
func unfinished(st string) bool { return st == "running" || st == "scheduled" || st == "paused" }

// write updates the run row for a put of r.
func (w *runRow) write(r Run) {
	w.status = r.Status
	switch r.Status {
	case "running", "scheduled":
		w.elapsed, w.finishedAt = 0, time.Time{}
		return
	case "paused":
		*w = runRow{status: r.Status, steps: r.TotalSteps, tokens: r.TotalTokens, outputs: map[string]any{}, outputsJSON: "{}"}
		return
	}
	*w = runRow{status: r.Status, error: r.Error, steps: r.TotalSteps, tokens: r.TotalTokens,
		elapsed: r.ElapsedTime, finishedAt: r.FinishedAt, outputs: r.Outputs}
	if r.Outputs != nil {
		w.outputsJSON = pyDumps(r.Outputs)
	}
}

// writeLog writes rec's log row, written at the true time at: the column
// holds the database's time in its session zone, naive (or served, if
// set, when the row's date is broken). Call with s.mu held.
func (s *Server) writeLog(rec *runRec, at, served time.Time) {
	a := rec.app
	s.seq++
	column := at.Add(s.dbZone)
	if !served.IsZero() {
		column = served
	}
	l := &logRec{id: NewRunID(), createdAt: column.UTC(), seq: s.seq, createdFrom: rec.run.CreatedFrom,
		user: rec.run.User, endUserID: a.endUserID, run: rec}
	if l.createdFrom == "web-app" {
		l.endUserID = NewRunID()
	}
	rec.log = l
	a.insertLog(l)
}

// DeleteRun removes a run and its log row (as Dify's log cleanup does).
func (s *Server) DeleteRun(key, id string) { s.deleteRun(key, id, false) }

// DeleteRunKeepLog removes a run's row but keeps its log row, whose
// entry then has "workflow_run": null (a run row deleted or archived
// apart from its log). Filtering the logs by status or keyword joins the
// run rows, so such entries are listed only without those filters.
func (s *Server) DeleteRunKeepLog(key, id string) { s.deleteRun(key, id, true) }

func (s *Server) deleteRun(key, id string, keepLog bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.apps[key]
	if !ok {
		return
	}
	n := normID(id)
	rec, ok := a.runs[n]
	if !ok {
		return
	}
	delete(a.runs, n)
	if s.global[n] == rec {
		delete(s.global, n)
	}
	if rec.log == nil {
		return
	}
	if keepLog {
		rec.log.run = nil
	} else {
		a.removeLog(rec.log)
	}
}

// Run returns a copy of a stored run, as it was put.
func (s *Server) Run(key, id string) (Run, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	a, ok := s.apps[key]
	if !ok {
		return Run{}, false
	}
	rec, ok := a.runs[normID(id)]
	if !ok {
		return Run{}, false
	}
	r := rec.run
	r.Inputs = maps.Clone(r.Inputs)
	r.Outputs = maps.Clone(r.Outputs)
	return r, true
}

// Requests is the number of requests received for e, including failed and
// faulted ones.
func (s *Server) Requests(e Endpoint) int {
	if c, ok := s.counts[e]; ok {
		return int(c.Load())
	}
	return 0
}

// ResetRequests sets every request count to zero and forgets the last
// requests.
func (s *Server) ResetRequests() {
	for _, c := range s.counts {
		c.Store(0)
	}
	s.lmu.Lock()
	clear(s.last)
	s.lmu.Unlock()
}

// LastRequest is a copy (method, URL, headers; no body) of the last request
// for e, or nil.
func (s *Server) LastRequest(e Endpoint) *http.Request {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	r := s.last[e]
	if r == nil {
		return nil
	}
	return r.Clone(r.Context())
}

// NewRunID returns a random UUID v4 string.
func NewRunID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
}

// parseUUID reports whether s is a UUID as Postgres' uuid type accepts it
// (hex digits, optionally in braces, with or without the hyphens of the
// canonical form) and returns it in canonical lower-case form.
func parseUUID(s string) (string, bool) {
	if len(s) >= 2 && s[0] == '{' && s[len(s)-1] == '}' {
		s = s[1 : len(s)-1]
	}
	var digits []byte
	switch len(s) {
	case 36:
		if s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
			return "", false
		}
		digits = []byte(s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:])
	case 32:
		digits = []byte(s)
	default:
		return "", false
	}
	var b [16]byte
	if _, err := hex.Decode(b[:], digits); err != nil {
		return "", false
	}
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], true
}

// normID is the map key of a run id: canonical if it is a UUID, else as is.
func normID(id string) string {
	if n, ok := parseUUID(id); ok {
		return n
	}
	return id
}

func (l *logRec) before(o *logRec) bool {
	if !l.createdAt.Equal(o.createdAt) {
		return l.createdAt.Before(o.createdAt)
	}
	return l.seq < o.seq
}

func (a *appState) insertLog(l *logRec) {
	n := len(a.logs)
	if n == 0 || a.logs[n-1].before(l) {
		a.logs = append(a.logs, l)
		return
	}
	i := sort.Search(n, func(i int) bool { return l.before(a.logs[i]) })
	a.logs = append(a.logs, nil)
	copy(a.logs[i+1:], a.logs[i:])
	a.logs[i] = l
}

func (a *appState) removeLog(l *logRec) {
	i := sort.Search(len(a.logs), func(i int) bool { return !a.logs[i].before(l) })
	for ; i < len(a.logs); i++ {
		if a.logs[i] == l {
			a.logs = append(a.logs[:i], a.logs[i+1:]...)
			return
		}
	}
}

// commonHeaders sets the headers Dify sends on every response.
func (s *Server) commonHeaders(w http.ResponseWriter) {
	s.mu.RLock()
	v, now := s.version, s.clock
	if s.frontEnd != nil {
		now = s.frontEnd
	}
	s.mu.RUnlock()
	h := w.Header()
	h.Set("X-Version", v)
	h.Set("X-Env", "PRODUCTION")
	h.Set("Date", now().UTC().Format(http.TimeFormat))
}
