package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Issue 10: --config.check passed configs that start-up then refused (a CA
// file that does not exist), and ones that fail later (a missing or bad
// run_ids_file, a key file that is not a key). Check refuses them all,
// naming the app and the file.
func TestCheck(t *testing.T) {
	const runID = "fb47b2e6-5e43-4f90-be01-d5c5a088d156"
	app := func(extra string) string {
		return "apps:\n  - name: a\n    api_key_file: a.key\n" + extra + "  - name: b\n    api_key_file: a.key\n"
	}
	tests := []struct {
		name  string
		cfg   string
		files map[string]string // relative to the config's directory
		want  string            // "" for success; else a fragment, with DIR for the directory
	}{
		{name: "good", cfg: app("    run_ids_file: ids.txt\n"),
			files: map[string]string{"a.key": testKey + "\n", "ids.txt": "# runs\n" + runID + "\n"}},
		{name: "key file with a BOM is fine", cfg: app(""),
			files: map[string]string{"a.key": "\ufeff" + testKey + "\r\n"}},
		{name: "CA file missing", cfg: app("    http_client_config:\n      tls_config: {ca_file: ca.pem}\n"),
			files: map[string]string{"a.key": testKey},
			want:  `app "a": http_client_config: unable to read CA cert: unable to read file DIR/ca.pem: open DIR/ca.pem: no such file or directory`},
		{name: "CA file not a certificate", cfg: app("    http_client_config:\n      tls_config: {ca_file: ca.pem}\n"),
			files: map[string]string{"a.key": testKey, "ca.pem": "not a certificate\n"},
			want:  `app "a": http_client_config: unable to use specified CA cert file DIR/ca.pem`},
		{name: "client certificate missing", cfg: app("    http_client_config:\n      tls_config: {cert_file: c.pem, key_file: k.pem}\n"),
			files: map[string]string{"a.key": testKey},
			want:  `app "a": http_client_config:`},
		{name: "run_ids_file missing", cfg: app("    run_ids_file: ids.txt\n"),
			files: map[string]string{"a.key": testKey},
			want:  `app "a": run_ids_file: run IDs file: open DIR/ids.txt: no such file or directory`},
		{name: "run_ids_file with a bad line", cfg: app("    run_ids_file: ids.txt\n"),
			files: map[string]string{"a.key": testKey, "ids.txt": runID + "\n\n" + testKey + "\n"},
			want:  `app "a": run_ids_file: DIR/ids.txt:3: invalid run ID "app-<redacted>"`},
		{name: "key file with a NUL inside", cfg: app(""),
			files: map[string]string{"a.key": testKey[:8] + "\x00" + testKey[8:]},
			want:  `app "a": api_key_file DIR/a.key holds a control character (U+0000) at byte 8`},
		{name: "key file empty after the BOM", cfg: app(""),
			files: map[string]string{"a.key": "\ufeff\n"},
			want:  `app "a": api_key_file DIR/a.key is empty`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "dify.yml")
			writeFile(t, p, tc.cfg)
			for name, content := range tc.files {
				writeFile(t, filepath.Join(dir, name), content)
			}
			c, err := Load(p, flagDefaults)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			err = c.Check()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			want := strings.ReplaceAll(tc.want, "DIR", dir)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("Check: got %v\nwant %s", err, want)
			}
			if strings.Contains(err.Error(), testKey[4:]) || strings.Contains(err.Error(), testKey[8:]) {
				t.Errorf("error leaks the key: %v", err)
			}
		})
	}
}

// The flags-only setup gets the same checks.
func TestCheckFromFlags(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "k")
	writeFile(t, key, testKey)
	c, err := FromFlags(App{Name: "default", URL: "http://dify/v1", APIKeyFile: key, RunIDsFile: filepath.Join(dir, "missing.ids"),
		Runs: RunLimits{Retention: 1, Max: 1}, Timeout: 1, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Check(); err == nil || !strings.Contains(err.Error(), "missing.ids") {
		t.Errorf("Check: %v, want the missing run IDs file named", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "missing.ids"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.Check(); err != nil {
		t.Errorf("Check with an empty run IDs file: %v", err)
	}
}
