// Package deploy_test checks the deployment files strictly against the
// types that read them: a typo or a misplaced key fails `make test`.
package deploy_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

// Every Kubernetes manifest decodes, field by field, into its API type.
func TestKubernetesManifests(t *testing.T) {
	files, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	var query *appsv1.StatefulSet
	for _, file := range files {
		if filepath.Base(file) == "nats-values.yaml" {
			continue // Helm values: TestNATSValues
		}
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range bytes.Split(data, []byte("\n---\n")) {
			var head struct{ APIVersion, Kind string }
			if err := yaml.Unmarshal(doc, &head); err != nil {
				t.Fatalf("%s #%d: %v", file, i, err)
			}
			var obj any
			switch head.APIVersion + " " + head.Kind {
			case "apps/v1 StatefulSet":
				obj = &appsv1.StatefulSet{}
			case "v1 Service":
				obj = &corev1.Service{}
			case "policy/v1 PodDisruptionBudget":
				obj = &policyv1.PodDisruptionBudget{}
			default:
				t.Fatalf("%s #%d: unexpected %s %s", file, i, head.APIVersion, head.Kind)
			}
			if err := yaml.UnmarshalStrict(doc, obj); err != nil {
				t.Fatalf("%s #%d (%s): %v", file, i, head.Kind, err)
			}
			kinds[head.Kind]++
			if s, ok := obj.(*appsv1.StatefulSet); ok && s.Name == "balidx-query" {
				query = s
			}
		}
	}
	if kinds["StatefulSet"] != 2 || kinds["PodDisruptionBudget"] != 2 || kinds["Service"] != 1 {
		t.Fatalf("kinds %v", kinds)
	}
	if query == nil || *query.Spec.Replicas != 3 || len(query.Spec.VolumeClaimTemplates) != 1 {
		t.Fatalf("query replicas: %+v", query)
	}
	c := query.Spec.Template.Spec.Containers[0]
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Fatalf("query readiness probe: %+v", c.ReadinessProbe)
	}
	if sc := query.Spec.Template.Spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Fatalf("query pods may run as root: %+v", sc)
	}
}

// The NATS chart's values ask for a 3-node JetStream cluster that fsyncs
// every write.
func TestNATSValues(t *testing.T) {
	data, err := os.ReadFile("kubernetes/nats-values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Config struct {
			Cluster struct {
				Enabled  bool
				Replicas int
			}
			JetStream struct {
				Enabled bool
				Merge   map[string]any
			} `json:"jetstream"`
		}
	}
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	if !v.Config.Cluster.Enabled || v.Config.Cluster.Replicas != 3 || !v.Config.JetStream.Enabled || v.Config.JetStream.Merge["sync_interval"] != "always" {
		t.Fatalf("values %+v", v)
	}
}

// The compose file loads with the compose-spec loader (its schema refuses
// unknown keys), and every NATS config it mounts fsyncs every write.
func TestCompose(t *testing.T) {
	data, err := os.ReadFile("compose/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	project, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  "compose",
		ConfigFiles: []types.ConfigFile{{Filename: "compose/compose.yaml", Content: data}},
		Environment: types.Mapping{},
	}, func(o *loader.Options) { o.SkipResolveEnvironment = true })
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"nats-1", "nats-2", "nats-3", "geth", "indexer-1", "indexer-2", "query-1", "query-2", "query-3", "lb", "prometheus", "grafana"}
	for _, name := range want {
		if _, ok := project.Services[name]; !ok {
			t.Errorf("no service %s", name)
		}
	}
	if len(project.Services) != len(want) {
		t.Errorf("%d services, want %d", len(project.Services), len(want))
	}
	for i := 1; i <= 3; i++ {
		conf, err := os.ReadFile(filepath.Join("compose", "nats-"+string(rune('0'+i))+".conf"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(conf), "sync_interval: always") {
			t.Errorf("nats-%d.conf does not fsync every write", i)
		}
	}
}
