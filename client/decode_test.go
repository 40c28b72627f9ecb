package client

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// Bodies as each Dify era sends them for the documented example run
// (Dify's API documentation).
func TestDecodeRunAcrossEras(t *testing.T) {
	want := Run{
		ID: "fb47b2e6-5e43-4f90-be01-d5c5a088d156", WorkflowID: "7c3e33d4-2a8b-4e5f-9b1a-d3c6e8f12345",
		Status: StatusSucceeded, TotalSteps: 3, TotalTokens: 150, Elapsed: 1230 * time.Millisecond,
		CreatedAt: time.Unix(1705407629, 0).UTC(), FinishedAt: time.Unix(1705407630, 0).UTC(),
	}
	tests := []struct {
		name, body string
	}{
		{"newest: int timestamps, outputs object", `{"id":"fb47b2e6-5e43-4f90-be01-d5c5a088d156","workflow_id":"7c3e33d4-2a8b-4e5f-9b1a-d3c6e8f12345",
			"status":"succeeded","inputs":"{\"query\": \"Translate this to French\"}","outputs":{"result":"Traduisez"},
			"error":null,"total_steps":3,"total_tokens":150,"created_at":1705407629,"finished_at":1705407630,"elapsed_time":1.23}`},
		{"era B: outputs a JSON string", `{"id":"fb47b2e6-5e43-4f90-be01-d5c5a088d156","workflow_id":"7c3e33d4-2a8b-4e5f-9b1a-d3c6e8f12345",
			"status":"succeeded","inputs":"{}","outputs":"{\"result\": \"x\"}","error":null,"total_steps":3,"total_tokens":150,
			"created_at":1705407629,"finished_at":1705407630,"elapsed_time":1.23}`},
		{"era A: RFC-822 timestamps", `{"id":"fb47b2e6-5e43-4f90-be01-d5c5a088d156","workflow_id":"7c3e33d4-2a8b-4e5f-9b1a-d3c6e8f12345",
			"status":"succeeded","inputs":"{}","outputs":null,"error":null,"total_steps":3,"total_tokens":150,
			"created_at":"Tue, 16 Jan 2024 12:20:29 -0000","finished_at":"Tue, 16 Jan 2024 12:20:30 -0000","elapsed_time":1.23}`},
		{"inputs as object, float timestamps", `{"id":"fb47b2e6-5e43-4f90-be01-d5c5a088d156","workflow_id":"7c3e33d4-2a8b-4e5f-9b1a-d3c6e8f12345",
			"status":"succeeded","inputs":{"q":1},"outputs":{},"total_steps":3,"total_tokens":150,
			"created_at":1705407629.0,"finished_at":1705407630.0,"elapsed_time":1.23}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var w wireRun
			if err := json.Unmarshal([]byte(tc.body), &w); err != nil {
				t.Fatal(err)
			}
			if got, err := w.toRun(); err != nil || got != want {
				t.Errorf("got  %+v (%v)\nwant %+v", got, err, want)
			}
		})
	}
}

func TestDecodeNullsAndOddValues(t *testing.T) {
	var w wireRun
	body := `{"id":null,"workflow_id":null,"status":null,"inputs":null,"outputs":null,"error":null,
		"total_steps":null,"total_tokens":null,"created_at":null,"finished_at":null,"elapsed_time":null}`
	if err := json.Unmarshal([]byte(body), &w); err != nil {
		t.Fatal(err)
	}
	if w.ID != nil {
		t.Errorf("id = %v, want nil: an all-null body means not found", *w.ID)
	}
	if got, err := w.toRun(); err != nil || got != (Run{}) {
		t.Errorf("all-null run = %+v (%v), want zero", got, err)
	}

	bad := []struct{ name, body, want string }{
		{"timestamp garbage", `{"created_at":"yesterday"}`, "unrecognised timestamp"},
		{"timestamp past any clock", `{"created_at":-1e12}`, "out of range"},
		{"huge timestamp", `{"finished_at":1e300}`, "out of range"},
		{"tokens not a number", `{"total_tokens":"many"}`, "not a number"},
		{"tokens an object", `{"total_tokens":{}}`, "not a number"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			var w wireRun
			err := json.Unmarshal([]byte(tc.body), &w)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// Times a broken clock can serve decode, but a run's own are served as
// zero unless Dify could have written them; nothing reaches nanoseconds
// out of range.
func TestImplausibleRunTimes(t *testing.T) {
	for _, tc := range []struct {
		body string
		want time.Time
	}{
		{`{"created_at":1705407629}`, time.Unix(1705407629, 0).UTC()},
		{`{"created_at":0}`, time.Time{}},
		{`{"created_at":-86400}`, time.Time{}},
		{`{"created_at":946684799}`, time.Time{}},                     // 1999-12-31T23:59:59Z
		{`{"created_at":946684800}`, time.Unix(946684800, 0).UTC()},   // 2000-01-01
		{`{"created_at":9999999999}`, time.Time{}},                    // 2286
		{`{"created_at":9214646399}`, time.Unix(9214646399, 0).UTC()}, // 2261-12-31T23:59:59Z
	} {
		var w wireRun
		if err := json.Unmarshal([]byte(tc.body), &w); err != nil {
			t.Fatalf("%s: %v", tc.body, err)
		}
		run, err := w.toRun()
		if err != nil {
			t.Fatalf("%s: %v", tc.body, err)
		}
		if got := run.CreatedAt; !got.Equal(tc.want) {
			t.Errorf("%s: created %v, want %v", tc.body, got, tc.want)
		}
		if PlausibleTime(time.Time(w.CreatedAt)) != !tc.want.IsZero() {
			t.Errorf("%s: PlausibleTime = %v", tc.body, !tc.want.IsZero())
		}
	}
}

func TestParseRunID(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{"fb47b2e6-5e43-4f90-be01-d5c5a088d156", "fb47b2e6-5e43-4f90-be01-d5c5a088d156", ""},
		{"FB47B2E6-5E43-4F90-BE01-D5C5A088D156", "fb47b2e6-5e43-4f90-be01-d5c5a088d156", ""},
		{"", "", `invalid run ID ""`},
		{"../../../v1/info", "", "invalid run ID"},
		{"fb47b2e6-5e43-4f90-be01-d5c5a088d15?", "", "invalid run ID"},
		{"fb47b2e6-5e43-4f90-be01/d5c5a088d156", "", "invalid run ID"},
		{"fb47b2e65e434f90be01d5c5a088d156abcd", "", "invalid run ID"},
		{"fb47b2e6-5e43-4f90-be01-d5c5a088d1\xff\xfe", "", `\xff`},
		{strings.Repeat("a", 10000), "", "(10000 bytes)"},
	}
	for _, tc := range tests {
		got, err := ParseRunID(tc.in)
		if tc.err == "" {
			if err != nil || got != tc.want {
				t.Errorf("ParseRunID(%.40q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("ParseRunID(%.40q) error = %v, want one containing %q", tc.in, err, tc.err)
		}
		if err != nil && len(err.Error()) > 200 {
			t.Errorf("error for a %d-byte ID is %d bytes long: refused input must not be echoed in full", len(tc.in), len(err.Error()))
		}
	}
}

func TestStatusTerminal(t *testing.T) {
	terminal := map[Status]bool{StatusSucceeded: true, StatusFailed: true, StatusStopped: true, StatusPartialSucceeded: true}
	for _, s := range append(Statuses, "scheduled", "") {
		if s.Terminal() != terminal[s] {
			t.Errorf("%q.Terminal() = %v", s, s.Terminal())
		}
	}
}
