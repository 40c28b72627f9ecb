// Package client talks to Dify's service API (/v1) with an app key. It
// knows nothing of Prometheus: it returns typed runs and typed errors, and
// tolerates what older Dify versions send (see docs/dify-releases.md).
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Endpoint names, as passed to Config.Observe and used in errors.
const (
	EndpointRun   = "run"
	EndpointLogs  = "logs"
	EndpointInfo  = "info"
	EndpointIndex = "index"
)

// Defaults for the zero values of Config.
const (
	DefaultTimeout      = 10 * time.Second
	DefaultMaxRetries   = 2
	DefaultMaxBodyBytes = 4 << 20
	// maxRetryAfter is the longest Retry-After the client waits out
	// within a call.
	maxRetryAfter = 30 * time.Second
	// retryAfterCap bounds the wait RetryAfter reports: a longer one is
	// not a server's real intent.
	retryAfterCap = time.Hour
)

// Limiter paces requests; *rate.Limiter satisfies it.
type Limiter interface {
	Wait(ctx context.Context) error
}

// Config configures a Client.
type Config struct {
	// URL is the API base, e.g. https://api.dify.ai/v1.
	URL string
	// APIKey is the app's secret key. It is sent only in the
	// Authorization header and never appears in errors.
	APIKey string
	// HTTPClient defaults to a client on a clone of http.DefaultTransport.
	HTTPClient *http.Client
	// Timeout bounds each attempt.
	Timeout time.Duration
	// UserAgent is sent on every request.
	UserAgent string
	// MaxRetries is the number of extra attempts for transient failures
	// (connection errors, 5xx, 429). Negative means none.
	MaxRetries int
	// MaxBodyBytes caps how much of a response is read.
	MaxBodyBytes int64
	// Limiter, if set, is waited on before every attempt.
	Limiter Limiter
	// Observe, if set, is called after every attempt with the endpoint
	// and the HTTP status code, or "error" when no response arrived.
	Observe func(endpoint, code string)
}

// Client is a Dify service-API client for one app key. It is safe for
// concurrent use.
type Client struct {
	base    *url.URL
	cfg     Config
	http    *http.Client
	backoff time.Duration
	// seenVersion is the last valid X-Version header of any answer.
	seenVersion atomic.Pointer[string]
}

// New checks cfg and returns a Client. Its errors never show the URL's
// user info (it may be a key or a password) nor anything key-shaped.
func New(cfg Config) (*Client, error) {
	c, err := newClient(cfg)
	if err != nil {
		return nil, errors.New(RedactKeys(err.Error()))
	}
	return c, nil
}

func newClient(cfg Config) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(cfg.URL, "/"))
	if err != nil {
		// url.Error quotes the whole URL, password included: say less.
		return nil, errors.New("invalid Dify URL: cannot parse it (want e.g. https://api.dify.ai/v1)")
	}
	switch {
	case u.User != nil:
		return nil, fmt.Errorf("invalid Dify URL %q: user info (credentials) does not belong in the URL; the key goes in a file or the environment", withoutUser(u))
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("invalid Dify URL %q: scheme must be http or https", withoutUser(u))
	case u.Host == "":
		return nil, fmt.Errorf("invalid Dify URL %q: no host", withoutUser(u))
	case u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("invalid Dify URL %q: no query or fragment allowed", withoutUser(u))
	}
	if cfg.APIKey == "" {
		return nil, errors.New("no Dify API key")
	}
	if strings.ContainsAny(cfg.APIKey, "\r\n \t") {
		return nil, errors.New("the Dify API key contains whitespace")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = DefaultMaxRetries
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	if cfg.HTTPClient != nil {
		v := *cfg.HTTPClient
		hc = &v
	}
	// Dify's API never redirects, and Go would send the key on to another
	// port of the same host: a redirect is a wrong URL, never followed.
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Client{base: u, cfg: cfg, http: hc, backoff: 100 * time.Millisecond}, nil
}

// withoutUser prints u with its user info dropped: u.Redacted keeps the
// user name, which may be a key.
func withoutUser(u *url.URL) string {
	v := *u
	v.User = nil
	return v.String()
}

// CloseIdleConnections closes the client's idle keep-alive connections.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// URL returns the API base URL.
func (c *Client) URL() string { return c.base.String() }

// SeenVersion returns the release in the X-Version header of the latest
// answer that carried a valid one, "" if none has. Every Dify answer
// carries it (since 0.2), so the release is known even where a proxy
// hides GET /v1/.
func (c *Client) SeenVersion() string {
	if v := c.seenVersion.Load(); v != nil {
		return *v
	}
	return ""
}

func (c *Client) noteVersion(h http.Header) {
	v, err := parseVersion(h.Get("X-Version"))
	if err != nil {
		return // absent, or not a release: the last good one stands
	}
	if old := c.seenVersion.Load(); old == nil || *old != v {
		c.seenVersion.Store(&v)
	}
}

// Run fetches GET /workflows/run/{id}. A run Dify does not know (404, or
// a 200 with a null id from older versions) is an *Error of KindNotFound.
func (c *Client) Run(ctx context.Context, id string) (Run, error) {
	id, err := ParseRunID(id)
	if err != nil {
		return Run{}, redact(&Error{Kind: KindOther, Endpoint: EndpointRun, Err: err}, c.cfg.APIKey)
	}
	var r Run
	err = c.get(ctx, EndpointRun, "/workflows/run/"+url.PathEscape(id), nil, func(body []byte, _ answer) error {
		var w wireRun
		if err := json.Unmarshal(body, &w); err != nil {
			return err
		}
		if w.ID == nil || *w.ID == "" {
			return &Error{Kind: KindNotFound, Err: errors.New("run not found (empty answer from an older Dify)")}
		}
		run, err := w.toRun()
		if err != nil {
			return badAnswer(err)
		}
		r = run
		if !strings.EqualFold(r.ID, id) {
			return &Error{Kind: KindBadResponse, Err: fmt.Errorf("asked for run %s, got %s", id, quoteShort(r.ID, 40))}
		}
		r.ID = id
		return nil
	})
	if err != nil {
		return Run{}, err
	}
	return r, nil
}

// LogsQuery selects a page of GET /workflows/logs.
type LogsQuery struct {
	// CreatedAfter, if set, becomes created_at__after (inclusive, UTC).
	CreatedAfter time.Time
	Page, Limit  int
}

// defaultLogsLimit is Dify's page size when no limit is given.
const defaultLogsLimit = 20

// WorkflowLogs fetches one page of GET /workflows/logs, newest first. A
// page with more entries than the limit asked for is refused before any
// entry is decoded (KindBadResponse); an entry that does not decode is
// skipped and counted in LogPage.Skipped.
func (c *Client) WorkflowLogs(ctx context.Context, q LogsQuery) (LogPage, error) {
	v := url.Values{}
	if q.Page > 0 {
		v.Set("page", strconv.Itoa(q.Page))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if !q.CreatedAfter.IsZero() {
		v.Set("created_at__after", q.CreatedAfter.UTC().Format("2006-01-02T15:04:05Z"))
	}
	limit := q.Limit
	if limit <= 0 {
		limit = defaultLogsLimit
	}
	var p LogPage
	err := c.get(ctx, EndpointLogs, "/workflows/logs", v, func(body []byte, a answer) error {
		var w wireLogPage
		if err := json.Unmarshal(body, &w); err != nil {
			return err
		}
		if len(w.Data) > limit {
			return &Error{Kind: KindBadResponse, Err: fmt.Errorf("page has %d entries, more than the limit %d asked for", len(w.Data), limit)}
		}
		p = LogPage{Page: w.Page, Limit: w.Limit, Total: w.Total, HasMore: w.HasMore, Date: a.date,
			Entries: make([]LogEntry, 0, len(w.Data))}
		for i, raw := range w.Data {
			e, ok, err := decodeLogEntry(raw)
			if err != nil {
				p.Skipped++
				if p.SkipErr == nil {
					p.SkipErr = redact(&Error{Kind: KindBadResponse, Endpoint: EndpointLogs, Status: http.StatusOK,
						Err: fmt.Errorf("entry %d skipped: %w", i, err)}, c.cfg.APIKey)
				}
				continue
			}
			if ok {
				p.Entries = append(p.Entries, e)
			}
		}
		return nil
	})
	if err != nil {
		return LogPage{}, err
	}
	return p, nil
}

// decodeLogEntry decodes one log row; ok is false for a row without a run
// (Dify sends workflow_run null for a deleted run).
func decodeLogEntry(raw json.RawMessage) (e LogEntry, ok bool, err error) {
	var d wireLogEntry
	if err := json.Unmarshal(raw, &d); err != nil {
		return e, false, err
	}
	if d.WorkflowRun == nil || d.WorkflowRun.ID == nil {
		return e, false, nil
	}
	id, err := ParseRunID(*d.WorkflowRun.ID)
	if err != nil {
		return e, false, err
	}
	run, err := d.WorkflowRun.toRun()
	if err != nil {
		return e, false, err
	}
	e = LogEntry{Run: run, LoggedAt: time.Time(d.CreatedAt)}
	e.Run.ID = id
	if v := d.WorkflowRun.Version; v != nil && *v != "" {
		if e.Version, err = parseWorkflowVersion(*v); err != nil {
			return LogEntry{}, false, err
		}
	}
	return e, true, nil
}

// Info fetches GET /info. The name is bounded to MaxAppNameLen bytes and
// has key-shaped text redacted; a mode not shaped like one is Unknown.
func (c *Client) Info(ctx context.Context) (AppInfo, error) {
	var w wireInfo
	err := c.get(ctx, EndpointInfo, "/info", nil, func(body []byte, _ answer) error {
		return json.Unmarshal(body, &w)
	})
	if err != nil {
		return AppInfo{}, err
	}
	return AppInfo{Name: c.appName(w.Name), Mode: appMode(w.Mode)}, nil
}

// Server fetches GET / (no key needed), Dify's version probe. The release
// is the body's server_version, or the X-Version header where the body has
// none. A version in no release's shape is a KindBadResponse error; the
// ServerInfo returned with it still has the Date, and the header's version
// or Unknown.
func (c *Client) Server(ctx context.Context) (ServerInfo, error) {
	var info ServerInfo
	var badVersion bool
	err := c.get(ctx, EndpointIndex, "/", nil, func(body []byte, a answer) error {
		var w wireIndex
		if err := json.Unmarshal(body, &w); err != nil {
			return err
		}
		var err error
		info.Date = a.date
		info.ServerVersion, err = serverVersion(w.ServerVersion, a.version)
		if badVersion = err != nil; badVersion {
			return badAnswer(err)
		}
		return nil
	})
	if err != nil && !badVersion {
		return ServerInfo{}, err
	}
	return info, err
}

// get performs a GET with retries and hands a 2xx body to decode. A plain
// error from decode makes a KindBadResponse; an *Error is returned as it
// is, with the endpoint and status filled in. Every error get returns has
// been redacted.
func (c *Client) get(ctx context.Context, endpoint, path string, query url.Values, decode decoder) error {
	if e := c.retry(ctx, endpoint, path, query, decode); e != nil {
		return redact(e, c.cfg.APIKey)
	}
	return nil
}

func (c *Client) retry(ctx context.Context, endpoint, path string, query url.Values, decode decoder) *Error {
	u := *c.base
	u.Path = strings.TrimRight(u.Path, "/") + path
	u.RawQuery = query.Encode()
	target := u.String()

	var last *Error
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return ctxError(endpoint, err, last)
		}
		if c.cfg.Limiter != nil {
			if err := c.cfg.Limiter.Wait(ctx); err != nil {
				return ctxError(endpoint, err, last)
			}
		}
		err := c.attempt(ctx, endpoint, target, decode)
		if err == nil {
			return nil
		}
		last = err
		if !err.retryable() || attempt >= c.cfg.MaxRetries {
			return err
		}
		wait := c.backoff << attempt
		wait += rand.N(wait/2 + 1)
		if err.RetryAfter > wait {
			wait = err.RetryAfter
		}
		// Never sleep past the caller's deadline: a retry that cannot
		// finish in time is not worth starting.
		if d, ok := ctx.Deadline(); ok && time.Until(d) < wait {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctxError(endpoint, ctx.Err(), last)
		case <-t.C:
		}
	}
}

func (c *Client) attempt(ctx context.Context, endpoint, target string, decode decoder) *Error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return &Error{Kind: KindOther, Endpoint: endpoint, Err: err}
	}
	if endpoint != EndpointIndex {
		req.Header.Set("Authorization", "Bearer "+c.cfg.APIKey)
	}
	req.Header.Set("Accept", "application/json")
	if c.cfg.UserAgent != "" {
		req.Header.Set("User-Agent", c.cfg.UserAgent)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.observe(endpoint, "error")
		if strings.Contains(err.Error(), badLocation) {
			return redirectError(endpoint, 0, "an unreadable Location")
		}
		return transportError(endpoint, ctx, err)
	}
	defer resp.Body.Close()
	c.observe(endpoint, strconv.Itoa(resp.StatusCode))
	c.noteVersion(resp.Header)

	body, err := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxBodyBytes+1))
	if err != nil {
		e := transportError(endpoint, ctx, err)
		e.Status = resp.StatusCode
		if e.Kind == KindUnreachable {
			e.Kind = KindBadResponse // cut off mid-body
			e.Status = 0
		}
		return e
	}
	if int64(len(body)) > c.cfg.MaxBodyBytes {
		return &Error{Kind: KindBadResponse, Endpoint: endpoint, Status: resp.StatusCode,
			Err: fmt.Errorf("response larger than %d bytes", c.cfg.MaxBodyBytes)}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return c.statusError(endpoint, resp, body)
	}
	if isHTML(resp, body) {
		return c.wrongURL(endpoint, resp, "an HTML page")
	}
	if err := decode(body, answer{date: parseDate(resp.Header.Get("Date")), version: resp.Header.Get("X-Version")}); err != nil {
		var e *Error
		if errors.As(err, &e) {
			e.Endpoint, e.Status = endpoint, resp.StatusCode
			return e
		}
		return &Error{Kind: KindBadResponse, Endpoint: endpoint, Status: resp.StatusCode,
			Err: fmt.Errorf("undecodable %s body: %w", contentType(resp), err)}
	}
	return nil
}

// decoder takes a 2xx body and what the answer's headers say.
type decoder func(body []byte, a answer) error

// answer is what a decoder may need from an answer's headers.
type answer struct {
	// date is the Date header (zero if absent): Dify's own clock, which
	// the exporter needs to query the logs in Dify's time.
	date time.Time
	// version is the X-Version header as sent, unchecked.
	version string
}

// badAnswer is the error for an answer that decodes but holds a value in a
// shape Dify never sends.
func badAnswer(err error) *Error {
	return &Error{Kind: KindBadResponse, Err: err}
}

func parseDate(header string) time.Time {
	t, err := http.ParseTime(header)
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

func (c *Client) observe(endpoint, code string) {
	if c.cfg.Observe != nil {
		c.cfg.Observe(endpoint, code)
	}
}

// statusError maps a non-2xx answer and Dify's {code, message} envelope
// to an *Error.
func (c *Client) statusError(endpoint string, resp *http.Response, body []byte) *Error {
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		return c.redirected(endpoint, resp)
	}
	e := &Error{Endpoint: endpoint, Status: resp.StatusCode}
	var env wireEnvelope
	if json.Unmarshal(body, &env) == nil {
		e.Code = clean(env.Code, 64)
		e.Message = clean(env.Message, 200)
	}
	switch code := resp.StatusCode; {
	case code == http.StatusUnauthorized:
		e.Kind = KindUnauthorized
	case code == http.StatusForbidden:
		e.Kind = KindForbidden
	case code == http.StatusNotFound:
		switch {
		case isHTML(resp, body):
			return c.wrongURL(endpoint, resp, "an HTML page")
		case strings.HasPrefix(env.Message, unknownRoute):
			return c.wrongURL(endpoint, resp, "an unknown route")
		case e.Code == "" && e.Message == "":
			return c.wrongURL(endpoint, resp, "not a Dify answer")
		case endpoint != EndpointRun:
			// Only a run can be missing; these paths always exist.
			return c.wrongURL(endpoint, resp, "")
		}
		e.Kind = KindNotFound
	case code == http.StatusTooManyRequests:
		e.Kind = KindRateLimited
		e.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), parseDate(resp.Header.Get("Date")))
	case code >= 500:
		e.Kind = KindServerError
	case e.Code == "not_workflow_app":
		e.Kind = KindNotWorkflowApp
	case e.Code == "app_unavailable":
		e.Kind = KindAppUnavailable
	default:
		e.Kind = KindOther
	}
	if e.Code == "" && e.Message == "" {
		e.Err = fmt.Errorf("non-Dify %s body", contentType(resp))
	}
	return e
}

// unknownRoute starts werkzeug's NotFound message, which Dify's API server
// sends for a path it has no route for.
const unknownRoute = "The requested URL was not found on the server"

// wrongURL is the error for an answer that shows the URL does not lead to
// Dify's service API: the web front end's HTML (Dify's nginx serves it at
// /, the API under /v1), or a 404 for a path every Dify has.
func (c *Client) wrongURL(endpoint string, resp *http.Response, what string) *Error {
	at := *resp.Request.URL
	at.RawQuery = ""
	got := strconv.Itoa(resp.StatusCode)
	if what != "" {
		got += " (" + what + ")"
	}
	hint := "check the URL (want e.g. https://api.dify.ai/v1)"
	if base := strings.TrimRight(c.base.Path, "/"); !strings.HasSuffix(base, "/v1") {
		v1 := *c.base
		v1.Path = base + "/v1"
		hint = fmt.Sprintf(`is the URL missing "/v1"? (want e.g. %s)`, v1.String())
	}
	return &Error{Kind: KindWrongURL, Endpoint: endpoint, Status: resp.StatusCode,
		hint: fmt.Sprintf("%s at %s: not Dify's service API — %s", got, withoutUser(&at), hint)}
}

// redirected is the error for a redirect, which Dify's API never sends: it
// names where the redirect points (user info, query and fragment
// redacted), and the client does not follow it, so the key goes nowhere
// else.
func (c *Client) redirected(endpoint string, resp *http.Response) *Error {
	to := "nowhere (no Location)"
	if loc, err := resp.Location(); err == nil {
		to = fmt.Sprintf("a Location of %d bytes", len(loc.String()))
		if u := loc.String(); len(u) <= redactSlack {
			to = truncate(RedactKeys(u), 200)
		}
	}
	return redirectError(endpoint, resp.StatusCode, to)
}

// badLocation is in the error http.Client returns, before asking
// CheckRedirect, for a redirect whose Location does not parse.
const badLocation = "failed to parse Location header"

func redirectError(endpoint string, status int, to string) *Error {
	what := "redirect"
	if status != 0 {
		what = strconv.Itoa(status) + " redirect"
	}
	return &Error{Kind: KindWrongURL, Endpoint: endpoint, Status: status,
		hint: what + " to " + to + ", not followed: Dify's API never redirects — set the URL to the address Dify's API answers at (want e.g. https://api.dify.ai/v1)"}
}

// isHTML reports whether an answer is a web page, which Dify's API never
// sends.
func isHTML(resp *http.Response, body []byte) bool {
	ct := strings.ToLower(resp.Header.Get("Content-Type"))
	if strings.HasPrefix(ct, "text/html") || strings.HasPrefix(ct, "application/xhtml") {
		return true
	}
	b := bytes.TrimLeft(bytes.TrimPrefix(body, []byte("\xef\xbb\xbf")), " \t\r\n")
	return len(b) > 0 && b[0] == '<'
}

func transportError(endpoint string, ctx context.Context, err error) *Error {
	e := &Error{Endpoint: endpoint, Kind: KindUnreachable, Err: err}
	var ne net.Error
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		e.Kind = KindTimeout
	}
	// *url.Error repeats the URL; the cause alone is clearer and shorter.
	var ue *url.Error
	if errors.As(err, &ue) {
		e.Err = ue.Err
	}
	return e
}

func ctxError(endpoint string, err error, last *Error) *Error {
	if last != nil && last.Kind != KindTimeout {
		return &Error{Kind: KindTimeout, Endpoint: endpoint, Err: fmt.Errorf("%w (last attempt: %v)", err, last)}
	}
	return &Error{Kind: KindTimeout, Endpoint: endpoint, Err: err}
}

// parseRetryAfter reads a Retry-After header, in seconds or as an HTTP
// date (taken against the answer's Date, as Dify's clock may be off),
// capped at retryAfterCap. Zero means none usable.
func parseRetryAfter(v string, date time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if strings.Trim(v, "0123456789") == "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n > uint64(retryAfterCap/time.Second) {
			return retryAfterCap // out of range: absurdly long
		}
		return time.Duration(n) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	now := date
	if now.IsZero() {
		now = time.Now()
	}
	return min(max(t.Sub(now), 0), retryAfterCap)
}

func contentType(resp *http.Response) string {
	ct := resp.Header.Get("Content-Type")
	if ct == "" {
		return "untyped"
	}
	return clean(ct, 40)
}

// clean keeps server-supplied text printable, key-free and short before it
// reaches logs, labels or error messages.
func clean(s string, max int) string {
	s = RedactKeys(window(strings.ToValidUTF8(s, "?"), max+redactSlack))
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if c, ok := cut(s, max); ok {
		return c + "…"
	}
	return s
}
