package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/prometheus/common/version"
)

func TestStampFromVCS(t *testing.T) {
	vcs := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	for _, tc := range []struct {
		name              string
		settings          []debug.BuildSetting
		rev, date         string // stamped before (by -ldflags)
		wantRev, wantDate string
	}{
		{"clean", vcs("vcs", "git", "vcs.revision", "abc123", "vcs.time", "2024-05-06T07:08:09Z", "vcs.modified", "false"),
			"", "", "abc123", "2024-05-06T07:08:09Z"},
		{"dirty", vcs("vcs.revision", "abc123", "vcs.time", "2024-05-06T07:08:09Z", "vcs.modified", "true"),
			"", "", "abc123-modified", "2024-05-06T07:08:09Z"},
		{"ldflags win", vcs("vcs.revision", "abc123", "vcs.time", "2024-05-06T07:08:09Z", "vcs.modified", "true"),
			"fromldflags", "20240101-00:00:00", "fromldflags", "20240101-00:00:00"},
		{"no vcs data", vcs("-compiler", "gc", "CGO_ENABLED", "0"), "", "", "", ""},
		{"modified without revision", vcs("vcs.modified", "true"), "", "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			oldRev, oldDate := version.Revision, version.BuildDate
			t.Cleanup(func() { version.Revision, version.BuildDate = oldRev, oldDate })
			version.Revision, version.BuildDate = tc.rev, tc.date
			stampFromVCS(tc.settings)
			if version.Revision != tc.wantRev || version.BuildDate != tc.wantDate {
				t.Errorf("revision %q, build date %q; want %q, %q", version.Revision, version.BuildDate, tc.wantRev, tc.wantDate)
			}
		})
	}
}

// TestVersionStamping builds the exporter from a copy of this module committed into a fresh git
// repository (a git worktree or an export has no VCS data the go command can read), once plain,
// once from a dirty tree and once with release -ldflags, and reads `--version`.
func TestVersionStamping(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the exporter three times")
	}
	git, err := exec.LookPath("git")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("git not found in PATH (CI is set, so this is an error)")
		}
		t.Skip("git not found in PATH")
	}
	src := filepath.Join(t.TempDir(), "src")
	runIn := func(dir string, env []string, name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	files := runIn(".", nil, git, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	for _, f := range strings.Split(strings.TrimRight(files, "\x00"), "\x00") {
		b, err := os.ReadFile(f)
		if os.IsNotExist(err) { // deleted, not yet committed
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(src, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The version a plain build reports is the VERSION file's, whatever it says.
	if err := os.WriteFile(filepath.Join(src, "VERSION"), []byte("9.8.7-test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const commitTime = "2024-05-06T07:08:09Z"
	gitEnv := []string{"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.invalid", "GIT_COMMITTER_NAME=t",
		"GIT_COMMITTER_EMAIL=t@example.invalid", "GIT_AUTHOR_DATE=" + commitTime, "GIT_COMMITTER_DATE=" + commitTime}
	runIn(src, gitEnv, git, "init", "-q")
	runIn(src, gitEnv, git, "add", "-A")
	runIn(src, gitEnv, git, "commit", "-q", "-m", "snapshot")
	head := strings.TrimSpace(runIn(src, gitEnv, git, "rev-parse", "HEAD"))

	// GOFLAGS may hold -buildvcs=false (it does on some machines); the flag below overrides it.
	build := func(ldflags string) string {
		t.Helper()
		bin := filepath.Join(t.TempDir(), "dify_exporter")
		args := []string{"build", "-buildvcs=true", "-o", bin}
		if ldflags != "" {
			args = append(args, "-ldflags", ldflags)
		}
		runIn(src, []string{"GOWORK=off", "GOFLAGS=-mod=readonly"}, "go", append(args, ".")...)
		return runIn(src, nil, bin, "--version")
	}
	expect := func(what, out string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: --version output lacks %q:\n%s", what, w, out)
			}
		}
	}

	expect("plain go build", build(""), "version 9.8.7-test ", "revision: "+head+")", "build date:       "+commitTime+"\n")

	if err := os.WriteFile(filepath.Join(src, "README.md"), []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	expect("dirty tree", build(""), "revision: "+head+"-modified)")

	const p = "-X github.com/prometheus/common/version."
	out := build(p + "Version=1.2.3 " + p + "Revision=feedface " + p + "Branch=release-1.2 " +
		p + "BuildUser=builder@ci " + p + "BuildDate=20250102-03:04:05")
	expect("release -ldflags", out, "version 1.2.3 (branch: release-1.2, revision: feedface)",
		"build user:       builder@ci\n", "build date:       20250102-03:04:05\n")
}
