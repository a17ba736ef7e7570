package chartcheck

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// TestDefaultValues renders the chart as `helm install` with no values would: every rule holds,
// fulfilment runs two replicas and is the only service with a disruption budget, and the files the
// services read are byte for byte the repository's examples (the policy revision is their digest).
func TestDefaultValues(t *testing.T) {
	r := render(t, "grantline")
	for _, p := range problems(r) {
		t.Error(p)
	}

	checkObservability(t, r)

	wantReplicas := map[string]int32{"intake": 1, "policy": 1, "approval": 1, "fulfilment": 2, "revoker": 1, "query": 1, "console": 1,
		"notifier": 1, "checkpointer": 1}
	for name, want := range wantReplicas {
		if d := r.deployments[name]; d != nil && replicasOf(d) != want {
			t.Errorf("%s: %d replicas, want %d", name, replicasOf(d), want)
		}
	}
	if got := slices.Sorted(maps.Keys(r.budgets)); !slices.Equal(got, []string{"fulfilment"}) {
		t.Errorf("PodDisruptionBudgets for %v, want fulfilment only", got)
	}
	if got := slices.Sorted(maps.Keys(r.services)); !slices.Equal(got, []string{"approval", "console", "fulfilment", "intake", "notifier", "query", "revoker"}) {
		t.Errorf("Services for %v, want every service with an API (all but policy and the checkpointer) and the console", got)
	}
	console := r.deployments["console"].Spec.Template.Spec.Containers[0]
	for env, want := range map[string]string{"GRANTLINE_INTAKE_URL": "http://grantline-intake:8081", "GRANTLINE_QUERY_URL": "http://grantline-query:8086",
		"GRANTLINE_CONSOLE_SESSION_KEY_FILE": "/etc/grantline/secrets/session.key", "GRANTLINE_REPLICAS": "3"} {
		if got := envValue(console, env); got != want {
			t.Errorf("console: %s=%q, want %q", env, got, want)
		}
	}
	// Policy checks a request for a later start with the groups of the directory the files hold.
	if got := envValue(r.deployments["policy"].Spec.Template.Spec.Containers[0], "GRANTLINE_DIRECTORY"); got != "/etc/grantline/files/directory.yaml" {
		t.Errorf("policy: GRANTLINE_DIRECTORY=%q, want the directory of the files", got)
	}
	if len(r.jobs) != 1 || !slices.Equal(r.jobs[0].Spec.Template.Spec.Containers[0].Args, []string{"streams", "provision", "--replicas", "3"}) {
		t.Errorf("want one Job running `streams provision --replicas 3`")
	}
	for name, d := range r.deployments {
		if got := envValue(d.Spec.Template.Spec.Containers[0], "GRANTLINE_OTLP_ENDPOINT"); got != "" {
			t.Errorf("%s: traces to %q, want tracing off by default", name, got)
		}
		if secret := volume(d, "secrets").Secret; secret == nil || secret.SecretName != "grantline-"+name {
			t.Errorf("%s: its keys do not come from the Secret grantline-%s", name, name)
		}
	}

	files := r.configMaps["grantline-files"]
	if files == nil {
		t.Fatal("no ConfigMap grantline-files")
	}
	want := map[string]string{"catalogue.yaml": "../../../examples/catalogue.yaml", "integrations.yaml": "../../../examples/integrations.yaml",
		"directory.yaml": "../../../examples/directory.yaml", "notifications.yaml": "../../../examples/notifications.yaml"}
	rego, err := filepath.Glob("../../../examples/policies/*.rego")
	if err != nil || len(rego) == 0 {
		t.Fatalf("no example policies: %v", err)
	}
	for _, f := range rego {
		want[filepath.Base(f)] = f
	}
	for key, file := range want {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if files.Data[key] != string(b) {
			t.Errorf("ConfigMap key %s differs from %s: copy it into deploy/helm/grantline/files/", key, file)
		}
	}
	if len(files.Data) != len(want) {
		t.Errorf("ConfigMap keys %v, want those of %v", slices.Sorted(maps.Keys(files.Data)), want)
	}
	policy := r.deployments["policy"].Spec.Template.Spec.Containers[0]
	for _, f := range rego {
		name := filepath.Base(f)
		if !slices.ContainsFunc(policy.VolumeMounts, func(m corev1.VolumeMount) bool {
			return m.MountPath == "/etc/grantline/policies/"+name && m.SubPath == name
		}) {
			t.Errorf("policy: %s is not mounted on its own into the bundle directory", name)
		}
	}
}

// TestScaledValues renders ci/values-scaled.yaml: other replica counts (budgets follow them), the
// operators' own Secrets and ConfigMap, narrowed network peers and the target systems.
func TestScaledValues(t *testing.T) {
	r := render(t, "grantline-prod", "../grantline/ci/values-scaled.yaml")
	for _, p := range problems(r) {
		t.Error(p)
	}

	wantReplicas := map[string]int32{"intake": 3, "policy": 2, "approval": 2, "fulfilment": 3, "revoker": 2, "query": 1, "console": 2,
		"notifier": 2, "checkpointer": 1}
	for name, want := range wantReplicas {
		if d := r.deployments[name]; d != nil && replicasOf(d) != want {
			t.Errorf("%s: %d replicas, want %d", name, replicasOf(d), want)
		}
	}
	if got := slices.Sorted(maps.Keys(r.budgets)); !slices.Equal(got, []string{"approval", "console", "fulfilment", "intake", "notifier", "policy", "revoker"}) {
		t.Errorf("PodDisruptionBudgets for %v, want every service but query", got)
	}
	for name, d := range r.deployments {
		c := d.Spec.Template.Spec.Containers[0]
		if secret := volume(d, "secrets").Secret; secret == nil || secret.SecretName != "prod-"+name {
			t.Errorf("%s: its keys do not come from the Secret prod-%s", name, name)
		}
		if trust := volume(d, "trust").Secret; trust == nil || trust.SecretName != "prod-trust" {
			t.Errorf("%s: the trust file does not come from prod-trust", name)
		}
		if !strings.HasPrefix(c.Image, "registry.internal.example:5000/grantline/"+name+":1.4.2") {
			t.Errorf("%s: image %s", name, c.Image)
		}
		if files := volume(d, "files").ConfigMap; files != nil && files.Name != "grantline-prod-files" {
			t.Errorf("%s: files from ConfigMap %s, want the existing grantline-prod-files", name, files.Name)
		}
		if !strings.Contains(envValue(c, "GRANTLINE_NATS_MONITOR_URLS"), "http://10.40.0.15:8222") {
			t.Errorf("%s: GRANTLINE_NATS_MONITOR_URLS does not name every server", name)
		}
	}
	for _, name := range []string{"approval", "query"} {
		c := r.deployments[name].Spec.Template.Spec.Containers[0]
		if ref := secretRef(c, "GRANTLINE_DATABASE_URL"); ref == nil || ref.Name != "prod-"+name+"-db" || ref.Key != "dsn" {
			t.Errorf("%s: GRANTLINE_DATABASE_URL is not prod-%s-db/dsn", name, name)
		}
	}
	for _, name := range []string{"fulfilment", "revoker"} {
		c := r.deployments[name].Spec.Template.Spec.Containers[0]
		if ref := secretRef(c, "GRANTLINE_PG_TARGET_URL"); ref == nil || ref.Name != "payments-db-grantor" {
			t.Errorf("%s: GRANTLINE_PG_TARGET_URL is not from payments-db-grantor", name)
		}
		if len(c.EnvFrom) != 1 || c.EnvFrom[0].SecretRef == nil || c.EnvFrom[0].SecretRef.Name != "webhook-hmac" {
			t.Errorf("%s: the webhook secrets are not taken from webhook-hmac", name)
		}
		if envValue(c, "GRANTLINE_WEBHOOKS") == "" {
			t.Errorf("%s: no GRANTLINE_WEBHOOKS", name)
		}
		if !egressTo(r, name, "10.60.0.15/32") || !egressTo(r, name, "10.70.0.0/28") {
			t.Errorf("%s: no egress to the target systems", name)
		}
	}
	if got := envValue(r.deployments["console"].Spec.Template.Spec.Containers[0], "GRANTLINE_APPROVAL_URL"); got != "http://grantline-prod-approval:8083" {
		t.Errorf("console: GRANTLINE_APPROVAL_URL=%q, want approval's Service", got)
	}
	cp := r.deployments["checkpointer"].Spec.Template.Spec.Containers[0]
	if envValue(cp, "GRANTLINE_WITNESS_URLS") != "https://witness.audit-firm.example" || envValue(cp, "GRANTLINE_WITNESS_DIR") != witnessDir ||
		volume(r.deployments["checkpointer"], "witness").PersistentVolumeClaim == nil {
		t.Errorf("checkpointer: the witnesses are not configured: %v", cp.Env)
	}
	if !egressTo(r, "checkpointer", "198.51.100.7/32") || egressTo(r, "fulfilment", "198.51.100.7/32") {
		t.Errorf("egress to the HTTP witness: the checkpointer's only")
	}
	notifier := r.deployments["notifier"].Spec.Template.Spec.Containers[0]
	if got := envValue(notifier, "GRANTLINE_APPROVAL_URL"); got != "http://grantline-prod-approval:8083" {
		t.Errorf("notifier: GRANTLINE_APPROVAL_URL=%q, want approval's Service", got)
	}
	if envValue(notifier, "GRANTLINE_OIDC_TOKEN_URL") == "" || len(notifier.EnvFrom) != 1 || notifier.EnvFrom[0].SecretRef == nil ||
		notifier.EnvFrom[0].SecretRef.Name != "prod-notifier-channels" {
		t.Errorf("notifier: no token endpoint, or its channels' secrets are not taken from prod-notifier-channels")
	}
	if !egressTo(r, "notifier", "10.80.0.25/32") || !egressTo(r, "notifier", "10.80.0.40/32") || egressTo(r, "fulfilment", "10.80.0.25/32") {
		t.Errorf("egress to the mail relay and the proxy: the notifier's only")
	}
	for name, d := range r.deployments {
		if got := envValue(d.Spec.Template.Spec.Containers[0], "GRANTLINE_OTLP_ENDPOINT"); got != "http://10.90.0.5:4318" || !egressTo(r, name, "10.90.0.5/32") {
			t.Errorf("%s: GRANTLINE_OTLP_ENDPOINT=%q, egress to the collector %v; want both", name, got, egressTo(r, name, "10.90.0.5/32"))
		}
	}
	for _, name := range []string{"intake", "approval", "query", "policy", "console", "notifier", "checkpointer"} {
		if egressTo(r, name, "10.60.0.15/32") {
			t.Errorf("%s: egress to a target system it never calls", name)
		}
	}
	if _, ok := r.configMaps["grantline-prod-files"]; ok {
		t.Error("the chart rendered the ConfigMap it was told exists")
	}
	if r.configMaps["grantline-prod-webhooks"] == nil {
		t.Error("no webhooks ConfigMap")
	}
	policy := r.deployments["policy"].Spec.Template.Spec.Containers[0]
	if !slices.ContainsFunc(policy.VolumeMounts, func(m corev1.VolumeMount) bool { return m.SubPath == "entitlements.rego" }) {
		t.Error("policy: the existing ConfigMap's entitlements.rego is not mounted")
	}
	for _, np := range r.policies {
		for _, rule := range np.Spec.Egress {
			for _, peer := range rule.To {
				if peer.IPBlock != nil && peer.IPBlock.CIDR == "0.0.0.0/0" {
					t.Errorf("NetworkPolicy %s: egress to any address although every peer is configured", np.Name)
				}
			}
		}
	}
	job := r.jobs[0].Spec.Template.Spec
	if got := job.Containers[0].Args; !slices.Equal(got, []string{"streams", "provision", "--replicas", "5"}) {
		t.Errorf("job args %q, want --replicas 5", got)
	}
	if op := job.Volumes[0].Secret; op == nil || op.SecretName != "prod-nats-operator" || op.Items[0].Key != "operator.nk" {
		t.Error("job: the operator's NKey does not come from prod-nats-operator/operator.nk")
	}
}

// TestRulesCatchViolations breaks a good rendering one way at a time and expects the rules to say so:
// a check that cannot fail proves nothing.
func TestRulesCatchViolations(t *testing.T) {
	manifests := helmTemplate(t, "grantline")
	container := func(r *rendered, name string) *corev1.Container {
		return &r.deployments[name].Spec.Template.Spec.Containers[0]
	}
	no := false
	for _, tc := range []struct {
		scenario string
		breakIt  func(r *rendered)
		want     string
	}{
		{"intake's root filesystem is writable", func(r *rendered) {
			container(r, "intake").SecurityContext.ReadOnlyRootFilesystem = &no
		}, "intake: container intake: readOnlyRootFilesystem is not true"},
		{"policy runs as root", func(r *rendered) {
			root := int64(0)
			container(r, "policy").SecurityContext.RunAsUser = &root
		}, "policy: container policy: does not run as user 65532"},
		{"approval may escalate privileges", func(r *rendered) {
			container(r, "approval").SecurityContext.AllowPrivilegeEscalation = nil
		}, "approval: container approval: allowPrivilegeEscalation is not false"},
		{"revoker keeps NET_RAW", func(r *rendered) {
			container(r, "revoker").SecurityContext.Capabilities.Add = []corev1.Capability{"NET_RAW"}
		}, "revoker: container revoker: capabilities are not dropped"},
		{"query has no readiness probe", func(r *rendered) {
			container(r, "query").ReadinessProbe = nil
		}, "query: no readiness probe"},
		{"fulfilment's liveness probe asks /readyz", func(r *rendered) {
			container(r, "fulfilment").LivenessProbe.HTTPGet.Path = "/readyz"
		}, "fulfilment: the liveness probe does not ask /livez"},
		{"intake has no startup probe", func(r *rendered) {
			container(r, "intake").StartupProbe = nil
		}, "intake: no startup probe"},
		{"policy has no memory limit", func(r *rendered) {
			delete(container(r, "policy").Resources.Limits, corev1.ResourceMemory)
		}, "policy: container policy: no memory limit"},
		{"the catalogue is not mounted into revoker", func(r *rendered) {
			c := container(r, "revoker")
			c.VolumeMounts = slices.DeleteFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == "files" })
		}, "GRANTLINE_CATALOGUE=/etc/grantline/files/catalogue.yaml is on no mounted volume"},
		{"approval lacks its trust file", func(r *rendered) {
			c := container(r, "approval")
			c.Env = slices.DeleteFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "GRANTLINE_TRUST_FILE" })
		}, "approval: GRANTLINE_TRUST_FILE is not set"},
		{"fulfilment may start without its credential key", func(r *rendered) {
			yes := true
			secretRef(*container(r, "fulfilment"), "GRANTLINE_CREDENTIAL_KEY").Optional = &yes
		}, "fulfilment: GRANTLINE_CREDENTIAL_KEY is not taken from a Secret that must exist"},
		{"fulfilment has two replicas and no budget", func(r *rendered) {
			delete(r.budgets, "fulfilment")
		}, "fulfilment: 2 replicas and no PodDisruptionBudget"},
		{"a budget for revoker's single replica", func(r *rendered) {
			r.budgets["revoker"] = r.budgets["fulfilment"]
		}, "revoker: a PodDisruptionBudget for a single replica"},
		{"no default deny", func(r *rendered) {
			delete(r.policies, "grantline-default-deny")
		}, "no NetworkPolicy denies all traffic"},
		{"intake lets everyone in", func(r *rendered) {
			r.policies["grantline-intake"].Spec.Ingress[0].From = nil
		}, "NetworkPolicy grantline-intake: an ingress rule without peers lets everyone in"},
		{"query cannot reach PostgreSQL", func(r *rendered) {
			np := r.policies["grantline-query"]
			np.Spec.Egress = slices.DeleteFunc(np.Spec.Egress, func(rule networkingv1.NetworkPolicyEgressRule) bool {
				return rule.Ports[0].Port.IntValue() == 5432
			})
		}, "query: no egress to port 5432"},
		{"approval does not let the console in", func(r *rendered) {
			np := r.policies["grantline-approval"]
			np.Spec.Ingress[0].From = slices.DeleteFunc(np.Spec.Ingress[0].From, func(peer networkingv1.NetworkPolicyPeer) bool { return peer.PodSelector != nil })
		}, "approval: no NetworkPolicy lets console in, which calls it"},
		{"the console cannot reach query", func(r *rendered) {
			np := r.policies["grantline-console"]
			np.Spec.Egress = slices.DeleteFunc(np.Spec.Egress, func(rule networkingv1.NetworkPolicyEgressRule) bool {
				return rule.Ports[0].Port.IntValue() == 8086
			})
		}, "console: no egress to port 8086"},
		{"approval does not let the notifier in", func(r *rendered) {
			np := r.policies["grantline-approval"]
			np.Spec.Ingress[0].From = slices.DeleteFunc(np.Spec.Ingress[0].From, func(peer networkingv1.NetworkPolicyPeer) bool {
				return peer.PodSelector != nil && peer.PodSelector.MatchLabels["app.kubernetes.io/component"] == "notifier"
			})
		}, "approval: no NetworkPolicy lets notifier in, which calls it"},
		{"the notifier is given a signing key", func(r *rendered) {
			c := container(r, "notifier")
			c.Env = append(c.Env, corev1.EnvVar{Name: "GRANTLINE_SIGNING_KEY_FILE", Value: "/etc/grantline/secrets/signing.key"})
		}, "notifier: it signs no event, yet is given a signing key"},
		{"the console is given a signing key", func(r *rendered) {
			c := container(r, "console")
			c.Env = append(c.Env, corev1.EnvVar{Name: "GRANTLINE_SIGNING_KEY_FILE", Value: "/etc/grantline/secrets/signing.key"})
		}, "console: it signs no event, yet is given a signing key"},
		{"the provisioning Job cannot reach NATS", func(r *rendered) {
			delete(r.policies, "grantline-provision")
		}, "job grantline-provision: no egress to port 4222"},
		{"the provisioning Job is no upgrade hook", func(r *rendered) {
			r.jobs[0].Annotations["helm.sh/hook"] = "pre-install"
		}, "job grantline-provision: not a pre-install and pre-upgrade hook"},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			r, err := decode(manifests)
			if err != nil {
				t.Fatal(err)
			}
			tc.breakIt(r)
			got := problems(r)
			if !slices.ContainsFunc(got, func(p string) bool { return strings.Contains(p, tc.want) }) {
				t.Errorf("want a problem containing %q, got %q", tc.want, got)
			}
		})
	}
}

func volume(d *appsv1.Deployment, name string) corev1.Volume {
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == name {
			return v
		}
	}
	return corev1.Volume{}
}

// egressTo reports whether the service's NetworkPolicy lets it out to exactly the CIDR.
func egressTo(r *rendered, name, cidr string) bool {
	for _, np := range r.policies {
		if !selects(&np.Spec.PodSelector, r.deployments[name].Spec.Template.Labels) {
			continue
		}
		for _, rule := range np.Spec.Egress {
			for _, peer := range rule.To {
				if peer.IPBlock != nil && peer.IPBlock.CIDR == cidr {
					return true
				}
			}
		}
	}
	return false
}

// checkObservability: the dashboard and the alerting rules are in their ConfigMaps byte for byte as
// deploy/observability holds (and tests) them, the dashboard with the label Grafana's sidecar looks for.
func checkObservability(t *testing.T, r *rendered) {
	t.Helper()
	for _, c := range []struct{ configMap, key, file, label string }{
		{"grantline-grafana-dashboard", "grantline.json", "../../observability/grafana-dashboard.json", "grafana_dashboard"},
		{"grantline-prometheus-rules", "grantline-alerts.yaml", "../../observability/alerts.yaml", ""},
	} {
		want, err := os.ReadFile(c.file)
		if err != nil {
			t.Fatal(err)
		}
		cm := r.configMaps[c.configMap]
		switch {
		case cm == nil:
			t.Errorf("no ConfigMap %s", c.configMap)
		case cm.Data[c.key] != string(want):
			t.Errorf("ConfigMap %s does not hold %s as it is", c.configMap, c.file)
		case c.label != "" && cm.Labels[c.label] != "1":
			t.Errorf("ConfigMap %s lacks the label %s", c.configMap, c.label)
		}
	}
}
