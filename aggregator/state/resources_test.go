package state

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// list builds a ResourceList from name, quantity pairs.
func list(kv ...string) corev1.ResourceList {
	l := corev1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		l[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return l
}

func sidecar(name string, req, lim corev1.ResourceList) corev1.Container {
	always := corev1.ContainerRestartPolicyAlways
	return corev1.Container{Name: name, RestartPolicy: &always, Resources: corev1.ResourceRequirements{Requests: req, Limits: lim}}
}

func initContainer(name string, req, lim corev1.ResourceList) corev1.Container {
	return corev1.Container{Name: name, Resources: corev1.ResourceRequirements{Requests: req, Limits: lim}}
}

func running(name string, restarts int32) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, Ready: true, RestartCount: restarts,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}
}

// TestPodResources checks pods' requests, limits and rates against answers
// computed by hand from Kubernetes' rules. Every pod starts as kubePod: one
// container "app" requesting 250m/256Mi, limited to 500m/512Mi.
func TestPodResources(t *testing.T) {
	type want struct {
		cpuRequest, cpuLimit, memRequest, memLimit int64
		cpuLimited, memLimited                     bool
		cpuRate, memRate                           float64
		containers                                 []string
	}
	tests := []struct {
		name  string
		pod   podOpt
		usage Usage
		want  want
		check func(t *testing.T, p *model.PodMetrics)
	}{
		{
			name: "plain pod",
			// 300m of 500m = 60%; 128Mi of 512Mi = 25%
			usage: Usage{CPU: 300, Memory: 128 * mib},
			want: want{cpuRequest: 250, cpuLimit: 500, memRequest: 256 * mib, memLimit: 512 * mib,
				cpuLimited: true, memLimited: true, cpuRate: 60, memRate: 25, containers: []string{"app"}},
		},
		{
			name: "native sidecar requesting 2 CPU counts for the pod's whole life",
			pod: func(p *corev1.Pod) {
				p.Spec.InitContainers = []corev1.Container{sidecar("proxy", list("cpu", "2", "memory", "64Mi"), nil)}
				p.Status.InitContainerStatuses = []corev1.ContainerStatus{running("proxy", 2)}
			},
			// requests: 250m + 2000m = 2250m, 256Mi + 64Mi = 320Mi. Limits:
			// app's alone, and the unlimited sidecar leaves the pod unbounded.
			usage: Usage{CPU: 1300, Memory: 300 * mib, Containers: map[string]ContainerUsage{
				"app": {CPU: 100, Memory: 256 * mib}, "proxy": {CPU: 1200, Memory: 44 * mib}}},
			want: want{cpuRequest: 2250, cpuLimit: 500, memRequest: 320 * mib, memLimit: 512 * mib,
				containers: []string{"app", "proxy"}},
			check: func(t *testing.T, p *model.PodMetrics) {
				app, proxy := p.Containers[0], p.Containers[1]
				assert.False(t, app.Sidecar)
				assert.InDelta(t, 20, app.CPUUsageRate, 1e-9, "100m of app's 500m")
				assert.InDelta(t, 50, app.MemoryUsageRate, 1e-9, "256Mi of app's 512Mi")
				assert.True(t, proxy.Sidecar)
				assert.Equal(t, int64(2000), proxy.CPURequest)
				assert.Equal(t, int64(1200), proxy.CPUUsage)
				assert.Zero(t, proxy.CPUUsageRate, "no limit, no rate")
				assert.Equal(t, "running", proxy.State)
				assert.Equal(t, int32(2), p.Restarts, "the sidecar's restarts are the pod's")
			},
		},
		{
			name: "init container: the larger of init and running needs",
			pod: func(p *corev1.Pod) {
				p.Spec.InitContainers = []corev1.Container{initContainer("migrate", list("cpu", "1", "memory", "1Gi"), list("cpu", "2", "memory", "1Gi"))}
			},
			// requests: max(250m, 1000m) = 1000m, max(256Mi, 1Gi) = 1Gi;
			// limits: max(500m, 2000m) = 2000m, max(512Mi, 1Gi) = 1Gi.
			// 100m of 2000m = 5%; 256Mi of 1Gi = 25%.
			usage: Usage{CPU: 100, Memory: 256 * mib},
			want: want{cpuRequest: 1000, cpuLimit: 2000, memRequest: gib, memLimit: gib,
				cpuLimited: true, memLimited: true, cpuRate: 5, memRate: 25, containers: []string{"app"}},
		},
		{
			name: "sidecar started before an init container adds to it",
			pod: func(p *corev1.Pod) {
				p.Spec.InitContainers = []corev1.Container{
					sidecar("proxy", list("cpu", "500m", "memory", "64Mi"), nil),
					initContainer("migrate", list("cpu", "1", "memory", "128Mi"), nil),
				}
			},
			// cpu: migrate runs beside proxy, 500m + 1000m = 1500m, more than
			// app + proxy = 750m. memory: 64Mi + 128Mi = 192Mi, less than
			// 256Mi + 64Mi = 320Mi. Only app has limits.
			want: want{cpuRequest: 1500, cpuLimit: 500, memRequest: 320 * mib, memLimit: 512 * mib,
				containers: []string{"app", "proxy"}},
		},
		{
			name: "pod overhead",
			pod:  func(p *corev1.Pod) { p.Spec.Overhead = list("cpu", "100m", "memory", "64Mi") },
			// requests: 250m + 100m, 256Mi + 64Mi; limits: 500m + 100m,
			// 512Mi + 64Mi. 300m of 600m = 50%; 288Mi of 576Mi = 50%.
			usage: Usage{CPU: 300, Memory: 288 * mib},
			want: want{cpuRequest: 350, cpuLimit: 600, memRequest: 320 * mib, memLimit: 576 * mib,
				cpuLimited: true, memLimited: true, cpuRate: 50, memRate: 50, containers: []string{"app"}},
		},
		{
			name: "pod-level resources",
			pod: func(p *corev1.Pod) {
				p.Spec.Resources = &corev1.ResourceRequirements{
					Requests: list("cpu", "1", "memory", "1Gi"), Limits: list("cpu", "2", "memory", "2Gi")}
				p.Spec.Containers = []corev1.Container{{Name: "app"}, {Name: "helper"}}
			},
			// The pod's own numbers; 1500m of 2000m = 75%; 512Mi of 2Gi = 25%.
			usage: Usage{CPU: 1500, Memory: 512 * mib},
			want: want{cpuRequest: 1000, cpuLimit: 2000, memRequest: gib, memLimit: 2 * gib,
				cpuLimited: true, memLimited: true, cpuRate: 75, memRate: 25, containers: []string{"app", "helper"}},
		},
		{
			name: "partial limits give no pod rate",
			pod: func(p *corev1.Pod) {
				p.Spec.Containers = []corev1.Container{
					{Name: "app", Resources: corev1.ResourceRequirements{Requests: list("cpu", "100m"), Limits: list("cpu", "100m")}},
					{Name: "worker"},
				}
			},
			// 1500m against app's 100m would read 1500%; worker may use
			// any amount, so the pod has no rate. app: 95m of 100m = 95%.
			usage: Usage{CPU: 1500, Memory: 300 * mib, Containers: map[string]ContainerUsage{
				"app": {CPU: 95, Memory: 100 * mib}, "worker": {CPU: 1405, Memory: 200 * mib}}},
			want: want{cpuRequest: 100, cpuLimit: 100, containers: []string{"app", "worker"}},
			check: func(t *testing.T, p *model.PodMetrics) {
				assert.InDelta(t, 95, p.Containers[0].CPUUsageRate, 1e-9)
				rate, ok := p.CPULimitRate()
				assert.True(t, ok)
				assert.InDelta(t, 95, rate, 1e-9, "the limited container's rate")
				assert.True(t, p.IsOverLimit(), "app is at 95% of its limit")
			},
		},
		{
			name: "unlimited init container leaves the pod unbounded",
			pod: func(p *corev1.Pod) {
				p.Spec.InitContainers = []corev1.Container{initContainer("migrate", list("cpu", "100m"), nil)}
			},
			usage: Usage{CPU: 300, Memory: 128 * mib},
			want:  want{cpuRequest: 250, cpuLimit: 500, memRequest: 256 * mib, memLimit: 512 * mib, containers: []string{"app"}},
		},
		{
			name: "in-place resize in flight: the larger of spec and status",
			pod: func(p *corev1.Pod) {
				// Spec lowered to 250m/500m; the kubelet still runs 1/2 CPU.
				st := &p.Status.ContainerStatuses[0]
				st.AllocatedResources = list("cpu", "1", "memory", "256Mi")
				st.Resources = &corev1.ResourceRequirements{
					Requests: list("cpu", "1", "memory", "256Mi"), Limits: list("cpu", "2", "memory", "512Mi")}
			},
			// 500m of 2000m = 25%.
			usage: Usage{CPU: 500, Memory: 128 * mib},
			want: want{cpuRequest: 1000, cpuLimit: 2000, memRequest: 256 * mib, memLimit: 512 * mib,
				cpuLimited: true, memLimited: true, cpuRate: 25, memRate: 25, containers: []string{"app"}},
			check: func(t *testing.T, p *model.PodMetrics) {
				assert.Equal(t, int64(250), p.Containers[0].CPURequest, "containers show their spec")
			},
		},
		{
			name: "infeasible resize: what the kubelet runs",
			pod: func(p *corev1.Pod) {
				p.Spec.Containers[0].Resources = corev1.ResourceRequirements{
					Requests: list("cpu", "64", "memory", "256Mi"), Limits: list("cpu", "64", "memory", "512Mi")}
				st := &p.Status.ContainerStatuses[0]
				st.AllocatedResources = list("cpu", "1", "memory", "256Mi")
				st.Resources = &corev1.ResourceRequirements{
					Requests: list("cpu", "1", "memory", "256Mi"), Limits: list("cpu", "2", "memory", "512Mi")}
				p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{
					Type: corev1.PodResizePending, Status: corev1.ConditionTrue, Reason: corev1.PodReasonInfeasible})
			},
			usage: Usage{CPU: 500, Memory: 128 * mib},
			want: want{cpuRequest: 1000, cpuLimit: 2000, memRequest: 256 * mib, memLimit: 512 * mib,
				cpuLimited: true, memLimited: true, cpuRate: 25, memRate: 25, containers: []string{"app"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []podOpt
			if tt.pod != nil {
				opts = append(opts, tt.pod)
			}
			in := Inputs{Now: t0, Nodes: []*corev1.Node{}, Pods: []*corev1.Pod{kubePod("default", "p", "n1", opts...)}}
			if tt.usage.CPU != 0 {
				in.PodUsage = map[string]Usage{"default/p": tt.usage}
			}
			p := Build(in).PodMetrics["default/p"]
			require.NotNil(t, p)
			w := tt.want
			assert.Equal(t, w.cpuRequest, p.CPURequest, "cpuRequest")
			assert.Equal(t, w.cpuLimit, p.CPULimit, "cpuLimit")
			assert.Equal(t, w.memRequest, p.MemoryRequest, "memoryRequest")
			assert.Equal(t, w.memLimit, p.MemoryLimit, "memoryLimit")
			assert.Equal(t, w.cpuLimited, p.CPULimited, "cpuLimited")
			assert.Equal(t, w.memLimited, p.MemoryLimited, "memoryLimited")
			assert.InDelta(t, w.cpuRate, p.CPUUsageRate, 1e-9, "cpuUsageRate")
			assert.InDelta(t, w.memRate, p.MemoryUsageRate, 1e-9, "memoryUsageRate")
			var names []string
			for _, c := range p.Containers {
				names = append(names, c.Name)
			}
			require.Equal(t, w.containers, names)
			if tt.check != nil {
				tt.check(t, p)
			}
		})
	}
}

// TestPodGPUs checks the nvidia.com/gpu count a pod holds on its node, by
// the same rules: a node with 8 GPUs and no agent detail has 8 minus the
// count available.
func TestPodGPUs(t *testing.T) {
	gpus := func(n string) corev1.ResourceList { return list(string(ResourceGPU), n) }
	tests := []struct {
		name string
		pod  podOpt
		want int // GPUs held
	}{
		{name: "limit alone, as before defaulting", pod: withGPURequest("2"), want: 2},
		{
			name: "init container needing more than the app",
			// max(1, 3) = 3
			pod: func(p *corev1.Pod) {
				p.Spec.Containers[0].Resources.Requests[ResourceGPU] = resource.MustParse("1")
				p.Spec.Containers[0].Resources.Limits[ResourceGPU] = resource.MustParse("1")
				p.Spec.InitContainers = []corev1.Container{initContainer("warmup", gpus("3"), gpus("3"))}
			},
			want: 3,
		},
		{
			name: "sidecar holding one beside the app",
			// 1 + 1 = 2
			pod: func(p *corev1.Pod) {
				p.Spec.Containers[0].Resources.Requests[ResourceGPU] = resource.MustParse("1")
				p.Spec.Containers[0].Resources.Limits[ResourceGPU] = resource.MustParse("1")
				p.Spec.InitContainers = []corev1.Container{sidecar("exporter", gpus("1"), gpus("1"))}
			},
			want: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Build(Inputs{Now: t0,
				Nodes: []*corev1.Node{kubeNode("g1", withGPUResource("8"))},
				Pods:  []*corev1.Pod{kubePod("ml", "train", "g1", tt.pod)}})
			assert.Equal(t, 8-tt.want, s.ClusterMetrics.AvailableGPUs)
		})
	}
}

// TestSimpleResourcesMatchHelpers holds the fast path to the helpers'
// answers on pods it accepts: random containers, quantities (fractions of
// a millicore or byte, several scales, values past int64) and in-place
// resize statuses.
func TestSimpleResourcesMatchHelpers(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cpus := []string{"0", "1m", "0.5m", "100m", "250m", "1", "1.5", "2.0001", "64", "1e3", "9223372036854775807"}
	mems := []string{"0", "1", "1.5", "1k", "1Ki", "100Mi", "1G", "1.5Gi", "2e9", "9223372036854775807", "18Ei"}
	gpus := []string{"0", "1", "2", "8"}
	randList := func() corev1.ResourceList {
		if rng.IntN(6) == 0 {
			return nil
		}
		l := corev1.ResourceList{}
		if rng.IntN(4) > 0 {
			l[corev1.ResourceCPU] = resource.MustParse(cpus[rng.IntN(len(cpus))])
		}
		if rng.IntN(4) > 0 {
			l[corev1.ResourceMemory] = resource.MustParse(mems[rng.IntN(len(mems))])
		}
		if rng.IntN(3) == 0 {
			l[ResourceGPU] = resource.MustParse(gpus[rng.IntN(len(gpus))])
		}
		if rng.IntN(5) == 0 {
			l[corev1.ResourceEphemeralStorage] = resource.MustParse("1Gi")
		}
		return l
	}
	checked := 0
	for i := 0; i < 5000; i++ {
		p := kubePod("default", "p", "n1")
		p.Spec.Containers = nil
		p.Status.ContainerStatuses = nil
		for c := 0; c < 1+rng.IntN(3); c++ {
			name := fmt.Sprintf("c%d", c)
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: name,
				Resources: corev1.ResourceRequirements{Requests: randList(), Limits: randList()}})
			if rng.IntN(4) == 0 {
				continue // no status yet
			}
			st := running(name, 0)
			if rng.IntN(2) == 0 {
				st.AllocatedResources = randList()
			}
			if rng.IntN(2) == 0 {
				st.Resources = &corev1.ResourceRequirements{Requests: randList(), Limits: randList()}
			}
			if rng.IntN(10) == 0 {
				p.Status.InitContainerStatuses = append(p.Status.InitContainerStatuses, st)
			} else {
				p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, st)
			}
		}
		if rng.IntN(5) == 0 {
			p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{
				Type: corev1.PodResizePending, Status: corev1.ConditionTrue,
				Reason: []string{corev1.PodReasonInfeasible, corev1.PodReasonDeferred}[rng.IntN(2)]})
		}
		fast, ok := simpleResources(p)
		require.True(t, ok)
		require.Equal(t, helperResources(p), fast, "pod %d: %+v %+v", i, p.Spec.Containers, p.Status)
		checked++
	}
	assert.Equal(t, 5000, checked)
}

func TestSimpleResourcesDeclines(t *testing.T) {
	tests := []struct {
		name string
		pod  podOpt
	}{
		{"init container", func(p *corev1.Pod) { p.Spec.InitContainers = []corev1.Container{{Name: "i"}} }},
		{"overhead", func(p *corev1.Pod) { p.Spec.Overhead = list("cpu", "10m") }},
		{"pod-level resources", func(p *corev1.Pod) { p.Spec.Resources = &corev1.ResourceRequirements{} }},
		{"pod-level status", func(p *corev1.Pod) { p.Status.Resources = &corev1.ResourceRequirements{} }},
		{"pod-level allocated", func(p *corev1.Pod) { p.Status.AllocatedResources = list("cpu", "1") }},
		{"resource claims", func(p *corev1.Pod) {
			p.Status.NodeAllocatableResourceClaimStatuses = []corev1.NodeAllocatableResourceClaimStatus{{}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ok := simpleResources(kubePod("default", "p", "n1", tt.pod))
			assert.False(t, ok)
		})
	}
}

// TestResourceMemo builds a sequence of snapshots with and without the
// memo: every snapshot must be the same, when a pod is replaced by a new
// object with other resources, removed, and added back.
func TestResourceMemo(t *testing.T) {
	in := goldenInputs()
	memo := NewResourceMemo()
	bigger := kubePod("default", "api", "cpu-2", withGPURequest("1"))
	bigger.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse("2")
	steps := []struct {
		name string
		pods func([]*corev1.Pod) []*corev1.Pod
	}{
		{"first build", func(p []*corev1.Pod) []*corev1.Pod { return p }},
		{"same objects", func(p []*corev1.Pod) []*corev1.Pod { return p }},
		{"a pod updated", func(p []*corev1.Pod) []*corev1.Pod { return []*corev1.Pod{p[0], p[1], bigger, p[3]} }},
		{"a pod gone", func(p []*corev1.Pod) []*corev1.Pod { return []*corev1.Pod{p[0], p[1], p[3]} }},
		{"back again", func(p []*corev1.Pod) []*corev1.Pod { return []*corev1.Pod{p[0], p[1], bigger, p[3]} }},
	}
	pods := in.Pods
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			in.Pods = s.pods(pods)
			in.Resources = nil
			want, err := json.Marshal(Build(in))
			require.NoError(t, err)
			in.Resources = memo
			got, err := json.Marshal(Build(in))
			require.NoError(t, err)
			assert.JSONEq(t, string(want), string(got))
			assert.Len(t, memo.pods, len(in.Pods), "only the pods of the last build are kept")
		})
	}
}
