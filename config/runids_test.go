package config

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestReadRunIDs(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "ids")
	writeFile(t, p, "\xef\xbb\xbf# runs to watch\n"+
		"fb47b2e6-5e43-4f90-be01-d5c5a088d156\n"+
		"\n"+
		"   \t\n"+
		"  0B8E4A5C-1D2F-4A6B-9C3D-7E8F9A0B1C2D   # a trailing comment\r\n"+
		"FB47B2E6-5E43-4F90-BE01-D5C5A088D156\n"+
		"#fb47b2e6-5e43-4f90-be01-d5c5a088d157\n"+
		"11111111-2222-3333-4444-555555555555#no space")
	got, err := ReadRunIDs(p)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"fb47b2e6-5e43-4f90-be01-d5c5a088d156",
		"0b8e4a5c-1d2f-4a6b-9c3d-7e8f9a0b1c2d",
		"11111111-2222-3333-4444-555555555555",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestReadRunIDsEmpty(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ids")
	writeFile(t, p, "# nothing yet\n\n")
	got, err := ReadRunIDs(p)
	if err != nil || len(got) != 0 {
		t.Errorf("got %q, %v", got, err)
	}
}

func TestReadRunIDsBad(t *testing.T) {
	good := "fb47b2e6-5e43-4f90-be01-d5c5a088d156\n# comment\n"
	huge := strings.Repeat("a", 1<<20)
	tests := []struct {
		name, line string
		want       []string // fragments of the error after "file:3: "
		notWant    string
	}{
		{"traversal", "../../etc/passwd", []string{`invalid run ID "../../etc/passwd"`}, ""},
		{"query", "x?y=1", []string{`invalid run ID "x?y=1"`}, ""},
		{"uuid with query", "fb47b2e6-5e43-4f90-be01-d5c5a088d15?", []string{`invalid run ID "fb47b2e6-5e43-4f90-be01-d5c5a088d15?"`}, ""},
		{"two ids", "fb47b2e6-5e43-4f90-be01-d5c5a088d156 fb47b2e6-5e43-4f90-be01-d5c5a088d156", []string{"invalid run ID"}, ""},
		{"huge line", huge, []string{"invalid run ID", "(1048576 bytes)"}, strings.Repeat("a", 100)},
		{"non-UTF-8", "fb47b2e6-5e43-4f90-be01-d5c5a088\xff\xfe\xfd", []string{`invalid run ID "fb47b2e6-5e43-4f90-be01-d5c5a088\xff\xfe\xfd"`}, "\xff"},
		{"api key", "app-Q1w2E3r4T5y6U7i8O9p0Asdf", []string{"invalid run ID", "app-<redacted>"}, "Q1w2E3r4T5y6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "ids")
			writeFile(t, p, good+tt.line+"\n"+good)
			_, err := ReadRunIDs(p)
			if err == nil {
				t.Fatal("ReadRunIDs succeeded")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, p+":3: ") {
				t.Errorf("error does not start with file:line: %.200s", msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %.300q does not contain %q", msg, w)
				}
			}
			if tt.notWant != "" && strings.Contains(msg, tt.notWant) {
				t.Errorf("error contains %q: %.300q", tt.notWant, msg)
			}
			if len(msg) > 300 || strings.Contains(msg, "\n") {
				t.Errorf("error is not one short line: %.300q", msg)
			}
		})
	}
}

func TestReadRunIDsMissing(t *testing.T) {
	_, err := ReadRunIDs("testdata/no-such.ids")
	if err == nil || !strings.Contains(err.Error(), "testdata/no-such.ids") {
		t.Errorf("want an error naming the file, got %v", err)
	}
}
