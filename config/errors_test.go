package config

import (
	"strings"
	"testing"
)

// TestEveryErrorReported: a file with several errors reports each, with its line, in the
// file's order: every decoding error (unknown keys, wrong types) at once, else each app's.
func TestEveryErrorReported(t *testing.T) {
	app := func(name, extra string) string {
		return "  - name: " + name + "\n    url: http://dify.internal/v1\n    api_key_file: k\n" + extra
	}
	for _, tc := range []struct {
		name, yaml string
		want       []string // in this order
	}{
		{"unknown field, then a bad duration",
			"apps:\n" + app("one", "    bogus: 1\n") + app("two", "    timeout: 10q\n"),
			[]string{`line 5: app "one": unknown field "bogus"`, `line 9: app "two": timeout: want a duration`}},
		{"bad duration, then a float for an integer",
			"apps:\n" + app("one", "    timeout: 10q\n") + app("two", "    concurrency: 1.5\n"),
			[]string{`line 5: app "one": timeout: want a duration`, `line 9: app "two": concurrency: want an integer`}},
		{"two apps' values",
			"apps:\n  - name: one\n    url: ftp://x/v1\n    api_key_file: k\n" + app("two", "    concurrency: 0\n"),
			[]string{`line 3: app "one": url "ftp://x/v1": want scheme http or https`, `app "two": concurrency`}},
		{"a duplicate name and a value",
			"apps:\n" + app("one", "") + app("one", "") + app("three", "    concurrency: 0\n"),
			[]string{`line 5: app "one" (apps[1]) has the same name as apps[0]`, `app "three": concurrency must be >= 1`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), flagDefaults)
			if err == nil {
				t.Fatalf("no error for\n%s", tc.yaml)
			}
			msg, at := err.Error(), 0
			for _, w := range tc.want {
				i := strings.Index(msg[at:], w)
				if i < 0 {
					t.Errorf("error %q lacks %q (after position %d)", msg, w, at)
					break
				}
				at += i + len(w)
			}
		})
	}
}

func TestErrorListCaps(t *testing.T) {
	var l errorList
	if l.err() != nil {
		t.Fatal("an empty list is an error")
	}
	for _, m := range []string{"a", "b", "a", "c", "d", "e", "f", "g"} {
		l.add(errString(m))
	}
	if got, want := l.err().Error(), "a; b; c; d; e; and 2 more errors"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
}

type errString string

func (e errString) Error() string { return string(e) }
