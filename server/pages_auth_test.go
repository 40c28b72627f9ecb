package server

import (
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/exporter-toolkit/web"
	"golang.org/x/crypto/bcrypt"
)

// The operator pages sit behind --web.config.file's basic auth, as
// /metrics does.
func TestPagesBehindWebConfigAuth(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webCfg := filepath.Join(t.TempDir(), "web.yml")
	if err := os.WriteFile(webCfg, []byte("basic_auth_users:\n  op: "+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h, err := NewHandler(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	addrs, systemd := []string{"127.0.0.1:0"}, false
	flags := &web.FlagConfig{WebListenAddresses: &addrs, WebSystemdSocket: &systemd, WebConfigFile: &webCfg}
	logger := slog.New(slog.DiscardHandler)
	ls, err := Listen(flags, nil, logger)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(h, DefaultTimeouts, nil)
	done := make(chan error, 1)
	go func() { done <- web.ServeMultiple(ls, srv, flags, logger) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	base := "http://" + ls[0].Addr().String()
	for _, path := range []string{"/", "/runs", "/runs?format=json", "/refreshes?app=x", "/config", "/metrics"} {
		for _, auth := range []struct {
			user, pass string
			want       int
		}{{"", "", http.StatusUnauthorized}, {"op", "wrong", http.StatusUnauthorized}, {"op", "s3cret", 0}} {
			req, _ := http.NewRequest(http.MethodGet, base+path, nil)
			if auth.user != "" {
				req.SetBasicAuth(auth.user, auth.pass)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if auth.want != 0 && resp.StatusCode != auth.want || auth.want == 0 && resp.StatusCode == http.StatusUnauthorized {
				t.Errorf("%s as %q/%q: %d", path, auth.user, auth.pass, resp.StatusCode)
			}
		}
	}
}
