package client

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
)

// The wire types below decode what every Dify era has sent (see
// docs/dify-releases.md). inputs and outputs are user data: they are not
// declared, so they are never decoded, whatever their shape.

type wireRun struct {
	ID          *string    `json:"id"`
	WorkflowID  *string    `json:"workflow_id"`
	Status      *string    `json:"status"`
	TotalSteps  flexNumber `json:"total_steps"`
	TotalTokens flexNumber `json:"total_tokens"`
	CreatedAt   flexTime   `json:"created_at"`
	FinishedAt  flexTime   `json:"finished_at"`
	ElapsedTime flexNumber `json:"elapsed_time"`
}

// toRun converts a decoded run, refusing a workflow_id or status in a
// shape Dify never sends (they become label values).
func (w *wireRun) toRun() (Run, error) {
	r := Run{
		TotalSteps:  w.TotalSteps.count(),
		TotalTokens: w.TotalTokens.count(),
		Elapsed:     w.ElapsedTime.seconds(),
		CreatedAt:   plausibleOrZero(time.Time(w.CreatedAt)),
		FinishedAt:  plausibleOrZero(time.Time(w.FinishedAt)),
	}
	if w.ID != nil {
		r.ID = *w.ID
	}
	if w.WorkflowID != nil && *w.WorkflowID != "" {
		id, err := parseUUID("workflow_id", *w.WorkflowID)
		if err != nil {
			return Run{}, err
		}
		r.WorkflowID = id
	}
	if w.Status != nil && *w.Status != "" {
		st, err := parseStatus(*w.Status)
		if err != nil {
			return Run{}, err
		}
		r.Status = st
	}
	return r, nil
}

type wireLogRun struct {
	wireRun
	Version *string `json:"version"`
}

type wireLogEntry struct {
	WorkflowRun *wireLogRun `json:"workflow_run"`
	CreatedAt   flexTime    `json:"created_at"`
}

// wireLogPage keeps its entries raw: their number is checked before any is
// decoded, and one that does not decode is skipped, not fatal to the page.
type wireLogPage struct {
	Page    int               `json:"page"`
	Limit   int               `json:"limit"`
	Total   int               `json:"total"`
	HasMore bool              `json:"has_more"`
	Data    []json.RawMessage `json:"data"`
}

type wireInfo struct {
	Name string `json:"name"`
	Mode string `json:"mode"`
}

type wireIndex struct {
	ServerVersion string `json:"server_version"`
}

type wireEnvelope struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// flexNumber accepts a JSON number, a numeric string or null (0).
type flexNumber float64

// scalar unwraps a JSON value that may be null, a string or a bare
// literal: it returns the text inside, whether it was quoted, and ok=false
// for null or an empty string.
func scalar(b []byte) (text []byte, quoted, ok bool, err error) {
	if bytes.Equal(b, []byte("null")) {
		return nil, false, false, nil
	}
	if len(b) == 0 || b[0] != '"' {
		return b, false, true, nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, true, false, err
	}
	return []byte(s), true, s != "", nil
}

func (n *flexNumber) UnmarshalJSON(b []byte) error {
	*n = 0
	b, _, ok, err := scalar(b)
	if !ok || err != nil {
		return err
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Errorf("not a number: %s", quoteShort(string(b), 40))
	}
	*n = flexNumber(f)
	return nil
}

// maxCount bounds counts to what a float64 holds exactly.
const maxCount = 1 << 53

// count clamps a number to a count: negative values (no real run has
// them) become 0, huge ones are capped.
func (n flexNumber) count() int64 {
	return int64(min(max(float64(n), 0), maxCount))
}

// seconds converts a number of seconds to a Duration, clamped to
// [0, 100 years] so that no value overflows.
func (n flexNumber) seconds() time.Duration {
	const maxSeconds = 100 * 365 * 24 * 3600
	return time.Duration(min(max(float64(n), 0), maxSeconds) * float64(time.Second))
}

// flexTime accepts Unix seconds (int or float), the RFC-822 strings of
// 2024-era Dify, RFC 3339, or null (the zero time).
type flexTime time.Time

var timeLayouts = []string{
	time.RFC1123Z,                      // "Tue, 16 Jan 2024 12:20:29 -0000"
	time.RFC1123,                       // "Tue, 16 Jan 2024 12:20:29 GMT"
	"Mon, 2 Jan 2006 15:04:05 -0700",   // single-digit day
	"Mon, 2 Jan 2006 15:04:05 MST",     //
	time.RFC3339Nano,                   // ISO-8601 with zone
	"2006-01-02T15:04:05.999999999",    // ISO-8601, naive UTC
	"2006-01-02 15:04:05.999999999",    //
	"2006-01-02 15:04:05.999999-07:00", //
}

func (t *flexTime) UnmarshalJSON(b []byte) error {
	*t = flexTime{}
	b, quoted, ok, err := scalar(b)
	if !ok || err != nil {
		return err
	}
	if quoted {
		s := string(b)
		for _, layout := range timeLayouts {
			if v, err := time.Parse(layout, s); err == nil {
				*t = flexTime(v.UTC())
				return nil
			}
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return t.setUnix(f)
		}
		return fmt.Errorf("unrecognised timestamp %s", quoteShort(s, 40))
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("unrecognised timestamp %s", quoteShort(string(b), 40))
	}
	return t.setUnix(f)
}

func (t *flexTime) setUnix(f float64) error {
	// Reject values no clock gives, rather than overflow time.Time; those
	// a broken clock does give are kept, for PlausibleTime to judge.
	if math.IsNaN(f) || f < -1e11 || f > 1e11 {
		return fmt.Errorf("timestamp %v out of range", f)
	}
	sec, frac := math.Modf(f)
	*t = flexTime(time.Unix(int64(sec), int64(frac*1e9)).UTC())
	return nil
}
