// Package chartcheck renders the Helm chart in ../grantline with the helm binary built from its Go module
// and checks the manifests against what Grantline's deployment must hold. `make helm-check` runs it.
package chartcheck

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

const (
	chartDir = "../grantline"
	// kubeVersion is the cluster version the chart is rendered for; helm's own default (1.20) is older
	// than the chart's kubeVersion.
	kubeVersion = "1.31.0"
	component   = "app.kubernetes.io/component"
)

// services are Grantline's seven services and the web console, each of which must be its own Deployment.
var services = []string{"intake", "policy", "approval", "fulfilment", "revoker", "query", "console", "notifier", "checkpointer"}

// rendered is one `helm template` output, decoded strictly into the Kubernetes API types, so a field
// the API does not know (a typo such as readOnlyRootFileSystem) fails the decoding instead of being
// dropped by the API server. Per-service objects are keyed by their component label.
type rendered struct {
	deployments map[string]*appsv1.Deployment
	services    map[string]*corev1.Service
	budgets     map[string]*policyv1.PodDisruptionBudget
	policies    map[string]*networkingv1.NetworkPolicy // by name
	configMaps  map[string]*corev1.ConfigMap           // by name
	jobs        []*batchv1.Job
}

// helmBinary is $HELM, or the copy `make helm-check` caches in the repository's bin/.
func helmBinary(t *testing.T) string {
	t.Helper()
	if h := os.Getenv("HELM"); h != "" {
		return h
	}
	h, err := filepath.Abs("../../../bin/helm")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(h); err != nil {
		t.Fatalf("no helm binary (%v): run `make helm-check`, which builds it into bin/helm, or set HELM", err)
	}
	return h
}

// render runs `helm template` for release with the chart's values plus valueFiles and decodes the result.
func render(t *testing.T, release string, valueFiles ...string) *rendered {
	t.Helper()
	r, err := decode(helmTemplate(t, release, valueFiles...))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// helmTemplate returns the manifests `helm template` renders for release with valueFiles.
func helmTemplate(t *testing.T, release string, valueFiles ...string) []byte {
	t.Helper()
	args := []string{"template", release, chartDir, "--namespace", "grantline", "--kube-version", kubeVersion}
	for _, f := range valueFiles {
		args = append(args, "--values", f)
	}
	cmd := exec.Command(helmBinary(t), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm %v: %v\n%s", args, err, stderr.Bytes())
	}
	return out
}

// decode splits a multi-document manifest stream and decodes each document into its API type.
func decode(stream []byte) (*rendered, error) {
	r := &rendered{
		deployments: map[string]*appsv1.Deployment{}, services: map[string]*corev1.Service{},
		budgets: map[string]*policyv1.PodDisruptionBudget{}, policies: map[string]*networkingv1.NetworkPolicy{},
		configMaps: map[string]*corev1.ConfigMap{},
	}
	docs := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(stream)))
	for {
		doc, err := docs.Read()
		if errors.Is(err, io.EOF) {
			return r, nil
		}
		if err != nil {
			return nil, err
		}
		var head struct {
			metav1.TypeMeta   `json:",inline"`
			metav1.ObjectMeta `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &head); err != nil {
			return nil, err
		}
		if head.Kind == "" {
			continue // a document holding only comments
		}
		key := head.Labels[component]
		var dst any
		switch head.Kind {
		case "Deployment":
			dst, err = add(r.deployments, key, &appsv1.Deployment{})
		case "Service":
			dst, err = add(r.services, key, &corev1.Service{})
		case "PodDisruptionBudget":
			dst, err = add(r.budgets, key, &policyv1.PodDisruptionBudget{})
		case "NetworkPolicy":
			dst, err = add(r.policies, head.Name, &networkingv1.NetworkPolicy{})
		case "ConfigMap":
			dst, err = add(r.configMaps, head.Name, &corev1.ConfigMap{})
		case "Job":
			j := &batchv1.Job{}
			r.jobs, dst = append(r.jobs, j), j
		default:
			// Secrets above all: the chart references the operators' Secrets and never makes one.
			return nil, fmt.Errorf("%s %s: the chart is not expected to render a %s", head.Kind, head.Name, head.Kind)
		}
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", head.Kind, head.Name, err)
		}
		if err := decodeStrict(doc, dst); err != nil {
			return nil, fmt.Errorf("%s %s: %w", head.Kind, head.Name, err)
		}
	}
}

// decodeStrict decodes one YAML document as the API server does with strict field validation: field
// names are case-sensitive (encoding/json would take readOnlyRootFileSystem for readOnlyRootFilesystem),
// and unknown or duplicate fields are errors.
func decodeStrict(doc []byte, dst any) error {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strict, err := kjson.UnmarshalStrict(j, dst)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// add files a new object under key, refusing a second one: one Deployment per service, and so on.
func add[T any](m map[string]*T, key string, obj *T) (*T, error) {
	if _, dup := m[key]; dup {
		return nil, fmt.Errorf("a second object for %q", key)
	}
	m[key] = obj
	return obj, nil
}
