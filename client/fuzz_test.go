package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

const (
	fuzzKey   = "app-FUZZ-SECRET-KEY-abcdef0123456789"
	fuzzRunID = "fb47b2e6-5e43-4f90-be01-d5c5a088d156"
)

// Bodies from Dify's API documentation and the shapes each Dify era sends.
var runSeeds = []string{
	// §1, newest (dify-docs example).
	`{"id":"fb47b2e6-5e43-4f90-be01-d5c5a088d156","workflow_id":"7c3e33d4-2a8b-4e5f-9b1a-d3c6e8f12345",
 "status":"succeeded","inputs":"{\"query\": \"Translate this to French\"}",
 "outputs":{"result":"Traduisez ceci en francais"},"error":null,"total_steps":3,"total_tokens":150,
 "created_at":1705407629,"finished_at":1705407630,"elapsed_time":1.23}`,
	// Eras B/C: raw strings, Python spacing.
	`{"id": "fb47b2e6-5e43-4f90-be01-d5c5a088d156", "workflow_id": "7c3e33d4-2a8b-4e5f-9b1a-d3c6e8f12345", "status": "running", "inputs": "{}", "outputs": null, "error": null, "total_steps": 0, "total_tokens": 0, "created_at": 1705407629, "finished_at": null, "elapsed_time": 0.0}`,
	// Era A: RFC-822 timestamps.
	`{"id":"FB47B2E6-5E43-4F90-BE01-D5C5A088D156","workflow_id":"7c3e33d4-2a8b-4e5f-9b1a-d3c6e8f12345","status":"succeeded","inputs":"{\"query\": \"x\"}","outputs":"{\"result\": \"y\"}","error":null,"total_steps":3,"total_tokens":150,"created_at":"Tue, 16 Jan 2024 12:20:29 -0000","finished_at":"Tue, 16 Jan 2024 12:20:30 -0000","elapsed_time":1.23}`,
	// Eras A–C: unknown run.
	`{"id":null,"workflow_id":null,"status":null,"inputs":null,"outputs":null,"error":null,"total_steps":null,"total_tokens":null,"created_at":null,"finished_at":null,"elapsed_time":null}`,
	// Error envelopes (sent with 200 here: the decoder must cope).
	`{"code":"not_found","message":"Workflow run not found.","status":404}`,
	`{"code":"not_workflow_app","message":"Please check if your app mode matches the right API route.","status":400}`,
	`{"code":"unauthorized","message":"Access token is invalid","status":401}`,
	`{"message":"Internal Server Error","code":"unknown"}`,
	// Odd values.
	`{"id":"fb47b2e6-5e43-4f90-be01-d5c5a088d156","total_tokens":"150","total_steps":-1,"elapsed_time":"1e308","created_at":1e11,"finished_at":"2024-01-16T12:20:29Z"}`,
	`{"id":"fb47b2e6-5e43-4f90-be01-d5c5a088d156","total_tokens":1e300}`,
	`{"id":"00000000-0000-4000-8000-000000000000"}`,
	`{"id":""}`,
	`[]`, `null`, `""`, ``, `{`, "\xff\xfe",
}

var logSeeds = []string{
	// §2a example (ids shortened with … as in the reference: invalid).
	`{"page":1,"limit":20,"total":1,"has_more":false,"data":[{
  "id":"b7e2f8a1-…","workflow_run":{"id":"fb47b2e6-…","version":"2025-01-16 12:00:00.000000",
   "status":"succeeded","error":null,"elapsed_time":1.23,"total_tokens":150,"total_steps":3,
   "created_at":1705407629,"finished_at":1705407630,"exceptions_count":0,"triggered_from":"app-run"},
  "created_from":"service-api","created_by_role":"end_user","created_by_account":null,
  "created_by_end_user":{"id":"f1e2…","type":"service-api","is_anonymous":false,"session_id":"user_workflow_123"},
  "created_at":1705407629,"details":null}]}`,
	// The same with full ids.
	`{"page":1,"limit":20,"total":1,"has_more":false,"data":[{"id":"b7e2f8a1-0000-4000-8000-000000000001","workflow_run":{"id":"FB47B2E6-5E43-4F90-BE01-D5C5A088D156","version":"2025-01-16 12:00:00.000000","status":"succeeded","error":null,"elapsed_time":1.23,"total_tokens":150,"total_steps":3,"created_at":1705407629,"finished_at":1705407630,"exceptions_count":0,"triggered_from":"app-run"},"created_from":"service-api","created_by_role":"end_user","created_by_account":null,"created_by_end_user":{"id":"f1e2","type":"service-api","is_anonymous":false,"session_id":"u"},"created_at":1705407629,"details":null}]}`,
	// Eras A/B: Python spacing, no triggered_from/details.
	`{"page": 2, "limit": 1, "total": 3, "has_more": true, "data": [{"id": "x", "workflow_run": {"id": "fb47b2e6-5e43-4f90-be01-d5c5a088d156", "version": "draft", "status": "running", "error": null, "elapsed_time": 0.5, "total_tokens": 0, "total_steps": 1, "created_at": 1705407629, "finished_at": null, "exceptions_count": 0}, "created_at": 1705407629}]}`,
	`{"page":1,"limit":20,"total":0,"has_more":false,"data":[]}`,
	`{"data":[{"workflow_run":null},{"workflow_run":{"id":null}}]}`,
	`{"code":"not_workflow_app","message":"Please check if your app mode matches the right API route.","status":400}`,
	`{"data":null}`, `{"page":"1"}`, `[]`, ``, `{`,
	// One bad entry among good ones: skipped, not fatal.
	`{"page":1,"limit":20,"total":3,"has_more":false,"data":[{"workflow_run":{"id":"fb47b2e6-5e43-4f90-be01-d5c5a088d156","created_at":"yesterday"},"created_at":1705407629},{"workflow_run":{"id":"../info"},"created_at":1705407629},{"workflow_run":{"id":"fb47b2e6-5e43-4f90-be01-d5c5a088d157"},"created_at":"Tue, 16 Jan 2024 12:20:29 -0000"},7]}`,
	// More entries than asked for.
	`{"page":1,"limit":1,"total":2,"has_more":false,"data":[{},{}]}`,
	`<!doctype html><title>404</title>`,
}

type bodyTransport []byte

func (b bodyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return &http.Response{
		StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(bytes.NewReader(b)),
		ContentLength: int64(len(b)), Request: req,
	}, nil
}

func fuzzClient(t *testing.T, body []byte) *Client {
	c, err := New(Config{URL: "http://dify.invalid/v1", APIKey: fuzzKey, MaxRetries: -1, MaxBodyBytes: 1 << 16,
		HTTPClient: &http.Client{Transport: bodyTransport(body)}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func checkFuzzError(t *testing.T, err error, endpoint string, kinds ...Kind) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	if e.Endpoint != endpoint {
		t.Errorf("Endpoint = %q, want %q", e.Endpoint, endpoint)
	}
	ok := false
	for _, k := range kinds {
		ok = ok || e.Kind == k
	}
	if !ok {
		t.Errorf("Kind = %v, want one of %v (%v)", e.Kind, kinds, err)
	}
	msg := err.Error()
	if strings.Contains(msg, fuzzKey) {
		t.Errorf("error contains the API key: %s", msg)
	}
	if len(msg) > 1024 {
		t.Errorf("error is %d bytes long: server data is echoed unbounded: %.200s…", len(msg), msg)
	}
}

// checkBounded fails unless the strings of a decoded run have the shape
// Dify gives them: they become label values.
func checkBounded(t *testing.T, r Run) {
	t.Helper()
	if id, err := parseUUID("workflow_id", r.WorkflowID); r.WorkflowID != "" && (err != nil || id != r.WorkflowID) {
		t.Errorf("workflow_id %q is not a canonical lower-case UUID", r.WorkflowID)
	}
	if len(r.Status) > maxStatusLen || ContainsKey(string(r.Status)) || strings.ContainsFunc(string(r.Status), func(c rune) bool { return c < '-' || c > 'z' }) {
		t.Errorf("status %q is unbounded or not a word", r.Status)
	}
}

func FuzzDecodeRun(f *testing.F) {
	for _, s := range runSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		// The wire type alone must never panic.
		var w wireRun
		_ = json.Unmarshal(body, &w)
		_, _ = w.toRun()

		r, err := fuzzClient(t, body).Run(context.Background(), strings.ToUpper(fuzzRunID))
		if err != nil {
			checkFuzzError(t, err, EndpointRun, KindBadResponse, KindNotFound, KindWrongURL)
			if r != (Run{}) {
				t.Errorf("Run returned %+v along with error %v", r, err)
			}
			return
		}
		id, perr := ParseRunID(r.ID)
		if perr != nil || id != r.ID || r.ID != fuzzRunID {
			t.Errorf("decoded run ID %q (%v), want %q", r.ID, perr, fuzzRunID)
		}
		checkBounded(t, r)
	})
}

func FuzzDecodeLogs(f *testing.F) {
	for _, s := range logSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var w wireLogPage
		_ = json.Unmarshal(body, &w)

		const limit = 4
		p, err := fuzzClient(t, body).WorkflowLogs(context.Background(), LogsQuery{Page: 1, Limit: limit})
		if err != nil {
			checkFuzzError(t, err, EndpointLogs, KindBadResponse, KindWrongURL)
			return
		}
		if p.Entries == nil {
			t.Errorf("Entries is nil, want an empty slice")
		}
		if json.Unmarshal(body, &w) == nil && len(p.Entries)+p.Skipped > len(w.Data) {
			t.Errorf("%d entries and %d skipped from %d rows", len(p.Entries), p.Skipped, len(w.Data))
		}
		if len(p.Entries)+p.Skipped > limit {
			t.Errorf("%d entries and %d skipped for limit %d", len(p.Entries), p.Skipped, limit)
		}
		if (p.Skipped > 0) != (p.SkipErr != nil) {
			t.Errorf("Skipped %d with SkipErr %v", p.Skipped, p.SkipErr)
		}
		if p.SkipErr != nil {
			checkFuzzError(t, p.SkipErr, EndpointLogs, KindBadResponse)
		}
		for _, e := range p.Entries {
			id, perr := ParseRunID(e.Run.ID)
			if perr != nil || id != e.Run.ID {
				t.Errorf("entry run ID %q is not a canonical lower-case UUID (%v)", e.Run.ID, perr)
			}
			checkBounded(t, e.Run)
			if len(e.Version) > maxWorkflowVersionLen || ContainsKey(e.Version) {
				t.Errorf("entry version %q is unbounded or key-shaped", e.Version)
			}
		}
	})
}
