// Package deploy_test checks the Kubernetes manifests of deploy/ without a
// cluster: each kustomization is built with kustomize's own library
// (krusty), every object decoded strictly into the Kubernetes API types
// (an unknown field is an error), the references between the objects
// checked, and the ConfigMap's config run through `edgegate validate`.
package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/edgegate/edgegate/config"
	"github.com/edgegate/edgegate/tlsconf"
)

// objects is one kustomization's output, decoded.
type objects struct {
	deployments []*appsv1.Deployment
	services    []*corev1.Service
	configMaps  []*corev1.ConfigMap
	hpas        []*autoscalingv2.HorizontalPodAutoscaler
	pdbs        []*policyv1.PodDisruptionBudget
	netpols     []*networkingv1.NetworkPolicy
}

// build runs kustomize on dir and decodes every object strictly.
func build(t *testing.T, dir string) objects {
	t.Helper()
	rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var o objects
	for _, r := range rm.Resources() {
		b, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		kind := r.GetKind()
		var dst any
		switch kind {
		case "Deployment":
			v := &appsv1.Deployment{}
			o.deployments, dst = append(o.deployments, v), v
		case "Service":
			v := &corev1.Service{}
			o.services, dst = append(o.services, v), v
		case "ConfigMap":
			v := &corev1.ConfigMap{}
			o.configMaps, dst = append(o.configMaps, v), v
		case "HorizontalPodAutoscaler":
			v := &autoscalingv2.HorizontalPodAutoscaler{}
			o.hpas, dst = append(o.hpas, v), v
		case "PodDisruptionBudget":
			v := &policyv1.PodDisruptionBudget{}
			o.pdbs, dst = append(o.pdbs, v), v
		case "NetworkPolicy":
			v := &networkingv1.NetworkPolicy{}
			o.netpols, dst = append(o.netpols, v), v
		default:
			t.Fatalf("%s: an object of kind %s the test does not know", dir, kind)
		}
		if err := yaml.UnmarshalStrict(b, dst); err != nil {
			t.Fatalf("%s: %s %s: %v\n%s", dir, kind, r.GetName(), err, b)
		}
	}
	if len(o.deployments) != 1 || len(o.services) != 1 || len(o.configMaps) != 1 || len(o.hpas) != 1 || len(o.pdbs) != 1 || len(o.netpols) != 1 {
		t.Fatalf("%s: want one Deployment, Service, ConfigMap, HPA, PDB and NetworkPolicy; got %d %d %d %d %d %d", dir,
			len(o.deployments), len(o.services), len(o.configMaps), len(o.hpas), len(o.pdbs), len(o.netpols))
	}
	return o
}

// TestStrictDecode: an unknown field in a manifest is an error of the
// decoder the test uses (so a typo in deploy/ cannot pass).
func TestStrictDecode(t *testing.T) {
	var d appsv1.Deployment
	err := yaml.UnmarshalStrict([]byte("apiVersion: apps/v1\nkind: Deployment\nspec:\n  replica: 3\n"), &d)
	if err == nil || !strings.Contains(err.Error(), "replica") {
		t.Fatalf("unknown field replica: %v, want an error", err)
	}
}

// edgegate builds the gateway binary for t (the build cache makes a
// second build quick).
func edgegate(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "edgegate")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/edgegate/edgegate/cmd/edgegate").CombinedOutput(); err != nil {
		t.Fatalf("go build edgegate: %v\n%s", err, out)
	}
	return bin
}

// TestManifests builds the base and the example overlay and checks each:
// selectors of the Service, PDB and NetworkPolicy match the pod; the HPA
// scales the Deployment; probes on the admin port (/readyz, /healthz),
// the Service without it, the scrape annotation on it; a non-root,
// read-only, capability-less container with requests and limits; -c
// naming a key of the generated ConfigMap mounted as a directory; the
// config's ports, files (in mounted Secrets) and environment variables
// provided by the pod; terminationGracePeriodSeconds longer than preStop
// plus the drain and grace periods; and `edgegate validate` accepting the
// config.
func TestManifests(t *testing.T) {
	for _, dir := range []string{"base", "overlays/example"} {
		t.Run(dir, func(t *testing.T) { checkManifests(t, dir) })
	}
}

func checkManifests(t *testing.T, dir string) {
	o := build(t, dir)
	d, svc, cm := o.deployments[0], o.services[0], o.configMaps[0]
	pod := d.Spec.Template
	podLabels := labels.Set(pod.Labels)

	// Selectors.
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || !sel.Matches(podLabels) {
		t.Errorf("the Deployment's selector %v does not match its pod labels %v", d.Spec.Selector, pod.Labels)
	}
	if len(svc.Spec.Selector) == 0 || !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) {
		t.Errorf("the Service's selector %v does not match the pod labels %v", svc.Spec.Selector, pod.Labels)
	}
	for what, s := range map[string]*metav1.LabelSelector{"PodDisruptionBudget": o.pdbs[0].Spec.Selector, "NetworkPolicy": &o.netpols[0].Spec.PodSelector} {
		ls, err := metav1.LabelSelectorAsSelector(s)
		if err != nil || ls.Empty() || !ls.Matches(podLabels) {
			t.Errorf("the %s's selector does not match the pod labels %v", what, pod.Labels)
		}
	}
	if ref := o.hpas[0].Spec.ScaleTargetRef; ref.Kind != "Deployment" || ref.Name != d.Name || ref.APIVersion != "apps/v1" {
		t.Errorf("the HPA scales %+v, want the Deployment %s", ref, d.Name)
	}
	if o.hpas[0].Spec.MinReplicas == nil || *o.hpas[0].Spec.MinReplicas < 2 {
		t.Error("the HPA may scale below 2 replicas")
	}

	// The container and its ports.
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	portOf := func(what string, p intstr.IntOrString) int32 {
		t.Helper()
		if p.Type == intstr.String {
			n, ok := ports[p.StrVal]
			if !ok {
				t.Errorf("%s: port %q is not a port of the container (%v)", what, p.StrVal, ports)
			}
			return n
		}
		return p.IntVal
	}
	for _, p := range svc.Spec.Ports {
		if portOf("Service port "+p.Name, p.TargetPort) == ports["admin"] {
			t.Errorf("the Service exposes the admin port")
		}
	}
	for what, pr := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		if pr == nil || pr.HTTPGet == nil {
			t.Errorf("no %s probe over HTTP", what)
			continue
		}
		want := map[string]string{"readiness": "/readyz", "liveness": "/healthz"}[what]
		if pr.HTTPGet.Path != want || portOf(what+" probe", pr.HTTPGet.Port) != ports["admin"] {
			t.Errorf("%s probe: %s on port %v, want %s on the admin port", what, pr.HTTPGet.Path, pr.HTTPGet.Port.String(), want)
		}
	}
	for _, rule := range o.netpols[0].Spec.Ingress {
		for _, p := range rule.Ports {
			if p.Port != nil {
				portOf("NetworkPolicy", *p.Port)
			}
		}
	}
	if got := pod.Annotations["prometheus.io/port"]; got != strconv.Itoa(int(ports["admin"])) {
		t.Errorf("prometheus.io/port %q, want the admin port %d", got, ports["admin"])
	}

	// Hardening.
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Errorf("container securityContext %+v: want a read-only root, no privilege escalation, every capability dropped", sc)
	}
	if psc := pod.Spec.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Error("the pod may run as root")
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[r]; !ok {
			t.Errorf("no %s request", r)
		}
		if _, ok := c.Resources.Limits[r]; !ok {
			t.Errorf("no %s limit", r)
		}
	}

	// The config file: -c names a key of the ConfigMap mounted as a
	// directory (a subPath mount would never see a change).
	i := slices.Index(c.Args, "-c")
	if i < 0 || i+1 >= len(c.Args) || c.Args[0] != "serve" {
		t.Fatalf("args %v: want serve -c FILE", c.Args)
	}
	file := c.Args[i+1]
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Spec.Volumes {
		volumes[v.Name] = v
		if _, ok := mounts[v.Name]; !ok {
			t.Errorf("volume %s is not mounted", v.Name)
		}
	}
	var cfgMount corev1.VolumeMount
	for _, m := range c.VolumeMounts {
		v, ok := volumes[m.Name]
		if !ok {
			t.Errorf("mount %s: no such volume", m.Name)
			continue
		}
		if v.ConfigMap != nil && filepath.Dir(file) == m.MountPath {
			cfgMount = m
			if v.ConfigMap.Name != cm.Name {
				t.Errorf("the config volume mounts ConfigMap %q, the kustomization makes %q", v.ConfigMap.Name, cm.Name)
			}
		}
	}
	if cfgMount.Name == "" || cfgMount.SubPath != "" {
		t.Fatalf("%s: not in a ConfigMap mounted as a directory (%+v)", file, cfgMount)
	}
	yamlText, ok := cm.Data[filepath.Base(file)]
	if !ok {
		t.Fatalf("the ConfigMap %s has no key %s (keys %v)", cm.Name, filepath.Base(file), keys(cm.Data))
	}
	cfg, err := config.Load(filepath.Base(file), []byte(yamlText))
	if err != nil {
		t.Fatalf("the ConfigMap's config: %v", err)
	}

	// What the config needs of the pod: its ports, its files in mounted
	// volumes, its environment variables.
	if got := port(t, cfg.GetListeners()[0].GetAddress()); got != ports["public"] {
		t.Errorf("the first listener is on port %d, the container's public port is %d", got, ports["public"])
	}
	if got := port(t, cfg.GetAdmin().GetAddress()); got != ports["admin"] {
		t.Errorf("the admin server is on port %d, the container's admin port is %d", got, ports["admin"])
	}
	if h := strings.Split(cfg.GetAdmin().GetAddress(), ":")[0]; h == "127.0.0.1" || h == "localhost" {
		t.Errorf("the admin server listens on %s: the kubelet's probes cannot reach it", h)
	}
	env := map[string]bool{}
	for _, e := range c.Env {
		env[e.Name] = true
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef == nil && e.ValueFrom.ResourceFieldRef == nil {
			t.Errorf("env %s: an unexpected source", e.Name)
		}
	}
	for _, name := range []string{cfg.GetRedis().GetPasswordEnv(), cfg.GetRedis().GetSentinel().GetPasswordEnv()} {
		if name != "" && !env[name] {
			t.Errorf("the config reads $%s, which the container does not set", name)
		}
	}
	var files []string
	for _, l := range cfg.GetListeners() {
		for _, cf := range l.GetTls().GetCertificates() {
			files = append(files, cf.GetCertFile(), cf.GetKeyFile())
		}
	}
	if rt := cfg.GetRedis().GetTls(); rt != nil {
		files = append(files, rt.GetCaFile(), rt.GetCertFile(), rt.GetKeyFile())
	}
	for _, f := range files {
		if f == "" {
			continue
		}
		in := ""
		for _, m := range c.VolumeMounts {
			if strings.HasPrefix(f, m.MountPath+"/") && volumes[m.Name].Secret != nil {
				in = m.Name
			}
		}
		if in == "" {
			t.Errorf("the config reads %s, which is in no mounted Secret", f)
		}
	}

	// Shutdown: the kubelet's SIGKILL (terminationGracePeriodSeconds after
	// the preStop hook starts) never cuts the drain and grace periods.
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
		t.Fatal("no preStop sleep")
	}
	need := c.Lifecycle.PreStop.Sleep.Seconds + int64(cfg.GetShutdownDrainPeriod().AsDuration().Seconds()+cfg.GetShutdownGracePeriod().AsDuration().Seconds())
	if tg := pod.Spec.TerminationGracePeriodSeconds; tg == nil || *tg <= need {
		t.Errorf("terminationGracePeriodSeconds %v, want more than preStop + shutdown_drain_period + shutdown_grace_period = %ds", tg, need)
	}
	if cfg.GetShutdownDrainPeriod().AsDuration().Seconds() < float64(c.ReadinessProbe.PeriodSeconds*c.ReadinessProbe.FailureThreshold) {
		t.Errorf("shutdown_drain_period %v is shorter than the readiness probe takes to fail (%d × %ds)",
			cfg.GetShutdownDrainPeriod().AsDuration(), c.ReadinessProbe.FailureThreshold, c.ReadinessProbe.PeriodSeconds)
	}

	// edgegate validate accepts the ConfigMap's config, with the Secrets'
	// files (development certificates) at the paths of their mounts under
	// a temporary root.
	root := t.TempDir()
	for _, m := range c.VolumeMounts {
		if v := volumes[m.Name]; v.Secret != nil {
			dev, err := tlsconf.WriteDevCerts(filepath.Join(root, m.MountPath), nil, false)
			if err != nil {
				t.Fatal(err)
			}
			for to, from := range map[string]string{"tls.crt": dev.ServerCert, "tls.key": dev.ServerKey, "ca.crt": dev.CACert} {
				if err := os.Rename(from, filepath.Join(root, m.MountPath, to)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	rooted := strings.ReplaceAll(yamlText, " /etc/edgegate/", " "+root+"/etc/edgegate/")
	cfgFile := filepath.Join(root, "edgegate.yaml")
	if err := os.WriteFile(cfgFile, []byte(rooted), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(edgegate(t), "validate", "-c", cfgFile).CombinedOutput()
	if err != nil {
		t.Fatalf("edgegate validate of the ConfigMap's config: %v\n%s", err, out)
	}
	t.Logf("edgegate validate:\n%s", out)
}

func keys(m map[string]string) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	slices.Sort(k)
	return k
}

func port(t *testing.T, addr string) int32 {
	t.Helper()
	i := strings.LastIndexByte(addr, ':')
	n, err := strconv.Atoi(addr[i+1:])
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return int32(n) //nolint:gosec // G109: a port, checked by config.Load
}
