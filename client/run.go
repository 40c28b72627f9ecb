package client

import (
	"fmt"
	"time"
	"unicode/utf8"
)

// Status is a workflow run status as Dify reports it. Values outside the
// known set are kept as they are (a newer Dify may add statuses).
type Status string

// The statuses of Dify's WorkflowExecutionStatus that a run can have.
const (
	StatusRunning          Status = "running"
	StatusSucceeded        Status = "succeeded"
	StatusFailed           Status = "failed"
	StatusStopped          Status = "stopped"
	StatusPartialSucceeded Status = "partial-succeeded"
	StatusPaused           Status = "paused"
)

// Statuses lists the known statuses in a fixed order.
var Statuses = []Status{
	StatusRunning, StatusSucceeded, StatusFailed, StatusStopped, StatusPartialSucceeded, StatusPaused,
}

// Terminal reports whether a run in this status can never change again.
func (s Status) Terminal() bool {
	switch s {
	case StatusSucceeded, StatusFailed, StatusStopped, StatusPartialSucceeded:
		return true
	}
	return false
}

// Known reports whether s is one of Statuses.
func (s Status) Known() bool {
	for _, k := range Statuses {
		if s == k {
			return true
		}
	}
	return false
}

// Run is the part of a workflow run that the exporter uses. Inputs and
// outputs are user data and are deliberately not decoded.
type Run struct {
	ID          string
	WorkflowID  string
	Status      Status
	TotalTokens int64
	TotalSteps  int64
	// Elapsed is Dify's elapsed_time.
	Elapsed   time.Duration
	CreatedAt time.Time
	// FinishedAt is zero while the run has not finished.
	FinishedAt time.Time
}

// Times a Dify could really have written: none before 2000, and none
// past what Unix nanoseconds hold (year 2262).
var (
	minPlausible = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	maxPlausible = time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC)
)

// PlausibleTime reports whether t could be a time Dify wrote: a clock
// glitch or a restored backup can serve 0, negative or far-future values,
// which must not be converted to nanoseconds or believed.
func PlausibleTime(t time.Time) bool {
	return !t.Before(minPlausible) && t.Before(maxPlausible)
}

func plausibleOrZero(t time.Time) time.Time {
	if PlausibleTime(t) {
		return t
	}
	return time.Time{}
}

// AppInfo is the answer of GET /v1/info.
type AppInfo struct {
	Name string
	Mode string
}

// WorkflowMode reports whether the app mode can have workflow runs.
func (a AppInfo) WorkflowMode() bool {
	return a.Mode == "workflow" || a.Mode == "advanced-chat" || a.Mode == ""
}

// LogEntry is one row of GET /v1/workflows/logs, reduced to its run.
// Version is the published workflow version ("draft" or a timestamp);
// the logs do not carry workflow_id.
type LogEntry struct {
	Run     Run
	Version string
	// LoggedAt is the log row's created_at, the field the API filters on,
	// as served: it follows the database session's zone, not the run's
	// times, and may be implausible (see PlausibleTime). A run's own times
	// out of that range are served as zero.
	LoggedAt time.Time
}

// LogPage is one page of GET /v1/workflows/logs.
type LogPage struct {
	Page    int
	Limit   int
	Total   int
	HasMore bool
	Entries []LogEntry
	// Date is the server's Date header (zero if absent): Dify's clock.
	Date time.Time
	// Skipped counts the entries left out because they could not be
	// decoded (a run ID that is not a UUID, a bad timestamp); SkipErr is
	// the first one's reason. One bad entry does not spoil its page.
	Skipped int
	SkipErr error
}

// ServerInfo is the answer of GET /v1/.
type ServerInfo struct {
	ServerVersion string
	// Date is the server's Date header (zero if absent): Dify's clock.
	Date time.Time
}

// maxRunIDLen bounds what ParseRunID looks at, so a huge value is refused
// without being echoed back in full.
const maxRunIDLen = 64

// ParseRunID checks that s is a Dify run ID (a UUID in its canonical
// 8-4-4-4-12 hex form) and returns it lower-cased. Anything else is refused,
// so an ID can never reach another endpoint or carry a query.
func ParseRunID(s string) (string, error) {
	return parseUUID("run ID", s)
}

// quoteID quotes a refused ID for an error message, shortened, with
// invalid UTF-8 escaped and key-shaped text redacted.
func quoteID(s string) string {
	return quoteShort(s, maxRunIDLen)
}

// quoteShort quotes s for an error message, redacted and then cut to about
// max bytes (see cut).
func quoteShort(s string, max int) string {
	n := len(s)
	s = RedactKeys(window(s, max+redactSlack))
	if c, ok := cut(s, max); ok || len(s) < n {
		return fmt.Sprintf("%q… (%d bytes)", c, n)
	}
	return fmt.Sprintf("%q", s)
}

// maxWord is how far cut may run past its limit to finish a word.
const maxWord = 256

// cut shortens s to about max bytes, on a valid UTF-8 boundary. It does not
// cut inside a word of letters, digits, '-' and '_' (up to maxWord more
// bytes), so that a key in the text stays whole and redaction finds it; a
// longer word is dropped rather than cut. ok reports whether s was cut.
func cut(s string, max int) (string, bool) {
	if len(s) <= max {
		return s, false
	}
	end := max
	for end < len(s) && end < max+maxWord && isWordByte(s[end]) && end > 0 && isWordByte(s[end-1]) {
		end++
	}
	if end < len(s) && end > 0 && isWordByte(s[end]) && isWordByte(s[end-1]) {
		// Still inside a word: drop the word.
		for end > 0 && isWordByte(s[end-1]) {
			end--
		}
	}
	if end >= len(s) {
		return s, false
	}
	for i := 0; i < utf8.UTFMax-1 && end > 0 && !utf8.RuneStart(s[end]); i++ {
		end-- // not inside a rune
	}
	return s[:end], true
}

func isWordByte(b byte) bool {
	return '0' <= b && b <= '9' || 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || b == '-' || b == '_'
}
