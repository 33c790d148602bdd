package state

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	resourcehelper "k8s.io/component-helpers/resource"
)

// podResourceOptions count a pod's requests and limits as the scheduler
// does: init containers by the max rule, restartable init containers
// (native sidecars) for the pod's whole life, pod overhead, pod-level
// resources (spec.resources) over the containers' sum, and, while an
// in-place resize is in flight, the larger of the desired (spec) and the
// allocated and actuated (status) resources. The status fields are read
// only where the kubelet fills them, that is where their feature is on.
var podResourceOptions = resourcehelper.PodResourcesOptions{
	UseStatusResources: true,
	InPlacePodLevelResourcesVerticalScalingEnabled: true,
	UseDRANodeAllocatableResourceClaimStatus:       true,
}

// podResources are a pod's totals.
type podResources struct {
	cpuRequest, cpuLimit       int64 // millicores
	memoryRequest, memoryLimit int64 // bytes
	gpus                       int64 // nvidia.com/gpu requested
	// cpuLimited and memoryLimited: the limit bounds the whole pod (see
	// limitsDeclared).
	cpuLimited, memoryLimited bool
}

// resourcesOf returns p's totals by Kubernetes' rules
// (resourcehelper.PodRequests and PodLimits with podResourceOptions). The
// GPU count is the nvidia.com/gpu request; a pod object that was never
// defaulted by an API server may give it as a limit alone, which then is
// the request.
func resourcesOf(p *corev1.Pod) podResources {
	r, ok := simpleResources(p)
	if !ok {
		r = helperResources(p)
	}
	r.cpuLimited, r.memoryLimited = limitsDeclared(p)
	return r
}

func helperResources(p *corev1.Pod) podResources {
	reqs := resourcehelper.PodRequests(p, podResourceOptions)
	lims := resourcehelper.PodLimits(p, podResourceOptions)
	var r podResources
	cpu, mem := reqs[corev1.ResourceCPU], reqs[corev1.ResourceMemory]
	r.cpuRequest, r.memoryRequest = cpu.MilliValue(), mem.Value()
	cpu, mem = lims[corev1.ResourceCPU], lims[corev1.ResourceMemory]
	r.cpuLimit, r.memoryLimit = cpu.MilliValue(), mem.Value()
	gpu, ok := reqs[ResourceGPU]
	if !ok {
		gpu = lims[ResourceGPU]
	}
	r.gpus = gpu.Value()
	return r
}

// simpleResources is resourcesOf's fast path for the common pod: no init
// containers, no overhead, no pod-level resources or status. It follows
// the helpers' arithmetic for that case (sums of quantities, rounded once,
// and the larger of spec, allocated and actuated) without the two dozen
// maps they allocate per pod: with the helpers alone, a build of 150 000
// pods took 4.5 times the CPU and allocated 1.3 GB instead of 96 MB
// (BenchmarkBuild). TestSimpleResourcesMatchHelpers holds it to the
// helpers' answers. ok is false when the pod needs the helpers.
func simpleResources(p *corev1.Pod) (r podResources, ok bool) {
	if len(p.Spec.InitContainers) > 0 || len(p.Spec.Overhead) > 0 || p.Spec.Resources != nil ||
		p.Status.Resources != nil || p.Status.AllocatedResources != nil ||
		len(p.Status.NodeAllocatableResourceClaimStatuses) > 0 {
		return r, false
	}
	infeasible := resourcehelper.IsPodResizeInfeasible(p)
	var specReqs, allocReqs, actReqs, specLims, actLims amounts
	for i := range p.Spec.Containers {
		c := &p.Spec.Containers[i]
		req, lim := amountsOf(c.Resources.Requests), amountsOf(c.Resources.Limits)
		specReqs.add(&req)
		specLims.add(&lim)
		cs := containerStatus(p, c.Name)
		// Each status source falls back as the helpers' do: allocated to
		// spec, actuated to allocated then spec, and neither to spec while
		// a resize is infeasible.
		var allocated, actuatedReqs, actuatedLims corev1.ResourceList
		if cs != nil {
			allocated = cs.AllocatedResources
			if cs.Resources != nil {
				actuatedReqs, actuatedLims = cs.Resources.Requests, cs.Resources.Limits
			}
		}
		if actuatedReqs == nil {
			actuatedReqs = allocated
		}
		allocReqs.addFrom(allocated, &req, infeasible)
		actReqs.addFrom(actuatedReqs, &req, infeasible)
		actLims.addFrom(actuatedLims, &lim, infeasible)
	}
	var reqs, lims amounts
	if infeasible {
		reqs = actReqs
		reqs.max(&allocReqs)
		lims = actLims
	} else {
		reqs = specReqs
		reqs.max(&actReqs)
		reqs.max(&allocReqs)
		lims = specLims
		lims.max(&actLims)
	}
	r.cpuRequest, r.memoryRequest = reqs.cpu.MilliValue(), reqs.memory.Value()
	r.cpuLimit, r.memoryLimit = lims.cpu.MilliValue(), lims.memory.Value()
	if reqs.hasGPU {
		r.gpus = reqs.gpu.Value()
	} else {
		r.gpus = lims.gpu.Value()
	}
	return r, true
}

// containerStatus finds a container's status by name, where the helpers
// look for it.
func containerStatus(p *corev1.Pod, name string) *corev1.ContainerStatus {
	for i := range p.Status.ContainerStatuses {
		if p.Status.ContainerStatuses[i].Name == name {
			return &p.Status.ContainerStatuses[i]
		}
	}
	for i := range p.Status.InitContainerStatuses {
		if p.Status.InitContainerStatuses[i].Name == name {
			return &p.Status.InitContainerStatuses[i]
		}
	}
	return nil
}

// amounts are the CPU, memory and GPU entries of resource lists, summed as
// quantities so that, as in the helpers, rounding to millicores or bytes
// happens once, on the total. The has flags tell an absent entry from 0.
type amounts struct {
	cpu, memory, gpu          resource.Quantity
	hasCPU, hasMemory, hasGPU bool
}

// amountsOf reads l's entries. The GPU lookup is skipped when cpu and
// memory account for every entry, as they do for most containers.
func amountsOf(l corev1.ResourceList) amounts {
	var a amounts
	if len(l) == 0 {
		return a
	}
	seen := 0
	if q, ok := l[corev1.ResourceCPU]; ok {
		a.cpu, a.hasCPU, seen = q, true, seen+1
	}
	if q, ok := l[corev1.ResourceMemory]; ok {
		a.memory, a.hasMemory, seen = q, true, seen+1
	}
	if seen < len(l) {
		a.gpu, a.hasGPU = l[ResourceGPU]
	}
	return a
}

// add adds b's entries. Sums start from the zero quantity, so a quantity
// read from a pod (which may share its decimal with the informer's object)
// is never the receiver of Add.
func (a *amounts) add(b *amounts) {
	if b.hasCPU {
		a.cpu.Add(b.cpu)
		a.hasCPU = true
	}
	if b.hasMemory {
		a.memory.Add(b.memory)
		a.hasMemory = true
	}
	if b.hasGPU {
		a.gpu.Add(b.gpu)
		a.hasGPU = true
	}
}

// addFrom adds the entries of a status list, or when it is nil the spec's
// (already read into spec), or nothing while a resize is infeasible.
func (a *amounts) addFrom(status corev1.ResourceList, spec *amounts, infeasible bool) {
	switch {
	case status != nil:
		s := amountsOf(status)
		a.add(&s)
	case !infeasible:
		a.add(spec)
	}
}

// max keeps, entry by entry, the larger of a and b.
func (a *amounts) max(b *amounts) {
	if b.hasCPU && (!a.hasCPU || b.cpu.Cmp(a.cpu) > 0) {
		a.cpu, a.hasCPU = b.cpu, true
	}
	if b.hasMemory && (!a.hasMemory || b.memory.Cmp(a.memory) > 0) {
		a.memory, a.hasMemory = b.memory, true
	}
	if b.hasGPU && (!a.hasGPU || b.gpu.Cmp(a.gpu) > 0) {
		a.gpu, a.hasGPU = b.gpu, true
	}
}

// limitsDeclared reports whether the pod's CPU and memory limits bound the
// whole pod, by the rule the kubelet uses to give a pod's cgroup a CPU
// quota or memory limit: a pod-level limit, or a non-zero limit on every
// container, init containers included. With one unlimited container the
// pod can use any amount, and its summed limit is no bound.
func limitsDeclared(p *corev1.Pod) (cpu, memory bool) {
	if len(p.Spec.Containers) == 0 {
		return false, false
	}
	cpu, memory = true, true
	for _, cs := range [][]corev1.Container{p.Spec.Containers, p.Spec.InitContainers} {
		for i := range cs {
			l := cs[i].Resources.Limits
			cpu = cpu && nonZero(l, corev1.ResourceCPU)
			memory = memory && nonZero(l, corev1.ResourceMemory)
		}
	}
	if pl := p.Spec.Resources; pl != nil {
		cpu = cpu || nonZero(pl.Limits, corev1.ResourceCPU)
		memory = memory || nonZero(pl.Limits, corev1.ResourceMemory)
	}
	return cpu, memory
}

func nonZero(l corev1.ResourceList, name corev1.ResourceName) bool {
	q, ok := l[name]
	return ok && !q.IsZero()
}

// ResourceMemo remembers pods' resource totals from one Build to the next,
// keyed by the pod object. Informer objects are replaced on every update,
// never modified, so an object seen before has the same totals; at
// thousands of pods, summing their resource lists was an eighth of the
// aggregator's CPU, for numbers that change only when a pod does. Entries
// of objects a Build no longer sees are dropped after it. A memo serves
// one sequence of Builds, not concurrent ones.
type ResourceMemo struct {
	gen  uint64
	pods map[*corev1.Pod]memoEntry
}

type memoEntry struct {
	r   podResources
	gen uint64
}

// NewResourceMemo returns an empty memo.
func NewResourceMemo() *ResourceMemo {
	return &ResourceMemo{pods: map[*corev1.Pod]memoEntry{}}
}

// resources returns p's totals, from the memo when p was seen before. A
// nil memo computes them every time.
func (m *ResourceMemo) resources(p *corev1.Pod) podResources {
	if m == nil {
		return resourcesOf(p)
	}
	e, ok := m.pods[p]
	if !ok {
		e.r = resourcesOf(p)
	}
	e.gen = m.gen
	m.pods[p] = e
	return e.r
}

// begin starts a Build's use of the memo; end drops what it did not see.
func (m *ResourceMemo) begin() {
	if m != nil {
		m.gen++
	}
}

func (m *ResourceMemo) end() {
	if m == nil {
		return
	}
	for p, e := range m.pods {
		if e.gen != m.gen {
			delete(m.pods, p)
		}
	}
}
