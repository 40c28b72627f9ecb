package difytest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

type logsQuery struct {
	page, limit     int
	status          string
	after, before   time.Time
	hasAfter        bool
	hasBefore       bool
	keyword         string
	keywordID       string // canonical UUID if keyword is one
	session         string
	account         string
	hasSession      bool
	hasAccountParam bool
}

func invalidParam(param, message string) response {
	return jsonResp(http.StatusBadRequest, struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Status  int    `json:"status"`
		Params  string `json:"params"`
	}{"invalid_param", message, http.StatusBadRequest, param})
}

// parseISO parses a created_at bound as dateutil.isoparse would, for the
// forms clients send: RFC 3339 with or without fractional seconds and zone
// (no zone = UTC), a ' ' instead of 'T', or a bare date.
func parseISO(s string) (time.Time, bool) {
	layouts := []string{
		time.RFC3339Nano,
		"2006-01-02T15:04:05.999999999Z0700",
		"2006-01-02T15:04:05.999999999",
		"2006-01-02T15:04Z07:00",
		"2006-01-02T15:04",
		"2006-01-02 15:04:05.999999999Z07:00",
		"2006-01-02 15:04:05.999999999",
		"2006-01-02",
	}
	for _, l := range layouts {
		if t, err := time.ParseInLocation(l, s, time.UTC); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

func intParam(q url.Values, name string, def, lo, hi int) (int, *response) {
	v, ok := q[name]
	if !ok || len(v) == 0 || v[0] == "" {
		return def, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(v[0]))
	if err != nil {
		r := invalidParam(name, "Input should be a valid integer, unable to parse string as an integer")
		return 0, &r
	}
	if n < lo || n > hi {
		r := invalidParam(name, "Input should be between "+strconv.Itoa(lo)+" and "+strconv.Itoa(hi))
		return 0, &r
	}
	return n, nil
}

func parseLogsQuery(q url.Values) (logsQuery, *response) {
	var lq logsQuery
	var errp *response
	if lq.page, errp = intParam(q, "page", 1, 1, 99999); errp != nil {
		return lq, errp
	}
	if lq.limit, errp = intParam(q, "limit", 20, 1, 100); errp != nil {
		return lq, errp
	}
	switch st := q.Get("status"); st {
	case "", "succeeded", "failed", "stopped":
		lq.status = st
	default:
		r := invalidParam("status", "Input should be 'succeeded', 'failed' or 'stopped'")
		return lq, &r
	}
	for _, b := range []struct {
		name string
		t    *time.Time
		has  *bool
	}{{"created_at__after", &lq.after, &lq.hasAfter}, {"created_at__before", &lq.before, &lq.hasBefore}} {
		v := q.Get(b.name)
		if v == "" {
			continue
		}
		t, ok := parseISO(v)
		if !ok {
			r := invalidParam(b.name, "Invalid isoformat string: '"+v+"'")
			return lq, &r
		}
		*b.t, *b.has = t, true
	}
	if kw := q.Get("keyword"); kw != "" {
		lq.keyword = kw
		if id, ok := parseUUID(kw); ok {
			lq.keywordID = id
		}
	}
	if v, ok := q["created_by_end_user_session_id"]; ok && len(v) > 0 && v[0] != "" {
		lq.session, lq.hasSession = v[0], true
	}
	if v, ok := q["created_by_account"]; ok && len(v) > 0 && v[0] != "" {
		lq.account, lq.hasAccountParam = v[0], true
	}
	return lq, nil
}

// keywordLike is Dify's ILIKE pattern body: the first 30 characters,
// unicode-escaped to match the ensure_ascii JSON in the Text columns.
func keywordLike(kw string) string {
	if utf8.RuneCountInString(kw) > 30 {
		kw = string([]rune(kw)[:30])
	}
	var b strings.Builder
	pyEscape(&b, kw)
	return strings.ToLower(b.String())
}

type workflowRunLogJSON struct {
	ID              string  `json:"id"`
	Version         string  `json:"version"`
	Status          string  `json:"status"`
	Error           any     `json:"error"`
	ElapsedTime     pyFloat `json:"elapsed_time"`
	TotalTokens     int     `json:"total_tokens"`
	TotalSteps      int     `json:"total_steps"`
	CreatedAt       int64   `json:"created_at"`
	FinishedAt      any     `json:"finished_at"`
	ExceptionsCount int     `json:"exceptions_count"`
	TriggeredFrom   *string `json:"triggered_from,omitempty"`
}

type endUserJSON struct {
	ID          string `json:"id"`
	Type        string `json:"type"`
	IsAnonymous bool   `json:"is_anonymous"`
	SessionID   string `json:"session_id"`
}

type accountJSON struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"`
}

type logJSON struct {
	ID               string              `json:"id"`
	WorkflowRun      *workflowRunLogJSON `json:"workflow_run"`
	CreatedFrom      string              `json:"created_from"`
	CreatedByRole    string              `json:"created_by_role"`
	CreatedByAccount *accountJSON        `json:"created_by_account"`
	CreatedByEndUser *endUserJSON        `json:"created_by_end_user"`
	CreatedAt        int64               `json:"created_at"`
	Details          json.RawMessage     `json:"details,omitempty"`
}

type logPageJSON struct {
	Page    int       `json:"page"`
	Limit   int       `json:"limit"`
	Total   int       `json:"total"`
	HasMore bool      `json:"has_more"`
	Data    []logJSON `json:"data"`
}

// ownerEmail is the email of the account behind installed-app runs.
const ownerEmail = "owner@example.com"

func (s *Server) logList(a *appState, r *http.Request) response {
	if s.era == EraNewest && !workflowCapable(a.app.Mode) {
		return errResp(http.StatusBadRequest, "not_workflow_app", msgNotWorkflow)
	}
	q, errp := parseLogsQuery(r.URL.Query())
	if errp != nil {
		return *errp
	}
	if q.hasAccountParam && !strings.EqualFold(q.account, ownerEmail) {
		return invalidParam("created_by_account", "Account not found: "+q.account)
	}
	logs := a.logs
	lo, hi := 0, len(logs)
	if q.hasAfter {
		lo = sort.Search(len(logs), func(i int) bool { return !logs[i].createdAt.Before(q.after) })
	}
	if q.hasBefore {
		hi = sort.Search(len(logs), func(i int) bool { return logs[i].createdAt.After(q.before) })
	}
	if hi < lo {
		hi = lo
	}
	offset := (q.page - 1) * q.limit
	page := make([]*logRec, 0, q.limit)
	total := 0
	filtered := q.status != "" || q.keyword != "" || q.hasSession || q.hasAccountParam
	if !filtered {
		total = hi - lo
		for i := hi - 1 - offset; i >= lo && len(page) < q.limit; i-- {
			page = append(page, logs[i])
		}
	} else {
		var like string
		if q.keyword != "" {
			like = keywordLike(q.keyword)
		}
		for i := hi - 1; i >= lo; i-- {
			l := logs[i]
			if !q.match(l, like) {
				continue
			}
			if total >= offset && len(page) < q.limit {
				page = append(page, l)
			}
			total++
		}
	}
	out := logPageJSON{Page: q.page, Limit: q.limit, Total: total, HasMore: total > q.page*q.limit, Data: make([]logJSON, 0, len(page))}
	for _, l := range page {
		out.Data = append(out.Data, s.logEntry(a, l))
	}
	return response{status: http.StatusOK, body: marshalSized(out, 128+len(out.Data)*720), ctype: "application/json"}
}

func (q *logsQuery) match(l *logRec, like string) bool {
	r := &l.run.run
	if q.status != "" && r.Status != q.status {
		return false
	}
	if q.hasSession && (r.CreatedFrom == "installed-app" || r.User != q.session) {
		return false
	}
	if q.hasAccountParam && r.CreatedFrom != "installed-app" {
		return false
	}
	if q.keyword != "" {
		if q.keywordID != "" && normID(r.ID) == q.keywordID {
			return true
		}
		if strings.Contains(strings.ToLower(l.run.inputs), like) ||
			strings.Contains(strings.ToLower(l.run.outputs), like) ||
			(r.CreatedFrom != "installed-app" && strings.Contains(strings.ToLower(r.User), like)) {
			return true
		}
		return false
	}
	return true
}

var appRun = "app-run"

func (s *Server) logEntry(a *appState, l *logRec) logJSON {
	r := &l.run.run
	wr := &workflowRunLogJSON{
		ID: r.ID, Version: r.Version, Status: r.Status, Error: nullable(r.Error),
		ElapsedTime: pyFloat(r.ElapsedTime), TotalTokens: r.TotalTokens, TotalSteps: r.TotalSteps,
		CreatedAt: r.CreatedAt.Unix(), FinishedAt: unixOrNull(r.FinishedAt),
	}
	if r.Status == "partial-succeeded" {
		wr.ExceptionsCount = 1
	}
	e := logJSON{ID: l.id, WorkflowRun: wr, CreatedFrom: r.CreatedFrom, CreatedAt: l.createdAt.Unix()}
	switch r.CreatedFrom {
	case "installed-app":
		e.CreatedByRole = "account"
		name := a.app.AuthorName
		if name == "" {
			name = "Owner"
		}
		e.CreatedByAccount = &accountJSON{ID: a.accountID, Name: name, Email: ownerEmail}
	case "web-app":
		e.CreatedByRole = "end_user"
		e.CreatedByEndUser = &endUserJSON{ID: l.endUserID, Type: "browser", IsAnonymous: true, SessionID: r.User}
	default:
		e.CreatedByRole = "end_user"
		e.CreatedByEndUser = &endUserJSON{ID: l.endUserID, Type: r.CreatedFrom, IsAnonymous: false, SessionID: r.User}
	}
	if s.era <= EraC {
		wr.TriggeredFrom = &appRun
		e.Details = json.RawMessage("null")
	}
	return e
}
