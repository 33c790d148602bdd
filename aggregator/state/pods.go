package state

import (
	"cmp"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// RecentRestartWindow is how long after a container's last termination its
// pod still counts as restarting in the cluster's issues. restartCount never
// resets, so without a window a pod that crashed once last week would keep
// the cluster in warning forever.
const RecentRestartWindow = 15 * time.Minute

// stuckWaitingReasons are container waiting reasons that mean the container
// cannot start without someone fixing something.
var stuckWaitingReasons = map[string]bool{
	"ImagePullBackOff":           true,
	"ErrImagePull":               true,
	"InvalidImageName":           true,
	"CreateContainerConfigError": true,
	"CreateContainerError":       true,
}

const reasonCrashLoop = "CrashLoopBackOff"

func (b *builder) buildPods() map[string]*model.PodMetrics {
	out := make(map[string]*model.PodMetrics, len(b.in.Pods))
	// One slab for all pods instead of an allocation each: at 150 000 pods
	// per cycle, per-object allocation was the largest cost of Build. The
	// slab lives as long as the snapshot, as its pods would.
	slab := make([]model.PodMetrics, len(b.in.Pods))
	for i, p := range b.in.Pods {
		if p == nil || p.Name == "" {
			continue
		}
		key := model.PodKey(p.Namespace, p.Name)
		m := &slab[i]
		b.pod(m, key, p)
		out[key] = m
	}
	return out
}

// containerChunk is how many ContainerMetrics are allocated at once.
const containerChunk = 1024

// containers hands out n ContainerMetrics from a shared chunk. The slice's
// capacity is exactly n, so an append by a reader copies rather than
// writing into the next pod's containers.
func (b *builder) containers(n int) []model.ContainerMetrics {
	if n > len(b.containerSlab) {
		b.containerSlab = make([]model.ContainerMetrics, max(n, containerChunk))
	}
	out := b.containerSlab[:0:n]
	b.containerSlab = b.containerSlab[n:]
	return out
}

// pod turns one Pod object into m, with usage from metrics-server or,
// failing that, the kubelet stats in its node's report.
func (b *builder) pod(m *model.PodMetrics, key string, p *corev1.Pod) {
	*m = model.PodMetrics{
		PodName:   p.Name,
		Namespace: p.Namespace,
		NodeName:  p.Spec.NodeName,
		Timestamp: b.now,
		Phase:     string(p.Status.Phase),
		UID:       string(p.UID),
		Labels:    p.Labels,
		GPUs:      b.gpuDevices[key],
	}
	if p.Status.StartTime != nil {
		m.StartTime = p.Status.StartTime.UTC()
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			m.Ready = c.Status == corev1.ConditionTrue
		}
	}
	if ref := ownerOf(p); ref != nil {
		m.OwnerKind, m.OwnerName = ref.Kind, ref.Name
	}

	res := b.in.Resources.resources(p)
	m.CPURequest, m.CPULimit = res.cpuRequest, res.cpuLimit
	m.MemoryRequest, m.MemoryLimit = res.memoryRequest, res.memoryLimit
	m.CPULimited, m.MemoryLimited = res.cpuLimited, res.memoryLimited

	var usage *Usage
	if u, ok := b.in.PodUsage[key]; ok {
		usage = &u
	}
	stats := b.kubeletStats(p)
	m.Containers = b.podContainers(p, usage, stats)
	for i := range m.Containers {
		m.Restarts += m.Containers[i].Restarts
	}

	switch {
	case usage != nil:
		m.CPUUsage, m.MemoryUsage = usage.CPU, usage.Memory
		m.UsageSource = UsageMetricsServer
		if !usage.Timestamp.IsZero() {
			m.Timestamp = usage.Timestamp.UTC()
		}
	case stats != nil:
		m.CPUUsage, m.MemoryUsage = stats.CPUUsage, stats.MemoryWorkingSet
		m.UsageSource = UsageKubelet
		if r := b.in.Reports[p.Spec.NodeName].Report; r != nil && !r.Timestamp.IsZero() {
			m.Timestamp = r.Timestamp.UTC()
		}
	}
	if stats != nil {
		applyKubeletDetail(m, stats)
	}
	// A rate against a limit that does not bound the whole pod would
	// compare all containers' usage with some containers' limits.
	if m.CPULimited {
		m.CPUUsageRate = model.Rate(m.CPUUsage, m.CPULimit)
	}
	if m.MemoryLimited {
		m.MemoryUsageRate = model.Rate(m.MemoryUsage, m.MemoryLimit)
	}

	terminated := p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
	if res.gpus > 0 && !terminated && p.Spec.NodeName != "" {
		b.gpuRequested[p.Spec.NodeName] += int(res.gpus)
	}
	b.checkPod(key, m, p)
}

// kubeletStats finds the pod in its node's report. A linear scan of one
// node's pods (tens) is cheaper than indexing every node's pods each cycle.
// Stats with a different UID belong to an earlier pod of the same name.
func (b *builder) kubeletStats(p *corev1.Pod) *model.PodStats {
	if p.Spec.NodeName == "" {
		return nil
	}
	r := b.in.Reports[p.Spec.NodeName].Report
	if r == nil || r.Kubelet == nil {
		return nil
	}
	for i := range r.Kubelet.Pods {
		s := &r.Kubelet.Pods[i]
		if s.Name != p.Name || s.Namespace != p.Namespace {
			continue
		}
		if s.UID != "" && p.UID != "" && s.UID != string(p.UID) {
			return nil
		}
		return s
	}
	return nil
}

func applyKubeletDetail(m *model.PodMetrics, s *model.PodStats) {
	m.EphemeralStorageUsage = s.EphemeralStorageUsage
	m.NetworkRxBytesPerSec = s.NetworkRxBytesPerSec
	m.NetworkTxBytesPerSec = s.NetworkTxBytesPerSec
	m.Volumes = s.Volumes
}

func ownerOf(p *corev1.Pod) *metav1.OwnerReference {
	// The NoCopy variant: GetControllerOf copies the reference, three
	// allocations per pod per cycle for two strings we only read.
	if ref := metav1.GetControllerOfNoCopy(p); ref != nil {
		return ref
	}
	if len(p.OwnerReferences) > 0 {
		return &p.OwnerReferences[0]
	}
	return nil
}

// podContainers describes the pod's containers, then its native sidecars:
// both run for the pod's whole life, and metrics-server and the kubelet
// report usage for both. Init containers that run to completion are left
// out (they have no usage once the pod runs; their requests count in the
// pod's totals by the max rule).
func (b *builder) podContainers(p *corev1.Pod, usage *Usage, stats *model.PodStats) []model.ContainerMetrics {
	sidecars := 0
	for i := range p.Spec.InitContainers {
		if isSidecar(&p.Spec.InitContainers[i]) {
			sidecars++
		}
	}
	out := b.containers(len(p.Spec.Containers) + sidecars)
	for i := range p.Spec.Containers {
		out = append(out, containerMetrics(&p.Spec.Containers[i], p.Status.ContainerStatuses, usage, stats))
	}
	for i := 0; sidecars > 0 && i < len(p.Spec.InitContainers); i++ {
		if c := &p.Spec.InitContainers[i]; isSidecar(c) {
			cm := containerMetrics(c, p.Status.InitContainerStatuses, usage, stats)
			cm.Sidecar = true
			out = append(out, cm)
		}
	}
	return out
}

// isSidecar reports whether an init container is a native sidecar: one
// that keeps running beside the pod's containers.
func isSidecar(c *corev1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

// containerMetrics describes one container: its own requests and limits,
// its status among statuses, and its usage from metrics-server or, failing
// that, the kubelet stats.
func containerMetrics(c *corev1.Container, statuses []corev1.ContainerStatus, usage *Usage, stats *model.PodStats) model.ContainerMetrics {
	cm := containerSpec(c)
	applyContainerStatus(&cm, statuses)
	switch {
	case usage != nil:
		if u, ok := usage.Containers[c.Name]; ok {
			cm.CPUUsage, cm.MemoryUsage = u.CPU, u.Memory
		}
	case stats != nil:
		for j := range stats.Containers {
			if s := &stats.Containers[j]; s.Name == c.Name {
				cm.CPUUsage, cm.MemoryUsage = s.CPUUsage, s.MemoryWorkingSet
				break
			}
		}
	}
	cm.CPUUsageRate = model.Rate(cm.CPUUsage, cm.CPULimit)
	cm.MemoryUsageRate = model.Rate(cm.MemoryUsage, cm.MemoryLimit)
	return cm
}

// containerSpec reads a container's own requests and limits. This runs for
// every container every cycle: direct lookups beat ranging over these tiny
// maps.
func containerSpec(c *corev1.Container) model.ContainerMetrics {
	cm := model.ContainerMetrics{Name: c.Name}
	req, lim := c.Resources.Requests, c.Resources.Limits
	if q, ok := req[corev1.ResourceCPU]; ok {
		cm.CPURequest = q.MilliValue()
	}
	if q, ok := req[corev1.ResourceMemory]; ok {
		cm.MemoryRequest = q.Value()
	}
	if q, ok := lim[corev1.ResourceCPU]; ok {
		cm.CPULimit = q.MilliValue()
	}
	if q, ok := lim[corev1.ResourceMemory]; ok {
		cm.MemoryLimit = q.Value()
	}
	return cm
}

func applyContainerStatus(cm *model.ContainerMetrics, statuses []corev1.ContainerStatus) {
	for i := range statuses {
		st := &statuses[i]
		if st.Name != cm.Name {
			continue
		}
		cm.Ready = st.Ready
		cm.Restarts = st.RestartCount
		switch {
		case st.State.Running != nil:
			cm.State = "running"
		case st.State.Waiting != nil:
			cm.State, cm.Reason = "waiting", st.State.Waiting.Reason
		case st.State.Terminated != nil:
			cm.State, cm.Reason = "terminated", st.State.Terminated.Reason
		}
		if t := st.LastTerminationState.Terminated; t != nil {
			cm.LastTerminationReason, cm.LastExitCode = t.Reason, t.ExitCode
		}
		return
	}
}

// checkPod records the pod's issues: a failed pod, a container that cannot
// start, or one that is restarting (in CrashLoopBackOff, or terminated within
// RecentRestartWindow).
func (b *builder) checkPod(name string, m *model.PodMetrics, p *corev1.Pod) {
	if p.Status.Phase == corev1.PodFailed {
		msg := "pod " + name + " failed"
		if p.Status.Reason != "" {
			msg += ": " + p.Status.Reason
		}
		b.podIssues = append(b.podIssues, issue{severity: model.HealthWarning, text: msg})
		return
	}
	crashing, recent := "", false
	var lastReason string
	var lastAt time.Time
	for i := range p.Status.ContainerStatuses {
		st := &p.Status.ContainerStatuses[i]
		if w := st.State.Waiting; w != nil {
			if w.Reason == reasonCrashLoop && crashing == "" {
				crashing = st.Name
			}
			if stuckWaitingReasons[w.Reason] {
				b.podIssues = append(b.podIssues, issue{severity: model.HealthWarning,
					text: fmt.Sprintf("pod %s cannot start: container %s is %s", name, st.Name, w.Reason)})
			}
		}
		if t := st.LastTerminationState.Terminated; t != nil {
			if b.now.Sub(t.FinishedAt.Time) <= RecentRestartWindow && !t.FinishedAt.IsZero() {
				recent = true
			}
			if lastReason == "" || t.FinishedAt.After(lastAt) {
				lastReason, lastAt = cmp.Or(t.Reason, fmt.Sprintf("exit code %d", t.ExitCode)), t.FinishedAt.Time
			}
		}
	}
	if crashing == "" && !recent {
		return
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "pod %s is restarting: %d restarts", name, m.Restarts)
	if lastReason != "" {
		sb.WriteString(", last terminated " + lastReason)
	}
	if crashing != "" {
		sb.WriteString(", container " + crashing + " in " + reasonCrashLoop)
	}
	if rate, ok := m.MemoryLimitRate(); ok && rate >= model.DefaultOverLimitRate {
		fmt.Fprintf(&sb, ", memory at %.1f%% of its limit", rate)
	}
	b.podIssues = append(b.podIssues, issue{severity: model.HealthWarning, text: sb.String()})
}

// buildStandalonePods makes pods from the agents' kubelet stats when there is
// no API server. Phase is inferred: the kubelet lists a pod with containers
// only while they run, so such a pod is Running and one without is Unknown.
// Ready, requests and limits are unknown without the Pod object.
func (b *builder) buildStandalonePods() map[string]*model.PodMetrics {
	out := map[string]*model.PodMetrics{}
	// A pod can appear in two reports for a moment after it moved; the
	// fresher report wins, and the node name breaks ties so output stays
	// deterministic despite map order.
	from := map[string]ReportEntry{}
	for node, e := range b.in.Reports {
		if e.Report == nil || e.Report.Kubelet == nil {
			continue
		}
		for i := range e.Report.Kubelet.Pods {
			s := &e.Report.Kubelet.Pods[i]
			key := model.PodKey(s.Namespace, s.Name)
			if prev, ok := from[key]; ok {
				if prev.ReceivedAt.After(e.ReceivedAt) || (prev.ReceivedAt.Equal(e.ReceivedAt) && out[key].NodeName < node) {
					continue
				}
			}
			from[key] = e
			out[key] = b.standalonePod(key, node, e.Report, s)
		}
	}
	return out
}

func (b *builder) standalonePod(key, node string, r *model.NodeReport, s *model.PodStats) *model.PodMetrics {
	m := &model.PodMetrics{
		PodName:     s.Name,
		Namespace:   s.Namespace,
		NodeName:    node,
		Timestamp:   r.Timestamp.UTC(),
		CPUUsage:    s.CPUUsage,
		MemoryUsage: s.MemoryWorkingSet,
		Phase:       string(corev1.PodUnknown),
		StartTime:   s.StartTime.UTC(),
		UID:         s.UID,
		UsageSource: UsageKubelet,
		GPUs:        b.gpuDevices[key],
		Containers:  make([]model.ContainerMetrics, 0, len(s.Containers)),
	}
	if m.Timestamp.IsZero() {
		m.Timestamp = b.now
	}
	if len(s.Containers) > 0 {
		m.Phase = string(corev1.PodRunning)
	}
	for _, c := range s.Containers {
		m.Containers = append(m.Containers, model.ContainerMetrics{
			Name: c.Name, CPUUsage: c.CPUUsage, MemoryUsage: c.MemoryWorkingSet, State: "running",
		})
	}
	applyKubeletDetail(m, s)
	return m
}
