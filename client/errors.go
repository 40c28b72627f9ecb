package client

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Kind classifies a failed call. Its String is short and stable, fit to be
// a metric label value.
type Kind int

// The kinds of failure the client tells apart.
const (
	KindOther          Kind = iota // any other client-side (4xx) refusal
	KindNotFound                   // the run does not exist (404, or a null 200 on old Dify)
	KindNotWorkflowApp             // the key belongs to a chat/completion app
	KindUnauthorized               // the key was refused
	KindForbidden                  // the app or workspace is disabled, abnormal or archived
	KindAppUnavailable             // the app has no published workflow
	KindRateLimited                // 429
	KindServerError                // 5xx
	KindBadResponse                // a body that is not what Dify sends
	KindTimeout                    // the deadline passed
	KindUnreachable                // connection refused, DNS failure, reset
	KindWrongURL                   // the URL does not lead to Dify's service API (an HTML page, an unknown route)
)

var kindNames = [...]string{
	KindOther:          "client_error",
	KindNotFound:       "not_found",
	KindNotWorkflowApp: "not_workflow_app",
	KindUnauthorized:   "unauthorized",
	KindForbidden:      "forbidden",
	KindAppUnavailable: "app_unavailable",
	KindRateLimited:    "rate_limited",
	KindServerError:    "server_error",
	KindBadResponse:    "bad_response",
	KindTimeout:        "timeout",
	KindUnreachable:    "unreachable",
	KindWrongURL:       "wrong_url",
}

// Kinds lists every Kind, for metrics that start each reason at zero.
func Kinds() []Kind {
	ks := make([]Kind, len(kindNames))
	for i := range ks {
		ks[i] = Kind(i)
	}
	return ks
}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Error is a failed call to Dify. Its text names the endpoint and Dify's
// own code and message; it never contains the API key.
type Error struct {
	Kind     Kind
	Endpoint string // "run", "logs", "info", "index"
	// Status is the HTTP status, 0 when no response arrived.
	Status int
	// Code and Message come from Dify's error envelope when there was one.
	Code, Message string
	// RetryAfter is the wait a 429's Retry-After asked for (capped at an
	// hour), zero if it sent none usable; see the RetryAfter function.
	RetryAfter time.Duration
	// Err is the underlying transport or decoding error, if any.
	Err error

	// hint says what is wrong with the URL, for KindWrongURL.
	hint string
}

func (e *Error) Error() string {
	var detail string
	switch {
	case e.Kind == KindWrongURL && e.hint != "":
		detail = e.hint
	case e.Kind == KindWrongURL:
		detail = "not Dify's service API: check the URL (want e.g. https://api.dify.ai/v1)"
	case e.Kind == KindUnauthorized:
		detail = fmt.Sprintf("API key refused (%d %s: %s)", e.Status, e.Code, e.Message)
	case e.Kind == KindNotWorkflowApp:
		detail = fmt.Sprintf("app is not a workflow or chatflow app (%d %s: %s)", e.Status, e.Code, e.Message)
	case e.Kind == KindForbidden:
		detail = fmt.Sprintf("app unavailable to the API (%d %s: %s)", e.Status, e.Code, e.Message)
	case e.Code != "" || e.Message != "":
		detail = fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
	case e.Status != 0 && e.Err != nil:
		detail = fmt.Sprintf("HTTP %d: %v", e.Status, e.Err)
	case e.Status != 0:
		detail = fmt.Sprintf("HTTP %d", e.Status)
	case e.Err != nil:
		detail = e.Err.Error()
	default:
		detail = e.Kind.String()
	}
	return fmt.Sprintf("dify %s: %s", e.Endpoint, detail)
}

func (e *Error) Unwrap() error { return e.Err }

// redactedError stands in for an error whose text held a key. It keeps
// errors.Is (a context error stays one) but not the original text.
type redactedError struct {
	msg   string
	cause error
}

func (r *redactedError) Error() string        { return r.msg }
func (r *redactedError) Is(target error) bool { return errors.Is(r.cause, target) }

// redact is the one place where an *Error is made fit to print: the
// client's key, and anything shaped like a key, is removed from every text
// it carries, whatever part of the answer (a body, a header, a value quoted
// by the decoder) brought it in. Every *Error the client returns has been
// through it.
func redact(e *Error, key string) *Error {
	r := func(s string) string {
		if key != "" {
			s = strings.ReplaceAll(s, key, "<redacted>")
		}
		return RedactKeys(s)
	}
	e.Code, e.Message, e.hint = r(e.Code), r(e.Message), r(e.hint)
	if e.Err != nil {
		if s := e.Err.Error(); r(s) != s {
			e.Err = &redactedError{msg: r(s), cause: e.Err}
		}
	}
	return e
}

// KindOf returns the Kind of err, KindOther if it is not an *Error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindOther
}

// RetryAfter returns how long a rate-limited server asked to be left
// alone, if err is a 429 whose Retry-After was usable (seconds or an HTTP
// date in the future; capped at an hour).
func RetryAfter(err error) (time.Duration, bool) {
	var e *Error
	if errors.As(err, &e) && e.Kind == KindRateLimited && e.RetryAfter > 0 {
		return e.RetryAfter, true
	}
	return 0, false
}

// retryable reports whether another attempt may succeed.
func (e *Error) retryable() bool {
	switch e.Kind {
	case KindServerError, KindUnreachable:
		return true
	case KindRateLimited:
		// Asked again at once, a limited server says no again: one try
		// unless it said when, and soon enough to wait within a call.
		return e.RetryAfter > 0 && e.RetryAfter <= maxRetryAfter
	case KindBadResponse:
		// A truncated body is a transport hiccup; garbage from a 200 is not.
		return e.Status == 0
	}
	return false
}
