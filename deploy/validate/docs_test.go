package validate

import (
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/strvals"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/dify-exporter/dify_exporter/config"
)

// docFiles are the documents whose commands the tests below run.
var docFiles = []string{"README.md", filepath.Join("docs", "deployment.md")}

// shellCommands returns the commands of the fenced sh blocks of the docs, with continuation
// lines joined, each split into words as the shell would (single and double quotes, no
// expansion).
func shellCommands(t *testing.T) [][]string {
	t.Helper()
	var cmds [][]string
	for _, f := range docFiles {
		b, err := os.ReadFile(filepath.Join(repoRoot, f))
		if err != nil {
			t.Fatal(err)
		}
		inSh := false
		var line string
		for _, l := range strings.Split(string(b), "\n") {
			trimmed := strings.TrimSpace(l)
			switch {
			case strings.HasPrefix(trimmed, "```sh"):
				inSh = true
				continue
			case strings.HasPrefix(trimmed, "```"):
				inSh = false
				continue
			case !inSh:
				continue
			}
			if c, ok := strings.CutSuffix(trimmed, `\`); ok {
				line += c + " "
				continue
			}
			line += trimmed
			if words := shellWords(t, line); len(words) > 0 {
				cmds = append(cmds, words)
			}
			line = ""
		}
	}
	return cmds
}

func shellWords(t *testing.T, line string) []string {
	t.Helper()
	var words []string
	var w strings.Builder
	inWord := false
	var quote rune
	for _, r := range line {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			w.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == '#' && !inWord:
			return words
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		t.Fatalf("unterminated quote in %q", line)
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}

// TestDocsHelmCommand renders the `helm install` the docs print with Helm's engine, values
// from its --set flags as Helm parses them, and checks what the exporter would get: a config
// its parser accepts in which every app discovers runs, and key files that are in the Secret
// the docs' `kubectl create secret` makes.
func TestDocsHelmCommand(t *testing.T) {
	var helm [][]string
	secrets := map[string][]string{} // Secret name -> its keys, from `kubectl create secret generic`
	for _, c := range shellCommands(t) {
		switch {
		case len(c) > 2 && c[0] == "helm" && c[1] == "install":
			helm = append(helm, c)
		case len(c) > 4 && c[0] == "kubectl" && containsSeq(c, "create", "secret", "generic"):
			name := c[indexOf(c, "generic")+1]
			for _, a := range c {
				if v, ok := strings.CutPrefix(a, "--from-file="); ok {
					k, _, _ := strings.Cut(v, "=")
					secrets[name] = append(secrets[name], k)
				}
			}
		}
	}
	if len(helm) == 0 {
		t.Fatalf("no helm install command in %v", docFiles)
	}
	for _, c := range helm {
		t.Run("release "+c[2], func(t *testing.T) {
			if got := filepath.Join(repoRoot, c[3]); got != chartDir {
				t.Fatalf("chart %s, want %s", c[3], chartDir)
			}
			vals := map[string]any{}
			for i, a := range c {
				switch {
				case a == "--set" && i+1 < len(c):
					if err := strvals.ParseInto(c[i+1], vals); err != nil {
						t.Fatalf("--set %s: %v", c[i+1], err)
					}
				case a == "-f" || a == "--values" || strings.HasPrefix(a, "--set-") || strings.HasPrefix(a, "--values="):
					t.Fatalf("%s: this test reads only --set", a)
				case (a == "-n" || a == "--namespace") && i+1 < len(c) && c[i+1] != namespace:
					t.Fatalf("namespace %s; the test renders into %s", c[i+1], namespace)
				}
			}
			r, err := renderValues(t, vals)
			if err != nil {
				t.Fatal(err)
			}
			cfg, secret := renderedConfig(t, r)
			if len(cfg.Apps) == 0 {
				t.Fatal("no app configured")
			}
			keys, ok := secrets[secret]
			if !ok {
				t.Errorf("keys are mounted from the Secret %q, which the docs do not create (they create %v)", secret, secrets)
			}
			for _, app := range cfg.Apps {
				if !app.Discovery.WorkflowLogs {
					t.Errorf("app %s: discovery off; the docs' command configures an exporter that tracks nothing", app.Name)
				}
				if !strings.Contains(strings.Join(keys, " "), path.Base(app.APIKeyFile)) {
					t.Errorf("app %s reads key %s, not in the Secret's keys %v", app.Name, path.Base(app.APIKeyFile), keys)
				}
			}
		})
	}
}

// renderedConfig returns the exporter's config as its parser reads the rendered ConfigMap, and
// the Secret the keys are mounted from.
func renderedConfig(t *testing.T, r rendered) (*config.Config, string) {
	t.Helper()
	d := objectsOf[*appsv1.Deployment](r)[0]
	pod := d.Spec.Template.Spec
	var cfgFile, secret, cmName string
	for _, a := range pod.Containers[0].Args {
		if v, ok := strings.CutPrefix(a, "--config.file="); ok {
			cfgFile = v
		}
	}
	for _, m := range pod.Containers[0].VolumeMounts {
		for _, v := range pod.Volumes {
			switch {
			case v.Name != m.Name:
			case v.Secret != nil:
				secret = v.Secret.SecretName
			case v.ConfigMap != nil && m.MountPath == path.Dir(cfgFile):
				cmName = v.ConfigMap.Name
			}
		}
	}
	for _, cm := range objectsOf[*corev1.ConfigMap](r) {
		if cm.Name != cmName {
			continue
		}
		cfg, err := config.Parse([]byte(cm.Data[path.Base(cfgFile)]), config.Defaults{
			URL: "https://api.dify.ai/v1", Runs: config.RunLimits{Retention: time.Hour, Max: 1000},
			Timeout: 10 * time.Second, Concurrency: 8, Discovery: config.Discovery{Lookback: time.Hour}})
		if err != nil {
			t.Fatalf("rendered config: %v", err)
		}
		return cfg, secret
	}
	t.Fatalf("no ConfigMap %q holding %s", cmName, cfgFile)
	return nil, ""
}

func indexOf(words []string, w string) int {
	for i, x := range words {
		if x == w {
			return i
		}
	}
	return -1
}

func containsSeq(words []string, seq ...string) bool {
	i := indexOf(words, seq[0])
	return i >= 0 && i+len(seq) <= len(words) && strings.Join(words[i:i+len(seq)], " ") == strings.Join(seq, " ")
}

// TestComposePinsTestedReleases: the compose file runs the Prometheus and Alertmanager releases
// the tests run the rules, the configs and the end-to-end test with.
func TestComposePinsTestedReleases(t *testing.T) {
	p := composeProject(t)
	versionRE := regexp.MustCompile(`version (\d+\.\d+)\.\d+`)
	for _, tc := range []struct{ service, tool string }{
		{"prometheus", "prometheus"},
		{"alertmanager", "prometheus-alertmanager"},
	} {
		bin := tool(t, tc.tool, "apt-get install prometheus prometheus-alertmanager")
		out, _ := exec.Command(bin, "--version").CombinedOutput()
		m := versionRE.FindStringSubmatch(string(out))
		if m == nil {
			t.Fatalf("%s --version: no version in %q", tc.tool, out)
		}
		img := service(t, p, tc.service).Image
		_, tag, _ := strings.Cut(img, ":")
		if !strings.HasPrefix(tag, "v"+m[1]+".") {
			t.Errorf("compose service %s runs %s; the tests run %s %s.x", tc.service, img, tc.tool, m[1])
		}
	}
}
