package chartcheck

import (
	"fmt"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// The rules below return what a rendering gets wrong, one sentence each, so a test can list every
// problem at once and a test of the rules can look for the one it provoked.

// requiredEnv is what each service's Config requires (services/<name>/<name>d/config.go, read by
// config.Parse; `grantline-<name> --help` marks them "required"), plus the NATS settings every service needs in a cluster: the defaults point at a
// loopback server and the broker admits only authenticated users.
var requiredEnv = map[string][]string{
	"intake":       {"GRANTLINE_CATALOGUE", "GRANTLINE_TRUST_FILE", "GRANTLINE_SIGNING_KEY_FILE", "GRANTLINE_OIDC_ISSUER", "GRANTLINE_OIDC_AUDIENCE"},
	"policy":       {"GRANTLINE_CATALOGUE", "GRANTLINE_POLICY_DIR", "GRANTLINE_TRUST_FILE", "GRANTLINE_SIGNING_KEY_FILE"},
	"approval":     {"GRANTLINE_DATABASE_URL", "GRANTLINE_CATALOGUE", "GRANTLINE_TRUST_FILE", "GRANTLINE_SIGNING_KEY_FILE", "GRANTLINE_OIDC_ISSUER", "GRANTLINE_OIDC_AUDIENCE"},
	"fulfilment":   {"GRANTLINE_CATALOGUE", "GRANTLINE_TRUST_FILE", "GRANTLINE_SIGNING_KEY_FILE", "GRANTLINE_OIDC_ISSUER", "GRANTLINE_OIDC_AUDIENCE", "GRANTLINE_CREDENTIAL_KEY"},
	"revoker":      {"GRANTLINE_CATALOGUE", "GRANTLINE_TRUST_FILE", "GRANTLINE_SIGNING_KEY_FILE", "GRANTLINE_OIDC_ISSUER", "GRANTLINE_OIDC_AUDIENCE"},
	"query":        {"GRANTLINE_DATABASE_URL", "GRANTLINE_TRUST_FILE", "GRANTLINE_CATALOGUE", "GRANTLINE_OIDC_ISSUER", "GRANTLINE_OIDC_AUDIENCE"},
	"checkpointer": {"GRANTLINE_TRUST_FILE", "GRANTLINE_CHECKPOINT_KEY_FILE"},
	// The notifier approves from Slack through approval's API, which it reaches through its Service.
	"notifier": {"GRANTLINE_TRUST_FILE", "GRANTLINE_CATALOGUE", "GRANTLINE_DIRECTORY", "GRANTLINE_NOTIFICATIONS", "GRANTLINE_APPROVAL_URL"},
	// The console needs GRANTLINE_API_URL or each service's own URL; in a cluster it reaches each
	// service through its Service.
	"console": {"GRANTLINE_TRUST_FILE", "GRANTLINE_CATALOGUE", "GRANTLINE_OIDC_ISSUER", "GRANTLINE_OIDC_AUDIENCE",
		"GRANTLINE_CONSOLE_PUBLIC_URL", "GRANTLINE_CONSOLE_SESSION_KEY_FILE", "GRANTLINE_INTAKE_URL", "GRANTLINE_APPROVAL_URL",
		"GRANTLINE_FULFILMENT_URL", "GRANTLINE_REVOKER_URL", "GRANTLINE_QUERY_URL"},
}

// witnessDir is the one writable mount: the checkpointer's directory witness, which it writes to.
const witnessDir = "/var/lib/grantline/witness"

var everyServiceEnv = []string{"GRANTLINE_HTTP_ADDR", "GRANTLINE_NATS_URL", "GRANTLINE_NATS_MONITOR_URLS", "GRANTLINE_NATS_NKEY_FILE"}

// problems is every rule applied to a whole rendering.
func problems(r *rendered) []string {
	var p []string
	for _, name := range services {
		d, ok := r.deployments[name]
		if !ok {
			p = append(p, fmt.Sprintf("%s: no Deployment", name))
			continue
		}
		p = append(p, deploymentProblems(name, d)...)
	}
	for name := range r.deployments {
		if !slices.Contains(services, name) {
			p = append(p, fmt.Sprintf("%s: a Deployment for no Grantline service", name))
		}
	}
	p = append(p, budgetProblems(r)...)
	p = append(p, serviceProblems(r)...)
	p = append(p, networkProblems(r)...)
	for _, j := range r.jobs {
		p = append(p, jobProblems(j)...)
	}
	return p
}

// deploymentProblems checks one service's Deployment: the pod's hardening, the image, the probes and
// the configuration its Config requires.
func deploymentProblems(name string, d *appsv1.Deployment) []string {
	var p []string
	add := func(format string, args ...any) { p = append(p, name+": "+fmt.Sprintf(format, args...)) }
	spec := d.Spec.Template.Spec
	for _, problem := range podProblems(spec) {
		add("%s", problem)
	}
	if d.Spec.Selector == nil || !selects(d.Spec.Selector, d.Spec.Template.Labels) {
		add("the selector does not select the Deployment's own pods")
	}
	if len(spec.Containers) != 1 {
		add("%d containers, not one", len(spec.Containers))
		return p
	}
	c := spec.Containers[0]
	if !strings.Contains(c.Image, "/"+name+":") {
		add("image %s is not the %s image", c.Image, name)
	}
	port := namedPort(c, "http")
	if port == 0 {
		add("no container port named http")
	}
	if got := envValue(c, "GRANTLINE_HTTP_ADDR"); got != fmt.Sprintf(":%d", port) {
		add("GRANTLINE_HTTP_ADDR=%q, but the http port is %d", got, port)
	}
	for _, probe := range []struct {
		kind, path string
		probe      *corev1.Probe
	}{
		{"startup", "/livez", c.StartupProbe}, {"liveness", "/livez", c.LivenessProbe}, {"readiness", "/readyz", c.ReadinessProbe},
	} {
		switch h := probe.probe; {
		case h == nil:
			add("no %s probe", probe.kind)
		case h.HTTPGet == nil || h.HTTPGet.Path != probe.path || h.HTTPGet.Port.String() != "http":
			add("the %s probe does not ask %s on the http port", probe.kind, probe.path)
		}
	}
	for _, env := range append(slices.Clone(everyServiceEnv), requiredEnv[name]...) {
		if !hasEnv(c, env) {
			add("%s is not set", env)
		}
	}
	if (name == "query" || name == "console" || name == "notifier" || name == "checkpointer") && hasEnv(c, "GRANTLINE_SIGNING_KEY_FILE") {
		add("it signs no event, yet is given a signing key")
	}
	if name == "fulfilment" {
		if ref := secretRef(c, "GRANTLINE_CREDENTIAL_KEY"); ref == nil || (ref.Optional != nil && *ref.Optional) {
			add("GRANTLINE_CREDENTIAL_KEY is not taken from a Secret that must exist")
		}
	}
	return p
}

// podProblems checks what every pod of the release must have, services and the provisioning Job
// alike: non-root 65532, read-only root filesystem, no privilege escalation, no capabilities, the
// runtime's seccomp profile, no API token, bounded memory, and every file its configuration names on a
// read-only mount.
func podProblems(spec corev1.PodSpec) []string {
	var p []string
	add := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		add("the service account token is mounted")
	}
	pod := spec.SecurityContext
	if pod == nil {
		pod = &corev1.PodSecurityContext{}
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
		if s := v.Secret; s != nil && (s.DefaultMode == nil || *s.DefaultMode&0o007 != 0) {
			add("secret volume %s is readable by other users", v.Name)
		}
	}
	for _, c := range spec.Containers {
		sc := c.SecurityContext
		if sc == nil {
			sc = &corev1.SecurityContext{}
		}
		if !isTrue(effective(sc.RunAsNonRoot, pod.RunAsNonRoot)) {
			add("container %s: runAsNonRoot is not true", c.Name)
		}
		if user := effective(sc.RunAsUser, pod.RunAsUser); user == nil || *user != 65532 {
			add("container %s: does not run as user 65532", c.Name)
		}
		if !isTrue(sc.ReadOnlyRootFilesystem) {
			add("container %s: readOnlyRootFilesystem is not true", c.Name)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			add("container %s: allowPrivilegeEscalation is not false", c.Name)
		}
		if isTrue(sc.Privileged) {
			add("container %s: privileged", c.Name)
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
			add("container %s: capabilities are not dropped (ALL)", c.Name)
		}
		if s := effective(sc.SeccompProfile, pod.SeccompProfile); s == nil || s.Type != corev1.SeccompProfileTypeRuntimeDefault {
			add("container %s: seccomp profile is not RuntimeDefault", c.Name)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
			add("container %s: no CPU or memory request", c.Name)
		}
		if c.Resources.Limits.Memory().IsZero() {
			add("container %s: no memory limit", c.Name)
		}
		for _, m := range c.VolumeMounts {
			if _, ok := volumes[m.Name]; !ok {
				add("container %s: mount %s names no volume", c.Name, m.MountPath)
			}
			if !m.ReadOnly && !(c.Name == "checkpointer" && m.MountPath == witnessDir) {
				add("container %s: %s is mounted writable", c.Name, m.MountPath)
			}
		}
		for _, e := range c.Env {
			if strings.HasPrefix(e.Value, "/") && !mounted(c, e.Value) {
				add("container %s: %s=%s is on no mounted volume", c.Name, e.Name, e.Value)
			}
		}
	}
	return p
}

// budgetProblems checks the disruption budgets: exactly the services with more than one replica have
// one, and it lets one pod go at a time.
func budgetProblems(r *rendered) []string {
	var p []string
	for name, d := range r.deployments {
		b, has := r.budgets[name]
		switch replicas := replicasOf(d); {
		case replicas > 1 && !has:
			p = append(p, fmt.Sprintf("%s: %d replicas and no PodDisruptionBudget", name, replicas))
		case replicas <= 1 && has:
			p = append(p, fmt.Sprintf("%s: a PodDisruptionBudget for a single replica, which would only block or ignore node drains", name))
		case has:
			if b.Spec.MaxUnavailable == nil || b.Spec.MaxUnavailable.IntValue() != 1 || b.Spec.MinAvailable != nil {
				p = append(p, fmt.Sprintf("%s: the PodDisruptionBudget is not maxUnavailable 1", name))
			}
			if b.Spec.Selector == nil || !selects(b.Spec.Selector, d.Spec.Template.Labels) {
				p = append(p, fmt.Sprintf("%s: the PodDisruptionBudget does not select the service's pods", name))
			}
		}
	}
	for name := range r.budgets {
		if _, ok := r.deployments[name]; !ok {
			p = append(p, fmt.Sprintf("%s: a PodDisruptionBudget for no Deployment", name))
		}
	}
	return p
}

// serviceProblems checks that each Service reaches the HTTP port of its own service's pods only.
func serviceProblems(r *rendered) []string {
	var p []string
	for name, s := range r.services {
		d, ok := r.deployments[name]
		if !ok {
			p = append(p, fmt.Sprintf("%s: a Service for no Deployment", name))
			continue
		}
		if len(s.Spec.Selector) == 0 || !labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
			p = append(p, fmt.Sprintf("%s: the Service does not select the service's pods", name))
		}
		for other, od := range r.deployments {
			if other != name && labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(od.Spec.Template.Labels)) {
				p = append(p, fmt.Sprintf("%s: the Service also selects %s's pods", name, other))
			}
		}
		for _, port := range s.Spec.Ports {
			if port.TargetPort.String() != "http" {
				p = append(p, fmt.Sprintf("%s: Service port %d does not target the http port", name, port.Port))
			}
		}
	}
	return p
}

// networkProblems checks the NetworkPolicies: a default deny over every pod of the release; per
// service, ingress only to its HTTP port and only from named peers, egress only to named peers and at
// least to DNS and its NATS client and monitoring ports (and PostgreSQL for the services with a
// database, and each service it calls, which must let it in); the provisioning Job let out to NATS.
func networkProblems(r *rendered) []string {
	var p []string
	var pods []map[string]string
	for _, d := range r.deployments {
		pods = append(pods, d.Spec.Template.Labels)
	}
	for _, j := range r.jobs {
		pods = append(pods, j.Spec.Template.Labels)
	}
	hasDeny := false
	for _, np := range r.policies {
		if len(np.Spec.Ingress) == 0 && len(np.Spec.Egress) == 0 && slices.Equal(policyTypes(np), []string{"Egress", "Ingress"}) &&
			!slices.ContainsFunc(pods, func(l map[string]string) bool { return !selects(&np.Spec.PodSelector, l) }) {
			hasDeny = true
		}
		for _, rule := range np.Spec.Ingress {
			if len(rule.From) == 0 {
				p = append(p, fmt.Sprintf("NetworkPolicy %s: an ingress rule without peers lets everyone in", np.Name))
			}
		}
		for _, rule := range np.Spec.Egress {
			if len(rule.To) == 0 {
				p = append(p, fmt.Sprintf("NetworkPolicy %s: an egress rule without peers lets out to everywhere", np.Name))
			}
		}
	}
	if !hasDeny {
		p = append(p, "no NetworkPolicy denies all traffic of every pod of the release by default")
	}
	for name, d := range r.deployments {
		c := d.Spec.Template.Spec.Containers[0]
		need := []int32{53, portOf(envValue(c, "GRANTLINE_NATS_URL")), portOf(envValue(c, "GRANTLINE_NATS_MONITOR_URLS"))}
		if hasEnv(c, "GRANTLINE_DATABASE_URL") {
			need = append(need, 5432)
		}
		for callee, port := range calls(c) {
			need = append(need, port)
			if target, ok := r.deployments[callee]; ok && !letsIn(r.policies, target.Spec.Template.Labels, d.Spec.Template.Labels, port) {
				p = append(p, fmt.Sprintf("%s: no NetworkPolicy lets %s in, which calls it", callee, name))
			}
		}
		p = append(p, podNetworkProblems(name, r.policies, d.Spec.Template.Labels, namedPort(c, "http"), need)...)
	}
	for _, j := range r.jobs {
		c := j.Spec.Template.Spec.Containers[0]
		p = append(p, podNetworkProblems("job "+j.Name, r.policies, j.Spec.Template.Labels, 0,
			[]int32{53, portOf(envValue(c, "GRANTLINE_NATS_URL"))})...)
	}
	return p
}

// podNetworkProblems checks the policies that select one pod: some policy isolates it both ways,
// ingress reaches only port httpPort (none if 0), and egress allows each port in egressPorts.
func podNetworkProblems(who string, policies map[string]*networkingv1.NetworkPolicy, pod map[string]string, httpPort int32, egressPorts []int32) []string {
	var p []string
	var isolated bool
	var egress []int32
	for _, np := range policies {
		if !selects(&np.Spec.PodSelector, pod) {
			continue
		}
		isolated = isolated || slices.Equal(policyTypes(np), []string{"Egress", "Ingress"})
		for _, rule := range np.Spec.Ingress {
			for _, port := range rule.Ports {
				if port.Port == nil || port.Port.IntValue() != int(httpPort) {
					p = append(p, fmt.Sprintf("%s: NetworkPolicy %s lets in on a port other than its HTTP port %d", who, np.Name, httpPort))
				}
			}
			if len(rule.Ports) == 0 {
				p = append(p, fmt.Sprintf("%s: NetworkPolicy %s lets in on every port", who, np.Name))
			}
		}
		for _, rule := range np.Spec.Egress {
			for _, port := range rule.Ports {
				if port.Port != nil {
					egress = append(egress, int32(port.Port.IntValue()))
				}
			}
		}
	}
	if !isolated {
		p = append(p, fmt.Sprintf("%s: no NetworkPolicy isolates it in both directions", who))
	}
	for _, port := range egressPorts {
		if !slices.Contains(egress, port) {
			p = append(p, fmt.Sprintf("%s: no egress to port %d", who, port))
		}
	}
	return p
}

// calls lists the services a container calls over HTTP (its GRANTLINE_<SERVICE>_URL variables) and
// the port each URL names.
func calls(c corev1.Container) map[string]int32 {
	out := map[string]int32{}
	for _, e := range c.Env {
		name, ok := strings.CutSuffix(strings.TrimPrefix(e.Name, "GRANTLINE_"), "_URL")
		if svc := strings.ToLower(name); ok && slices.Contains(services, svc) {
			out[svc] = portOf(e.Value)
		}
	}
	return out
}

// letsIn reports whether some policy over the pod labelled target lets the pods labelled caller, of
// the same namespace, in on port.
func letsIn(policies map[string]*networkingv1.NetworkPolicy, target, caller map[string]string, port int32) bool {
	for _, np := range policies {
		if !selects(&np.Spec.PodSelector, target) {
			continue
		}
		for _, rule := range np.Spec.Ingress {
			if !slices.ContainsFunc(rule.Ports, func(p networkingv1.NetworkPolicyPort) bool { return p.Port != nil && p.Port.IntValue() == int(port) }) {
				continue
			}
			if slices.ContainsFunc(rule.From, func(peer networkingv1.NetworkPolicyPeer) bool {
				return peer.PodSelector != nil && peer.NamespaceSelector == nil && selects(peer.PodSelector, caller)
			}) {
				return true
			}
		}
	}
	return false
}

// jobProblems checks the provisioning Job: a pre-install and pre-upgrade hook that provisions the
// streams as the operator, with the same hardening as the services.
func jobProblems(j *batchv1.Job) []string {
	var p []string
	add := func(format string, args ...any) { p = append(p, "job "+j.Name+": "+fmt.Sprintf(format, args...)) }
	hooks := strings.Split(j.Annotations["helm.sh/hook"], ",")
	if !slices.Contains(hooks, "pre-install") || !slices.Contains(hooks, "pre-upgrade") {
		add("not a pre-install and pre-upgrade hook (%q)", j.Annotations["helm.sh/hook"])
	}
	spec := j.Spec.Template.Spec
	for _, problem := range podProblems(spec) {
		add("%s", problem)
	}
	if spec.RestartPolicy != corev1.RestartPolicyNever {
		add("restartPolicy %q, not Never", spec.RestartPolicy)
	}
	if len(spec.Containers) != 1 {
		add("%d containers, not one", len(spec.Containers))
		return p
	}
	c := spec.Containers[0]
	if !strings.Contains(c.Image, "/grantline:") {
		add("image %s is not the CLI image", c.Image)
	}
	if len(c.Args) < 4 || !slices.Equal(c.Args[:3], []string{"streams", "provision", "--replicas"}) || len(c.Args)%2 != 0 {
		add("runs %q, not `streams provision --replicas N` with the integrations", c.Args)
	}
	for _, env := range []string{"GRANTLINE_NATS_URL", "GRANTLINE_NATS_NKEY_FILE"} {
		if !hasEnv(c, env) {
			add("%s is not set", env)
		}
	}
	return p
}

func selects(s *metav1.LabelSelector, l map[string]string) bool {
	sel, err := metav1.LabelSelectorAsSelector(s)
	return err == nil && !sel.Empty() && sel.Matches(labels.Set(l))
}

func policyTypes(np *networkingv1.NetworkPolicy) []string {
	var t []string
	for _, pt := range np.Spec.PolicyTypes {
		t = append(t, string(pt))
	}
	slices.Sort(t)
	return t
}

func replicasOf(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1 // the API's default
	}
	return *d.Spec.Replicas
}

func namedPort(c corev1.Container, name string) int32 {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

func hasEnv(c corev1.Container, name string) bool {
	return slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == name && (e.Value != "" || e.ValueFrom != nil) })
}

func envValue(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func secretRef(c corev1.Container, name string) *corev1.SecretKeySelector {
	for _, e := range c.Env {
		if e.Name == name && e.ValueFrom != nil {
			return e.ValueFrom.SecretKeyRef
		}
	}
	return nil
}

// mounted reports whether file is a mount, lies on one, or is a directory holding mounted files.
func mounted(c corev1.Container, file string) bool {
	file = path.Clean(file)
	return slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
		mount := path.Clean(m.MountPath)
		return file == mount || strings.HasPrefix(file, mount+"/") || strings.HasPrefix(mount, file+"/")
	})
}

// portOf is the port of the first URL of a comma-separated list (0 if it names none).
func portOf(urls string) int32 {
	u, err := url.Parse(strings.Split(urls, ",")[0])
	if err != nil {
		return 0
	}
	port, _ := strconv.Atoi(u.Port())
	return int32(port)
}

// effective is the container's setting if it has one, else the pod's: how Kubernetes resolves them.
func effective[T any](container, pod *T) *T {
	if container != nil {
		return container
	}
	return pod
}

func isTrue(b *bool) bool { return b != nil && *b }
