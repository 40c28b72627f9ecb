package main

import (
	"strings"
	"testing"
)

func TestToYAML(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{
			name: "a rule's name and expression come first, multi-line strings are literal blocks",
			in:   `{"groups":[{"name":"g","rules":[{"annotations":{"runbook_url":"u","summary":"s."},"expr":"a\n/\nb\n","for":"5m","labels":{"severity":"info"},"record":"r"}]}]}`,
			want: `groups:
  - name: g
    rules:
      - record: r
        expr: |
          a
          /
          b
        for: 5m
        labels:
          severity: info
        annotations:
          summary: s.
          runbook_url: u
`,
		},
		{
			name: "numbers stay numbers, strings that look like numbers stay strings",
			in:   `{"a":1.5,"b":"1.5","c":true,"d":"{{ $value }}"}`,
			want: "a: 1.5\nb: \"1.5\"\nc: true\nd: '{{ $value }}'\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := toYAML([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
	if _, err := toYAML([]byte(`{"a":`)); err == nil {
		t.Error("truncated JSON: no error")
	}
}

func TestIndentJSON(t *testing.T) {
	got, err := indentJSON([]byte(`{"z":{"b":1e3,"a":0.10},"expr":"x > 1 < 2 & y"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "expr": "x > 1 < 2 & y",
  "z": {
    "a": 0.10,
    "b": 1e3
  }
}
`
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// TestCommittedFilesUpToDate is what `go run . -check` does in CI, as a test.
func TestCommittedFilesUpToDate(t *testing.T) {
	files, err := build("../..")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{rulesPath, "dashboards/dify-overview.json"} {
		if len(files[want]) == 0 {
			t.Errorf("the mixin generates no %s", want)
		}
	}
	stale, err := differing("../..", files)
	if err != nil {
		t.Fatal(err)
	}
	if len(stale) > 0 {
		t.Errorf("%s differ from what mixin/ generates; run `go run . -root ../..`", strings.Join(stale, ", "))
	}
}

func TestBuildErrors(t *testing.T) {
	if _, err := build(t.TempDir()); err == nil || !strings.Contains(err.Error(), "mixin.libsonnet") {
		t.Errorf("build without mixin/: error %v, want one naming mixin.libsonnet", err)
	}
}
