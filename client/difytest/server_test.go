package difytest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	wfKey   = "app-workflow"
	acKey   = "app-chatflow"
	chatKey = "app-chat"
	runA    = "fb47b2e6-5e43-4f90-be01-d5c5a088d156"
	runChat = "0c0b8a3e-3a57-4b8e-9d3c-2f1d7e6a5b41" // belongs to the chatflow app
	wfID    = "7c3e33d4-2a8b-4e5f-9b1a-d3c6e8f12345"
)

var t0 = time.Unix(1705407629, 0).UTC()

func newTestServer(t testing.TB) *Server {
	t.Helper()
	s := NewServer()
	t.Cleanup(s.Close)
	s.AddApp(wfKey, App{Name: "Translator", Description: "Translates", Mode: "workflow", AuthorName: "Dify Team", Tags: []string{"customer-service"}})
	s.AddApp(acKey, App{Name: "Support", Mode: "advanced-chat"})
	s.AddApp(chatKey, App{Name: "Chat", Mode: "chat"})
	s.PutRun(wfKey, Run{
		ID: runA, WorkflowID: wfID, Status: "succeeded",
		Inputs:     map[string]any{"query": "Translate this to French"},
		Outputs:    map[string]any{"result": "Traduisez ceci en francais"},
		TotalSteps: 3, TotalTokens: 150, CreatedAt: t0, FinishedAt: t0.Add(time.Second), ElapsedTime: 1.23,
	})
	s.PutRun(acKey, Run{ID: runChat, WorkflowID: wfID, Status: "running", CreatedAt: t0, Inputs: map[string]any{}})
	return s
}

type result struct {
	status int
	header http.Header
	body   string
}

func get(t testing.TB, s *Server, path, auth string) result {
	t.Helper()
	return do(t, http.DefaultClient, "GET", s.ts.URL+path, auth)
}

func do(t testing.TB, c *http.Client, method, u, auth string) result {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, u, err)
	}
	return result{resp.StatusCode, resp.Header, strings.TrimSuffix(string(b), "\n")}
}

const (
	bodyNotWorkflow   = `{"code":"not_workflow_app","message":"Please check if your app mode matches the right API route.","status":400}`
	bodyRunNotFound   = `{"code":"not_found","message":"Workflow run not found.","status":404}`
	bodyURLNotFound   = `{"code":"not_found","message":"The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.","status":404}`
	bodyAllNull       = `{"id":null,"workflow_id":null,"status":null,"inputs":null,"outputs":null,"error":null,"total_steps":null,"total_tokens":null,"created_at":null,"finished_at":null,"elapsed_time":null}`
	bodyAllNullZero   = `{"id":null,"workflow_id":null,"status":null,"inputs":null,"outputs":null,"error":null,"total_steps":0,"total_tokens":0,"created_at":null,"finished_at":null,"elapsed_time":null}`
	body500Old        = `{"message":"Internal Server Error","code":"unknown"}`
	body500           = `{"message":"Internal Server Error","code":"unknown","status":500}`
	body500Werkzeug   = `{"code":"internal_server_error","message":"The server encountered an internal error and was unable to complete your request. Either the server is overloaded or there is an error in the application.","status":500}`
	bodyAuthMissing   = `{"code":"unauthorized","message":"Authorization header must be provided and start with 'Bearer'","status":401}`
	bodyAuthScheme    = `{"code":"unauthorized","message":"Authorization scheme must be 'Bearer'","status":401}`
	bodyAuthInvalid   = `{"code":"unauthorized","message":"Access token is invalid","status":401}`
	bodyEmptyLogs     = `{"page":1,"limit":20,"total":0,"has_more":false,"data":[]}`
	bodyRunningChat   = `{"id":"0c0b8a3e-3a57-4b8e-9d3c-2f1d7e6a5b41","workflow_id":"7c3e33d4-2a8b-4e5f-9b1a-d3c6e8f12345","status":"running","inputs":"{}","outputs":null,"error":null,"total_steps":0,"total_tokens":0,"created_at":1705407629,"finished_at":null,"elapsed_time":0.0}`
	bodyRunningChatA  = `{"id":"0c0b8a3e-3a57-4b8e-9d3c-2f1d7e6a5b41","workflow_id":"7c3e33d4-2a8b-4e5f-9b1a-d3c6e8f12345","status":"running","inputs":"{}","outputs":null,"error":null,"total_steps":0,"total_tokens":0,"created_at":"Tue, 16 Jan 2024 12:20:29 -0000","finished_at":null,"elapsed_time":0.0}`
	bodyRunningChatOb = `{"id":"0c0b8a3e-3a57-4b8e-9d3c-2f1d7e6a5b41","workflow_id":"7c3e33d4-2a8b-4e5f-9b1a-d3c6e8f12345","status":"running","inputs":"{}","outputs":{},"error":null,"total_steps":0,"total_tokens":0,"created_at":1705407629,"finished_at":null,"elapsed_time":0.0}`

	// The run as Dify's API documentation shows it, per release.
	bodyRunNewest = `{"id":"fb47b2e6-5e43-4f90-be01-d5c5a088d156","workflow_id":"7c3e33d4-2a8b-4e5f-9b1a-d3c6e8f12345","status":"succeeded","inputs":"{\"query\": \"Translate this to French\"}","outputs":{"result":"Traduisez ceci en francais"},"error":null,"total_steps":3,"total_tokens":150,"created_at":1705407629,"finished_at":1705407630,"elapsed_time":1.23}`
	bodyRunRaw    = `{"id":"fb47b2e6-5e43-4f90-be01-d5c5a088d156","workflow_id":"7c3e33d4-2a8b-4e5f-9b1a-d3c6e8f12345","status":"succeeded","inputs":"{\"query\": \"Translate this to French\"}","outputs":"{\"result\": \"Traduisez ceci en francais\"}","error":null,"total_steps":3,"total_tokens":150,"created_at":1705407629,"finished_at":1705407630,"elapsed_time":1.23}`
	bodyRunEraA   = `{"id":"fb47b2e6-5e43-4f90-be01-d5c5a088d156","workflow_id":"7c3e33d4-2a8b-4e5f-9b1a-d3c6e8f12345","status":"succeeded","inputs":"{\"query\": \"Translate this to French\"}","outputs":"{\"result\": \"Traduisez ceci en francais\"}","error":null,"total_steps":3,"total_tokens":150,"created_at":"Tue, 16 Jan 2024 12:20:29 -0000","finished_at":"Tue, 16 Jan 2024 12:20:30 -0000","elapsed_time":1.23}`
)

// versions are the releases the tests cover, oldest first.
var versions = strings.Fields("0.8.1 1.0.0 1.1.3 1.3.0 1.3.1 1.6.0 1.7.0 1.9.1 1.10.1 1.11.0 1.12.1 1.13.0 1.13.1 1.14.1")

// Sets of versions (space-separated), named by what the Corrections say.
const (
	vAll         = "0.8.1 1.0.0 1.1.3 1.3.0 1.3.1 1.6.0 1.7.0 1.9.1 1.10.1 1.11.0 1.12.1 1.13.0 1.13.1 1.14.1"
	vPySpacing   = "0.8.1 1.0.0 1.1.3 1.3.0 1.3.1 1.6.0"             // flask_restful JSON style
	vChallenge   = "1.9.1 1.10.1 1.11.0 1.12.1 1.13.0 1.13.1 1.14.1" // WWW-Authenticate (flask-restx, 1.8.0)
	vLogsAbsent  = "0.8.1"                                           // /workflows/logs from 0.8.2
	vLogsPresent = "1.0.0 1.1.3 1.3.0 1.3.1 1.6.0 1.7.0 1.9.1 1.10.1 1.11.0 1.12.1 1.13.0 1.13.1 1.14.1"
	vAtFinish    = "1.0.0 1.1.3 1.3.0 1.3.1 1.6.0 1.7.0 1.9.1 1.10.1" // log row written at finish (with a logs route)
	vAtStart     = "1.11.0 1.12.1 1.13.0 1.13.1 1.14.1"
)

func in(set, v string) bool { return slices.Contains(strings.Fields(set), v) }

// answer is what a set of releases answers.
type answer struct {
	versions string
	status   int
	body     string // "{v}" stands for the server version
}

// pick returns the answer for v, failing the test unless exactly one
// answer lists it.
func pick(t *testing.T, answers []answer, v string) answer {
	t.Helper()
	var found []answer
	for _, a := range answers {
		if in(a.versions, v) {
			found = append(found, a)
		}
	}
	if len(found) != 1 {
		t.Fatalf("version %s has %d expected answers", v, len(found))
	}
	return found[0]
}

func TestRunDetailAndErrors(t *testing.T) {
	runPath := "/v1/workflows/run/" + runA
	chatRunPath := "/v1/workflows/run/" + runChat
	unknownPath := "/v1/workflows/run/" + "00000000-0000-4000-8000-000000000000"
	bearer := func(k string) string { return "Bearer " + k }
	all := func(status int, body string) []answer { return []answer{{vAll, status, body}} }
	// An id the key cannot see, from 1.7.0 (app-scoped lookup).
	notSeen := []answer{
		{"1.7.0", 200, bodyAllNullZero},
		{"1.9.1 1.10.1 1.11.0 1.12.1", 200, bodyAllNull},
		{"1.13.0", 500, body500},
		{"1.13.1 1.14.1", 404, bodyRunNotFound},
	}
	cases := []struct {
		name, path, auth string
		answers          []answer
	}{
		{"detail", runPath, bearer(wfKey), []answer{
			{"0.8.1 1.0.0 1.1.3", 200, bodyRunEraA},
			{"1.3.0 1.3.1 1.6.0 1.7.0 1.9.1 1.10.1 1.11.0 1.12.1", 200, bodyRunRaw},
			{"1.13.0 1.13.1 1.14.1", 200, bodyRunNewest},
		}},
		{"upper-case id is the same uuid", "/v1/workflows/run/" + strings.ToUpper(runA), bearer(wfKey), []answer{
			{"0.8.1 1.0.0 1.1.3", 200, bodyRunEraA},
			{"1.3.0 1.3.1 1.6.0 1.7.0 1.9.1 1.10.1 1.11.0 1.12.1", 200, bodyRunRaw},
			{"1.13.0 1.13.1 1.14.1", 200, bodyRunNewest},
		}},
		{"unknown run", unknownPath, bearer(wfKey), append([]answer{
			{"0.8.1", 200, bodyAllNull},
			{"1.0.0 1.1.3 1.3.0 1.3.1 1.6.0", 200, bodyAllNullZero},
		}, notSeen...)},
		{"another app's run, chatflow key", runPath, bearer(acKey), append([]answer{
			{"0.8.1 1.0.0 1.1.3 1.3.0", 400, bodyNotWorkflow},
			{"1.3.1 1.6.0", 200, bodyRunRaw}, // no app filter
		}, notSeen...)},
		{"another app's run, workflow key", chatRunPath, bearer(wfKey), append([]answer{
			{"0.8.1 1.0.0 1.1.3", 200, bodyRunningChatA},
			{"1.3.0 1.3.1 1.6.0", 200, bodyRunningChat},
		}, notSeen...)},
		{"chatflow key on its own run", chatRunPath, bearer(acKey), []answer{
			{"0.8.1 1.0.0 1.1.3 1.3.0", 400, bodyNotWorkflow},
			{"1.3.1 1.6.0 1.7.0 1.9.1 1.10.1 1.11.0 1.12.1", 200, bodyRunningChat},
			{"1.13.0 1.13.1 1.14.1", 200, bodyRunningChatOb},
		}},
		{"chat app refused", runPath, bearer(chatKey), all(400, bodyNotWorkflow)},
		{"non-uuid id", "/v1/workflows/run/not-a-uuid", bearer(wfKey), []answer{
			{"0.8.1 1.0.0 1.1.3 1.3.0 1.3.1 1.6.0 1.7.0", 500, body500Old},
			{vChallenge, 500, body500},
		}},
		{"no auth header", runPath, "", all(401, bodyAuthMissing)},
		{"no space", runPath, "Bearer" + wfKey, all(401, bodyAuthMissing)},
		{"basic scheme", runPath, "Basic " + wfKey, all(401, bodyAuthScheme)},
		// HTTP trims the header value to "Bearer", which has no space.
		{"bearer with no token", runPath, "Bearer ", all(401, bodyAuthMissing)},
		{"lower-case bearer ok", runPath, "bearer " + wfKey, []answer{
			{"0.8.1 1.0.0 1.1.3", 200, bodyRunEraA},
			{"1.3.0 1.3.1 1.6.0 1.7.0 1.9.1 1.10.1 1.11.0 1.12.1", 200, bodyRunRaw},
			{"1.13.0 1.13.1 1.14.1", 200, bodyRunNewest},
		}},
		{"unknown key", runPath, bearer("app-nope"), all(401, bodyAuthInvalid)},
		{"unknown key on logs", "/v1/workflows/logs", bearer("app-nope"), []answer{
			{vLogsAbsent, 404, bodyURLNotFound},
			{vLogsPresent, 401, bodyAuthInvalid},
		}},
		{"unknown route", "/v1/nope", bearer(wfKey), all(404, bodyURLNotFound)},
		{"empty run id", "/v1/workflows/run/", bearer(wfKey), all(404, bodyURLNotFound)},
		{"GET on POST-only route", "/v1/workflows/run", bearer(wfKey), all(405,
			`{"code":"method_not_allowed","message":"The method is not allowed for the requested URL.","status":405}`)},
		{"index", "/v1/", "", all(200, `{"welcome":"Dify OpenAPI","api_version":"v1","server_version":"{v}"}`)},
		{"info", "/v1/info", bearer(wfKey), []answer{
			{"0.8.1 1.0.0 1.1.3", 200, `{"name":"Translator","description":"Translates"}`},
			{"1.3.0 1.3.1 1.6.0 1.7.0 1.9.1 1.10.1 1.11.0 1.12.1 1.13.0 1.13.1 1.14.1", 200,
				`{"name":"Translator","description":"Translates","tags":["customer-service"],"mode":"workflow","author_name":"Dify Team"}`},
		}},
		// No release checks the app mode on the logs.
		{"logs of a chat app", "/v1/workflows/logs", bearer(chatKey), []answer{{vLogsAbsent, 404, bodyURLNotFound}, {vLogsPresent, 200, bodyEmptyLogs}}},
		{"logs of a chatflow: no rows", "/v1/workflows/logs", bearer(acKey), []answer{{vLogsAbsent, 404, bodyURLNotFound}, {vLogsPresent, 200, bodyEmptyLogs}}},
	}
	s := newTestServer(t)
	for _, c := range cases {
		for _, v := range versions {
			t.Run(c.name+"/"+v, func(t *testing.T) {
				want := pick(t, c.answers, v)
				s.SetServerVersion(v)
				got := get(t, s, c.path, c.auth)
				body := strings.ReplaceAll(want.body, "{v}", v)
				if in(vPySpacing, v) {
					// flask_restful writes json.dumps' ", " and ": " (see TestPySpacing).
					body = string(pySpacing([]byte(body)))
				}
				if got.status != want.status || got.body != body {
					t.Errorf("got %d %s\nwant %d %s", got.status, got.body, want.status, body)
				}
				if ct := got.header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type %q", ct)
				}
				if x := got.header.Get("X-Version"); x != v {
					t.Errorf("X-Version %q", x)
				}
				wantChallenge := ""
				if want.status == 401 && in(vChallenge, v) {
					wantChallenge = `Bearer realm="api"`
				}
				if h := got.header.Get("WWW-Authenticate"); h != wantChallenge {
					t.Errorf("WWW-Authenticate %q, want %q", h, wantChallenge)
				}
			})
		}
	}
}

func TestAccessChanges(t *testing.T) {
	s := newTestServer(t)
	path := "/v1/workflows/run/" + runA
	s.DisableApp(wfKey, "The app's API service has been disabled.")
	for _, p := range []string{path, "/v1/info", "/v1/workflows/logs"} {
		got := get(t, s, p, "Bearer "+wfKey)
		if want := `{"code":"forbidden","message":"The app's API service has been disabled.","status":403}`; got.status != 403 || got.body != want {
			t.Errorf("%s disabled: %d %s", p, got.status, got.body)
		}
	}
	s.DisableApp(wfKey, "")
	if got := get(t, s, path, "Bearer "+wfKey); got.status != 200 {
		t.Errorf("re-enabled: %d %s", got.status, got.body)
	}
	s.RevokeKey(wfKey)
	if got := get(t, s, path, "Bearer "+wfKey); got.status != 401 || got.body != bodyAuthInvalid {
		t.Errorf("revoked: %d %s", got.status, got.body)
	}
	if got := get(t, s, "/v1/", ""); got.status != 200 {
		t.Errorf("index must not need a key: %d", got.status)
	}
	s.AddApp(wfKey, App{Name: "Translator", Mode: "workflow"})
	if got := get(t, s, path, "Bearer "+wfKey); got.status != 200 {
		t.Errorf("re-added key: %d %s", got.status, got.body)
	}
	s.SetServerVersion("1.9.2")
	got := get(t, s, "/v1/", "")
	if got.body != `{"welcome":"Dify OpenAPI","api_version":"v1","server_version":"1.9.2"}` || got.header.Get("X-Version") != "1.9.2" {
		t.Errorf("version: %s %v", got.body, got.header)
	}
	s.DeleteRun(wfKey, runA)
	if got := get(t, s, path, "Bearer "+wfKey); got.status != 200 || got.body != bodyAllNull {
		t.Errorf("deleted run: %d %s", got.status, got.body)
	}
	if _, ok := s.Run(wfKey, runA); ok {
		t.Error("Run() finds a deleted run")
	}
}

func TestOtherRoutes(t *testing.T) {
	s := newTestServer(t)
	if got := get(t, s, "/nope", ""); got.status != 404 || !strings.Contains(got.body, "<title>404 Not Found</title>") {
		t.Errorf("outside /v1: %d %s", got.status, got.body)
	}
	if got := get(t, s, "/health", ""); got.status != 200 || !strings.Contains(got.body, `"status":"ok","version":"1.14.1"`) {
		t.Errorf("health: %d %s", got.status, got.body)
	}
	if got := do(t, http.DefaultClient, "POST", s.ts.URL+"/v1/info", "Bearer "+wfKey); got.status != 405 {
		t.Errorf("POST info: %d", got.status)
	}
	if got := get(t, s, "/v1/parameters", "Bearer "+wfKey); got.status != 200 || !strings.Contains(got.body, `"user_input_form":[]`) {
		t.Errorf("parameters: %d %s", got.status, got.body)
	}
	s.AddApp(wfKey, App{Name: "Translator", Mode: "workflow", Unpublished: true})
	if got := get(t, s, "/v1/parameters", "Bearer "+wfKey); got.status != 400 ||
		got.body != `{"code":"app_unavailable","message":"App unavailable, please check your app configurations.","status":400}` {
		t.Errorf("unpublished: %d %s", got.status, got.body)
	}
	// URL() points at /v1 and /v1 redirects to /v1/.
	if !strings.HasSuffix(s.URL(), "/v1") {
		t.Errorf("URL %q", s.URL())
	}
	if got := do(t, http.DefaultClient, "GET", s.URL(), ""); got.status != 200 || !strings.Contains(got.body, "Dify OpenAPI") {
		t.Errorf("GET URL(): %d %s", got.status, got.body)
	}
}

// logsPage is the decoded logs response.
type logsPage struct {
	Page    int  `json:"page"`
	Limit   int  `json:"limit"`
	Total   int  `json:"total"`
	HasMore bool `json:"has_more"`
	Data    []struct {
		ID          string `json:"id"`
		WorkflowRun struct {
			ID          string  `json:"id"`
			Status      string  `json:"status"`
			TotalTokens int     `json:"total_tokens"`
			FinishedAt  *int64  `json:"finished_at"`
			Error       *string `json:"error"`
		} `json:"workflow_run"`
		CreatedFrom string `json:"created_from"`
		CreatedAt   int64  `json:"created_at"`
	} `json:"data"`
}

func (p logsPage) runIDs() []string {
	var ids []string
	for _, d := range p.Data {
		ids = append(ids, d.WorkflowRun.ID)
	}
	return ids
}

func getLogs(t testing.TB, s *Server, key string, q url.Values) (logsPage, result) {
	t.Helper()
	r := get(t, s, "/v1/workflows/logs?"+q.Encode(), "Bearer "+key)
	var p logsPage
	if r.status == 200 {
		if err := json.Unmarshal([]byte(r.body), &p); err != nil {
			t.Fatalf("decoding %s: %v", r.body, err)
		}
	}
	return p, r
}

func TestLogs(t *testing.T) {
	s := NewServer()
	defer s.Close()
	const key = "app-logs"
	s.AddApp(key, App{Name: "L", Mode: "workflow"})
	base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	statuses := []string{"succeeded", "failed", "stopped", "running", "partial-succeeded", "paused"}
	var ids []string // ids[i] created at base+i s; 25 runs
	// Insert out of order to exercise sorted insertion.
	order := []int{}
	for i := 24; i >= 0; i -= 2 {
		order = append(order, i)
	}
	for i := 23; i >= 0; i -= 2 {
		order = append(order, i)
	}
	ids = make([]string, 25)
	for i := range ids {
		ids[i] = fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
	}
	for _, i := range order {
		s.PutRun(key, Run{ID: ids[i], Status: statuses[i%len(statuses)], CreatedAt: base.Add(time.Duration(i) * time.Second)})
	}
	// A debugger run gets no log row; its time is inside every window.
	s.PutRun(key, Run{ID: NewRunID(), Status: "succeeded", CreatedAt: base.Add(5 * time.Second), CreatedFrom: "debugger"})
	desc := func(from, to int) []string { // ids[to..from] newest first
		var out []string
		for i := from; i >= to; i-- {
			out = append(out, ids[i])
		}
		return out
	}
	filterStatus := func(st string, from, to int) []string {
		var out []string
		for i := from; i >= to; i-- {
			if statuses[i%len(statuses)] == st {
				out = append(out, ids[i])
			}
		}
		return out
	}
	cases := []struct {
		name    string
		q       url.Values
		total   int
		hasMore bool
		ids     []string
	}{
		{"default page", url.Values{}, 25, true, desc(24, 5)},
		{"page 2 of 20", url.Values{"page": {"2"}}, 25, false, desc(4, 0)},
		{"limit 10 page 3", url.Values{"limit": {"10"}, "page": {"3"}}, 25, false, desc(4, 0)},
		{"limit 5 page 5 exactly full", url.Values{"limit": {"5"}, "page": {"5"}}, 25, false, desc(4, 0)},
		{"limit 5 page 4", url.Values{"limit": {"5"}, "page": {"4"}}, 25, true, desc(9, 5)},
		{"beyond the end", url.Values{"page": {"9"}}, 25, false, nil},
		{"after inclusive", url.Values{"created_at__after": {"2025-03-01T12:00:20Z"}}, 5, false, desc(24, 20)},
		{"after no zone is UTC", url.Values{"created_at__after": {"2025-03-01T12:00:20"}}, 5, false, desc(24, 20)},
		{"after with offset", url.Values{"created_at__after": {"2025-03-01T13:00:20+01:00"}}, 5, false, desc(24, 20)},
		{"before inclusive", url.Values{"created_at__before": {"2025-03-01T12:00:02Z"}}, 3, false, desc(2, 0)},
		{"window", url.Values{"created_at__after": {"2025-03-01T12:00:03Z"}, "created_at__before": {"2025-03-01T12:00:06.5Z"}}, 4, false, desc(6, 3)},
		{"empty window", url.Values{"created_at__after": {"2025-03-01T12:00:07Z"}, "created_at__before": {"2025-03-01T12:00:06Z"}}, 0, false, nil},
		{"status failed", url.Values{"status": {"failed"}}, 4, false, filterStatus("failed", 24, 0)},
		{"status succeeded paged", url.Values{"status": {"succeeded"}, "limit": {"2"}, "page": {"2"}}, 5, true, filterStatus("succeeded", 24, 0)[2:4]},
		{"status with window", url.Values{"status": {"stopped"}, "created_at__after": {"2025-03-01T12:00:10Z"}}, 2, false, filterStatus("stopped", 24, 10)},
		{"keyword run id", url.Values{"keyword": {ids[7]}}, 1, false, []string{ids[7]}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, r := getLogs(t, s, key, c.q)
			if r.status != 200 {
				t.Fatalf("%d %s", r.status, r.body)
			}
			if p.Total != c.total || p.HasMore != c.hasMore {
				t.Errorf("total %d has_more %v, want %d %v", p.Total, p.HasMore, c.total, c.hasMore)
			}
			if got := p.runIDs(); strings.Join(got, ",") != strings.Join(c.ids, ",") {
				t.Errorf("ids\n got %v\nwant %v", got, c.ids)
			}
			wantPage, wantLimit := 1, 20
			fmt.Sscan(c.q.Get("page"), &wantPage)
			fmt.Sscan(c.q.Get("limit"), &wantLimit)
			if p.Page != wantPage || p.Limit != wantLimit {
				t.Errorf("page %d limit %d", p.Page, p.Limit)
			}
		})
	}

	bad := []struct{ name, param, value string }{
		{"status running", "status", "running"},
		{"status partial", "status", "partial-succeeded"},
		{"page 0", "page", "0"},
		{"page too big", "page", "100000"},
		{"limit 0", "limit", "0"},
		{"limit 101", "limit", "101"},
		{"limit not int", "limit", "ten"},
		{"after garbage", "created_at__after", "yesterday"},
		{"after with + decoded as space", "created_at__after", "2025-03-01T12:00:20 00:00"},
	}
	for _, c := range bad {
		t.Run("invalid "+c.name, func(t *testing.T) {
			_, r := getLogs(t, s, key, url.Values{c.param: {c.value}})
			var env map[string]any
			_ = json.Unmarshal([]byte(r.body), &env)
			if r.status != 400 || env["code"] != "invalid_param" || env["status"] != 400.0 || env["message"] == "" {
				t.Errorf("%d %s", r.status, r.body)
			}
		})
	}
}

func TestLogsReflectRun(t *testing.T) {
	s := NewServer()
	defer s.Close()
	const key = "app-logs"
	s.AddApp(key, App{Name: "L", Mode: "workflow"})
	a, b, c := NewRunID(), NewRunID(), NewRunID()
	for i, id := range []string{a, b, c} {
		s.PutRun(key, Run{ID: id, Status: "running", CreatedAt: t0.Add(time.Duration(i) * time.Second)})
	}
	p, _ := getLogs(t, s, key, nil)
	if got := strings.Join(p.runIDs(), ","); got != strings.Join([]string{c, b, a}, ",") {
		t.Errorf("order %v", p.runIDs())
	}
	firstLogID := p.Data[2].ID
	// Updating a run changes its log entry (a join) but not the row itself.
	s.PutRun(key, Run{ID: a, Status: "failed", Error: "boom", TotalTokens: 7, CreatedAt: t0.Add(time.Hour), FinishedAt: t0.Add(time.Hour)})
	p, _ = getLogs(t, s, key, nil)
	e := p.Data[2]
	if e.ID != firstLogID || e.CreatedAt != t0.Unix() || e.WorkflowRun.Status != "failed" || e.WorkflowRun.TotalTokens != 7 ||
		e.WorkflowRun.Error == nil || *e.WorkflowRun.Error != "boom" || e.WorkflowRun.FinishedAt == nil {
		t.Errorf("updated entry %+v", e)
	}
	s.DeleteRun(key, b)
	p, _ = getLogs(t, s, key, nil)
	if got := strings.Join(p.runIDs(), ","); got != c+","+a || p.Total != 2 {
		t.Errorf("after delete %v total %d", p.runIDs(), p.Total)
	}
}

func TestFaults(t *testing.T) {
	runPath := "/v1/workflows/run/" + runA
	cases := []struct {
		name    string
		fault   Fault
		status  int
		body    string
		ctype   string
		retry   string
		wantErr bool
	}{
		{"500 envelope", Fault{Status: 500}, 500, body500Werkzeug, "application/json", "", false},
		{"502 envelope", Fault{Status: 502}, 502, `{"code":"bad_gateway","message":"The proxy server received an invalid response from an upstream server.","status":502}`, "application/json", "", false},
		{"429 with retry-after", Fault{Status: 429, RetryAfter: "7"}, 429, `{"code":"too_many_requests","message":"Too many requests. Please try again later.","status":429}`, "application/json", "7", false},
		{"custom body and type", Fault{Status: 502, Body: "<html>Bad Gateway</html>", ContentType: "text/html"}, 502, "<html>Bad Gateway</html>", "text/html", "", false},
		{"malformed 200", Fault{Status: 200, Body: `{"id": "fb47`}, 200, `{"id": "fb47`, "application/json", "", false},
		{"200 empty body is the normal answer with overrides", Fault{Status: 200, ContentType: "text/plain"}, 200, bodyRunNewest, "text/plain", "", false},
		{"latency", Fault{Latency: 50 * time.Millisecond}, 200, bodyRunNewest, "application/json", "", false},
		{"truncate", Fault{Truncate: true}, 200, bodyRunNewest[:len(bodyRunNewest)/2], "", "", true},
		{"truncate error body", Fault{Status: 503, Truncate: true}, 503, `{"code":"service_unavailable","message":"The server is temporarily unable`, "", "", true},
		{"reset", Fault{Reset: true}, 0, "", "", "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newTestServer(t)
			s.SetFault(EndpointRun, c.fault)
			start := time.Now()
			req, _ := http.NewRequest("GET", s.ts.URL+runPath, nil)
			req.Header.Set("Authorization", "Bearer "+wfKey)
			resp, err := http.DefaultClient.Do(req)
			var body []byte
			if err == nil {
				body, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if c.wantErr {
				if err == nil {
					t.Fatalf("want a transport error, got %d %s", resp.StatusCode, body)
				}
				if c.fault.Truncate {
					// Headers and half of the body arrive, then the connection drops.
					if !errors.Is(err, io.ErrUnexpectedEOF) || resp.StatusCode != c.status || !strings.HasPrefix(string(body), c.body) || len(body) == 0 {
						t.Errorf("truncate: err %v, status %d, body %q", err, resp.StatusCode, body)
					}
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if resp.StatusCode != c.status || strings.TrimSuffix(string(body), "\n") != c.body {
					t.Errorf("got %d %s", resp.StatusCode, body)
				}
				if ct := resp.Header.Get("Content-Type"); ct != c.ctype {
					t.Errorf("Content-Type %q want %q", ct, c.ctype)
				}
				if ra := resp.Header.Get("Retry-After"); ra != c.retry {
					t.Errorf("Retry-After %q want %q", ra, c.retry)
				}
			}
			if d := time.Since(start); d < c.fault.Latency {
				t.Errorf("answered after %v, before the latency %v", d, c.fault.Latency)
			}
			if n := s.Requests(EndpointRun); n != 1 {
				t.Errorf("Requests = %d, want 1", n)
			}
			// The fault stays until cleared.
			if c.fault.Status != 0 || c.wantErr {
				s.ClearFaults()
			}
			if got := get(t, s, runPath, "Bearer "+wfKey); got.status != 200 || got.body != bodyRunNewest {
				t.Errorf("after clearing: %d %s", got.status, got.body)
			}
		})
	}
}

func TestFaultTimesAndCounts(t *testing.T) {
	s := newTestServer(t)
	s.SetFault(EndpointInfo, Fault{Status: 503, Times: 2})
	var codes []int
	for range 4 {
		codes = append(codes, get(t, s, "/v1/info", "Bearer "+wfKey).status)
	}
	if fmt.Sprint(codes) != "[503 503 200 200]" {
		t.Errorf("codes %v", codes)
	}
	get(t, s, "/v1/info", "Bearer app-bad")
	get(t, s, "/v1/workflows/logs?limit=5", "Bearer "+wfKey)
	get(t, s, "/v1/nope", "Bearer "+wfKey)
	if s.Requests(EndpointInfo) != 5 || s.Requests(EndpointLogs) != 1 || s.Requests(EndpointRun) != 0 || s.Requests(EndpointIndex) != 0 {
		t.Errorf("counts info=%d logs=%d run=%d", s.Requests(EndpointInfo), s.Requests(EndpointLogs), s.Requests(EndpointRun))
	}
	lr := s.LastRequest(EndpointLogs)
	if lr == nil || lr.URL.Query().Get("limit") != "5" || lr.Header.Get("Authorization") != "Bearer "+wfKey {
		t.Errorf("last request %+v", lr)
	}
	// Faults are per endpoint.
	s.SetFault(EndpointLogs, Fault{Status: 500})
	if got := get(t, s, "/v1/info", "Bearer "+wfKey); got.status != 200 {
		t.Errorf("info hit by a logs fault: %d", got.status)
	}
	s.ResetRequests()
	if s.Requests(EndpointInfo) != 0 || s.LastRequest(EndpointLogs) != nil {
		t.Error("ResetRequests did not reset")
	}
}

func TestHangAndClose(t *testing.T) {
	s := newTestServer(t)
	s.SetFault(EndpointRun, Fault{Hang: true})
	// The client gives up.
	c := &http.Client{Timeout: 100 * time.Millisecond}
	req, _ := http.NewRequest("GET", s.ts.URL+"/v1/workflows/run/"+runA, nil)
	req.Header.Set("Authorization", "Bearer "+wfKey)
	start := time.Now()
	if _, err := c.Do(req); err == nil {
		t.Fatal("hang answered")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("client waited %v", d)
	}
	waitIdle(t, s) // the handler noticed the client leaving
	// Requests hanging with no client timeout must not block Close.
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			req, _ := http.NewRequest("GET", s.ts.URL+"/v1/workflows/run/"+runA, nil)
			req.Header.Set("Authorization", "Bearer "+wfKey)
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
			}
		})
	}
	for s.Requests(EndpointRun) < 4 {
		time.Sleep(5 * time.Millisecond)
	}
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("Close hangs on hanging requests")
	}
	wg.Wait()
}

// waitIdle waits until no handler is running.
func waitIdle(t *testing.T, s *Server) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for s.inflight.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d handlers still running", s.inflight.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLatencyRespectsCancel(t *testing.T) {
	s := newTestServer(t)
	s.SetFault(EndpointInfo, Fault{Latency: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL()+"/info", nil)
	req.Header.Set("Authorization", "Bearer "+wfKey)
	if _, err := http.DefaultClient.Do(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v", err)
	}
	waitIdle(t, s)
}

func TestBodySize(t *testing.T) {
	s := newTestServer(t)
	const size = 50 << 20
	s.SetFault(EndpointRun, Fault{BodySize: size})
	req, _ := http.NewRequest("GET", s.URL()+"/workflows/run/"+runA, nil)
	req.Header.Set("Authorization", "Bearer "+wfKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	head := make([]byte, 9)
	if _, err := io.ReadFull(resp.Body, head); err != nil || string(head) != `{"data":"` {
		t.Fatalf("head %q %v", head, err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil || n+9 != size || resp.ContentLength != size || resp.StatusCode != 200 {
		t.Errorf("read %d (+9), err %v, content-length %d, status %d", n, err, resp.ContentLength, resp.StatusCode)
	}
	// A client that stops reading early does not wedge the server.
	resp2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	waitIdle(t, s)
}

func TestConcurrentUse(t *testing.T) {
	s := newTestServer(t)
	const key = "app-conc"
	s.AddApp(key, App{Name: "C", Mode: "workflow"})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 50 {
				id := NewRunID()
				// The first put is finished, so every release writes the row with it.
				s.PutRun(key, Run{ID: id, Status: "succeeded", CreatedAt: t0.Add(time.Duration(i*4+w) * time.Second), FinishedAt: t0})
				s.PutRun(key, Run{ID: id, Status: "failed", CreatedAt: t0, FinishedAt: t0})
				if i%3 == 0 {
					s.DeleteRun(key, id)
				}
				s.Run(key, id)
			}
		})
		wg.Go(func() {
			for i := range 30 {
				get(t, s, "/v1/workflows/logs?limit=7&page="+fmt.Sprint(i%3+1), "Bearer "+key)
				get(t, s, "/v1/workflows/run/"+runA, "Bearer "+wfKey)
				if i%10 == 0 {
					s.SetFault(EndpointInfo, Fault{Status: 500, Times: 1})
					s.SetServerVersion(versions[i%len(versions)])
					s.SetDatabase(MySQL, time.Hour)
					s.SetServerVersion(DefaultVersion)
					s.SetDatabase(PostgreSQL, 0)
				}
				s.Requests(EndpointLogs)
				s.LastRequest(EndpointLogs)
			}
		})
	}
	wg.Wait()
	p, _ := getLogs(t, s, key, url.Values{"limit": {"100"}, "page": {"3"}})
	if p.Total != 4*(50-17) {
		t.Errorf("total %d, want %d", p.Total, 4*(50-17))
	}
	if s.Requests(EndpointLogs) != 4*30+1 {
		t.Errorf("logs requests %d", s.Requests(EndpointLogs))
	}
}

func TestPySpacing(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		// As Dify 1.0.1 answered in langgenius/dify#15706.
		{`{"code":"unauthorized","message":"Access token is invalid","status":401}`, `{"code": "unauthorized", "message": "Access token is invalid", "status": 401}`},
		{`{"a":"x, y: \"z\"","b":[1,{"c":null}],"d":"Übersetzer"}` + "\n", `{"a": "x, y: \"z\"", "b": [1, {"c": null}], "d": "\u00dcbersetzer"}` + "\n"},
	} {
		if got := string(pySpacing([]byte(c.in))); got != c.want {
			t.Errorf("pySpacing(%s)\n got %s\nwant %s", c.in, got, c.want)
		}
	}
	// And end to end: an era B 401 and an era A run detail.
	s := newTestServer(t)
	s.SetEra(EraB)
	if got := get(t, s, "/v1/info", "Bearer app-nope"); got.body != `{"code": "unauthorized", "message": "Access token is invalid", "status": 401}` {
		t.Errorf("era B 401: %s", got.body)
	}
	s.SetEra(EraA)
	want := `{"id": "fb47b2e6-5e43-4f90-be01-d5c5a088d156", "workflow_id": "7c3e33d4-2a8b-4e5f-9b1a-d3c6e8f12345", "status": "succeeded", ` +
		`"inputs": "{\"query\": \"Translate this to French\"}", "outputs": "{\"result\": \"Traduisez ceci en francais\"}", "error": null, ` +
		`"total_steps": 3, "total_tokens": 150, "created_at": "Tue, 16 Jan 2024 12:20:29 -0000", "finished_at": "Tue, 16 Jan 2024 12:20:30 -0000", "elapsed_time": 1.23}`
	if got := get(t, s, "/v1/workflows/run/"+runA, "Bearer "+wfKey); got.body != want {
		t.Errorf("era A run\n got %s\nwant %s", got.body, want)
	}
	// Fault bodies are written as given.
	s.SetFault(EndpointInfo, Fault{Status: 502, Body: `{"x":1}`})
	if got := get(t, s, "/v1/info", "Bearer "+wfKey); got.body != `{"x":1}` {
		t.Errorf("fault body restyled: %s", got.body)
	}
}

func TestPyDumps(t *testing.T) {
	for _, c := range []struct {
		in   any
		want string
	}{
		{map[string]any{"b": 1, "a": "x\"y\n", "c": []any{true, nil, 1.5, 2.0}}, `{"a": "x\"y\n", "b": 1, "c": [true, null, 1.5, 2.0]}`},
		{map[string]any{"q": "café 😀 <b>"}, `{"q": "caf\u00e9 \ud83d\ude00 <b>"}`},
		{map[string]any{"n": map[string]any{}, "l": []string{"a"}}, `{"l": ["a"], "n": {}}`},
	} {
		if got := pyDumps(c.in); got != c.want {
			t.Errorf("pyDumps(%v) = %s, want %s", c.in, got, c.want)
		}
	}
}

func TestNewRunID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := NewRunID()
		n, ok := parseUUID(id)
		if !ok || n != id || id[14] != '4' || !strings.ContainsRune("89ab", rune(id[19])) || seen[id] {
			t.Fatalf("bad or repeated id %q", id)
		}
		seen[id] = true
	}
	for _, bad := range []string{"", "not-a-uuid", runA + "0", strings.Replace(runA, "-", "_", 1), "fb47b2e6-5e43-4f90-be01-d5c5a088d15g"} {
		if _, ok := parseUUID(bad); ok {
			t.Errorf("parseUUID(%q) accepted", bad)
		}
	}
}

func BenchmarkRunDetail(b *testing.B) {
	s := newTestServer(b)
	for range 10000 {
		s.PutRun(wfKey, Run{Status: "succeeded", CreatedAt: t0})
	}
	req, _ := http.NewRequest("GET", "/v1/workflows/run/"+runA, nil)
	req.Header.Set("Authorization", "Bearer "+wfKey)
	b.ReportAllocs()
	for b.Loop() {
		w := &discardWriter{h: http.Header{}}
		s.Handler().ServeHTTP(w, req)
		if w.code != 200 {
			b.Fatal(w.code)
		}
	}
}

func BenchmarkLogsPage(b *testing.B) {
	s := newTestServer(b)
	for i := range 20000 {
		s.PutRun(wfKey, Run{Status: "succeeded", CreatedAt: t0.Add(time.Duration(i) * time.Second)})
	}
	req, _ := http.NewRequest("GET", "/v1/workflows/logs?limit=100&created_at__after=2024-01-16T14:00:00Z", nil)
	req.Header.Set("Authorization", "Bearer "+wfKey)
	b.ReportAllocs()
	for b.Loop() {
		w := &discardWriter{h: http.Header{}}
		s.Handler().ServeHTTP(w, req)
		if w.code != 200 {
			b.Fatal(w.code)
		}
	}
}

type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(c int)           { w.code = c }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }

func TestLogsKeywordAndUsers(t *testing.T) {
	s := NewServer()
	defer s.Close()
	const key = "app-kw"
	s.AddApp(key, App{Name: "K", Mode: "workflow", AuthorName: "Ann"})
	ids := []string{NewRunID(), NewRunID(), NewRunID(), NewRunID()}
	s.PutRun(key, Run{ID: ids[0], Status: "succeeded", CreatedAt: t0, Inputs: map[string]any{"query": "Translate this café"}, User: "alice"})
	s.PutRun(key, Run{ID: ids[1], Status: "succeeded", CreatedAt: t0.Add(time.Second), Outputs: map[string]any{"result": "Bonjour"}, User: "bob"})
	s.PutRun(key, Run{ID: ids[2], Status: "running", CreatedAt: t0.Add(2 * time.Second), CreatedFrom: "installed-app"})
	s.PutRun(key, Run{ID: ids[3], Status: "running", CreatedAt: t0.Add(3 * time.Second), CreatedFrom: "web-app", User: "anon-session"})
	for _, c := range []struct {
		name string
		q    url.Values
		ids  []string
	}{
		{"keyword in inputs, case-insensitive", url.Values{"keyword": {"TRANSLATE"}}, []string{ids[0]}},
		{"keyword non-ascii", url.Values{"keyword": {"café"}}, []string{ids[0]}},
		{"keyword in outputs", url.Values{"keyword": {"bonjour"}}, []string{ids[1]}},
		{"keyword session", url.Values{"keyword": {"bob"}}, []string{ids[1]}},
		{"keyword upper-case uuid", url.Values{"keyword": {strings.ToUpper(ids[2])}}, []string{ids[2]}},
		{"keyword no match", url.Values{"keyword": {"zzz"}}, nil},
		{"session filter", url.Values{"created_by_end_user_session_id": {"alice"}}, []string{ids[0]}},
		{"account filter", url.Values{"created_by_account": {"owner@example.com"}}, []string{ids[2]}},
	} {
		p, r := getLogs(t, s, key, c.q)
		if r.status != 200 || strings.Join(p.runIDs(), ",") != strings.Join(c.ids, ",") || p.Total != len(c.ids) {
			t.Errorf("%s: %d %v total %d, want %v", c.name, r.status, p.runIDs(), p.Total, c.ids)
		}
	}
	_, r := getLogs(t, s, key, url.Values{"created_by_account": {"x@y"}})
	if r.status != 400 || !strings.Contains(r.body, `"message":"Account not found: x@y"`) {
		t.Errorf("unknown account: %d %s", r.status, r.body)
	}
	r = get(t, s, "/v1/workflows/logs", "Bearer "+key)
	for _, want := range []string{
		`"created_from":"installed-app","created_by_role":"account","created_by_account":{"id":"`,
		`"name":"Ann","email":"owner@example.com"},"created_by_end_user":null`,
		`"created_from":"web-app","created_by_role":"end_user","created_by_account":null,"created_by_end_user":{"id":"`,
		`"type":"browser","is_anonymous":true,"session_id":"anon-session"}`,
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("logs body lacks %s:\n%s", want, r.body)
		}
	}
}
