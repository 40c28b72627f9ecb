package difytest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Era selects which Dify version's behaviour the server imitates
// (dify-api.md §1 table). The zero value is the newest.
type Era int

const (
	// EraNewest is newest main: unknown or foreign run → 404
	// {"code":"not_found","message":"Workflow run not found.","status":404};
	// int timestamps; outputs an object ({} while paused or none); inputs a
	// JSON string; run detail and logs require app mode workflow or
	// advanced-chat, else 400 not_workflow_app.
	EraNewest Era = iota
	// EraD is like EraNewest for the run detail (404, int timestamps,
	// outputs object, finished_at int or null), but the logs route has no
	// mode check.
	EraD
	// EraC looks runs up scoped to the key's app, but an unknown or foreign
	// run is 200 with every field null; int timestamps; inputs and outputs
	// raw JSON strings (outputs null if none).
	EraC
	// EraB is not app-scoped: any run of any app is readable by any
	// workflow or advanced-chat key; 200 all-null for unknown; int
	// timestamps; raw strings. Logs lack triggered_from and details.
	EraB
	// EraA (2024-07): workflow mode only (advanced-chat gets 400
	// not_workflow_app); not app-scoped; 200 all-null; the run's
	// created_at/finished_at are RFC-822 strings like
	// "Tue, 16 Jan 2024 12:20:29 -0000"; raw strings; /info has only name
	// and description; logs lack triggered_from and details.
	EraA
)

func (e Era) String() string {
	switch e {
	case EraNewest:
		return "newest"
	case EraD:
		return "D"
	case EraC:
		return "C"
	case EraB:
		return "B"
	case EraA:
		return "A"
	}
	return fmt.Sprintf("Era(%d)", int(e))
}

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
	defaultVersion     = "1.16.0"
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

type runRec struct {
	app     *appState
	run     Run
	inputs  string // pyDumps(run.Inputs)
	outputs string // pyDumps(run.Outputs), "" when nil
	log     *logRec
}

type logRec struct {
	id        string
	createdAt time.Time
	seq       uint64
	endUserID string
	run       *runRec
}

// Server is an in-memory Dify service API.
type Server struct {
	ts      *httptest.Server
	handler http.Handler
	done    chan struct{}
	once    sync.Once

	mu      sync.RWMutex
	era     Era
	version string
	apps    map[string]*appState // by key
	global  map[string]*runRec   // by normalized run id, for eras A and B
	seq     uint64

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
		version: defaultVersion,
		apps:    map[string]*appState{},
		global:  map[string]*runRec{},
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

// SetEra selects the Dify version the server imitates.
func (s *Server) SetEra(e Era) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.era = e
}

// SetServerVersion sets the version in GET /v1/ and the X-Version header
// (default "1.16.0").
func (s *Server) SetServerVersion(v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.version = v
}

// PutRun inserts or replaces a run of the app with key. Missing fields get
// defaults (ID a new UUID, WorkflowID the app's, Version, CreatedFrom, User,
// CreatedAt now). The first insert of a run also writes its log row (log
// created_at = r.CreatedAt), except for debugger runs and for apps whose
// mode is not "workflow" (Dify writes log rows only in the workflow
// pipeline, dify-api.md §2a). PutRun panics if the key was never added.
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
		r.CreatedAt = time.Now()
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
	rec.outputs = ""
	if r.Outputs != nil {
		rec.outputs = pyDumps(r.Outputs)
	}
	s.global[id] = rec
	if !exists && r.CreatedFrom != "debugger" && a.app.Mode == "workflow" {
		s.seq++
		l := &logRec{id: NewRunID(), createdAt: r.CreatedAt, seq: s.seq, endUserID: a.endUserID, run: rec}
		if r.CreatedFrom == "web-app" {
			l.endUserID = NewRunID()
		}
		rec.log = l
		a.insertLog(l)
	}
}

// DeleteRun removes a run and its log row (as Dify's log cleanup does).
func (s *Server) DeleteRun(key, id string) {
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
	if rec.log != nil {
		a.removeLog(rec.log)
	}
}

// Run returns a copy of a stored run.
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
	v := s.version
	s.mu.RUnlock()
	h := w.Header()
	h.Set("X-Version", v)
	h.Set("X-Env", "PRODUCTION")
}
