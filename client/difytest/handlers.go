package difytest

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// response is an answer built under the read lock and written after it is
// released, so a slow client never holds the lock.
type response struct {
	status int
	body   []byte
	ctype  string
	header map[string]string
	// raw marks a body given by a Fault, written as it is.
	raw bool
}

const (
	msgNotFoundURL   = "The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again."
	msgInternal      = "The server encountered an internal error and was unable to complete your request. Either the server is overloaded or there is an error in the application."
	msgNotWorkflow   = "Please check if your app mode matches the right API route."
	msgRunNotFound   = "Workflow run not found."
	msgAuthMissing   = "Authorization header must be provided and start with 'Bearer'"
	msgAuthScheme    = "Authorization scheme must be 'Bearer'"
	msgAuthInvalid   = "Access token is invalid"
	msgMethod        = "The method is not allowed for the requested URL."
	msgAppUnavailble = "App unavailable, please check your app configurations."
)

type envelope struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Status  int    `json:"status"`
}

// marshal encodes v as flask does: compact JSON plus a newline, without
// HTML escaping.
func marshal(v any) []byte { return marshalSized(v, 512) }

// marshalSized is marshal with a buffer of about the expected size.
func marshalSized(v any, size int) []byte {
	var b bytes.Buffer
	b.Grow(size)
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic("difytest: " + err.Error())
	}
	return b.Bytes()
}

func jsonResp(status int, v any) response {
	return response{status: status, body: marshal(v), ctype: "application/json"}
}

func errResp(status int, code, message string) response {
	return jsonResp(status, envelope{Code: code, Message: message, Status: status})
}

func unauthorized(message string) response {
	r := errResp(http.StatusUnauthorized, "unauthorized", message)
	r.header = map[string]string{"WWW-Authenticate": `Bearer realm="api"`}
	return r
}

// statusEnvelope is the Dify-style envelope for an HTTP status, with
// werkzeug's default descriptions.
func statusEnvelope(status int) response {
	codes := map[int][2]string{
		400: {"bad_request", "The browser (or proxy) sent a request that this server could not understand."},
		401: {"unauthorized", msgAuthInvalid},
		403: {"forbidden", "You don't have the permission to access the requested resource. It is either read-protected or not readable by the server."},
		404: {"not_found", msgNotFoundURL},
		405: {"method_not_allowed", msgMethod},
		408: {"request_timeout", "The server closed the network connection because the browser didn't finish the request within the specified time."},
		429: {"too_many_requests", "Too many requests. Please try again later."},
		500: {"internal_server_error", msgInternal},
		502: {"bad_gateway", "The proxy server received an invalid response from an upstream server."},
		503: {"service_unavailable", "The server is temporarily unable to service your request due to maintenance downtime or capacity problems. Please try again later."},
		504: {"gateway_timeout", "The connection to an upstream server timed out."},
	}
	if c, ok := codes[status]; ok {
		if status == 401 {
			return unauthorized(c[1])
		}
		return errResp(status, c[0], c[1])
	}
	text := http.StatusText(status)
	if text == "" {
		text = "Unknown"
	}
	code := strings.ToLower(strings.NewReplacer(" ", "_", "-", "_", "'", "").Replace(text))
	return errResp(status, code, text)
}

// notFoundHTML is werkzeug's page for an unknown path outside the API
// blueprint.
const notFoundHTML = "<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n<p>" + msgNotFoundURL + "</p>\n"

// route maps a path to an endpoint. ok is false for unknown paths.
func route(path string) (e Endpoint, runID string, ok bool) {
	switch path {
	case "/v1/":
		return EndpointIndex, "", true
	case "/v1/info":
		return EndpointInfo, "", true
	case "/v1/parameters":
		return EndpointParameters, "", true
	case "/v1/workflows/logs":
		return EndpointLogs, "", true
	case "/health":
		return EndpointHealth, "", true
	}
	if id, found := strings.CutPrefix(path, "/v1/workflows/run/"); found && id != "" && !strings.Contains(id, "/") {
		return EndpointRun, id, true
	}
	return "", "", false
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	s.inflight.Add(1)
	defer s.inflight.Add(-1)
	s.commonHeaders(w)
	ep, runID, ok := route(r.URL.Path)
	if !ok {
		var resp response
		switch {
		case r.URL.Path == "/v1":
			http.Redirect(w, r, "/v1/", http.StatusPermanentRedirect)
			return
		case r.URL.Path == "/v1/workflows/run":
			// Exists for POST (running a workflow), not simulated here.
			resp = errResp(http.StatusMethodNotAllowed, "method_not_allowed", msgMethod)
		case strings.HasPrefix(r.URL.Path, "/v1/"):
			resp = errResp(http.StatusNotFound, "not_found", msgNotFoundURL)
		default:
			resp = response{status: http.StatusNotFound, body: []byte(notFoundHTML), ctype: "text/html; charset=utf-8", raw: true}
		}
		writeResp(w, s.restyle(resp))
		return
	}
	s.counts[ep].Add(1)
	s.recordLast(ep, r)

	f, faulted := s.takeFault(ep)
	if faulted && s.preFault(w, r, f) {
		return
	}
	var resp response
	if faulted && f.Status != 0 && !(f.Status == http.StatusOK && f.Body == "") {
		resp = statusEnvelope(f.Status)
		if f.Body != "" {
			resp.body, resp.raw = []byte(f.Body), true
		}
	} else {
		resp = s.answer(ep, runID, r)
	}
	resp = s.restyle(resp)
	if !faulted {
		writeResp(w, resp)
		return
	}
	if f.ContentType != "" {
		resp.ctype = f.ContentType
	}
	if f.RetryAfter != "" {
		if resp.header == nil {
			resp.header = map[string]string{}
		}
		resp.header["Retry-After"] = f.RetryAfter
	}
	if f.Truncate {
		writeTruncated(w, resp)
		return
	}
	writeResp(w, resp)
}

// restyle writes a response as the release does: flask_restful (before
// 1.7.0) serialises with Python's json.dumps defaults, so
// {"code": "unauthorized", "message": "Access token is invalid", "status": 401}
// with spaces and non-ASCII escaped, later releases write compact JSON;
// and only flask-restx (1.8.0 on) sends WWW-Authenticate with a 401.
func (s *Server) restyle(resp response) response {
	b := s.current()
	if !b.flaskRestx && resp.header["WWW-Authenticate"] != "" {
		h := maps.Clone(resp.header)
		delete(h, "WWW-Authenticate")
		resp.header = h
	}
	if resp.raw || resp.ctype != "application/json" {
		return resp
	}
	if b.pySpacing {
		resp.body = pySpacing(resp.body)
	}
	return resp
}

func writeResp(w http.ResponseWriter, resp response) {
	writeHeader(w, resp)
	_, _ = w.Write(resp.body)
}

// writeHeader sends resp's headers and status, announcing its full length.
func writeHeader(w http.ResponseWriter, resp response) {
	h := w.Header()
	for k, v := range resp.header {
		h.Set(k, v)
	}
	if resp.ctype != "" {
		h.Set("Content-Type", resp.ctype)
	}
	h.Set("Content-Length", strconv.Itoa(len(resp.body)))
	w.WriteHeader(resp.status)
}

func (s *Server) recordLast(ep Endpoint, r *http.Request) {
	c := r.Clone(contextWithoutCancel(r))
	c.Body = http.NoBody
	c.GetBody = nil
	s.lmu.Lock()
	s.last[ep] = c
	s.lmu.Unlock()
}

// answer builds the normal (unfaulted) response.
func (s *Server) answer(ep Endpoint, runID string, r *http.Request) response {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if ep == EndpointRun && !s.b.runRoute || ep == EndpointLogs && !s.b.logsRoute {
		// Not yet a route in this release.
		return errResp(http.StatusNotFound, "not_found", msgNotFoundURL)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return errResp(http.StatusMethodNotAllowed, "method_not_allowed", msgMethod)
	}
	switch ep {
	case EndpointIndex:
		return jsonResp(200, struct {
			Welcome       string `json:"welcome"`
			APIVersion    string `json:"api_version"`
			ServerVersion string `json:"server_version"`
		}{"Dify OpenAPI", "v1", s.version})
	case EndpointHealth:
		return jsonResp(200, struct {
			PID     int    `json:"pid"`
			Status  string `json:"status"`
			Version string `json:"version"`
		}{os.Getpid(), "ok", s.version})
	}
	a, resp, ok := s.authenticate(r)
	if !ok {
		return resp
	}
	switch ep {
	case EndpointInfo:
		return s.info(a)
	case EndpointParameters:
		return s.parameters(a)
	case EndpointRun:
		return s.runDetail(a, runID)
	case EndpointLogs:
		return s.logList(a, r)
	}
	return errResp(http.StatusNotFound, "not_found", msgNotFoundURL)
}

// authenticate follows validate_and_get_api_token and validate_app_token
// (Dify's error bodies). Call with s.mu held.
func (s *Server) authenticate(r *http.Request) (*appState, response, bool) {
	h := r.Header.Get("Authorization")
	if h == "" || !strings.Contains(h, " ") {
		return nil, unauthorized(msgAuthMissing), false
	}
	// Python: auth_header.split(None, 1)
	h = strings.TrimLeft(h, " \t\r\n\v\f")
	scheme, token, _ := strings.Cut(h, " ")
	if i := strings.IndexAny(scheme, "\t\r\n\v\f"); i >= 0 {
		scheme, token = h[:i], h[i+1:]
	}
	token = strings.TrimLeft(token, " \t\r\n\v\f")
	if token == "" {
		// "Bearer " splits into one field: Python's tuple unpacking raises a
		// ValueError, which Dify renders as invalid_param.
		return nil, errResp(http.StatusBadRequest, "invalid_param", "not enough values to unpack (expected 2, got 1)"), false
	}
	if strings.ToLower(scheme) != "bearer" {
		return nil, unauthorized(msgAuthScheme), false
	}
	a, ok := s.apps[token]
	if !ok || a.revoked {
		return nil, unauthorized(msgAuthInvalid), false
	}
	if a.disabled != "" {
		return nil, errResp(http.StatusForbidden, "forbidden", a.disabled), false
	}
	return a, response{}, true
}

func (s *Server) info(a *appState) response {
	if !s.b.fullInfo {
		return jsonResp(200, struct {
			Name        string `json:"name"`
			Description string `json:"description"`
		}{a.app.Name, a.app.Description})
	}
	tags := a.app.Tags
	if tags == nil {
		tags = []string{}
	}
	return jsonResp(200, struct {
		Name        string   `json:"name"`
		Description string   `json:"description"`
		Tags        []string `json:"tags"`
		Mode        string   `json:"mode"`
		AuthorName  string   `json:"author_name"`
	}{a.app.Name, a.app.Description, tags, a.app.Mode, a.app.AuthorName})
}

func (s *Server) parameters(a *appState) response {
	if a.app.Unpublished {
		return errResp(http.StatusBadRequest, "app_unavailable", msgAppUnavailble)
	}
	off := map[string]bool{"enabled": false}
	return jsonResp(200, map[string]any{
		"opening_statement":                "",
		"suggested_questions":              []string{},
		"suggested_questions_after_answer": off,
		"speech_to_text":                   off,
		"text_to_speech":                   off,
		"retriever_resource":               off,
		"annotation_reply":                 off,
		"more_like_this":                   off,
		"sensitive_word_avoidance":         off,
		"user_input_form":                  []any{},
		"file_upload":                      map[string]any{"image": map[string]any{"enabled": false, "number_limits": 3, "detail": "high", "transfer_methods": []string{"remote_url", "local_file"}}},
		"system_parameters":                map[string]int{"file_size_limit": 15, "image_file_size_limit": 10, "audio_file_size_limit": 50, "video_file_size_limit": 100, "workflow_file_upload_limit": 10},
	})
}

// runJSON is the run detail; nil fields are null. Its zero value is the
// all-null body of a run that is not found (before 1.13.0).
type runJSON struct {
	ID          any `json:"id"`
	WorkflowID  any `json:"workflow_id"`
	Status      any `json:"status"`
	Inputs      any `json:"inputs"`
	Outputs     any `json:"outputs"`
	Error       any `json:"error"`
	TotalSteps  any `json:"total_steps"`
	TotalTokens any `json:"total_tokens"`
	CreatedAt   any `json:"created_at"`
	FinishedAt  any `json:"finished_at"`
	ElapsedTime any `json:"elapsed_time"`
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// unix is t as the API serves an int timestamp: Dify's processes run in
// UTC, so int(naive.timestamp()) reads a naive time as UTC. Call with
// s.mu held.
func (s *Server) unix(t time.Time) int64 { return t.Unix() }

// unixOrNull is unix, or null for the zero time.
func (s *Server) unixOrNull(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return s.unix(t)
}

// unhandled500 is Flask's answer to an uncaught exception; flask-restx
// releases add the status.
func (s *Server) unhandled500() response {
	if s.b.flaskRestx {
		return jsonResp(http.StatusInternalServerError, struct {
			Message string `json:"message"`
			Code    string `json:"code"`
			Status  int    `json:"status"`
		}{"Internal Server Error", "unknown", http.StatusInternalServerError})
	}
	return jsonResp(http.StatusInternalServerError, struct {
		Message string `json:"message"`
		Code    string `json:"code"`
	}{"Internal Server Error", "unknown"})
}

func (s *Server) runDetail(a *appState, id string) response {
	b := &s.b
	if a.app.Mode != "workflow" && !(b.advancedChat && a.app.Mode == "advanced-chat") {
		return errResp(http.StatusBadRequest, "not_workflow_app", msgNotWorkflow)
	}
	n, ok := parseUUID(id)
	if !ok {
		// Postgres rejects the id: an uncaught exception.
		return s.unhandled500()
	}
	var rec *runRec
	if b.appScoped {
		rec = a.runs[n]
	} else {
		rec = s.global[n]
	}
	if rec == nil {
		switch b.unknown {
		case unknown404:
			return errResp(http.StatusNotFound, "not_found", msgRunNotFound)
		case unknown500:
			return s.unhandled500()
		}
		var null runJSON
		if b.nullCountsZero {
			null.TotalSteps, null.TotalTokens = 0, 0
		}
		return jsonResp(200, null)
	}
	r, w := &rec.run, &rec.row
	out := runJSON{
		ID: r.ID, WorkflowID: r.WorkflowID, Status: w.status,
		Inputs: rec.inputs, Error: nullable(w.error),
		TotalSteps: w.steps, TotalTokens: w.tokens,
		CreatedAt: s.unix(r.CreatedAt), FinishedAt: s.unixOrNull(w.finishedAt),
		ElapsedTime: pyFloat(w.elapsed),
	}
	switch {
	case !b.outputsObject:
		out.Outputs = nullable(w.outputsJSON)
	case w.status == "paused" || w.outputs == nil:
		out.Outputs = map[string]any{}
	default:
		out.Outputs = w.outputs
	}
	if b.rfc822 {
		out.CreatedAt = rfc822(r.CreatedAt)
		if !w.finishedAt.IsZero() {
			out.FinishedAt = rfc822(w.finishedAt)
		}
	}
	return jsonResp(200, out)
}
