package api

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/state"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// t0 is the fixture's "now".
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	gib = int64(1) << 30
	mib = int64(1) << 20
)

// The fixture cluster, as the seed's questions need it:
//
//	node-1  zone-a  cpu 35%  mem 40%                 web-1, coredns-1, batch-1 (Failed)
//	node-2  zone-a  cpu 70%  mem 93.1% (pressure)     my-pod (OOMKilled, CrashLoopBackOff)
//	node-3  zone-b  cpu 87.5% mem 60%                 web-2 (93.75% of its memory limit), xyz
//	node-4  zone-b  NotReady, no agent, no usage
//	gpu-1   zone-b  4 A100s, 2 held by ml/train       train
//	                                                  pending-1 (Pending, unscheduled)
type fixtureNode struct {
	name, zone       string
	cpuRate, memRate float64
	agent, ready     bool
	gpus             int
}

var fixtureNodes = []fixtureNode{
	{name: "node-1", zone: "zone-a", cpuRate: 35, memRate: 40, agent: true, ready: true},
	{name: "node-2", zone: "zone-a", cpuRate: 70, memRate: 93.1, agent: true, ready: true},
	{name: "node-3", zone: "zone-b", cpuRate: 87.5, memRate: 60, agent: true, ready: true},
	{name: "node-4", zone: "zone-b"},
	{name: "gpu-1", zone: "zone-b", cpuRate: 20, memRate: 30, agent: true, ready: true, gpus: 4},
}

type fixturePod struct {
	ns, name, node   string
	phase            corev1.PodPhase
	cpu, mem         int64 // usage; 0 with no usage known
	cpuLimit, memLim string
	gpus             string
	restarts         int32
	failedReason     string
	kubelet          bool // usage from the agent's kubelet stats instead of metrics-server
}

var fixturePods = []fixturePod{
	{ns: "default", name: "web-1", node: "node-1", phase: corev1.PodRunning, cpu: 120, mem: 200 * mib, cpuLimit: "500m", memLim: "512Mi"},
	{ns: "default", name: "web-2", node: "node-3", phase: corev1.PodRunning, cpu: 450, mem: 480 * mib, cpuLimit: "500m", memLim: "512Mi"},
	{ns: "default", name: "my-pod", node: "node-2", phase: corev1.PodRunning, cpu: 90, mem: 500 * mib, cpuLimit: "1", memLim: "512Mi", restarts: 7, kubelet: true},
	{ns: "default", name: "xyz", node: "node-3", phase: corev1.PodRunning, cpu: 300, mem: 256 * mib, cpuLimit: "1", memLim: "1Gi"},
	{ns: "default", name: "batch-1", node: "node-1", phase: corev1.PodFailed, cpuLimit: "1", memLim: "1Gi", failedReason: "Evicted"},
	{ns: "default", name: "pending-1", phase: corev1.PodPending, cpuLimit: "1", memLim: "1Gi"},
	{ns: "kube-system", name: "coredns-1", node: "node-1", phase: corev1.PodRunning, cpu: 5, mem: 20 * mib, memLim: "170Mi"},
	{ns: "ml", name: "train", node: "gpu-1", phase: corev1.PodRunning, cpu: 3000, mem: 20 * gib, cpuLimit: "4", memLim: "24Gi", gpus: "2"},
}

// fixtureInputs is the fixture as seen at cycle c (0, 1, 2), 15 s apart
// and ending at t0: usage grows a little each cycle and my-pod restarts.
func fixtureInputs(c int) state.Inputs {
	now := t0.Add(time.Duration(c-2) * 15 * time.Second)
	in := state.Inputs{
		Now:       now,
		Nodes:     []*corev1.Node{},
		Pods:      []*corev1.Pod{},
		Reports:   map[string]state.ReportEntry{},
		PodUsage:  map[string]state.Usage{},
		NodeUsage: map[string]state.Usage{},
		Sources: map[string]model.SourceStatus{
			"informers":      {Name: "informers", Status: model.SourceOK, LastSuccess: now},
			"metrics-server": {Name: "metrics-server", Status: model.SourceOK, DurationMs: 42, LastSuccess: now},
		},
		VMs: []*model.VMMetrics{{ID: "uid-vm-1", Name: "vm-1", Namespace: "vms", Status: "Running", CPU: 2, Memory: "4Gi", Node: "node-1",
			Metrics: &model.VMUsage{CPUUsage: 25, MemoryUsage: 50}}},
	}
	reports := map[string]*model.NodeReport{}
	for _, fn := range fixtureNodes {
		in.Nodes = append(in.Nodes, kubeNode(fn))
		if !fn.agent {
			continue
		}
		r := nodeReport(fn, now, c)
		reports[fn.name] = r
		in.Reports[fn.name] = state.ReportEntry{Report: r, ReceivedAt: now}
	}
	for _, fp := range fixturePods {
		restarts := fp.restarts
		if restarts > 0 {
			restarts += int32(c - 2)
		}
		in.Pods = append(in.Pods, kubePod(fp, now, restarts))
		if fp.cpu == 0 && fp.mem == 0 {
			continue
		}
		cpu := fp.cpu + int64(c)
		if fp.kubelet {
			r := reports[fp.node]
			r.Kubelet.Pods = append(r.Kubelet.Pods, model.PodStats{
				Namespace: fp.ns, Name: fp.name, UID: "uid-" + fp.name, StartTime: t0.Add(-time.Hour),
				CPUUsage: cpu, MemoryWorkingSet: fp.mem, EphemeralStorageUsage: 12 * mib,
				Containers: []model.ContainerStats{{Name: "app", CPUUsage: cpu, MemoryWorkingSet: fp.mem}},
			})
			continue
		}
		in.PodUsage[model.PodKey(fp.ns, fp.name)] = state.Usage{CPU: cpu, Memory: fp.mem, Timestamp: now.Add(-5 * time.Second),
			Containers: map[string]state.ContainerUsage{"app": {CPU: cpu, Memory: fp.mem}}}
	}
	return in
}

func kubeNode(fn fixtureNode) *corev1.Node {
	ready := corev1.ConditionTrue
	if !fn.ready {
		ready = corev1.ConditionUnknown
	}
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: fn.name, Labels: map[string]string{
			"kubernetes.io/hostname": fn.name, "topology.kubernetes.io/zone": fn.zone}},
		Status: corev1.NodeStatus{
			Capacity:    corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("8"), corev1.ResourceMemory: resource.MustParse("32Gi")},
			Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("7800m"), corev1.ResourceMemory: resource.MustParse("31Gi")},
			Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready}},
		},
	}
	if fn.gpus > 0 {
		q := *resource.NewQuantity(int64(fn.gpus), resource.DecimalSI)
		n.Status.Capacity[state.ResourceGPU], n.Status.Allocatable[state.ResourceGPU] = q, q
		n.Labels["nvidia.com/gpu.product"] = "NVIDIA-A100-SXM4-40GB"
		n.Spec.Taints = []corev1.Taint{{Key: "nvidia.com/gpu", Value: "present", Effect: corev1.TaintEffectNoSchedule}}
	}
	return n
}

func nodeReport(fn fixtureNode, now time.Time, c int) *model.NodeReport {
	cpuRate := fn.cpuRate + float64(c-2)
	n := model.NodeMetrics{
		NodeName: fn.name, Timestamp: now.Add(-2 * time.Second),
		CPUCapacity: 8000, CPUUsage: int64(cpuRate * 80), CPUUsageRate: cpuRate,
		MemoryCapacity: 32 * gib, MemoryUsage: int64(fn.memRate / 100 * float64(32*gib)), MemoryUsageRate: fn.memRate,
		DiskCapacity: 100 * gib, DiskUsage: 45 * gib, DiskUsageRate: 45,
		NetworkBandwidth: 1.5e6,
		GPUModels:        []string{}, GPUUsage: []float64{}, GPUMemoryTotal: []int64{}, GPUMemoryUsed: []int64{},
		Load: &model.LoadAverage{Load1: 2, Load5: 1.5, Load15: 1},
	}
	for i := 0; i < fn.gpus; i++ {
		g := model.GPUMetrics{Index: i, UUID: "GPU-" + string(rune('a'+i)), Model: "NVIDIA A100-SXM4-40GB",
			MemoryTotal: 40 * gib, TemperatureC: 55, PowerWatts: 90}
		if i < 2 {
			g.UtilizationRate, g.MemoryUsed, g.MemoryUsageRate, g.TemperatureC = 80, 30*gib, 75, 70
			g.Pods = []model.GPUPodRef{{Namespace: "ml", Pod: "train", Container: "app", DeviceID: g.UUID}}
		}
		n.GPUs = append(n.GPUs, g)
		n.GPUCount++
		n.GPUModels = append(n.GPUModels, g.Model)
		n.GPUUsage = append(n.GPUUsage, g.UtilizationRate)
		n.GPUMemoryTotal = append(n.GPUMemoryTotal, g.MemoryTotal)
		n.GPUMemoryUsed = append(n.GPUMemoryUsed, g.MemoryUsed)
	}
	return &model.NodeReport{
		NodeName: fn.name, Timestamp: now.Add(-2 * time.Second), AgentVersion: "v0.1.0", IntervalSeconds: 15,
		Node: n, Kubelet: &model.KubeletStats{},
		Sources: []model.SourceStatus{{Name: "cpu", Status: model.SourceOK, DurationMs: 1}, {Name: "kubelet", Status: model.SourceOK, DurationMs: 8}},
	}
}

func kubePod(fp fixturePod, now time.Time, restarts int32) *corev1.Pod {
	c := corev1.Container{Name: "app", Resources: corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("128Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(fp.memLim)},
	}}
	if fp.cpuLimit != "" {
		c.Resources.Requests[corev1.ResourceCPU] = resource.MustParse("100m")
		c.Resources.Limits[corev1.ResourceCPU] = resource.MustParse(fp.cpuLimit)
	}
	if fp.gpus != "" {
		c.Resources.Limits[state.ResourceGPU] = resource.MustParse(fp.gpus)
	}
	st := corev1.ContainerStatus{Name: "app", Ready: true, RestartCount: restarts,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}
	ready := corev1.ConditionTrue
	switch {
	case restarts > 0:
		st.Ready, ready = false, corev1.ConditionFalse
		st.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}
		st.LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			Reason: "OOMKilled", ExitCode: 137, FinishedAt: metav1.Time{Time: now.Add(-20 * time.Second)}}}
	case fp.phase != corev1.PodRunning:
		st.Ready, ready = false, corev1.ConditionFalse
		st.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}
	}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: fp.ns, Name: fp.name, UID: types.UID("uid-" + fp.name),
			Labels:          map[string]string{"app": fp.name},
			OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: fp.name + "-5d8f7", Controller: boolPtr(true)}}},
		Spec: corev1.PodSpec{NodeName: fp.node, Containers: []corev1.Container{c}},
		Status: corev1.PodStatus{
			Phase: fp.phase, Reason: fp.failedReason,
			Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: ready}},
			ContainerStatuses: []corev1.ContainerStatus{st},
		},
	}
	if fp.node != "" {
		p.Status.StartTime = &metav1.Time{Time: t0.Add(-time.Hour)}
	}
	return p
}

func boolPtr(b bool) *bool { return &b }

// fixtureStore is a store that has published the fixture's three cycles,
// so the history holds three readings per series.
func fixtureStore(t testing.TB) *state.Store {
	t.Helper()
	clock := func() time.Time { return t0 }
	st := state.NewStore(state.StoreOptions{History: state.NewHistory(5*time.Minute, 100), MaxAge: time.Minute, Now: clock})
	for c := 0; c < 3; c++ {
		st.Publish(state.Build(fixtureInputs(c)))
	}
	require.NotNil(t, st.Snapshot())
	return st
}

// get runs one request against h and returns the recorder.
func get(h http.Handler, target string) *httptest.ResponseRecorder {
	return do(h, http.MethodGet, target)
}

func do(h http.Handler, method, target string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec
}
