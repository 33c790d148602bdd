package state

import (
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// DefaultStaleIntervals is used when Inputs.StaleIntervals is not positive;
// it matches the aggregator.stale_intervals default.
const DefaultStaleIntervals = 3

// defaultReportInterval stands in for a report that does not say its interval
// (an old or broken agent), so such a node can still go stale.
const defaultReportInterval = 15 * time.Second

// Where usage came from, as NodeMetrics.UsageSource and PodMetrics.UsageSource
// name it.
const (
	UsageAgent         = "agent"
	UsageMetricsServer = "metrics-server"
	UsageKubelet       = "kubelet"
)

// ResourceGPU is the extended resource the NVIDIA device plugin advertises.
const ResourceGPU corev1.ResourceName = "nvidia.com/gpu"

// SourceAgent names the pseudo-source recorded on nodes that have a Node
// object but no agent report, so users see why hardware detail is missing.
const SourceAgent = "agent"

// noAgentSources is shared by every node without an agent: snapshots are
// read-only, so one map serves them all.
var noAgentSources = map[string]model.SourceStatus{
	SourceAgent: {Name: SourceAgent, Status: model.SourceUnavailable, Reason: "no agent report from this node"},
}

// Build merges one cycle's inputs into a snapshot. It is a pure function of
// in: the clock is in.Now, nothing is modified, and equal inputs give equal
// snapshots.
//
// The snapshot shares read-only data with its inputs (labels maps, the
// reports' disk, GPU and volume slices) instead of copying it: informer
// objects and decoded reports are never modified after they are handed in,
// and copying 150 000 pods' labels every cycle would dominate the cost.
//
// Nodes are the union of Node objects and reporting agents. Pods come from
// Pod objects; in standalone mode (in.Nodes and in.Pods both nil) they come
// from the agents' kubelet stats. Cluster health follows the rules on
// assessHealth, documented in docs/health.md.
func Build(in Inputs) *model.MetricsSnapshot {
	b := newBuilder(in)
	nodes := b.buildNodes()
	var pods map[string]*model.PodMetrics
	if b.standalone {
		pods = b.buildStandalonePods()
	} else {
		in.Resources.begin()
		pods = b.buildPods()
		in.Resources.end()
	}
	return &model.MetricsSnapshot{
		Timestamp:      b.now,
		NodeMetrics:    nodes,
		PodMetrics:     pods,
		NetworkMetrics: []*model.NetworkMetrics{},
		ClusterMetrics: b.buildCluster(nodes, pods),
		VMs:            in.VMs,
	}
}

// builder carries one Build call's inputs, resolved defaults and what the
// node and pod passes learn for the cluster pass.
type builder struct {
	in             Inputs
	now            time.Time
	standalone     bool
	staleIntervals int
	thresholds     model.Thresholds

	// nodeInfo is what health needs beyond NodeMetrics, by node name.
	nodeInfo map[string]nodeInfo
	// gpuRequested sums nvidia.com/gpu requests of non-terminated pods per
	// node, for nodes whose agent has no GPU detail.
	gpuRequested map[string]int
	// podIssues are found while reading Pod objects, which hold more than
	// PodMetrics (termination times, the pod's failure reason).
	podIssues []issue
	// gpuDevices lists device IDs per pod key, from the agents' GPU refs.
	gpuDevices map[string][]string
	// containerSlab is the unused rest of the current container chunk.
	containerSlab []model.ContainerMetrics
}

// nodeInfo is a node's health detail beside NodeMetrics.
type nodeInfo struct {
	hasObject bool
	ready     bool
	pressure  []string
	interval  time.Duration
}

func newBuilder(in Inputs) *builder {
	b := &builder{
		in:             in,
		now:            in.Now.UTC(),
		standalone:     in.Nodes == nil && in.Pods == nil,
		staleIntervals: in.StaleIntervals,
		thresholds:     ResolveThresholds(in.Thresholds),
		nodeInfo:       make(map[string]nodeInfo, max(len(in.Nodes), len(in.Reports))),
		gpuRequested:   map[string]int{},
	}
	if b.staleIntervals <= 0 {
		b.staleIntervals = DefaultStaleIntervals
	}
	b.gpuDevices = gpuDevicesByPod(in.Reports)
	return b
}

// ResolveThresholds fills each zero threshold with the model's default,
// because a zero threshold would otherwise silently turn that pressure
// check off. Build uses it; so should anyone filtering snapshots by
// pressure, to agree with ClusterMetrics.NodesUnderPressure.
func ResolveThresholds(t model.Thresholds) model.Thresholds {
	d := model.DefaultThresholds()
	if t.CPURate <= 0 {
		t.CPURate = d.CPURate
	}
	if t.MemoryRate <= 0 {
		t.MemoryRate = d.MemoryRate
	}
	if t.DiskRate <= 0 {
		t.DiskRate = d.DiskRate
	}
	if t.GPUTempC <= 0 {
		t.GPUTempC = d.GPUTempC
	}
	return t
}

func (b *builder) buildNodes() map[string]*model.NodeMetrics {
	out := make(map[string]*model.NodeMetrics, max(len(b.in.Nodes), len(b.in.Reports)))
	for _, obj := range b.in.Nodes {
		if obj == nil || obj.Name == "" {
			continue
		}
		var entry *ReportEntry
		if e, ok := b.in.Reports[obj.Name]; ok && e.Report != nil {
			entry = &e
		}
		out[obj.Name] = b.node(obj.Name, obj, entry)
	}
	for name, e := range b.in.Reports {
		if _, done := out[name]; done || e.Report == nil || name == "" {
			continue
		}
		out[name] = b.node(name, nil, &e)
	}
	return out
}

// node merges one node's agent report (may be nil) with its Node object (may
// be nil); at least one of them is present.
func (b *builder) node(name string, obj *corev1.Node, e *ReportEntry) *model.NodeMetrics {
	m := &model.NodeMetrics{}
	info := nodeInfo{hasObject: obj != nil, ready: true}
	if e != nil {
		// The copy shares the report's slices; every field changed below
		// gets a fresh value, never an append into the report's arrays.
		*m = e.Report.Node
		m.UsageSource = UsageAgent
		if m.Timestamp.IsZero() {
			m.Timestamp = e.Report.Timestamp
		}
		age := max(b.now.Sub(e.ReceivedAt), 0)
		info.interval = defaultReportInterval
		if e.Report.IntervalSeconds > 0 {
			info.interval = time.Duration(e.Report.IntervalSeconds * float64(time.Second))
		}
		m.ReportAgeSeconds = age.Seconds()
		m.Stale = age > time.Duration(b.staleIntervals)*info.interval
		m.Sources = sourcesByName(e.Report.Sources)
	} else {
		m.Timestamp = b.now
		m.Sources = noAgentSources
	}
	m.NodeName = name
	m.Timestamp = m.Timestamp.UTC()

	var conditions []string
	if obj != nil {
		info.ready = applyNodeObject(m, obj, e == nil)
		conditions = nodeConditions(obj)
	}
	if e == nil {
		if u, ok := b.in.NodeUsage[name]; ok {
			m.CPUUsage, m.MemoryUsage = u.CPU, u.Memory
			m.CPUUsageRate = model.ClampRate(model.Rate(u.CPU, m.CPUCapacity))
			m.MemoryUsageRate = model.ClampRate(model.Rate(u.Memory, m.MemoryCapacity))
			m.UsageSource = UsageMetricsServer
			if !u.Timestamp.IsZero() {
				m.Timestamp = u.Timestamp.UTC()
			}
		}
	}
	fillEmptyGPUSlices(m)
	m.Conditions = mergeConditions(m.Conditions, conditions)
	info.pressure = m.PressureReasons(b.thresholds)
	m.Healthy = info.ready && !m.Stale && len(info.pressure) == 0
	b.nodeInfo[name] = info
	return m
}

// applyNodeObject copies what only the API server knows onto m and reports
// whether the node is Ready. Capacity comes from the object only when no
// agent measured it.
func applyNodeObject(m *model.NodeMetrics, obj *corev1.Node, capacityFromObject bool) bool {
	m.Labels = obj.Labels
	alloc := obj.Status.Allocatable
	if q, ok := alloc[corev1.ResourceCPU]; ok {
		m.CPUAllocatable = q.MilliValue()
	}
	if q, ok := alloc[corev1.ResourceMemory]; ok {
		m.MemoryAllocatable = q.Value()
	}
	if q, ok := alloc[ResourceGPU]; ok {
		m.GPUAllocatable = int(q.Value())
	}
	if capacityFromObject {
		capacity := obj.Status.Capacity
		if q, ok := capacity[corev1.ResourceCPU]; ok {
			m.CPUCapacity = q.MilliValue()
		}
		if q, ok := capacity[corev1.ResourceMemory]; ok {
			m.MemoryCapacity = q.Value()
		}
	}
	// Without NVML data (no agent, or no driver in the agent's container)
	// the device plugin's count is the best GPU count there is.
	if len(m.GPUs) == 0 && m.GPUCount == 0 {
		if q, ok := obj.Status.Capacity[ResourceGPU]; ok {
			m.GPUCount = int(q.Value())
		}
	}
	m.Taints = nil
	if len(obj.Spec.Taints) > 0 {
		m.Taints = make([]string, 0, len(obj.Spec.Taints))
		for _, t := range obj.Spec.Taints {
			s := t.Key
			if t.Value != "" {
				s += "=" + t.Value
			}
			m.Taints = append(m.Taints, s+":"+string(t.Effect))
		}
	}
	m.Unschedulable = obj.Spec.Unschedulable
	for _, c := range obj.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// abnormalConditions are the node conditions that signal trouble when True.
var abnormalConditions = map[corev1.NodeConditionType]bool{
	corev1.NodeMemoryPressure:     true,
	corev1.NodeDiskPressure:       true,
	corev1.NodePIDPressure:        true,
	corev1.NodeNetworkUnavailable: true,
}

// ConditionNotReady is listed in NodeMetrics.Conditions when the Node's
// Ready condition is not True (False, Unknown or missing).
const ConditionNotReady = "NotReady"

func nodeConditions(obj *corev1.Node) []string {
	var out []string
	ready := false
	for _, c := range obj.Status.Conditions {
		if c.Type == corev1.NodeReady {
			ready = c.Status == corev1.ConditionTrue
			continue
		}
		if abnormalConditions[c.Type] && c.Status == corev1.ConditionTrue {
			out = append(out, string(c.Type))
		}
	}
	if !ready {
		out = append(out, ConditionNotReady)
	}
	return out
}

// mergeConditions returns the sorted union of what the agent and the Node
// object said, in a new slice so the report's array is never written.
func mergeConditions(agent, object []string) []string {
	if len(agent) == 0 && len(object) == 0 {
		return emptyStrings
	}
	out := make([]string, 0, len(agent)+len(object))
	out = append(out, agent...)
	out = append(out, object...)
	slices.Sort(out)
	return slices.Compact(out)
}

func sourcesByName(list []model.SourceStatus) map[string]model.SourceStatus {
	if len(list) == 0 {
		return nil
	}
	out := make(map[string]model.SourceStatus, len(list))
	for _, s := range list {
		out[s.Name] = s
	}
	return out
}

// gpuDevicesByPod indexes the agents' pod-resources GPU assignments by pod
// key. Only GPU nodes contribute, so the map stays small.
func gpuDevicesByPod(reports map[string]ReportEntry) map[string][]string {
	out := map[string][]string{}
	for _, e := range reports {
		if e.Report == nil {
			continue
		}
		for _, g := range e.Report.Node.GPUs {
			for _, ref := range g.Pods {
				if ref.DeviceID == "" {
					continue
				}
				k := model.PodKey(ref.Namespace, ref.Pod)
				out[k] = append(out[k], ref.DeviceID)
			}
		}
	}
	for k, ids := range out {
		slices.Sort(ids)
		out[k] = slices.Compact(ids)
	}
	return out
}

// Shared empty slices: the seed's GPU lists read as [] rather than null for
// nodes without GPU data, and snapshots are read-only, so one will do.
var (
	emptyStrings  = []string{}
	emptyFloats   = []float64{}
	emptyIntegers = []int64{}
)

func fillEmptyGPUSlices(m *model.NodeMetrics) {
	if m.GPUModels == nil {
		m.GPUModels = emptyStrings
	}
	if m.GPUUsage == nil {
		m.GPUUsage = emptyFloats
	}
	if m.GPUMemoryTotal == nil {
		m.GPUMemoryTotal = emptyIntegers
	}
	if m.GPUMemoryUsed == nil {
		m.GPUMemoryUsed = emptyIntegers
	}
}
