package deploy

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/pgwarden/pgwarden/config"
)

const (
	chartDir     = "helm/pgwarden"
	manifestPath = "kubernetes/pgwarden.yaml"
	release      = "pgwarden"
	namespace    = "pgwarden"
	dataDir      = "/var/lib/pgwarden/data"
)

// helmBin finds helm: the project's .tools/bin/helm (scripts/helm-tool.sh),
// else PATH. Without it the test skips, except under CI=true.
func helmBin(t *testing.T) string {
	t.Helper()
	if p, err := filepath.Abs("../.tools/bin/helm"); err == nil {
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p
		}
	}
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("helm not found (.tools/bin/helm or PATH): run scripts/helm-tool.sh (make setup)")
	}
	t.Skip("helm not found (.tools/bin/helm or PATH): run scripts/helm-tool.sh (make setup)")
	return ""
}

// runHelm runs helm with its cache/config/data dirs in a temporary folder
// (it reads no repositories and touches nothing of the user's).
func runHelm(t *testing.T, args ...string) []byte {
	t.Helper()
	helm := helmBin(t)
	home := t.TempDir()
	cmd := exec.Command(helm, args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.Bytes()
}

// A variant of the chart's values the tests render and check.
type variant struct {
	name string
	args []string
	// the Secret the pods read, and whether the chart renders it
	secretName    string
	secretCreated bool
	// values that must not appear in the ConfigMap (they belong in the Secret)
	secretValues   []string
	serviceMonitor bool
	podIP          string // the stand-in pod address (default an IPv4 one)
}

const (
	sentinelStore = "postgres://pgwarden_store:store-SENTINEL-pw@store.example.internal:5432/pgwarden"
	sentinelAdmin = "postgres://pgwarden_admin:admin-SENTINEL-pw@db.example.internal:5432/vectors"
	sentinelMask  = "mask-SENTINEL-key"
	sentinelVault = "vault-SENTINEL-token"
	sentinelKey   = "-----BEGIN PRIVATE KEY-----\nkey-SENTINEL\n-----END PRIVATE KEY-----\n"
)

var variants = []variant{
	{name: "defaults", secretName: release},
	{name: "serviceMonitor", args: []string{"--set", "serviceMonitor.enabled=true"}, secretName: release, serviceMonitor: true},
	{
		name: "secret values",
		args: []string{
			"--set", "secret.storeDsn=" + sentinelStore,
			"--set", "secret.adminDsn=" + sentinelAdmin,
			"--set", "secret.maskHmacKey=" + sentinelMask,
			"--set", "secret.vaultToken=" + sentinelVault,
			"--set", "secret.tlsCrt=cert-SENTINEL",
			"--set-string", "secret.tlsKey=" + sentinelKey,
		},
		secretName: release, secretCreated: true,
		secretValues: []string{sentinelStore, sentinelAdmin, "SENTINEL"},
	},
	{
		name:       "existing secret",
		args:       []string{"--set", "secret.existingSecret=my-pgwarden-secrets", "--set", "secret.storeDsn=" + sentinelStore},
		secretName: "my-pgwarden-secrets", secretValues: []string{sentinelStore, "SENTINEL"},
	},
	{name: "self-signed TLS, 3 replicas", args: []string{"--set", "tls.selfSigned=true", "--set", "replicaCount=3"}, secretName: release},
	{name: "IPv6", args: []string{"--set", "podIPv6=true"}, secretName: release, podIP: "fd00:10::7"},
}

func TestHelmLint(t *testing.T) {
	helmBin(t)
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			out := runHelm(t, append([]string{"lint", "--strict", chartDir}, v.args...)...)
			if !bytes.Contains(out, []byte("0 chart(s) failed")) {
				t.Fatalf("helm lint:\n%s", out)
			}
			if bytes.Contains(out, []byte("[WARNING]")) || bytes.Contains(out, []byte("[ERROR]")) {
				t.Fatalf("helm lint is not clean:\n%s", out)
			}
		})
	}
}

func render(t *testing.T, args ...string) []byte {
	t.Helper()
	return runHelm(t, append([]string{"template", release, chartDir, "--namespace", namespace}, args...)...)
}

// objects are the rendered manifest decoded into the Kubernetes API types.
type objects struct {
	deployments     []appsv1.Deployment
	services        []corev1.Service
	configMaps      []corev1.ConfigMap
	secrets         []corev1.Secret
	serviceAccounts []corev1.ServiceAccount
	pdbs            []policyv1.PodDisruptionBudget
	networkPolicies []networkingv1.NetworkPolicy
	serviceMonitors []serviceMonitor
}

// serviceMonitor is the part of the Prometheus Operator's
// monitoring.coreos.com/v1 ServiceMonitor the chart writes (k8s.io/api has
// no type for it): strict decoding refuses any field not listed here, so a
// new field in the template needs a look at the CRD and a line here.
type serviceMonitor struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector struct {
			Any        bool     `json:"any,omitempty"`
			MatchNames []string `json:"matchNames,omitempty"`
		} `json:"namespaceSelector"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path,omitempty"`
			Scheme        string `json:"scheme,omitempty"`
			Interval      string `json:"interval,omitempty"`
			ScrapeTimeout string `json:"scrapeTimeout,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// splitManifest returns the YAML documents of a multi-document stream,
// without the empty ones (comments only).
func splitManifest(data []byte) [][]byte {
	var docs [][]byte
	for _, d := range regexp.MustCompile(`(?m)^---[ \t]*$`).Split(string(data), -1) {
		empty := true
		for _, l := range strings.Split(d, "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				empty = false
				break
			}
		}
		if !empty {
			docs = append(docs, []byte(d))
		}
	}
	return docs
}

// decodeStrict converts one YAML document to JSON (duplicate keys are an
// error) and decodes it into out, refusing fields out's type does not have.
func decodeStrict(doc []byte, out any) error {
	j, err := sigsyaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("trailing data after the object")
	}
	return nil
}

// decodeObject decodes one document by its apiVersion and kind into its type.
func decodeObject(doc []byte, objs *objects) error {
	var tm metav1.TypeMeta
	if err := sigsyaml.Unmarshal(doc, &tm); err != nil {
		return err
	}
	var err error
	switch tm.APIVersion + " " + tm.Kind {
	case "apps/v1 Deployment":
		var o appsv1.Deployment
		if err = decodeStrict(doc, &o); err == nil {
			objs.deployments = append(objs.deployments, o)
		}
	case "v1 Service":
		var o corev1.Service
		if err = decodeStrict(doc, &o); err == nil {
			objs.services = append(objs.services, o)
		}
	case "v1 ConfigMap":
		var o corev1.ConfigMap
		if err = decodeStrict(doc, &o); err == nil {
			objs.configMaps = append(objs.configMaps, o)
		}
	case "v1 Secret":
		var o corev1.Secret
		if err = decodeStrict(doc, &o); err == nil {
			objs.secrets = append(objs.secrets, o)
		}
	case "v1 ServiceAccount":
		var o corev1.ServiceAccount
		if err = decodeStrict(doc, &o); err == nil {
			objs.serviceAccounts = append(objs.serviceAccounts, o)
		}
	case "policy/v1 PodDisruptionBudget":
		var o policyv1.PodDisruptionBudget
		if err = decodeStrict(doc, &o); err == nil {
			objs.pdbs = append(objs.pdbs, o)
		}
	case "networking.k8s.io/v1 NetworkPolicy":
		var o networkingv1.NetworkPolicy
		if err = decodeStrict(doc, &o); err == nil {
			objs.networkPolicies = append(objs.networkPolicies, o)
		}
	case "monitoring.coreos.com/v1 ServiceMonitor":
		var o serviceMonitor
		if err = decodeStrict(doc, &o); err == nil {
			objs.serviceMonitors = append(objs.serviceMonitors, o)
		}
	default:
		return fmt.Errorf("unexpected object %s %s (add its type to decodeObject)", tm.APIVersion, tm.Kind)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", tm.Kind, err)
	}
	return nil
}

func decodeManifest(data []byte) (*objects, error) {
	objs := &objects{}
	for _, doc := range splitManifest(data) {
		if err := decodeObject(doc, objs); err != nil {
			return nil, err
		}
	}
	return objs, nil
}

func TestHelmTemplate(t *testing.T) {
	helmBin(t)
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			out := render(t, v.args...)
			objs, err := decodeManifest(out)
			if err != nil {
				t.Fatal(err)
			}
			checkRendered(t, v, objs)
		})
	}
}

// checkRendered checks what the chart promises of one render.
func checkRendered(t *testing.T, v variant, objs *objects) {
	t.Helper()
	if n := len(objs.deployments); n != 1 {
		t.Fatalf("%d Deployments, want 1", n)
	}
	d := objs.deployments[0]
	min := int32(2)
	if v.name == "self-signed TLS, 3 replicas" {
		min = 3
	}
	if err := checkDeployment(&d, min); err != nil {
		t.Error(err)
	}
	pod := labels.Set(d.Spec.Template.Labels)

	if len(objs.pdbs) != 1 {
		t.Fatalf("%d PodDisruptionBudgets, want 1", len(objs.pdbs))
	}
	if err := checkPDB(&objs.pdbs[0], pod, *d.Spec.Replicas); err != nil {
		t.Error(err)
	}

	if err := checkServices(objs.services, &d); err != nil {
		t.Error(err)
	}

	if len(objs.networkPolicies) != 1 {
		t.Fatalf("%d NetworkPolicies, want 1", len(objs.networkPolicies))
	}
	if err := checkNetworkPolicy(&objs.networkPolicies[0], pod); err != nil {
		t.Error(err)
	}

	if len(objs.serviceAccounts) != 1 || objs.serviceAccounts[0].Name != d.Spec.Template.Spec.ServiceAccountName {
		t.Errorf("the pods' ServiceAccount %q is not rendered", d.Spec.Template.Spec.ServiceAccountName)
	}

	// Secrets: the pods read exactly the Secret of the variant.
	if err := checkSecretRefs(&d, v.secretName); err != nil {
		t.Error(err)
	}
	switch {
	case v.secretCreated:
		if len(objs.secrets) != 1 || objs.secrets[0].Name != v.secretName {
			t.Fatalf("want the chart's Secret %s, have %d Secrets", v.secretName, len(objs.secrets))
		}
		s := objs.secrets[0]
		for _, k := range []string{"store-dsn", "admin-dsn", "mask-hmac-key", "vault-token", "tls.crt", "tls.key"} {
			if len(s.Data[k]) == 0 {
				t.Errorf("Secret %s has no %s", s.Name, k)
			}
		}
		if string(s.Data["store-dsn"]) != sentinelStore || string(s.Data["tls.key"]) != sentinelKey {
			t.Errorf("Secret %s does not hold the values given", s.Name)
		}
	case len(objs.secrets) != 0:
		t.Errorf("the chart renders a Secret (%s) the operator was to provide", objs.secrets[0].Name)
	}

	if len(objs.configMaps) != 1 {
		t.Fatalf("%d ConfigMaps, want 1", len(objs.configMaps))
	}
	cm := &objs.configMaps[0]
	if err := checkNoSecrets(cm, v.secretValues); err != nil {
		t.Error(err)
	}
	checkConfig(t, cm, &d, v.podIP)

	if v.serviceMonitor != (len(objs.serviceMonitors) == 1) {
		t.Fatalf("%d ServiceMonitors, want one only with serviceMonitor.enabled", len(objs.serviceMonitors))
	}
	if v.serviceMonitor {
		if err := checkServiceMonitor(&objs.serviceMonitors[0], objs.services); err != nil {
			t.Error(err)
		}
	}
}

func container(d *appsv1.Deployment) (*corev1.Container, error) {
	for i, c := range d.Spec.Template.Spec.Containers {
		if c.Name == "pgwarden" {
			return &d.Spec.Template.Spec.Containers[i], nil
		}
	}
	return nil, fmt.Errorf("Deployment %s: no container pgwarden", d.Name)
}

func containerPort(c *corev1.Container, name string) int32 {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

func checkDeployment(d *appsv1.Deployment, minReplicas int32) error {
	if d.Spec.Replicas == nil || *d.Spec.Replicas < minReplicas {
		return fmt.Errorf("Deployment %s: replicas %v, want at least %d", d.Name, d.Spec.Replicas, minReplicas)
	}
	if d.Spec.Selector == nil {
		return fmt.Errorf("Deployment %s: no selector", d.Name)
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || sel.Empty() || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
		return fmt.Errorf("Deployment %s: selector %v does not select its pods %v", d.Name, d.Spec.Selector, d.Spec.Template.Labels)
	}
	c, err := container(d)
	if err != nil {
		return err
	}
	if containerPort(c, "postgres") != 6432 || containerPort(c, "admin") != 6480 {
		return fmt.Errorf("container ports %v: want postgres 6432 and admin 6480", c.Ports)
	}
	probe := func(what string, p *corev1.Probe, path string) error {
		if p == nil || p.HTTPGet == nil {
			return fmt.Errorf("%s: not an httpGet probe", what)
		}
		if p.HTTPGet.Path != path {
			return fmt.Errorf("%s: path %s, want %s", what, p.HTTPGet.Path, path)
		}
		if port := p.HTTPGet.Port; port.StrVal != "admin" && port.IntValue() != 6480 {
			return fmt.Errorf("%s: port %s, want the admin port", what, port.String())
		}
		return nil
	}
	if err := probe("readinessProbe", c.ReadinessProbe, "/readyz"); err != nil {
		return err
	}
	if err := probe("livenessProbe", c.LivenessProbe, "/healthz"); err != nil {
		return err
	}
	if len(c.Command) == 0 || c.Command[0] != "pgwarden" || !slices.Equal(c.Args, []string{"serve", "--config", "/etc/pgwarden/pgwarden.yaml"}) {
		return fmt.Errorf("container runs %v %v, want pgwarden serve --config /etc/pgwarden/pgwarden.yaml", c.Command, c.Args)
	}
	ps, sc := d.Spec.Template.Spec.SecurityContext, c.SecurityContext
	if ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot || ps.RunAsUser == nil || *ps.RunAsUser != 10001 {
		return fmt.Errorf("pod securityContext: want runAsNonRoot and runAsUser 10001")
	}
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != 10001 {
		return fmt.Errorf("container securityContext: want readOnlyRootFilesystem, no privilege escalation, runAsNonRoot, uid 10001")
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		return fmt.Errorf("resources %v: want cpu/memory requests and a memory limit", c.Resources)
	}
	// The data dir is a writable emptyDir (the root filesystem is read-only).
	vols := map[string]corev1.Volume{}
	for _, v := range d.Spec.Template.Spec.Volumes {
		vols[v.Name] = v
	}
	var dataOK bool
	for _, m := range c.VolumeMounts {
		if _, ok := vols[m.Name]; !ok {
			return fmt.Errorf("volumeMount %s: no such volume", m.Name)
		}
		if m.MountPath == dataDir && vols[m.Name].EmptyDir != nil && !m.ReadOnly {
			dataOK = true
		}
	}
	if !dataOK {
		return fmt.Errorf("no writable emptyDir at %s", dataDir)
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	for name, field := range map[string]string{"POD_NAME": "metadata.name", "POD_IP": "status.podIP"} {
		e := env[name]
		if e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != field {
			return fmt.Errorf("env %s: want fieldRef %s", name, field)
		}
	}
	if e := env["PGWARDEN_STORE_DSN"]; e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Optional != nil && *e.ValueFrom.SecretKeyRef.Optional {
		return fmt.Errorf("env PGWARDEN_STORE_DSN: want a required secretKeyRef (a pod without it would run on a file store of its own)")
	}
	return nil
}

func checkPDB(p *policyv1.PodDisruptionBudget, pod labels.Set, replicas int32) error {
	sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
	if err != nil {
		return err
	}
	if sel.Empty() || !sel.Matches(pod) {
		return fmt.Errorf("PodDisruptionBudget %s: selector %v does not select the pods %v", p.Name, p.Spec.Selector, pod)
	}
	if p.Spec.MinAvailable == nil || p.Spec.MinAvailable.IntValue() != 1 {
		return fmt.Errorf("PodDisruptionBudget %s: minAvailable %v, want 1", p.Name, p.Spec.MinAvailable)
	}
	if int32(p.Spec.MinAvailable.IntValue()) >= replicas {
		return fmt.Errorf("PodDisruptionBudget %s: minAvailable %d blocks every drain with %d replicas", p.Name, p.Spec.MinAvailable.IntValue(), replicas)
	}
	return nil
}

func checkServices(svcs []corev1.Service, d *appsv1.Deployment) error {
	c, err := container(d)
	if err != nil {
		return err
	}
	pod := labels.Set(d.Spec.Template.Labels)
	want := map[string]int32{"postgres": 6432, "admin": 6480}
	found := map[string]bool{}
	for _, s := range svcs {
		if len(s.Spec.Selector) == 0 || !labels.SelectorFromSet(s.Spec.Selector).Matches(pod) {
			return fmt.Errorf("Service %s: selector %v does not select the pods %v", s.Name, s.Spec.Selector, pod)
		}
		if len(s.Spec.Ports) != 1 {
			return fmt.Errorf("Service %s: %d ports, want 1", s.Name, len(s.Spec.Ports))
		}
		p := s.Spec.Ports[0]
		if w, ok := want[p.Name]; !ok || p.Port != w {
			return fmt.Errorf("Service %s: port %s %d, want postgres 6432 or admin 6480", s.Name, p.Name, p.Port)
		}
		if containerPort(c, p.TargetPort.String()) == 0 {
			return fmt.Errorf("Service %s: targetPort %s is no container port", s.Name, p.TargetPort.String())
		}
		found[p.Name] = true
	}
	if !found["postgres"] || !found["admin"] {
		return fmt.Errorf("want a Service for the Postgres port and one for admin, have %v", mapKeys(found))
	}
	return nil
}

func checkNetworkPolicy(np *networkingv1.NetworkPolicy, pod labels.Set) error {
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil || sel.Empty() || !sel.Matches(pod) {
		return fmt.Errorf("NetworkPolicy %s: podSelector does not select the pods", np.Name)
	}
	if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) || !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
		return fmt.Errorf("NetworkPolicy %s: policyTypes %v, want Ingress and Egress", np.Name, np.Spec.PolicyTypes)
	}
	ports := map[string]bool{}
	for _, r := range np.Spec.Ingress {
		for _, p := range r.Ports {
			if p.Port != nil {
				ports[p.Port.String()] = true
			}
		}
	}
	if !ports["postgres"] || !ports["admin"] {
		return fmt.Errorf("NetworkPolicy %s: ingress admits ports %v, want postgres and admin", np.Name, mapKeys(ports))
	}
	if len(np.Spec.Egress) == 0 {
		return fmt.Errorf("NetworkPolicy %s: no egress rule: the gateway could reach neither upstream, store nor issuer", np.Name)
	}
	return nil
}

func checkSecretRefs(d *appsv1.Deployment, secret string) error {
	c, err := container(d)
	if err != nil {
		return err
	}
	n := 0
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			n++
			if e.ValueFrom.SecretKeyRef.Name != secret {
				return fmt.Errorf("env %s reads Secret %s, want %s", e.Name, e.ValueFrom.SecretKeyRef.Name, secret)
			}
		}
	}
	if n == 0 {
		return fmt.Errorf("no env var comes from Secret %s", secret)
	}
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Secret != nil && v.Secret.SecretName != secret {
			return fmt.Errorf("volume %s reads Secret %s, want %s", v.Name, v.Secret.SecretName, secret)
		}
	}
	return nil
}

// The configuration keys that hold secrets: in the ConfigMap they may only
// be ${ENV} references (or empty, or a DSN without a password).
var secretKeys = []string{
	"store.dsn", "credentials.native.admin_dsn", "masking.catalog_dsn",
	"masking.hmac_key", "credentials.static.password", "credentials.vault.secret_id",
}

var wholeRef = regexp.MustCompile(`^\$\{[A-Za-z_][A-Za-z0-9_]*\}$`)

// checkNoSecrets refuses a ConfigMap that holds any of values, or a secret
// key of the configuration with a literal value.
func checkNoSecrets(cm *corev1.ConfigMap, values []string) error {
	for k, v := range cm.Data {
		for _, s := range values {
			if strings.Contains(v, s) {
				return fmt.Errorf("ConfigMap %s: %s holds a secret value (%.12s...)", cm.Name, k, s)
			}
		}
	}
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(cm.Data["pgwarden.yaml"]), &doc); err != nil {
		return fmt.Errorf("ConfigMap %s: pgwarden.yaml: %v", cm.Name, err)
	}
	for _, key := range secretKeys {
		var cur any = doc
		for _, part := range strings.Split(key, ".") {
			m, _ := cur.(map[string]any)
			cur = m[part]
		}
		if cur == nil {
			continue
		}
		s := fmt.Sprint(cur)
		if s == "" || wholeRef.MatchString(s) {
			continue
		}
		if strings.HasSuffix(key, "_dsn") || key == "store.dsn" {
			if u, err := url.Parse(s); err == nil {
				if _, has := u.User.Password(); !has {
					continue // a DSN without a password (e.g. a client certificate, or PGPASSWORD)
				}
			}
		}
		return fmt.Errorf("ConfigMap %s: %s is a literal value; put it in the Secret and reference it as ${NAME}", cm.Name, key)
	}
	return nil
}

// checkConfig parses the ConfigMap's pgwarden.yaml with pgwarden's own
// config.Parse in the environment the container gets, and checks the keys
// the chart owns.
func checkConfig(t *testing.T, cm *corev1.ConfigMap, d *appsv1.Deployment, podIP string) {
	t.Helper()
	data := []byte(cm.Data["pgwarden.yaml"])
	if len(data) == 0 {
		t.Fatalf("ConfigMap %s: no pgwarden.yaml", cm.Name)
	}
	c, err := container(d)
	if err != nil {
		t.Fatal(err)
	}
	// The container's environment, with stand-ins for what Kubernetes and
	// the Secret provide.
	standIn := map[string]string{
		"POD_NAME":           "pgwarden-7d9f8c6b5-x2x4q",
		"POD_IP":             cmp.Or(podIP, "10.1.2.3"),
		"PGWARDEN_STORE_DSN": "postgres://pgwarden_store:pw@store.example.internal:5432/pgwarden",
		"PGWARDEN_ADMIN_DSN": "postgres://pgwarden_admin:pw@db.example.internal:5432/vectors",
		"PGWARDEN_MASK_KEY":  "0123456789abcdef0123456789abcdef",
		"VAULT_TOKEN":        "hvs.test",
	}
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil:
			v, ok := standIn[e.Name]
			if !ok {
				t.Fatalf("env %s: no stand-in value in the test", e.Name)
			}
			env[e.Name] = v
		default:
			env[e.Name] = e.Value
		}
	}
	setConfigEnv(t, data, env)
	cfg, err := config.Parse(data)
	if err != nil {
		t.Fatalf("ConfigMap %s: pgwarden.yaml: %v", cm.Name, err)
	}
	if cfg.Listen != "0.0.0.0:6432" || cfg.Admin.Listen != "0.0.0.0:6480" {
		t.Errorf("listen %s, admin.listen %s: want 0.0.0.0:6432 and 0.0.0.0:6480", cfg.Listen, cfg.Admin.Listen)
	}
	if cfg.Cluster.GatewayID != standIn["POD_NAME"] || cfg.Cluster.Advertise != net.JoinHostPort(standIn["POD_IP"], "6432") {
		t.Errorf("cluster gateway_id %q, advertise %q: want the pod's name and IP:6432", cfg.Cluster.GatewayID, cfg.Cluster.Advertise)
	}
	if cfg.Store.DSN != standIn["PGWARDEN_STORE_DSN"] {
		t.Errorf("store.dsn is not the Secret's store-dsn")
	}
	if cfg.Store.Dir != dataDir {
		t.Errorf("store.dir %s, want %s (the emptyDir)", cfg.Store.Dir, dataDir)
	}
	if !cfg.TLS.Require {
		t.Errorf("tls.require is off")
	}
	if !cfg.TLS.SelfSigned {
		mounted := false
		for _, m := range c.VolumeMounts {
			if filepath.Dir(cfg.TLS.CertFile) == m.MountPath && filepath.Dir(cfg.TLS.KeyFile) == m.MountPath {
				mounted = true
			}
		}
		if !mounted {
			t.Errorf("tls.cert_file %s / key_file %s are not on a mounted volume", cfg.TLS.CertFile, cfg.TLS.KeyFile)
		}
	}
}

func checkServiceMonitor(sm *serviceMonitor, svcs []corev1.Service) error {
	sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
	if err != nil {
		return err
	}
	var picked []corev1.Service
	for _, s := range svcs {
		if sel.Matches(labels.Set(s.Labels)) {
			picked = append(picked, s)
		}
	}
	if len(picked) != 1 || picked[0].Spec.Ports[0].Name != "admin" {
		return fmt.Errorf("ServiceMonitor %s selects %d Services, want the admin Service only", sm.Metadata.Name, len(picked))
	}
	if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "admin" || sm.Spec.Endpoints[0].Path != "/metrics" {
		return fmt.Errorf("ServiceMonitor %s: endpoints %+v, want port admin path /metrics", sm.Metadata.Name, sm.Spec.Endpoints)
	}
	return nil
}

// The committed plain manifest is a fresh render (scripts/render-manifest.sh).
func TestRenderedManifestIsCurrent(t *testing.T) {
	helm := helmBin(t)
	cmd := exec.Command("../scripts/render-manifest.sh", "--stdout")
	cmd.Env = append(os.Environ(), "HELM="+helm, "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	fresh, err := cmd.Output()
	if err != nil {
		t.Fatalf("render-manifest.sh: %v\n%s", err, stderr.String())
	}
	committed, err := os.ReadFile(manifestPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fresh, committed) {
		t.Fatalf("deploy/%s differs from a fresh render of the chart: run make manifest and commit it\n%s", manifestPath, firstDiff(committed, fresh))
	}
	// And it is the defaults render, decoded and checked like the others.
	objs, err := decodeManifest(committed)
	if err != nil {
		t.Fatal(err)
	}
	checkRendered(t, variants[0], objs)
}

func firstDiff(a, b []byte) string {
	al, bl := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return fmt.Sprintf("line %d:\n  committed: %q\n  rendered:  %q", i+1, x, y)
		}
	}
	return ""
}

// The checks can fail: each is fed an object that breaks what it checks.
func TestChecksRefuseWrongObjects(t *testing.T) {
	deployment := `apiVersion: apps/v1
kind: Deployment
metadata: {name: pgwarden}
spec:
  replicas: 2
  selector: {matchLabels: {app: pgwarden}}
  template:
    metadata: {labels: {app: pgwarden}}
    spec:
      containers:
        - name: pgwarden
          image: pgwarden:0.1.0
`
	t.Run("unknown field", func(t *testing.T) {
		var objs objects
		if err := decodeObject([]byte(deployment), &objs); err != nil {
			t.Fatalf("a valid Deployment was refused: %v", err)
		}
		bad := strings.Replace(deployment, "  replicas: 2", "  replica: 2", 1)
		err := decodeObject([]byte(bad), &objs)
		if err == nil || !strings.Contains(err.Error(), `unknown field "replica"`) {
			t.Fatalf("spec.replica was accepted: %v", err)
		}
		nested := strings.Replace(deployment, "image: pgwarden:0.1.0", "image: pgwarden:0.1.0\n          readinesProbe: {httpGet: {path: /readyz, port: admin}}", 1)
		if err := decodeObject([]byte(nested), &objs); err == nil {
			t.Fatal("a misspelt container field was accepted")
		}
	})
	t.Run("duplicate key", func(t *testing.T) {
		var objs objects
		bad := strings.Replace(deployment, "  replicas: 2", "  replicas: 2\n  replicas: 1", 1)
		if err := decodeObject([]byte(bad), &objs); err == nil {
			t.Fatal("a duplicate key was accepted")
		}
	})
	t.Run("unknown kind", func(t *testing.T) {
		var objs objects
		if err := decodeObject([]byte("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n"), &objs); err == nil {
			t.Fatal("a Pod was accepted")
		}
	})
	t.Run("ServiceMonitor unknown field", func(t *testing.T) {
		var objs objects
		sm := "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: x}\nspec:\n  selector: {matchLabels: {a: b}}\n  endpoint: [{port: admin}]\n"
		if err := decodeObject([]byte(sm), &objs); err == nil || !strings.Contains(err.Error(), "endpoint") {
			t.Fatalf("spec.endpoint was accepted: %v", err)
		}
	})

	helmBin(t)
	objs, err := decodeManifest(render(t))
	if err != nil {
		t.Fatal(err)
	}
	d := objs.deployments[0]
	t.Run("one replica", func(t *testing.T) {
		x := *d.DeepCopy()
		one := int32(1)
		x.Spec.Replicas = &one
		if checkDeployment(&x, 2) == nil {
			t.Fatal("replicas 1 accepted")
		}
	})
	t.Run("readiness on /healthz", func(t *testing.T) {
		x := *d.DeepCopy()
		c, _ := container(&x)
		c.ReadinessProbe.HTTPGet.Path = "/healthz"
		if checkDeployment(&x, 2) == nil {
			t.Fatal("a readiness probe on /healthz accepted")
		}
	})
	t.Run("writable root filesystem", func(t *testing.T) {
		x := *d.DeepCopy()
		c, _ := container(&x)
		no := false
		c.SecurityContext.ReadOnlyRootFilesystem = &no
		if checkDeployment(&x, 2) == nil {
			t.Fatal("a writable root filesystem accepted")
		}
	})
	t.Run("PDB selects other pods", func(t *testing.T) {
		p := *objs.pdbs[0].DeepCopy()
		p.Spec.Selector.MatchLabels["app.kubernetes.io/instance"] = "other"
		if checkPDB(&p, labels.Set(d.Spec.Template.Labels), 2) == nil {
			t.Fatal("a PDB selecting other pods accepted")
		}
	})
	t.Run("Service selects other pods", func(t *testing.T) {
		svcs := []corev1.Service{*objs.services[0].DeepCopy(), objs.services[1]}
		svcs[0].Spec.Selector = map[string]string{"app.kubernetes.io/name": "other"}
		if checkServices(svcs, &d) == nil {
			t.Fatal("a Service selecting other pods accepted")
		}
	})
	t.Run("secret in the ConfigMap", func(t *testing.T) {
		cm := *objs.configMaps[0].DeepCopy()
		cm.Data["pgwarden.yaml"] = strings.Replace(cm.Data["pgwarden.yaml"], "hmac_key: ${PGWARDEN_MASK_KEY}", "hmac_key: hunter2", 1)
		if checkNoSecrets(&cm, nil) == nil {
			t.Fatal("a literal masking.hmac_key accepted")
		}
		cm = *objs.configMaps[0].DeepCopy()
		cm.Data["pgwarden.yaml"] = strings.Replace(cm.Data["pgwarden.yaml"], "dsn: ${PGWARDEN_STORE_DSN}", "dsn: postgres://u:pw@h/db", 1)
		if checkNoSecrets(&cm, nil) == nil {
			t.Fatal("a store.dsn with a password accepted")
		}
		if checkNoSecrets(&objs.configMaps[0], []string{"0.0.0.0:6480"}) == nil {
			t.Fatal("a value the ConfigMap holds was not found in it")
		}
	})
}
