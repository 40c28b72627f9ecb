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
	after, before   isoValue
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

// isoValue is a created_at bound as dateutil.isoparse reads it: its wall
// clock, and whether it carried an offset (then instant is the true time).
type isoValue struct {
	wall    time.Time // the wall clock fields, as if in UTC
	aware   bool
	instant time.Time
}

// column is the bound in the log column's own frame (naive, in the
// database session's zone), as the database compares it.
func (v isoValue) column(db Database, zone time.Duration) time.Time {
	if v.aware && db == PostgreSQL {
		return v.instant.Add(zone) // read as an instant, in the session zone
	}
	return v.wall // PyMySQL drops the offset; a naive value is the column's frame
}

// parseISO parses a created_at bound as dateutil.isoparse would, for the
// forms clients send: RFC 3339 with or without fractional seconds and zone,
// a ' ' instead of 'T', or a bare date.
func parseISO(s string) (isoValue, bool) {
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
			wall := time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
			return isoValue{wall: wall, aware: strings.ContainsAny(l, "Z"), instant: t.UTC()}, true
		}
	}
	return isoValue{}, false
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

// parseLogsQuery reads the parameters release b knows; it ignores the
// others, as reqparse does.
func parseLogsQuery(q url.Values, b *behaviour) (logsQuery, *response) {
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
	for _, f := range []struct {
		name string
		t    *isoValue
		has  *bool
	}{{"created_at__after", &lq.after, &lq.hasAfter}, {"created_at__before", &lq.before, &lq.hasBefore}} {
		v := q.Get(f.name)
		if v == "" || !b.timeFilters {
			continue
		}
		t, ok := parseISO(v)
		if !ok {
			r := invalidParam(f.name, "Invalid isoformat string: '"+v+"'")
			return lq, &r
		}
		*f.t, *f.has = t, true
	}
	if kw := q.Get("keyword"); kw != "" {
		lq.keyword = kw
		if id, ok := parseUUID(kw); ok {
			lq.keywordID = id
		}
	}
	if !b.userFilters {
		return lq, nil
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
	ExceptionsCount *int    `json:"exceptions_count,omitempty"`
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
	q, errp := parseLogsQuery(r.URL.Query(), &s.b)
	if errp != nil {
		return *errp
	}
	if q.hasAccountParam && !strings.EqualFold(q.account, ownerEmail) {
		return invalidParam("created_by_account", "Account not found: "+q.account)
	}
	logs := a.logs
	lo, hi := 0, len(logs)
	if q.hasAfter {
		after := q.after.column(s.db, s.dbZone)
		lo = sort.Search(len(logs), func(i int) bool { return !logs[i].createdAt.Before(after) })
	}
	if q.hasBefore {
		before := q.before.column(s.db, s.dbZone)
		hi = sort.Search(len(logs), func(i int) bool { return logs[i].createdAt.After(before) })
	}
	if hi < lo {
		hi = lo
	}
	// rows are the matching rows newest first: at(i) for i < n.
	n := hi - lo
	at := func(i int) *logRec { return logs[hi-1-i] }
	if q.status != "" || q.keyword != "" || q.hasSession || q.hasAccountParam {
		var like string
		if q.keyword != "" {
			like = keywordLike(q.keyword)
		}
		var match []*logRec
		for i := hi - 1; i >= lo; i-- {
			if q.match(logs[i], like) {
				match = append(match, logs[i])
			}
		}
		n, at = len(match), func(i int) *logRec { return match[i] }
	}
	page := s.window(n, at, (q.page-1)*q.limit, q.limit)
	out := logPageJSON{Page: q.page, Limit: q.limit, Total: n, HasMore: n > q.page*q.limit, Data: make([]logJSON, 0, len(page))}
	for _, l := range page {
		out.Data = append(out.Data, s.logEntry(a, l))
	}
	return response{status: http.StatusOK, body: marshalSized(out, 128+len(out.Data)*720), ctype: "application/json"}
}

// window returns rows [offset, offset+limit) of the n rows at(0…n-1),
// which are sorted newest first, ordering rows with equal created_at at
// random as Postgres may: a tie can differ from one page to the next, so
// offset paging repeats or skips it.
func (s *Server) window(n int, at func(int) *logRec, offset, limit int) []*logRec {
	start, end := offset, min(offset+limit, n)
	if start >= end {
		return nil
	}
	// Widen to whole ties at both ends, shuffle each tie, cut again.
	from, to := start, end
	for from > 0 && at(from-1).createdAt.Equal(at(start).createdAt) {
		from--
	}
	for to < n && at(to).createdAt.Equal(at(end-1).createdAt) {
		to++
	}
	rows := make([]*logRec, 0, to-from)
	for i := from; i < to; i++ {
		rows = append(rows, at(i))
	}
	s.rmu.Lock()
	for i := 0; i < len(rows); {
		j := i + 1
		for j < len(rows) && rows[j].createdAt.Equal(rows[i].createdAt) {
			j++
		}
		if j-i > 1 {
			tie := rows[i:j]
			s.rng.Shuffle(len(tie), func(x, y int) { tie[x], tie[y] = tie[y], tie[x] })
		}
		i = j
	}
	s.rmu.Unlock()
	return rows[start-from : end-from]
}

// match applies the filters. Status and keyword join the run row, so a
// row whose run is gone never matches them.
func (q *logsQuery) match(l *logRec, like string) bool {
	if q.hasSession && (l.createdFrom == "installed-app" || l.user != q.session) {
		return false
	}
	if q.hasAccountParam && l.createdFrom != "installed-app" {
		return false
	}
	if q.status == "" && q.keyword == "" {
		return true
	}
	rec := l.run
	if rec == nil {
		return false
	}
	if q.status != "" && rec.row.status != q.status {
		return false
	}
	if q.keyword != "" {
		if q.keywordID != "" && normID(rec.run.ID) == q.keywordID {
			return true
		}
		return strings.Contains(strings.ToLower(rec.inputs), like) ||
			strings.Contains(strings.ToLower(rec.row.outputsJSON), like) ||
			(l.createdFrom != "installed-app" && strings.Contains(strings.ToLower(l.user), like))
	}
	return true
}

var (
	appRun = "app-run"
	counts = [2]int{0, 1} // shared exceptions_count values, never written
)

// logEntry renders a row, reading its run row live (a join).
func (s *Server) logEntry(a *appState, l *logRec) logJSON {
	b := &s.b
	e := logJSON{ID: l.id, CreatedFrom: l.createdFrom, CreatedAt: s.unix(l.createdAt)}
	if rec := l.run; rec != nil {
		r, w := &rec.run, &rec.row
		e.WorkflowRun = &workflowRunLogJSON{
			ID: r.ID, Version: r.Version, Status: w.status, Error: nullable(w.error),
			ElapsedTime: pyFloat(w.elapsed), TotalTokens: w.tokens, TotalSteps: w.steps,
			CreatedAt: s.unix(r.CreatedAt), FinishedAt: s.unixOrNull(w.finishedAt),
		}
		if b.exceptions {
			e.WorkflowRun.ExceptionsCount = &counts[0]
			if w.status == "partial-succeeded" {
				e.WorkflowRun.ExceptionsCount = &counts[1]
			}
		}
		if b.triggeredFrom {
			e.WorkflowRun.TriggeredFrom = &appRun
		}
	}
	switch l.createdFrom {
	case "installed-app":
		e.CreatedByRole = "account"
		name := a.app.AuthorName
		if name == "" {
			name = "Owner"
		}
		e.CreatedByAccount = &accountJSON{ID: a.accountID, Name: name, Email: ownerEmail}
	case "web-app":
		e.CreatedByRole = "end_user"
		e.CreatedByEndUser = &endUserJSON{ID: l.endUserID, Type: "browser", IsAnonymous: true, SessionID: l.user}
	default:
		typ := l.createdFrom
		if typ == "service-api" && !b.triggeredFrom {
			typ = "service_api"
		}
		e.CreatedByRole = "end_user"
		e.CreatedByEndUser = &endUserJSON{ID: l.endUserID, Type: typ, IsAnonymous: false, SessionID: l.user}
	}
	if b.triggeredFrom {
		e.Details = json.RawMessage("null")
	}
	return e
}
