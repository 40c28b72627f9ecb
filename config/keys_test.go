package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const testKey = "app-Q1w2E3r4T5y6U7i8O9p0Asdf"

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestAPIKeyFromFile(t *testing.T) {
	dir := t.TempDir()
	for _, content := range []string{testKey, testKey + "\n", "  " + testKey + "\r\n\n", "\t" + testKey} {
		p := filepath.Join(dir, "k")
		writeFile(t, p, content)
		got, err := App{Name: "a", APIKeyFile: p}.APIKey()
		if err != nil || got != testKey {
			t.Errorf("APIKey from %q = %q, %v", content, got, err)
		}
	}
}

func TestAPIKeyFromEnv(t *testing.T) {
	t.Setenv("DIFY_TEST_KEY", testKey+"\n")
	got, err := App{Name: "a", APIKeyEnv: "DIFY_TEST_KEY"}.APIKey()
	if err != nil || got != testKey {
		t.Errorf("APIKey from env = %q, %v", got, err)
	}
}

func TestAPIKeyErrors(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("DIFY_TEST_EMPTY", "")
	t.Setenv("DIFY_TEST_TWO", testKey+" "+testKey)
	writeFile(t, filepath.Join(dir, "empty"), "\n \n")
	writeFile(t, filepath.Join(dir, "two-lines"), testKey+"\n"+testKey+"\n")
	writeFile(t, filepath.Join(dir, "huge"), strings.Repeat(testKey, 1000))
	if err := os.Mkdir(filepath.Join(dir, "a-directory"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		app  App
		want string
	}{
		{App{Name: "a", APIKeyFile: filepath.Join(dir, "missing")}, "api_key_file: open " + filepath.Join(dir, "missing") + ": no such file or directory"},
		{App{Name: "a", APIKeyFile: filepath.Join(dir, "empty")}, "api_key_file " + filepath.Join(dir, "empty") + " is empty"},
		{App{Name: "a", APIKeyFile: filepath.Join(dir, "two-lines")}, "holds more than one word or line"},
		{App{Name: "a", APIKeyFile: filepath.Join(dir, "huge")}, "is larger than 4096 bytes"},
		{App{Name: "a", APIKeyFile: filepath.Join(dir, "a-directory")}, "is a directory"},
		{App{Name: "a", APIKeyEnv: "DIFY_TEST_UNSET_VARIABLE"}, "environment variable DIFY_TEST_UNSET_VARIABLE (api_key_env) is not set"},
		{App{Name: "a", APIKeyEnv: "DIFY_TEST_EMPTY"}, "environment variable DIFY_TEST_EMPTY (api_key_env) is empty"},
		{App{Name: "a", APIKeyEnv: "DIFY_TEST_TWO"}, "holds more than one word"},
		{App{Name: "a"}, `app "a": no API key source`},
	}
	for _, tt := range tests {
		_, err := tt.app.APIKey()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: got %v, want %q", tt.app, err, tt.want)
			continue
		}
		if strings.Contains(err.Error(), testKey[4:]) {
			t.Errorf("error leaks the key: %v", err)
		}
	}
}

func TestCheckKeys(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.key")
	bad := filepath.Join(dir, "bad.key")
	writeFile(t, good, testKey+"\n")
	writeFile(t, bad, testKey+"\nsecond line "+testKey+"\n")
	t.Setenv("DIFY_TEST_KEY", testKey)
	c := &Config{Apps: []App{
		{Name: "one", APIKeyFile: good},
		{Name: "two", APIKeyEnv: "DIFY_TEST_KEY"},
	}}
	if err := c.CheckKeys(); err != nil {
		t.Fatalf("CheckKeys: %v", err)
	}
	c.Apps = append(c.Apps, App{Name: "three", APIKeyFile: bad}, App{Name: "four", APIKeyEnv: "DIFY_TEST_UNSET_VARIABLE"})
	err := c.CheckKeys()
	if err == nil {
		t.Fatal("CheckKeys succeeded with a bad key file")
	}
	msg := err.Error()
	if !strings.Contains(msg, `app "three"`) || !strings.Contains(msg, bad) {
		t.Errorf("error does not name the app and the file: %s", msg)
	}
	if strings.Contains(msg, testKey[4:]) || strings.Contains(msg, "second line") {
		t.Errorf("error leaks the file's content: %s", msg)
	}
	c.Apps = append(c.Apps[:2], c.Apps[3])
	if err := c.CheckKeys(); err == nil || !strings.Contains(err.Error(), `app "four": environment variable DIFY_TEST_UNSET_VARIABLE`) {
		t.Errorf("want the env var named, got %v", err)
	}
}

func TestParseDoesNotReadKeys(t *testing.T) {
	// good.yml names a key file that does not exist and an unset variable:
	// Parse succeeds; CheckKeys fails.
	c, err := Load("testdata/good.yml", flagDefaults)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CheckKeys(); err == nil || !strings.Contains(err.Error(), `app "translator": api_key_file: open /etc/dify_exporter/translator.key`) {
		t.Errorf("CheckKeys: %v", err)
	}
}

// Issue 10/11: a key file with a byte order mark or a trailing NUL was sent
// as is (every call then got 401); other stray characters are refused with
// the file named, never the key.
func TestAPIKeyOddBytes(t *testing.T) {
	dir := t.TempDir()
	accepted := []string{
		"\ufeff" + testKey,
		"\ufeff" + testKey + "\r\n",
		testKey + "\x00",
		testKey + "\n\x00\x00",
		testKey + "\u00a0\n", // a no-break space from a copy and paste
	}
	for i, content := range accepted {
		p := filepath.Join(dir, fmt.Sprintf("ok%d", i))
		writeFile(t, p, content)
		if got, err := (App{Name: "a", APIKeyFile: p}).APIKey(); err != nil || got != testKey {
			t.Errorf("key file %q: got %q, %v; want the key", content, got, err)
		}
		if strings.Contains(content, "\x00") {
			continue // the environment cannot hold a NUL
		}
		t.Setenv("DIFY_TEST_ODD", content)
		if got, err := (App{Name: "a", APIKeyEnv: "DIFY_TEST_ODD"}).APIKey(); err != nil || got != testKey {
			t.Errorf("env %q: got %q, %v; want the key", content, got, err)
		}
	}
	refused := []struct{ content, want string }{
		{testKey[:10] + "\x00" + testKey[10:], "a control character (U+0000) at byte 10"},
		{"\x00" + testKey, "a control character (U+0000) at byte 0"},
		{testKey + "\x1b[0m", "a control character (U+001B)"},
		{testKey[:5] + "\ufeff" + testKey[5:], "a control character (U+FEFF) at byte 5"},
		{testKey + "\u200b", "a non-ASCII character (U+200B)"},
		{testKey + "é", "a non-ASCII character (U+00E9)"},
		{testKey + "\xff", "a byte that is not UTF-8"},
		{"\ufeff\ufeff" + testKey, "U+FEFF"},
		{"\ufeff", "is empty"},
		{"\x00\n", "is empty"},
	}
	for i, tc := range refused {
		p := filepath.Join(dir, fmt.Sprintf("bad%d", i))
		writeFile(t, p, tc.content)
		_, err := App{Name: "a", APIKeyFile: p}.APIKey()
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "api_key_file "+p) {
			t.Errorf("key file %q: got %v, want an error naming %s and saying %q", tc.content, err, p, tc.want)
			continue
		}
		if strings.Contains(err.Error(), testKey[4:14]) || strings.Contains(err.Error(), testKey[14:]) {
			t.Errorf("error leaks the key: %v", err)
		}
		if strings.Contains(tc.content, "\x00") {
			continue
		}
		t.Setenv("DIFY_TEST_ODD", tc.content)
		if _, err := (App{Name: "a", APIKeyEnv: "DIFY_TEST_ODD"}).APIKey(); err == nil || !strings.Contains(err.Error(), "DIFY_TEST_ODD") {
			t.Errorf("env %q: got %v, want an error naming the variable", tc.content, err)
		}
	}
}

// hostileKey is a Dify-shaped key (app- and 24 letters and digits).
const hostileKey = "app-Hq7Tz2Lm9Wx4Rb6Nc1Vd8Kp3"

// leaks6 returns the first 6-byte piece of a secret's random part found in
// text: a cut key, or a few characters of one, is still a leak.
func leaks6(text string, secrets ...string) string {
	for _, s := range secrets {
		if strings.HasPrefix(s, "app-") || strings.HasPrefix(s, "sk-") {
			_, s, _ = strings.Cut(s, "-")
		}
		for i := 0; i+6 <= len(s); i++ {
			if strings.Contains(text, s[i:i+6]) {
				return s[i : i+6]
			}
		}
	}
	return ""
}

// Issue 16: a key in the query or fragment of --dify.url was printed cut at
// 48 bytes but unredacted (19 of its 24 secret characters); through a
// config file, 11 characters slipped under the redaction pattern.
func TestURLQueryAndFragmentNeverShown(t *testing.T) {
	const password = "s3cr3tPassw0rdXYZ" // not key-shaped: only its place marks it
	tmpls := []string{
		"https://dify.example.com/v1?%s",
		"https://dify.example.com/v1?api_key=%s",
		"https://dify.example.com/v1?api_key=%s&x=1",
		"https://dify.example.com/v1#%s",
		"https://dify.example.com/v1#token=%s",
		"https://dify.example.com/v1/?a=1#%s",
		"https://d.example.com/v1?k=%s",                     // the key across the old 48-byte cut
		"https://dify.example.com/v1?xxxxxxxxxxxxxxxxxx=%s", // the key starting past the cut
		"https://dify.example.com/%[1]s/v1?k=%[1]s",
		"ftp://dify.example.com/v1?k=%s",
		"https://:443/v1?k=%s",
	}
	for _, tmpl := range tmpls {
		for _, secretValue := range []string{hostileKey, "sk-proj-AbCdEf0123456789_ghIJ-klmnOP", password} {
			if strings.Contains(tmpl, "%[1]s/") && secretValue == password {
				continue // a password in the path is not recognisable
			}
			u := fmt.Sprintf(tmpl, secretValue)
			a := App{Name: "a", URL: u, APIKeyEnv: "K", Runs: RunLimits{Retention: time.Hour, Max: 1}, Timeout: time.Second, Concurrency: 1}
			_, ferr := FromFlags(a)
			_, perr := Parse([]byte("apps:\n  - name: a\n    api_key_env: K\n    url: '"+u+"'\n"), flagDefaults)
			for what, err := range map[string]error{"--dify.url": ferr, "config file": perr} {
				if err == nil {
					t.Errorf("%s %q: no error", what, u)
					continue
				}
				if l := leaks6(err.Error(), secretValue); l != "" {
					t.Errorf("%s %q: error leaks %q: %v", what, u, l, err)
				}
				if !strings.Contains(err.Error(), "example.com") && !strings.Contains(err.Error(), "https://:443") {
					t.Errorf("%s %q: error does not name the host: %v", what, u, err)
				}
			}
		}
	}
}

// Issue 16: the key-shaped app-name check matched only exactly 24
// characters after app-.
func TestAppNameLooksLikeKey(t *testing.T) {
	tests := []struct {
		name string
		key  bool
	}{
		{hostileKey, true},
		{hostileKey[:15], true}, // 11 characters after app-
		{hostileKey[:10], true}, // 6
		{hostileKey + "Xy9", true},
		{"prod-" + hostileKey, true},
		{"sk-proj-AbCdEf0123456789_ghIJ-klmnOP", true},
		{"sk-Ab12cd", true},
		{"dataset-Ab12Cd34Ef56", true},
		{"translator", false},
		{"app-translator", false},
		{"app-customer-support-bot", false},
		{"app-v2", false},
		{"sk-learn", false},
		{"desk-lamp", false},
	}
	for _, tc := range tests {
		a := App{Name: tc.name, URL: "https://api.dify.ai/v1", APIKeyEnv: "K", Runs: RunLimits{Retention: time.Hour, Max: 1}, Timeout: time.Second, Concurrency: 1}
		_, ferr := FromFlags(a)
		_, perr := Parse([]byte("apps:\n  - name: "+tc.name+"\n    api_key_env: K\n"), flagDefaults)
		for what, err := range map[string]error{"--dify.app-name": ferr, "config file": perr} {
			refused := err != nil && strings.Contains(err.Error(), "looks like an API key")
			if refused != tc.key {
				t.Errorf("%s %q: error %v; want refused as a key: %v", what, tc.name, err, tc.key)
			}
			if err != nil && tc.key {
				if l := leaks6(err.Error(), tc.name); l != "" {
					t.Errorf("%s %q: error leaks %q: %v", what, tc.name, l, err)
				}
			}
		}
	}
}
