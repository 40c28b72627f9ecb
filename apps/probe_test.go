package apps

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/dify-exporter/dify_exporter/client/difytest"
	"github.com/dify-exporter/dify_exporter/collector"
	"github.com/dify-exporter/dify_exporter/config"
)

// syncBuffer is a log sink safe for the probe's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// At start (and on reload) each app is probed in the background: a wrong
// key or URL is logged and shown within seconds, with no scrape, and a
// good app's release is known before the first one.
func TestStartProbesEachApp(t *testing.T) {
	srv := difytest.NewServer()
	t.Cleanup(srv.Close)
	const good, revoked = "app-goodkey1234567890abcd", "app-revokedkey1234567890"
	srv.AddApp(good, difytest.App{Name: "Translator", Mode: "workflow"})
	srv.AddApp(revoked, difytest.App{Name: "Old", Mode: "workflow"})
	srv.RevokeKey(revoked)
	srv.SetServerVersion("1.13.3")

	dir := t.TempDir()
	for name, key := range map[string]string{"good.key": good, "revoked.key": revoked} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(key+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfgFile := filepath.Join(dir, "dify.yml")
	yaml := "apps:\n" +
		"  - {name: translator, url: " + srv.URL() + ", api_key_file: " + filepath.Join(dir, "good.key") + "}\n" +
		"  - {name: old, url: " + srv.URL() + ", api_key_file: " + filepath.Join(dir, "revoked.key") + "}\n" +
		"  - {name: nowhere, url: http://127.0.0.1:1/v1, api_key_file: " + filepath.Join(dir, "good.key") + "}\n"
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	logger := log.NewLogfmtLogger(&logs)
	exp := collector.New(nil, collector.WithLogger(logger))
	loader := &Loader{ConfigFile: cfgFile, Defaults: config.Defaults{Timeout: 2 * time.Second, Concurrency: 2,
		Runs: config.RunLimits{Retention: time.Hour, Max: 1000}}}
	state := NewState(exp, loader, 0, 1, logger)
	cfg, err := loader.Load()
	if err != nil {
		t.Fatal(err)
	}
	if err := state.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := logs.String()
		if strings.Count(s, "Dify app probe failed") == 2 && strings.Contains(s, "Dify app reachable") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no probe results within 5 s of start; logs:\n%s", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := exp.App("translator").Status(); !st.Up || st.ServerVersion != "1.13.3" || st.Mode != "workflow" {
		t.Errorf("good app: %+v, want up, release 1.13.3 and its mode known before any scrape", st)
	}
	if st := exp.App("old").Status(); st.Up || !strings.Contains(st.LastError, "refused") {
		t.Errorf("revoked key: %+v, want down and the key named refused", st)
	}
	if st := exp.App("nowhere").Status(); st.Up || st.LastError == "" {
		t.Errorf("unreachable URL: %+v, want down with the error", st)
	}
	if strings.Contains(logs.String(), "goodkey") || strings.Contains(logs.String(), "revokedkey") {
		t.Errorf("a key reached the logs:\n%s", logs.String())
	}
	if got := srv.Requests(difytest.EndpointLogs) + srv.Requests(difytest.EndpointRun); got != 0 {
		t.Errorf("%d run or log calls: a probe asks only for the release and the app", got)
	}
}
