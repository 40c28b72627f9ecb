package kubernetes

import (
	"bytes"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/dify-exporter/dify_exporter/alerts"
	"github.com/dify-exporter/dify_exporter/dashboards"
)

const regenerate = "run `go run ./deploy/kubernetes/gen` to regenerate it"

func readYAML(t *testing.T, file string, v any) []byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		t.Fatalf("parse %s: %v", file, err)
	}
	return b
}

func TestPrometheusRuleMatchesRuleFile(t *testing.T) {
	var pr struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   struct {
			Name string `yaml:"name"`
		} `yaml:"metadata"`
		Spec struct {
			Groups any `yaml:"groups"`
		} `yaml:"spec"`
	}
	got := readYAML(t, PrometheusRuleFile, &pr)
	if pr.APIVersion != "monitoring.coreos.com/v1" || pr.Kind != "PrometheusRule" || pr.Metadata.Name == "" {
		t.Errorf("%s: apiVersion %q kind %q name %q", PrometheusRuleFile, pr.APIVersion, pr.Kind, pr.Metadata.Name)
	}
	var rf struct {
		Groups any `yaml:"groups"`
	}
	if err := yaml.Unmarshal(alerts.Rules, &rf); err != nil {
		t.Fatal(err)
	}
	if rf.Groups == nil {
		t.Fatal("alerts/dify.rules.yml: no groups")
	}
	if !reflect.DeepEqual(pr.Spec.Groups, rf.Groups) {
		t.Errorf("%s: spec.groups differ from alerts/dify.rules.yml; %s", PrometheusRuleFile, regenerate)
	}
	want, err := PrometheusRule(alerts.Rules)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is out of date; %s", PrometheusRuleFile, regenerate)
	}
}

func TestDashboardConfigMapMatchesDashboard(t *testing.T) {
	var cm struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   struct {
			Name   string            `yaml:"name"`
			Labels map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		Data map[string]string `yaml:"data"`
	}
	got := readYAML(t, DashboardConfigMapFile, &cm)
	if cm.APIVersion != "v1" || cm.Kind != "ConfigMap" || cm.Metadata.Name == "" {
		t.Errorf("%s: apiVersion %q kind %q name %q", DashboardConfigMapFile, cm.APIVersion, cm.Kind, cm.Metadata.Name)
	}
	if cm.Metadata.Labels["grafana_dashboard"] != "1" {
		t.Errorf("%s: label grafana_dashboard = %q, want \"1\"", DashboardConfigMapFile, cm.Metadata.Labels["grafana_dashboard"])
	}
	if cm.Data[DashboardKey] != string(dashboards.Overview) {
		t.Errorf("%s: data[%q] differs from dashboards/dify-overview.json; %s", DashboardConfigMapFile, DashboardKey, regenerate)
	}
	want, err := DashboardConfigMap(dashboards.Overview)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is out of date; %s", DashboardConfigMapFile, regenerate)
	}
}

func TestDashboardConfigMapChomping(t *testing.T) {
	for _, in := range []string{"{\n  \"a\": 1\n}", "{\n  \"a\": 1\n}\n", "{\n\n  \"a\": 1\n}\n\n\n"} {
		out, err := DashboardConfigMap([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		var cm struct {
			Data map[string]string `yaml:"data"`
		}
		if err := yaml.Unmarshal(out, &cm); err != nil {
			t.Fatalf("%q: %v\n%s", in, err, out)
		}
		if cm.Data[DashboardKey] != in {
			t.Errorf("round trip of %q gave %q", in, cm.Data[DashboardKey])
		}
	}
	if _, err := DashboardConfigMap([]byte("  {}\n")); err == nil {
		t.Error("leading whitespace: no error")
	}
	if _, err := PrometheusRule([]byte("# c\nfoo: 1\ngroups: []\n")); err == nil {
		t.Error("rule file with another top-level key first: no error")
	}
}

type container struct {
	Name  string   `yaml:"name"`
	Image string   `yaml:"image"`
	Args  []string `yaml:"args"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	LivenessProbe   probe `yaml:"livenessProbe"`
	ReadinessProbe  probe `yaml:"readinessProbe"`
	SecurityContext struct {
		RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
		ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

type probe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

func TestDeployment(t *testing.T) {
	var d struct {
		Kind string `yaml:"kind"`
		Spec struct {
			Selector struct {
				MatchLabels map[string]string `yaml:"matchLabels"`
			} `yaml:"selector"`
			Template struct {
				Metadata struct {
					Labels map[string]string `yaml:"labels"`
				} `yaml:"metadata"`
				Spec struct {
					SecurityContext struct {
						RunAsNonRoot bool `yaml:"runAsNonRoot"`
						RunAsUser    int  `yaml:"runAsUser"`
					} `yaml:"securityContext"`
					Containers []container `yaml:"containers"`
					Volumes    []struct {
						Name   string `yaml:"name"`
						Secret struct {
							SecretName string `yaml:"secretName"`
						} `yaml:"secret"`
					} `yaml:"volumes"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	readYAML(t, "deployment.yaml", &d)
	if d.Kind != "Deployment" {
		t.Fatalf("deployment.yaml: kind %q", d.Kind)
	}
	for k, v := range d.Spec.Selector.MatchLabels {
		if d.Spec.Template.Metadata.Labels[k] != v {
			t.Errorf("selector %s=%s does not match the pod labels", k, v)
		}
	}
	ps := d.Spec.Template.Spec
	if !ps.SecurityContext.RunAsNonRoot || ps.SecurityContext.RunAsUser == 0 {
		t.Error("pod securityContext: want runAsNonRoot and a non-zero runAsUser")
	}
	if len(ps.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(ps.Containers))
	}
	c := ps.Containers[0]
	if !slices.Contains(c.Args, "--dify.api-key-file=/etc/dify-exporter/api-key") {
		t.Errorf("args %v: want --dify.api-key-file=/etc/dify-exporter/api-key", c.Args)
	}
	for _, a := range c.Args {
		if strings.Contains(strings.ToLower(a), "api-key=") || strings.HasPrefix(a, "--dify.api-key ") {
			t.Errorf("arg %q: the key must come from the file, never a flag value", a)
		}
	}
	if len(c.Ports) != 1 || c.Ports[0].Name != "http-metrics" || c.Ports[0].ContainerPort != 9866 {
		t.Errorf("ports %+v: want http-metrics 9866", c.Ports)
	}
	if c.LivenessProbe.HTTPGet.Path != "/-/healthy" || c.ReadinessProbe.HTTPGet.Path != "/-/ready" {
		t.Errorf("probes: liveness %q readiness %q, want /-/healthy and /-/ready",
			c.LivenessProbe.HTTPGet.Path, c.ReadinessProbe.HTTPGet.Path)
	}
	sc := c.SecurityContext
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || !sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("container securityContext: want runAsNonRoot, readOnlyRootFilesystem, no privilege escalation")
	}
	mounted := false
	for _, m := range c.VolumeMounts {
		if m.MountPath != "/etc/dify-exporter" || !m.ReadOnly {
			continue
		}
		for _, v := range ps.Volumes {
			if v.Name == m.Name && v.Secret.SecretName != "" {
				mounted = true
			}
		}
	}
	if !mounted {
		t.Error("no Secret volume mounted read-only at /etc/dify-exporter")
	}
}

func TestServiceAndServiceMonitor(t *testing.T) {
	var svc struct {
		Kind     string `yaml:"kind"`
		Metadata struct {
			Labels map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		Spec struct {
			Selector map[string]string `yaml:"selector"`
			Ports    []struct {
				Name string `yaml:"name"`
				Port int    `yaml:"port"`
			} `yaml:"ports"`
		} `yaml:"spec"`
	}
	readYAML(t, "service.yaml", &svc)
	var sm struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Spec       struct {
			JobLabel string `yaml:"jobLabel"`
			Selector struct {
				MatchLabels map[string]string `yaml:"matchLabels"`
			} `yaml:"selector"`
			Endpoints []struct {
				Port string `yaml:"port"`
				Path string `yaml:"path"`
			} `yaml:"endpoints"`
		} `yaml:"spec"`
	}
	readYAML(t, "servicemonitor.yaml", &sm)
	if svc.Kind != "Service" || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != "http-metrics" || svc.Spec.Ports[0].Port != 9866 {
		t.Errorf("service.yaml: want a Service with port http-metrics 9866, got %+v", svc)
	}
	if sm.APIVersion != "monitoring.coreos.com/v1" || sm.Kind != "ServiceMonitor" {
		t.Errorf("servicemonitor.yaml: apiVersion %q kind %q", sm.APIVersion, sm.Kind)
	}
	for k, v := range sm.Spec.Selector.MatchLabels {
		if svc.Metadata.Labels[k] != v {
			t.Errorf("ServiceMonitor selector %s=%s does not match the Service", k, v)
		}
	}
	if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "http-metrics" {
		t.Errorf("ServiceMonitor endpoints %+v: want port http-metrics", sm.Spec.Endpoints)
	}
	// The alert rules select job="dify_exporter".
	if job := svc.Metadata.Labels[sm.Spec.JobLabel]; job != "dify_exporter" || !strings.Contains(string(alerts.Rules), `job="`+job+`"`) {
		t.Errorf("job label from the Service (%s=%q) does not match the job the alert rules expect", sm.Spec.JobLabel, job)
	}
}

func TestKustomization(t *testing.T) {
	var k struct {
		Resources []string `yaml:"resources"`
		Images    []struct {
			Name    string `yaml:"name"`
			NewName string `yaml:"newName"`
			NewTag  string `yaml:"newTag"`
		} `yaml:"images"`
	}
	readYAML(t, "kustomization.yaml", &k)
	// The Deployment names a placeholder image that kustomize's images: rewrites.
	var d struct {
		Spec struct {
			Template struct {
				Spec struct {
					Containers []container `yaml:"containers"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	readYAML(t, "deployment.yaml", &d)
	for _, c := range d.Spec.Template.Spec.Containers {
		rewritten := false
		for _, img := range k.Images {
			rewritten = rewritten || (img.Name == c.Image && img.NewName != "" && img.NewTag != "")
		}
		if !rewritten {
			t.Errorf("container %s: image %q has no images: entry (name, newName, newTag) in kustomization.yaml", c.Name, c.Image)
		}
	}
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		n := e.Name()
		if strings.HasSuffix(n, ".yaml") && n != "kustomization.yaml" && !slices.Contains(k.Resources, n) {
			t.Errorf("kustomization.yaml does not list %s", n)
		}
	}
	for _, r := range k.Resources {
		if _, err := os.Stat(r); err != nil {
			t.Errorf("kustomization.yaml lists %s: %v", r, err)
		}
	}
}
