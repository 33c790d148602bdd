package chart

import (
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/config"
)

const (
	fullname       = "k8s-llm-monitor"
	aggregatorName = fullname + "-aggregator"
	agentName      = fullname + "-agent"
	agentGPUName   = fullname + "-agent-gpu"
	natsSecretName = fullname + "-nats"
	dataDir        = "/var/lib/k8s-llm-monitor/jetstream"
	dataClaim      = fullname + "-aggregator-data"
)

func TestStrictDecodingRejectsUnknownAndDuplicateFields(t *testing.T) {
	for name, doc := range map[string]string{
		"misspelled field": "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: x}\nspec:\n  template:\n    spec:\n      hostPid: true\n",
		"unknown field":    "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  prots: []\n",
		"duplicate field":  "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\ndata: {c: d}\n",
		"unknown kind":     "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: x}\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := decodeDocument([]byte(doc))
			require.Error(t, err)
		})
	}
	obj, ok, err := decodeDocument([]byte("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: x}\n"))
	require.NoError(t, err)
	require.True(t, ok)
	require.IsType(t, &corev1.ServiceAccount{}, obj.obj)
	_, ok, err = decodeDocument([]byte("# only a comment\n"))
	require.NoError(t, err)
	require.False(t, ok)
}

func TestRendersDecodeAndAreNamespaced(t *testing.T) {
	for _, r := range loadRenders(t) {
		t.Run(r.name, func(t *testing.T) {
			seen := map[string]string{}
			for _, o := range r.objs {
				m := o.meta()
				key := o.gvk.Kind + "/" + m.GetName()
				require.NotContains(t, seen, key, "%s: rendered twice (also %s)", key, seen[key])
				seen[key] = o.at
				switch o.gvk.Kind {
				case "ClusterRole", "ClusterRoleBinding":
					assert.Empty(t, m.GetNamespace(), o.at)
				default:
					assert.Equal(t, releaseNamespace, m.GetNamespace(), "%s: every namespaced object names the release namespace", o.at)
				}
				assert.Equal(t, "k8s-llm-monitor", m.GetLabels()["app.kubernetes.io/part-of"], o.at)
				assert.LessOrEqual(t, len(m.GetName()), 63, o.at)
			}
		})
	}
}

// rule is a PolicyRule without the fields the chart never uses.
type rule struct {
	Groups, Resources, Verbs []string
}

var (
	getListWatch = []string{"get", "list", "watch"}
	coreRule     = rule{[]string{""}, []string{"nodes", "pods"}, getListWatch}
	// Events are only listed and watched (the events informer), never got.
	eventsRule   = rule{[]string{""}, []string{"events"}, []string{"list", "watch"}}
	metricsRule  = rule{[]string{"metrics.k8s.io"}, []string{"pods", "nodes"}, []string{"get", "list"}}
	kubevirtRule = rule{[]string{"kubevirt.io"}, []string{"virtualmachineinstances"}, getListWatch}
	// The agent reads only its own kubelet's /stats/summary; nodes/proxy is
	// not needed because it calls the kubelet directly.
	agentRules = []rule{{[]string{""}, []string{"nodes/stats"}, []string{"get"}}}
	// Delegated identity (every render: HTTP in kubernetes mode): the only
	// verbs other than reads, on objects that store nothing.
	reviewRules = []rule{
		{[]string{"authentication.k8s.io"}, []string{"tokenreviews"}, []string{"create"}},
		{[]string{"authorization.k8s.io"}, []string{"subjectaccessreviews"}, []string{"create"}},
	}
	// What readers may get: the HTTP API, MCP, OpenAPI, NATS subscriptions;
	// never /metrics, which has a role of its own. All under the release's
	// prefix: Kubernetes' default roles grant /api/* to everyone.
	readerURLs = []string{"/k8s-llm-monitor/api/*", "/k8s-llm-monitor/mcp", "/k8s-llm-monitor/openapi.json",
		"/k8s-llm-monitor/nats/subscribe"}
)

// wantAggregatorRules is the exact aggregator ClusterRole of each render.
var wantAggregatorRules = map[string][]rule{
	"deploy":                append([]rule{coreRule, eventsRule, metricsRule, kubevirtRule}, reviewRules...),
	"external-nats":         append([]rule{coreRule, eventsRule, metricsRule, kubevirtRule}, reviewRules...),
	"external-nats-callout": append([]rule{coreRule, eventsRule, metricsRule, kubevirtRule}, reviewRules...),
	"gpu-nodes":             append([]rule{coreRule, eventsRule, metricsRule, kubevirtRule}, reviewRules...),
	"vms": append([]rule{coreRule, eventsRule, metricsRule, kubevirtRule,
		{[]string{"wukong.io"}, []string{"wukongs"}, getListWatch}}, reviewRules...),
	"all-features": append([]rule{coreRule, eventsRule, metricsRule,
		{[]string{"compute.example.com"}, []string{"virtualservers"}, getListWatch}}, reviewRules...),
}

// wantReaderBindings are the subjects the chart binds to the reader roles.
var wantReaderBindings = map[string]map[string][]rbacv1.Subject{
	"all-features": {
		fullname + "-reader": {
			{Kind: "Group", Name: "sre", APIGroup: rbacv1.GroupName},
			{Kind: "ServiceAccount", Name: "llm-agent", Namespace: "ai"},
		},
		fullname + "-metrics-reader": {{Kind: "ServiceAccount", Name: "prometheus-k8s", Namespace: "monitoring"}},
	},
}

func rulesOf(t *testing.T, role *rbacv1.ClusterRole) []rule {
	t.Helper()
	var out []rule
	for _, r := range role.Rules {
		assert.Empty(t, r.ResourceNames, role.Name)
		assert.Empty(t, r.NonResourceURLs, role.Name)
		out = append(out, rule{r.APIGroups, r.Resources, r.Verbs})
	}
	return out
}

// nonResourceRules returns a role's non-resource URLs and verbs, checking
// it names no resources.
func nonResourceRules(t *testing.T, role *rbacv1.ClusterRole) (urls, verbs []string) {
	t.Helper()
	for _, r := range role.Rules {
		assert.Empty(t, r.APIGroups, role.Name)
		assert.Empty(t, r.Resources, role.Name)
		urls = append(urls, r.NonResourceURLs...)
		verbs = append(verbs, r.Verbs...)
	}
	return urls, verbs
}

func TestRBACIsLeastPrivilege(t *testing.T) {
	for _, r := range loadRenders(t) {
		t.Run(r.name, func(t *testing.T) {
			want, ok := wantAggregatorRules[r.name]
			require.True(t, ok, "add the expected aggregator rules of render %s", r.name)

			// No wildcard anywhere, and no namespaced Role to hide one in.
			require.Empty(t, all[*rbacv1.Role](r))
			require.Empty(t, all[*rbacv1.RoleBinding](r))
			roles := all[*rbacv1.ClusterRole](r)
			require.Len(t, roles, 4, "one ClusterRole per component, and the two reader roles")
			for _, role := range roles {
				for _, pr := range role.Rules {
					for _, field := range [][]string{pr.APIGroups, pr.Resources, pr.Verbs} {
						for _, v := range field {
							assert.NotContains(t, v, "*", "%s: wildcard in %v", role.Name, pr)
						}
					}
					for _, v := range pr.Verbs {
						if !slices.Contains(pr.Resources, "tokenreviews") && !slices.Contains(pr.Resources, "subjectaccessreviews") {
							assert.Contains(t, getListWatch, v, "%s: only read verbs", role.Name)
						}
					}
				}
			}
			assert.Equal(t, want, rulesOf(t, one[*rbacv1.ClusterRole](t, r, aggregatorName)))
			assert.Equal(t, agentRules, rulesOf(t, one[*rbacv1.ClusterRole](t, r, agentName)))
			urls, verbs := nonResourceRules(t, one[*rbacv1.ClusterRole](t, r, fullname+"-reader"))
			assert.Equal(t, readerURLs, urls)
			assert.Equal(t, []string{"get"}, verbs)
			urls, verbs = nonResourceRules(t, one[*rbacv1.ClusterRole](t, r, fullname+"-metrics-reader"))
			assert.Equal(t, []string{"/k8s-llm-monitor/metrics"}, urls)
			assert.Equal(t, []string{"get"}, verbs)

			// The reader roles are bound only to the subjects the values name.
			bindings := all[*rbacv1.ClusterRoleBinding](r)
			assert.Len(t, bindings, 2+len(wantReaderBindings[r.name]))
			for role, subjects := range wantReaderBindings[r.name] {
				b := one[*rbacv1.ClusterRoleBinding](t, r, role)
				assert.Equal(t, rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role}, b.RoleRef)
				assert.Equal(t, subjects, b.Subjects)
			}

			// Each component's binding gives its role to its own account.
			for _, c := range []string{aggregatorName, agentName} {
				b := one[*rbacv1.ClusterRoleBinding](t, r, c)
				assert.Equal(t, rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: c}, b.RoleRef)
				assert.Equal(t, []rbacv1.Subject{{Kind: "ServiceAccount", Name: c, Namespace: releaseNamespace}}, b.Subjects)
				assert.True(t, has[*corev1.ServiceAccount](r, c), "ServiceAccount %s", c)
			}
			assert.Equal(t, aggregatorName, one[*appsv1.Deployment](t, r, aggregatorName).Spec.Template.Spec.ServiceAccountName)
			for _, ds := range all[*appsv1.DaemonSet](r) {
				assert.Equal(t, agentName, ds.Spec.Template.Spec.ServiceAccountName, ds.Name)
			}
		})
	}
}

func envByName(c corev1.Container) map[string]corev1.EnvVar {
	out := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		out[e.Name] = e
	}
	return out
}

func container(t *testing.T, spec corev1.PodSpec, name string) corev1.Container {
	t.Helper()
	for _, c := range spec.Containers {
		if c.Name == name {
			return c
		}
	}
	require.Failf(t, "no container", "no container %q", name)
	return corev1.Container{}
}

// isGPUAgent tells the agent that reads GPUs (NVIDIA runtime, NVML,
// pod-resources) from one that skips them.
func isGPUAgent(c corev1.Container) bool { return !slices.Contains(c.Args, "--disable-gpu") }

// assertLockedDown checks what every container of the chart has: no
// capabilities, no privilege, no escalation, read-only root filesystem, the
// runtime's seccomp profile (on the container or the pod).
func assertLockedDown(t *testing.T, pod corev1.PodSpec, c corev1.Container) {
	t.Helper()
	sc := c.SecurityContext
	require.NotNil(t, sc, c.Name)
	require.NotNil(t, sc.ReadOnlyRootFilesystem, c.Name)
	assert.True(t, *sc.ReadOnlyRootFilesystem, c.Name)
	require.NotNil(t, sc.AllowPrivilegeEscalation, c.Name)
	assert.False(t, *sc.AllowPrivilegeEscalation, c.Name)
	assert.True(t, sc.Privileged == nil || !*sc.Privileged, c.Name)
	require.NotNil(t, sc.Capabilities, c.Name)
	assert.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop, c.Name)
	assert.Empty(t, sc.Capabilities.Add, c.Name)
	seccomp := sc.SeccompProfile
	if seccomp == nil && pod.SecurityContext != nil {
		seccomp = pod.SecurityContext.SeccompProfile
	}
	require.NotNil(t, seccomp, c.Name)
	assert.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, seccomp.Type, c.Name)
}

func runsAsNonRoot(pod corev1.PodSpec, c corev1.Container) bool {
	nonRoot, uid := (*bool)(nil), (*int64)(nil)
	if p := pod.SecurityContext; p != nil {
		nonRoot, uid = p.RunAsNonRoot, p.RunAsUser
	}
	if s := c.SecurityContext; s != nil {
		if s.RunAsNonRoot != nil {
			nonRoot = s.RunAsNonRoot
		}
		if s.RunAsUser != nil {
			uid = s.RunAsUser
		}
	}
	return nonRoot != nil && *nonRoot && uid != nil && *uid != 0
}

func hostPathOf(spec corev1.PodSpec, volume string) string {
	for _, v := range spec.Volumes {
		if v.Name == volume && v.HostPath != nil {
			return v.HostPath.Path
		}
	}
	return ""
}

func TestAgentDaemonSets(t *testing.T) {
	for _, r := range loadRenders(t) {
		t.Run(r.name, func(t *testing.T) {
			dss := all[*appsv1.DaemonSet](r)
			switch r.name {
			case "gpu-nodes":
				require.Len(t, dss, 2, "a plain and a GPU DaemonSet")
			default:
				require.Len(t, dss, 1)
			}
			for _, ds := range dss {
				checkAgentDaemonSet(t, r, ds)
			}
		})
	}
}

func checkAgentDaemonSet(t *testing.T, r render, ds *appsv1.DaemonSet) {
	spec := ds.Spec.Template.Spec
	c := container(t, spec, "agent")
	gpu := isGPUAgent(c)

	sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	require.NoError(t, err)
	assert.True(t, sel.Matches(labels.Set(ds.Spec.Template.Labels)), "%s: selector matches its pods", ds.Name)

	// hostPID for <host-root>/proc/1/{net/dev,mountinfo}; no host network
	// or IPC namespace.
	assert.True(t, spec.HostPID, ds.Name)
	assert.False(t, spec.HostNetwork, ds.Name)
	assert.False(t, spec.HostIPC, ds.Name)
	assert.Contains(t, spec.Tolerations, corev1.Toleration{Operator: corev1.TolerationOpExists}, "%s tolerates every taint", ds.Name)

	assert.Subset(t, c.Args, []string{"--config=/etc/k8s-llm-monitor/config.yaml", "--host-root=/host"}, ds.Name)
	env := envByName(c)
	assert.Equal(t, "spec.nodeName", env["NODE_NAME"].ValueFrom.FieldRef.FieldPath, ds.Name)
	assert.Equal(t, "status.hostIP", env["NODE_IP"].ValueFrom.FieldRef.FieldPath, ds.Name)
	assert.NotEmpty(t, env["K8SMON_NATS_URL"].Value, ds.Name)

	assertLockedDown(t, spec, c)
	if gpu {
		if r.name == "gpu-nodes" {
			assert.Equal(t, agentGPUName, ds.Name, "GPU settings only on the GPU DaemonSet")
		}
		assert.Equal(t, "all", env["NVIDIA_VISIBLE_DEVICES"].Value, ds.Name)
		assert.Equal(t, "utility", env["NVIDIA_DRIVER_CAPABILITIES"].Value, ds.Name)
	} else {
		// Root only where the pod-resources socket is read.
		assert.True(t, runsAsNonRoot(spec, c), "%s: the agent without GPUs runs as non-root", ds.Name)
		assert.NotContains(t, env, "NVIDIA_VISIBLE_DEVICES", ds.Name)
		assert.Nil(t, spec.RuntimeClassName, ds.Name)
	}
	if r.name == "gpu-nodes" {
		if gpu {
			require.NotNil(t, spec.RuntimeClassName)
			assert.Equal(t, "nvidia", *spec.RuntimeClassName)
			assert.Equal(t, map[string]string{"nvidia.com/gpu.present": "true"}, spec.NodeSelector)
		} else {
			// The plain agent keeps off the GPU nodes.
			require.NotNil(t, spec.Affinity)
			require.NotNil(t, spec.Affinity.NodeAffinity)
			terms := spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
			require.Len(t, terms, 1)
			assert.Contains(t, terms[0].MatchExpressions, corev1.NodeSelectorRequirement{
				Key: "nvidia.com/gpu.present", Operator: corev1.NodeSelectorOpNotIn, Values: []string{"true"}})
		}
	}

	// The host's /, /proc and /sys under /host, read-only; the
	// pod-resources directory only for the GPU agent. Every host path
	// read-only.
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m
		if hostPathOf(spec, m.Name) != "" {
			assert.True(t, m.ReadOnly, "%s: host path %s mounted read-only", ds.Name, m.MountPath)
		}
	}
	for mountPath, hostPath := range map[string]string{"/host": "/", "/host/proc": "/proc", "/host/sys": "/sys"} {
		m, ok := mounts[mountPath]
		require.True(t, ok, "%s: %s mounted", ds.Name, mountPath)
		assert.Equal(t, hostPath, hostPathOf(spec, m.Name), "%s: %s", ds.Name, mountPath)
	}
	require.NotNil(t, mounts["/host"].MountPropagation)
	assert.Equal(t, corev1.MountPropagationHostToContainer, *mounts["/host"].MountPropagation)
	pr, hasPR := mounts["/var/lib/kubelet/pod-resources"]
	assert.Equal(t, gpu, hasPR, "%s: pod-resources mounted exactly when GPUs are read", ds.Name)
	if hasPR {
		assert.Equal(t, "/var/lib/kubelet/pod-resources", hostPathOf(spec, pr.Name))
	}
	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			assert.Contains(t, []string{"/", "/proc", "/sys", "/var/lib/kubelet/pod-resources"}, v.HostPath.Path, "%s: no other host path", ds.Name)
		}
	}

	// Probes on the agent's own port.
	require.Len(t, c.Ports, 1)
	assert.Equal(t, corev1.ContainerPort{Name: "metrics", ContainerPort: 9102, Protocol: corev1.ProtocolTCP}, c.Ports[0])
	assertProbe(t, c.LivenessProbe, "/healthz", "metrics")
	assertProbe(t, c.ReadinessProbe, "/readyz", "metrics")
	assert.NotNil(t, c.Resources.Limits.Memory(), ds.Name)
	assert.False(t, c.Resources.Requests.Cpu().IsZero(), ds.Name)
}

func assertProbe(t *testing.T, p *corev1.Probe, path, port string) {
	t.Helper()
	require.NotNil(t, p)
	require.NotNil(t, p.HTTPGet)
	assert.Equal(t, path, p.HTTPGet.Path)
	assert.Equal(t, intstr.FromString(port), p.HTTPGet.Port)
}

func TestAggregator(t *testing.T) {
	for _, r := range loadRenders(t) {
		t.Run(r.name, func(t *testing.T) {
			d := one[*appsv1.Deployment](t, r, aggregatorName)
			require.Len(t, all[*appsv1.Deployment](r), 1)
			spec := d.Spec.Template.Spec
			c := container(t, spec, "aggregator")
			external := isExternal(r)

			assertLockedDown(t, spec, c)
			assert.True(t, runsAsNonRoot(spec, c), "the aggregator runs as non-root")
			assert.False(t, spec.HostPID || spec.HostNetwork || spec.HostIPC)
			for _, v := range spec.Volumes {
				assert.Nil(t, v.HostPath, "the aggregator mounts nothing from the host")
			}
			assertProbe(t, c.LivenessProbe, "/healthz", "http")
			assertProbe(t, c.ReadinessProbe, "/readyz", "http")
			assert.Contains(t, c.Ports, corev1.ContainerPort{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP})
			assert.Contains(t, c.Args, "--config=/etc/k8s-llm-monitor/config.yaml")

			svc := one[*corev1.Service](t, r, aggregatorName)
			assert.True(t, labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)), "the Service selects the aggregator")
			var svcPorts []string
			for _, p := range svc.Spec.Ports {
				svcPorts = append(svcPorts, p.Name)
			}

			require.NotNil(t, d.Spec.Replicas)
			if external {
				// Several replicas on an external NATS, rolled one at a time.
				assert.EqualValues(t, 3, *d.Spec.Replicas)
				assert.Equal(t, appsv1.RollingUpdateDeploymentStrategyType, d.Spec.Strategy.Type)
				assert.Equal(t, []string{"http"}, svcPorts)
				assert.Len(t, c.Ports, 1)
			} else {
				// One replica owning the embedded NATS server.
				assert.EqualValues(t, 1, *d.Spec.Replicas)
				assert.Equal(t, appsv1.RecreateDeploymentStrategyType, d.Spec.Strategy.Type)
				assert.Equal(t, []string{"http", "nats"}, svcPorts)
				assert.Contains(t, c.Ports, corev1.ContainerPort{Name: "nats", ContainerPort: 4222, Protocol: corev1.ProtocolTCP})
			}

			assertJetStreamStore(t, r, spec, c, external)

			if pdb := all[*policyv1.PodDisruptionBudget](r); len(pdb) > 0 {
				sel, err := metav1.LabelSelectorAsSelector(pdb[0].Spec.Selector)
				require.NoError(t, err)
				assert.True(t, sel.Matches(labels.Set(d.Spec.Template.Labels)), "the PDB selects the aggregator")
			}
		})
	}
}

// natsModes is the NATS authentication of each render.
var natsModes = map[string]string{
	"deploy": "kubernetes", "gpu-nodes": "kubernetes", "vms": "kubernetes",
	"external-nats": "token", "all-features": "userPassword", "external-nats-callout": "kubernetes",
}

// assertJetStreamStore: the embedded NATS server keeps its streams on a
// writable volume (an emptyDir, or a claim in all-features); with an
// external NATS there is none.
func assertJetStreamStore(t *testing.T, r render, spec corev1.PodSpec, c corev1.Container, external bool) {
	t.Helper()
	var vol *corev1.Volume
	for i := range spec.Volumes {
		if spec.Volumes[i].Name == "data" {
			vol = &spec.Volumes[i]
		}
	}
	claims := all[*corev1.PersistentVolumeClaim](r)
	if external {
		assert.Nil(t, vol, "no store: the streams live on the external NATS")
		assert.Empty(t, claims)
		return
	}
	require.NotNil(t, vol, "the embedded NATS server's store")
	assert.Contains(t, c.VolumeMounts, corev1.VolumeMount{Name: "data", MountPath: dataDir}, "mounted writable where aggregator.data_dir points")
	if r.name != "all-features" {
		require.NotNil(t, vol.EmptyDir, "an emptyDir by default")
		require.NotNil(t, vol.EmptyDir.SizeLimit)
		assert.Equal(t, "2Gi", vol.EmptyDir.SizeLimit.String())
		assert.Empty(t, claims)
		return
	}
	require.NotNil(t, vol.PersistentVolumeClaim, "a claim when asked")
	assert.Equal(t, dataClaim, vol.PersistentVolumeClaim.ClaimName)
	require.Len(t, claims, 1)
	pvc := claims[0]
	assert.Equal(t, dataClaim, pvc.Name)
	assert.Equal(t, "keep", pvc.Annotations["helm.sh/resource-policy"], "uninstall keeps the data")
	assert.Equal(t, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}, pvc.Spec.AccessModes)
	require.NotNil(t, pvc.Spec.StorageClassName)
	assert.Equal(t, "fast-ssd", *pvc.Spec.StorageClassName)
	assert.Equal(t, "5Gi", pvc.Spec.Resources.Requests.Storage().String())
}

func TestNATSCredentials(t *testing.T) {
	for _, r := range loadRenders(t) {
		t.Run(r.name, func(t *testing.T) {
			mode, ok := natsModes[r.name]
			require.True(t, ok, "add the NATS mode of render %s", r.name)
			var specs []corev1.PodSpec
			for _, ds := range all[*appsv1.DaemonSet](r) {
				specs = append(specs, ds.Spec.Template.Spec)
			}
			specs = append(specs, one[*appsv1.Deployment](t, r, aggregatorName).Spec.Template.Spec)
			if mode == "kubernetes" {
				checkKubernetesIdentity(t, r, specs)
				return
			}

			// Where the shared credentials come from.
			secretName, keys := natsSecretName, []string{"token"}
			if mode == "userPassword" {
				keys = []string{"user", "password"}
			}
			created := has[*corev1.Secret](r, natsSecretName)
			if r.name == "external-nats" {
				secretName = "nats-client"
				assert.False(t, created)
			} else {
				require.True(t, created)
				s := one[*corev1.Secret](t, r, natsSecretName)
				for _, k := range keys {
					assert.NotEmpty(t, s.Data[k], "secret key %s", k)
				}
			}
			for _, spec := range specs {
				c := spec.Containers[0]
				env := envByName(c)
				assert.NotContains(t, env, "K8SMON_NATS_TOKEN_FILE", c.Name)
				for _, k := range keys {
					name := map[string]string{"token": "K8SMON_NATS_TOKEN", "user": "K8SMON_NATS_USER", "password": "K8SMON_NATS_PASSWORD"}[k]
					e, ok := env[name]
					require.True(t, ok, "%s: %s", c.Name, name)
					require.NotNil(t, e.ValueFrom, "%s: %s from a Secret, never a literal", c.Name, name)
					require.NotNil(t, e.ValueFrom.SecretKeyRef)
					assert.Equal(t, secretName, e.ValueFrom.SecretKeyRef.Name)
					assert.Equal(t, k, e.ValueFrom.SecretKeyRef.Key)
				}
			}
		})
	}
}

// checkKubernetesIdentity: no shared secret anywhere; each agent mounts its
// own ServiceAccount token for the product's audience, bound to its pod,
// and names it as its NATS token file; the aggregator mounts none.
func checkKubernetesIdentity(t *testing.T, r render, specs []corev1.PodSpec) {
	t.Helper()
	assert.Empty(t, all[*corev1.Secret](r), "no secret generated in kubernetes mode")
	for _, spec := range specs {
		c := spec.Containers[0]
		env := envByName(c)
		assert.NotContains(t, env, "K8SMON_NATS_TOKEN", c.Name)
		if c.Name == "agent" {
			assert.NotContains(t, env, "K8SMON_NATS_USER")
			assert.NotContains(t, env, "K8SMON_NATS_PASSWORD")
		}
		var projected []corev1.ServiceAccountTokenProjection
		vols := map[string]string{}
		for _, v := range spec.Volumes {
			if v.Projected != nil {
				for _, src := range v.Projected.Sources {
					if src.ServiceAccountToken != nil {
						projected = append(projected, *src.ServiceAccountToken)
						vols[v.Name] = src.ServiceAccountToken.Path
					}
				}
			}
		}
		if c.Name == "aggregator" {
			assert.Empty(t, projected, "the aggregator presents no token")
			if isExternal(r) {
				// It answers the external server's auth callout as one of
				// its auth users, signing with the issuer seed.
				for name, key := range map[string]string{"K8SMON_NATS_USER": "user", "K8SMON_NATS_PASSWORD": "password"} {
					require.NotNil(t, env[name].ValueFrom, name)
					assert.Equal(t, corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "nats-callout"}, Key: key},
						*env[name].ValueFrom.SecretKeyRef, name)
				}
				assert.Equal(t, "/etc/k8s-llm-monitor/nats-callout/callout.nk", env["K8SMON_NATS_CALLOUT_ISSUER_SEED_FILE"].Value)
			} else {
				assert.NotContains(t, env, "K8SMON_NATS_CALLOUT_ISSUER_SEED_FILE", "in-process connection")
			}
			continue
		}
		exp := int64(3600)
		require.Equal(t, []corev1.ServiceAccountTokenProjection{{Audience: "k8s-llm-monitor", ExpirationSeconds: &exp, Path: "token"}}, projected, c.Name)
		var tokenFile string
		for _, m := range c.VolumeMounts {
			if p, ok := vols[m.Name]; ok {
				assert.True(t, m.ReadOnly)
				tokenFile = m.MountPath + "/" + p
			}
		}
		assert.Equal(t, config.DefaultNATSTokenFile, tokenFile)
		assert.Equal(t, tokenFile, env["K8SMON_NATS_TOKEN_FILE"].Value, c.Name)
	}
}

func TestNATSTLS(t *testing.T) {
	r := loadRender(t, "testdata/all-features.yaml")
	agg := container(t, one[*appsv1.Deployment](t, r, aggregatorName).Spec.Template.Spec, "aggregator")
	agent := container(t, one[*appsv1.DaemonSet](t, r, agentName).Spec.Template.Spec, "agent")
	// The embedded server gets its certificate and key; the agents only the
	// CA that verifies it.
	assert.Equal(t, "/etc/k8s-llm-monitor/nats-tls/tls.crt", envByName(agg)["K8SMON_NATS_TLS_CERT_FILE"].Value)
	assert.Equal(t, "/etc/k8s-llm-monitor/nats-tls/tls.key", envByName(agg)["K8SMON_NATS_TLS_KEY_FILE"].Value)
	ae := envByName(agent)
	assert.NotContains(t, ae, "K8SMON_NATS_TLS_KEY_FILE")
	assert.Equal(t, "/etc/k8s-llm-monitor/nats-ca/ca.crt", ae["K8SMON_NATS_TLS_CA_FILE"].Value)
	assert.True(t, strings.HasPrefix(ae["K8SMON_NATS_URL"].Value, "tls://"), ae["K8SMON_NATS_URL"].Value)
	for _, v := range one[*appsv1.DaemonSet](t, r, agentName).Spec.Template.Spec.Volumes {
		if v.Secret != nil {
			for _, item := range v.Secret.Items {
				assert.NotEqual(t, "tls.key", item.Key, "agents never mount the server's key")
			}
		}
	}
}

func TestServiceMonitors(t *testing.T) {
	r := loadRender(t, "testdata/all-features.yaml")
	var monitors []*unstructured.Unstructured
	for _, o := range r.objs {
		if o.gvk == serviceMonitorGVK {
			monitors = append(monitors, o.obj.(*unstructured.Unstructured))
		}
	}
	require.Len(t, monitors, 2)
	for _, sm := range monitors {
		// Prometheus presents its own token to the aggregator, whose
		// /metrics needs the metrics-reader role; the agents' is open.
		eps, _, err := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
		require.NoError(t, err)
		require.NotEmpty(t, eps)
		token, _ := eps[0].(map[string]any)["bearerTokenFile"].(string)
		if sm.GetName() == aggregatorName {
			assert.Equal(t, "/var/run/secrets/kubernetes.io/serviceaccount/token", token)
		} else {
			assert.Empty(t, token, sm.GetName())
		}
		assert.Equal(t, "prometheus", sm.GetLabels()["release"])
		sel, found, err := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
		require.NoError(t, err)
		require.True(t, found)
		endpoints, _, err := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
		require.NoError(t, err)
		require.Len(t, endpoints, 1)
		port := endpoints[0].(map[string]any)["port"]
		// The ServiceMonitor finds a Service by labels, with the named port,
		// which selects pods of the release.
		var matched bool
		for _, svc := range all[*corev1.Service](r) {
			if !labels.SelectorFromSet(sel).Matches(labels.Set(svc.Labels)) {
				continue
			}
			matched = true
			var names []string
			for _, p := range svc.Spec.Ports {
				names = append(names, p.Name)
			}
			assert.Contains(t, names, port, sm.GetName())
			podSel := labels.SelectorFromSet(svc.Spec.Selector)
			var pods int
			for _, ds := range all[*appsv1.DaemonSet](r) {
				if podSel.Matches(labels.Set(ds.Spec.Template.Labels)) {
					pods++
				}
			}
			for _, d := range all[*appsv1.Deployment](r) {
				if podSel.Matches(labels.Set(d.Spec.Template.Labels)) {
					pods++
				}
			}
			assert.Positive(t, pods, "%s: Service %s selects no workload", sm.GetName(), svc.Name)
		}
		assert.True(t, matched, "%s selects no Service", sm.GetName())
	}
}

func TestReferencedConfigMapsAndSecretsExist(t *testing.T) {
	// Secrets the user provides in each render.
	external := map[string][]string{
		"external-nats":         {"nats-client"},
		"external-nats-callout": {"nats-callout"},
		"all-features":          {"k8s-llm-monitor-nats-tls"},
	}
	for _, r := range loadRenders(t) {
		t.Run(r.name, func(t *testing.T) {
			var specs []corev1.PodSpec
			for _, ds := range all[*appsv1.DaemonSet](r) {
				specs = append(specs, ds.Spec.Template.Spec)
			}
			for _, d := range all[*appsv1.Deployment](r) {
				specs = append(specs, d.Spec.Template.Spec)
			}
			for _, spec := range specs {
				for _, v := range spec.Volumes {
					if v.ConfigMap != nil {
						assert.True(t, has[*corev1.ConfigMap](r, v.ConfigMap.Name), "ConfigMap %s", v.ConfigMap.Name)
					}
					if v.Secret != nil && !slices.Contains(external[r.name], v.Secret.SecretName) {
						assert.True(t, has[*corev1.Secret](r, v.Secret.SecretName), "Secret %s", v.Secret.SecretName)
					}
				}
				for _, c := range spec.Containers {
					for _, e := range c.Env {
						if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && !slices.Contains(external[r.name], e.ValueFrom.SecretKeyRef.Name) {
							assert.True(t, has[*corev1.Secret](r, e.ValueFrom.SecretKeyRef.Name), "Secret %s", e.ValueFrom.SecretKeyRef.Name)
						}
					}
				}
			}
		})
	}
}

// The aggregator admits its HTTP port from the configured peers (anyone by
// default: requests are authenticated) and its embedded NATS port from this
// release's agents and the configured peers, nothing else.
func TestNetworkPolicy(t *testing.T) {
	for _, r := range loadRenders(t) {
		t.Run(r.name, func(t *testing.T) {
			np := one[*networkingv1.NetworkPolicy](t, r, aggregatorName)
			require.Len(t, all[*networkingv1.NetworkPolicy](r), 1)
			d := one[*appsv1.Deployment](t, r, aggregatorName)
			sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
			require.NoError(t, err)
			assert.True(t, sel.Matches(labels.Set(d.Spec.Template.Labels)), "the policy selects the aggregator")
			for _, ds := range all[*appsv1.DaemonSet](r) {
				assert.False(t, sel.Matches(labels.Set(ds.Spec.Template.Labels)), "and not the agents")
			}
			assert.Equal(t, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}, np.Spec.PolicyTypes)

			ports := map[string]bool{}
			for _, p := range container(t, d.Spec.Template.Spec, "aggregator").Ports {
				ports[p.Name] = true
			}
			rules := map[string]networkingv1.NetworkPolicyIngressRule{}
			for _, in := range np.Spec.Ingress {
				require.Len(t, in.Ports, 1)
				name := in.Ports[0].Port.String()
				assert.True(t, ports[name], "port %s is a port of the aggregator", name)
				rules[name] = in
			}
			aiNamespace := networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"kubernetes.io/metadata.name": "ai"}}}
			if r.name == "all-features" {
				assert.Equal(t, []networkingv1.NetworkPolicyPeer{aiNamespace}, rules["http"].From)
			} else {
				assert.Empty(t, rules["http"].From, "HTTP open to every source by default")
			}
			nats, embedded := rules["nats"]
			assert.Equal(t, !isExternal(r), embedded, "a NATS rule exactly with the embedded server")
			assert.Len(t, rules, map[bool]int{true: 2, false: 1}[embedded])
			if !embedded {
				return
			}
			require.NotEmpty(t, nats.From)
			agents := nats.From[0]
			require.NotNil(t, agents.PodSelector)
			assert.Nil(t, agents.NamespaceSelector, "agents of this namespace only")
			agentSel, err := metav1.LabelSelectorAsSelector(agents.PodSelector)
			require.NoError(t, err)
			for _, ds := range all[*appsv1.DaemonSet](r) {
				assert.True(t, agentSel.Matches(labels.Set(ds.Spec.Template.Labels)), "%s may reach NATS", ds.Name)
			}
			assert.False(t, agentSel.Matches(labels.Set(d.Spec.Template.Labels)))
			if r.name == "all-features" {
				assert.Equal(t, []networkingv1.NetworkPolicyPeer{aiNamespace}, nats.From[1:])
			} else {
				assert.Len(t, nats.From, 1)
			}
		})
	}
}

// isExternal tells the renders with an external NATS (nats.url).
func isExternal(r render) bool { return strings.HasPrefix(r.name, "external-nats") }
