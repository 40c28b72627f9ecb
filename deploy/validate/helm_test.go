package validate

import (
	"bytes"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/dify-exporter/dify_exporter/alerts"
	"github.com/dify-exporter/dify_exporter/config"
	"github.com/dify-exporter/dify_exporter/dashboards"
)

var chartDir = filepath.Join(repoRoot, "deploy", "helm", "dify-exporter")

const namespace = "monitoring"

// decoder decodes Kubernetes and Prometheus Operator objects strictly: an unknown or
// duplicate field, or a kind it does not know, is an error.
var decoder = func() runtime.Decoder {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, monitoringv1.AddToScheme} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return serializer.NewCodecFactory(s, serializer.EnableStrict).UniversalDeserializer()
}()

func TestStrictDecoder(t *testing.T) {
	for name, doc := range map[string]string{
		"unknown field":   "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replica: 1}\n",
		"duplicate field": "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {type: ClusterIP, type: NodePort}\n",
		"unknown kind":    "apiVersion: monitoring.coreos.com/v1\nkind: PodMonitorr\nmetadata: {name: x}\n",
		"wrong type":      "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: x}\nspec: {endpoints: {port: a}}\n",
	} {
		if _, _, err := decoder.Decode([]byte(doc), nil, nil); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

// rendered are the objects of one `helm template`.
type rendered []runtime.Object

// objectsOf returns the rendered objects of type T.
func objectsOf[T runtime.Object](r rendered) []T {
	var out []T
	for _, o := range r {
		if v, ok := o.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// chartKinds are the kinds the chart renders.
var chartKinds = map[string]bool{"Deployment": true, "Service": true, "ConfigMap": true, "Secret": true,
	"ServiceMonitor": true, "PrometheusRule": true}

// render renders the chart as `helm template dify CHART -n monitoring -f values` does, with
// undefined values an error, and decodes every object strictly.
func render(t *testing.T, values string) (rendered, error) {
	t.Helper()
	vals, err := chartutil.ReadValues([]byte(values))
	if err != nil {
		t.Fatal(err)
	}
	return renderValues(t, vals)
}

// renderValues is render with values already parsed (e.g. from --set flags).
func renderValues(t *testing.T, vals chartutil.Values) (rendered, error) {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	top, err := chartutil.ToRenderValues(ch, vals, chartutil.ReleaseOptions{Name: "dify", Namespace: namespace, Revision: 1, IsInstall: true}, chartutil.DefaultCapabilities)
	if err != nil {
		return nil, err
	}
	files, err := engine.Engine{Strict: true}.Render(ch, top)
	if err != nil {
		return nil, err
	}
	var r rendered
	for name, content := range files {
		if path.Ext(name) != ".yaml" {
			continue // NOTES.txt
		}
		for _, doc := range releaseutil.SplitManifests(content) {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			obj, gvk, err := decoder.Decode([]byte(doc), nil, nil)
			if err != nil {
				t.Fatalf("%s: %v\n%s", name, err, doc)
			}
			if !chartKinds[gvk.Kind] {
				t.Fatalf("%s: unexpected %s", name, gvk)
			}
			r = append(r, obj)
			if ns := obj.(interface{ GetNamespace() string }).GetNamespace(); ns != namespace {
				t.Errorf("%s: namespace %q, want the release's %q", name, ns, namespace)
			}
		}
	}
	return r, nil
}

const image = "image: {repository: registry.example.com/dify_exporter}\n"

func TestChartLint(t *testing.T) {
	vals, err := chartutil.ReadValues([]byte(image + "apiKeys: {keys: {default: app-x}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	l := lint.All(chartDir, vals, namespace, false)
	for _, m := range l.Messages {
		t.Log(m)
	}
	if l.HighestSeverity >= support.WarningSev {
		t.Errorf("helm lint: warnings or errors (above)")
	}
}

func TestChartRefusesMissingValues(t *testing.T) {
	for _, tc := range []struct{ values, want string }{
		{"apiKeys: {keys: {default: app-x}}\n", "image.repository"},
		{image, "apiKeys"},
	} {
		if _, err := render(t, tc.values); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("values %q: error %v, want one naming %s", tc.values, err, tc.want)
		}
	}
}

func TestChart(t *testing.T) {
	for _, tc := range []struct {
		name, values string
		keys         []string // the keys the chart's own Secret must hold; none: existingSecret
		monitoring   bool     // ServiceMonitor, PrometheusRule and dashboard rendered
		extraLabel   string   // set on the ServiceMonitor and PrometheusRule by the values
	}{
		{name: "chart secret", values: image + "apiKeys: {keys: {default: app-x}}\n",
			keys: []string{"default"}, monitoring: true},
		{name: "existing secret, monitoring off", values: image + `apiKeys: {existingSecret: my-keys}
serviceMonitor: {enabled: false}
prometheusRule: {enabled: false}
dashboard: {enabled: false}
`},
		{name: "two apps, release labels", values: image + `apiKeys: {keys: {translator: app-x, support: app-y}}
config:
  apps:
    - {name: translator, url: "http://dify-api.dify.svc:5001/v1", api_key_file: /etc/dify-exporter/keys/translator}
    - {name: support, url: "http://dify-api.dify.svc:5001/v1", api_key_file: /etc/dify-exporter/keys/support}
serviceMonitor: {labels: {release: kps}}
prometheusRule: {labels: {release: kps}}
extraArgs: [--log.level=debug]
`, keys: []string{"support", "translator"}, monitoring: true, extraLabel: "release"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := render(t, tc.values)
			if err != nil {
				t.Fatal(err)
			}
			checkChart(t, r, tc.keys, tc.monitoring, tc.extraLabel)
		})
	}
}

func checkChart(t *testing.T, r rendered, keys []string, monitoring bool, extraLabel string) {
	deployments, services := objectsOf[*appsv1.Deployment](r), objectsOf[*corev1.Service](r)
	configMaps, secrets := objectsOf[*corev1.ConfigMap](r), objectsOf[*corev1.Secret](r)
	serviceMonitors, rules := objectsOf[*monitoringv1.ServiceMonitor](r), objectsOf[*monitoringv1.PrometheusRule](r)
	if len(deployments) != 1 || len(services) != 1 {
		t.Fatalf("%d Deployments, %d Services; want 1 each", len(deployments), len(services))
	}
	d, svc := deployments[0], services[0]
	pod := d.Spec.Template
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	if !sel.Matches(labels.Set(pod.Labels)) {
		t.Errorf("Deployment selector %v does not match its pod labels %v", sel, pod.Labels)
	}
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(pod.Labels)) {
		t.Errorf("Service selector %v does not match the pod labels %v", svc.Spec.Selector, pod.Labels)
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	if !strings.HasPrefix(c.Image, "registry.example.com/dify_exporter:") {
		t.Errorf("image %q", c.Image)
	}
	if len(c.Ports) != 1 || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort.StrVal != c.Ports[0].Name {
		t.Fatalf("Service ports %+v do not target the container port %+v", svc.Spec.Ports, c.Ports)
	}
	for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Port.StrVal != c.Ports[0].Name {
			t.Errorf("probe %+v: want an HTTP probe on %s", p, c.Ports[0].Name)
		}
	}
	if c.SecurityContext == nil || c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem ||
		c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation {
		t.Error("container: want a read-only root file system and no privilege escalation")
	}
	for _, a := range c.Args {
		if strings.Contains(a, "api-key") {
			t.Errorf("arg %q: keys come from the Secret's files", a)
		}
	}

	// What the container sees at each mount path: a ConfigMap's or a Secret's keys.
	mounts := map[string]corev1.Volume{}
	for _, m := range c.VolumeMounts {
		if !m.ReadOnly {
			t.Errorf("mount %s is writable", m.MountPath)
		}
		for _, v := range pod.Spec.Volumes {
			if v.Name == m.Name {
				mounts[m.MountPath] = v
			}
		}
	}
	var cfgFile string
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--config.file="); ok {
			cfgFile = v
		}
	}
	v, ok := mounts[path.Dir(cfgFile)]
	if !ok || v.ConfigMap == nil {
		t.Fatalf("--config.file=%s is not in a mounted ConfigMap", cfgFile)
	}
	var cm *corev1.ConfigMap
	for _, m := range configMaps {
		if m.Name == v.ConfigMap.Name {
			cm = m
		}
	}
	if cm == nil || cm.Data[path.Base(cfgFile)] == "" {
		t.Fatalf("ConfigMap %s with key %s not rendered", v.ConfigMap.Name, path.Base(cfgFile))
	}
	// The exporter's own parser accepts the config, and every key file is in the Secret.
	cfg, err := config.Parse([]byte(cm.Data[path.Base(cfgFile)]), config.Defaults{
		URL: "https://api.dify.ai/v1", Runs: config.RunLimits{Retention: time.Hour, Max: 1000},
		Timeout: 10 * time.Second, Concurrency: 8, Discovery: config.Discovery{Lookback: time.Hour}})
	if err != nil {
		t.Fatalf("rendered config: %v\n%s", err, cm.Data[path.Base(cfgFile)])
	}
	var secretName string
	var used []string
	for _, app := range cfg.Apps {
		kv, ok := mounts[path.Dir(app.APIKeyFile)]
		if !ok || kv.Secret == nil {
			t.Errorf("app %s: api_key_file %s is not in a mounted Secret", app.Name, app.APIKeyFile)
			continue
		}
		secretName = kv.Secret.SecretName
		used = append(used, path.Base(app.APIKeyFile))
	}
	slices.Sort(used)
	if keys == nil {
		if len(secrets) != 0 || secretName != "my-keys" {
			t.Errorf("existingSecret: %d Secrets rendered, keys mounted from %q; want none and my-keys", len(secrets), secretName)
		}
	} else {
		if len(secrets) != 1 || secrets[0].Name != secretName {
			t.Fatalf("%d Secrets rendered; want 1, the one mounted (%s)", len(secrets), secretName)
		}
		var have []string
		for k, v := range secrets[0].Data {
			have = append(have, k)
			if len(bytes.TrimSpace(v)) != len(v) {
				t.Errorf("Secret key %s: surrounding white space kept", k)
			}
		}
		slices.Sort(have)
		if !slices.Equal(have, keys) || !slices.Equal(used, keys) {
			t.Errorf("Secret keys %v, config uses %v; want %v", have, used, keys)
		}
	}

	var dashboardCMs []*corev1.ConfigMap
	for _, m := range configMaps {
		if m.Labels["grafana_dashboard"] != "" {
			dashboardCMs = append(dashboardCMs, m)
		}
	}
	if !monitoring {
		if len(serviceMonitors)+len(rules)+len(dashboardCMs) != 0 {
			t.Errorf("turned off, yet %d ServiceMonitors, %d PrometheusRules, %d dashboards rendered",
				len(serviceMonitors), len(rules), len(dashboardCMs))
		}
		return
	}
	if len(serviceMonitors) != 1 || len(rules) != 1 || len(dashboardCMs) != 1 {
		t.Fatalf("%d ServiceMonitors, %d PrometheusRules, %d dashboards; want 1 each",
			len(serviceMonitors), len(rules), len(dashboardCMs))
	}
	sm := serviceMonitors[0]
	smSel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	if !smSel.Matches(labels.Set(svc.Labels)) {
		t.Errorf("ServiceMonitor selector %v does not match the Service labels %v", smSel, svc.Labels)
	}
	if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != svc.Spec.Ports[0].Name {
		t.Errorf("ServiceMonitor endpoints %+v: want the Service port %s", sm.Spec.Endpoints, svc.Spec.Ports[0].Name)
	}
	if job := svc.Labels[sm.Spec.JobLabel]; job != "dify_exporter" {
		t.Errorf("the job label from the Service (%s=%q) is not the job=\"dify_exporter\" the alert rules expect", sm.Spec.JobLabel, job)
	}
	if !slices.Contains(sm.Spec.NamespaceSelector.MatchNames, namespace) {
		t.Errorf("ServiceMonitor namespaceSelector %+v: want the release namespace", sm.Spec.NamespaceSelector)
	}
	if extraLabel != "" && (sm.Labels[extraLabel] == "" || rules[0].Labels[extraLabel] == "") {
		t.Errorf("label %s not set on the ServiceMonitor and the PrometheusRule", extraLabel)
	}

	// The PrometheusRule's groups are alerts/dify.rules.yml's, decoded into the same types.
	var want struct {
		Groups []monitoringv1.RuleGroup `json:"groups"`
	}
	if err := sigsyaml.UnmarshalStrict(alerts.Rules, &want); err != nil {
		t.Fatal(err)
	}
	if len(want.Groups) == 0 || !reflect.DeepEqual(rules[0].Spec.Groups, want.Groups) {
		t.Errorf("PrometheusRule groups differ from alerts/dify.rules.yml")
	}
	checkRulesWithPromtool(t, rules[0])

	if got := dashboardCMs[0].Data["dify-overview.json"]; got != string(dashboards.Overview) {
		t.Errorf("dashboard ConfigMap data[dify-overview.json] is not dashboards/dify-overview.json (%d bytes, want %d)", len(got), len(dashboards.Overview))
	}
	if dashboardCMs[0].Labels["grafana_dashboard"] != "1" {
		t.Errorf("dashboard labels %v: want grafana_dashboard: \"1\"", dashboardCMs[0].Labels)
	}
}

// checkRulesWithPromtool hands the rules as the Prometheus Operator would write them (the
// typed spec, re-encoded) to `promtool check rules`.
func checkRulesWithPromtool(t *testing.T, pr *monitoringv1.PrometheusRule) {
	t.Helper()
	promtool := tool(t, "promtool", "apt-get install prometheus")
	b, err := sigsyaml.Marshal(struct {
		Groups []monitoringv1.RuleGroup `json:"groups"`
	}{pr.Spec.Groups})
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, promtool, "check", "rules", f)
}
