package validate

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// dockerfile parses the Dockerfile as BuildKit does, its linter's warnings an error.
func dockerfile(t *testing.T) []instructions.Stage {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range res.Warnings {
		t.Errorf("Dockerfile: %s", w.Short)
	}
	lint := linter.New(&linter.Config{Warn: func(rule, _, _, msg string, loc []parser.Range) {
		t.Errorf("Dockerfile lint %s: %s (line %v)", rule, msg, loc)
	}})
	stages, _, err := instructions.Parse(res.AST, lint)
	if err != nil {
		t.Fatal(err)
	}
	return stages
}

// buildArgs are the build args the README's docker build passes, with test values.
var buildArgs = map[string]string{
	"VERSION": "1.2.3", "REVISION": "0123456789abcdef0123456789abcdef01234567",
	"BRANCH": "release-1.2", "BUILD_USER": "builder@ci", "BUILD_DATE": "2025-01-02T03:04:05Z",
}

// stageEnv is what the stage's ARG commands declare, valued from buildArgs: a stage sees only
// the args it declares.
func stageEnv(s instructions.Stage) []string {
	var env []string
	for _, c := range s.Commands {
		if a, ok := c.(*instructions.ArgCommand); ok {
			for _, kv := range a.Args {
				if v, ok := buildArgs[kv.Key]; ok {
					env = append(env, kv.Key+"="+v)
				}
			}
		}
	}
	return env
}

func TestDockerfileImage(t *testing.T) {
	stages := dockerfile(t)
	if len(stages) != 2 {
		t.Fatalf("%d stages, want a build stage and the image", len(stages))
	}
	final := stages[len(stages)-1]
	if final.BaseName != "gcr.io/distroless/static-debian12:nonroot" {
		t.Errorf("base image %q, want distroless static nonroot", final.BaseName)
	}
	lex := shell.NewLex('\\')
	env := shell.EnvsFromSlice(stageEnv(final))
	labels := map[string]string{}
	var user string
	var entrypoint []string
	for _, c := range final.Commands {
		switch c := c.(type) {
		case *instructions.LabelCommand:
			for _, kv := range c.Labels {
				k, _, err := lex.ProcessWord(kv.Key, env)
				if err != nil {
					t.Fatal(err)
				}
				v, _, err := lex.ProcessWord(kv.Value, env)
				if err != nil {
					t.Fatal(err)
				}
				labels[k] = v
			}
		case *instructions.UserCommand:
			user = c.User
		case *instructions.EntrypointCommand:
			entrypoint = c.CmdLine
		}
	}
	const oci = "org.opencontainers.image."
	for k, want := range map[string]string{
		"version": buildArgs["VERSION"], "revision": buildArgs["REVISION"], "created": buildArgs["BUILD_DATE"],
		"licenses": "Apache-2.0", "title": "dify_exporter", "source": "https://github.com/dify-exporter/dify_exporter",
	} {
		if labels[oci+k] != want {
			t.Errorf("label %s%s = %q, want %q", oci, k, labels[oci+k], want)
		}
	}
	if labels[oci+"description"] == "" {
		t.Errorf("no label %sdescription", oci)
	}
	if lic, err := os.ReadFile(filepath.Join(repoRoot, "LICENSE")); err != nil || !strings.Contains(string(lic), "Apache License\n                           Version 2.0") {
		t.Errorf("LICENSE is not the Apache License 2.0 the image label names (%v)", err)
	}
	if !strings.HasPrefix(user, "nonroot") && !strings.HasPrefix(user, "65532") {
		t.Errorf("USER %q, want the distroless nonroot user", user)
	}
	if len(entrypoint) != 1 || entrypoint[0] != "/bin/dify_exporter" {
		t.Errorf("ENTRYPOINT %v", entrypoint)
	}
}

// buildContext copies what `docker build .` sends, the checkout less .dockerignore, to a
// temporary directory.
func buildContext(t *testing.T) string {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	patterns, err := ignorefile.ReadAll(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	err = filepath.WalkDir(repoRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == repoRoot {
			return err
		}
		rel, _ := filepath.Rel(repoRoot, p)
		rel = filepath.ToSlash(rel)
		ignored, err := pm.MatchesOrParentMatches(rel)
		if err != nil {
			return err
		}
		if ignored {
			if d.IsDir() && !pm.Exclusions() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		copyFile(t, p, filepath.Join(dst, rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestDockerBuildContext(t *testing.T) {
	ctx := buildContext(t)
	for _, p := range []string{".git", ".ci", "deploy", "e2e", "main_test.go", "Dockerfile"} {
		if _, err := os.Stat(filepath.Join(ctx, p)); err == nil {
			t.Errorf("%s is in the build context", p)
		}
	}
	var tests []string
	filepath.WalkDir(ctx, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, "_test.go") {
			tests = append(tests, p)
		}
		return err
	})
	if len(tests) > 0 {
		t.Errorf("test files in the build context: %v", tests)
	}
}

// TestDockerBuildStage runs the build stage's RUN commands after `COPY . .` on the build
// context, with the README's build args, and reads the binary's --version: the context holds
// all the build needs and every version field is stamped.
func TestDockerBuildStage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the exporter")
	}
	stages := dockerfile(t)
	build := stages[0]
	final := stages[len(stages)-1]
	var out string // the binary the image copies from the build stage
	for _, c := range final.Commands {
		if cp, ok := c.(*instructions.CopyCommand); ok && cp.From == build.Name && len(cp.SourcePaths) == 1 {
			out = cp.SourcePaths[0]
		}
	}
	if out == "" {
		t.Fatalf("the image copies nothing from stage %q", build.Name)
	}
	ctx := buildContext(t)
	bin := filepath.Join(t.TempDir(), "dify_exporter")
	copied := false
	ran := 0
	for _, c := range build.Commands {
		switch c := c.(type) {
		case *instructions.CopyCommand:
			copied = copied || (len(c.SourcePaths) == 1 && c.SourcePaths[0] == "." && c.DestPath == ".")
		case *instructions.RunCommand:
			if !copied || !c.PrependShell || len(c.CmdLine) != 1 {
				continue // go mod download: nothing to check without the network
			}
			// The binary goes to a temporary path instead of / on this machine.
			script := strings.ReplaceAll(c.CmdLine[0], out, bin)
			if !strings.Contains(script, bin) {
				t.Fatalf("RUN %q does not write %s", c.CmdLine[0], out)
			}
			cmd := exec.Command("sh", "-c", script)
			cmd.Dir = ctx
			cmd.Env = append(os.Environ(), append(stageEnv(build), "GOFLAGS=", "GOWORK=off")...)
			o, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("RUN %s: %v\n%s", script, err, o)
			}
			ran++
		}
	}
	if ran == 0 {
		t.Fatal("no RUN after COPY . . in the build stage")
	}
	v, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("--version: %v\n%s", err, v)
	}
	for _, want := range []string{
		fmt.Sprintf("version %s (branch: %s, revision: %s)", buildArgs["VERSION"], buildArgs["BRANCH"], buildArgs["REVISION"]),
		"build user:       " + buildArgs["BUILD_USER"] + "\n",
		"build date:       " + buildArgs["BUILD_DATE"] + "\n",
	} {
		if !strings.Contains(string(v), want) {
			t.Errorf("--version lacks %q:\n%s", want, v)
		}
	}
}
