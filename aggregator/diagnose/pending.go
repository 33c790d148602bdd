package diagnose

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	resourcehelper "k8s.io/component-helpers/resource"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/state"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/terminations"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// maxNodeLines bounds the per-node lines of a pending pod's evidence.
const maxNodeLines = 8

// nodeFit is why one node can or cannot take a pending pod.
type nodeFit struct {
	name                  string
	freeCPU, freeMem      int64
	freeGPU               int
	lackCPU, lackMem      bool
	lackGPU               bool
	taint                 string // an untolerated NoSchedule or NoExecute taint
	affinity, cordoned    bool
	notReady              bool
	allocCPU, allocMemory int64
}

func (n *nodeFit) roomy() bool { return !n.lackCPU && !n.lackMem && !n.lackGPU }

func (n *nodeFit) fits() bool {
	return n.roomy() && n.taint == "" && !n.affinity && !n.cordoned && !n.notReady
}

func (n *nodeFit) reasons() []string {
	var out []string
	if n.lackCPU {
		out = append(out, "free cpu "+cpuText(n.freeCPU))
	}
	if n.lackMem {
		out = append(out, "free memory "+bytesText(n.freeMem))
	}
	if n.lackGPU {
		out = append(out, fmt.Sprintf("%d free GPUs", n.freeGPU))
	}
	if n.taint != "" {
		out = append(out, "taint "+n.taint)
	}
	if n.affinity {
		out = append(out, "node selector or affinity does not match")
	}
	if n.cordoned {
		out = append(out, "cordoned")
	}
	if n.notReady {
		out = append(out, "NotReady")
	}
	return out
}

// podRequest is what the pod asks of a node, by Kubernetes' own rule
// (component-helpers' PodRequests: init containers, sidecars, overhead).
type podRequest struct {
	cpu, memory int64
	gpus        int
}

func (r podRequest) String() string {
	s := "cpu " + cpuText(r.cpu) + ", memory " + bytesText(r.memory)
	if r.gpus > 0 {
		s += fmt.Sprintf(", %d GPUs", r.gpus)
	}
	return s
}

// rulePending explains a pod the scheduler has not placed: the scheduler's
// own words (PodScheduled condition, FailedScheduling events) and which
// nodes have room for its requests, from the snapshot's allocatable minus
// the requests of the pods already there, and which taints block it.
func (d *Diagnoser) rulePending(dg *Diagnosis, f *podFacts, _ *containerFacts) bool {
	if f.phase != string(corev1.PodPending) || f.node != "" {
		return false
	}
	schedMsg := ""
	if f.obj != nil {
		for _, c := range f.obj.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
				schedMsg = oneLine(c.Message)
				dg.add(rankCause, EvidenceScheduling, fmt.Sprintf("PodScheduled False (%s): %s", c.Reason, schedMsg), c.LastTransitionTime.UTC(), nil)
			}
		}
	}
	failed, last := f.eventCount("FailedScheduling")
	if schedMsg == "" && last != nil {
		schedMsg = oneLine(last.Message)
	}
	if f.obj == nil || f.snap == nil {
		dg.verdict(SeverityWarning, RulePodPending, "Pending: not scheduled yet%s", orEmpty("; the scheduler says: ", schedMsg))
		return true
	}
	req := requestOf(f.obj)
	fits := d.nodeFits(f, req)
	var fitting, roomy []*nodeFit
	for i := range fits {
		if fits[i].fits() {
			fitting = append(fitting, &fits[i])
		}
		if fits[i].roomy() {
			roomy = append(roomy, &fits[i])
		}
	}
	d.addFits(dg, f, req, fits, fitting)
	said := orEmpty("; the scheduler says: ", terminations.Truncate(withoutPreemption(schedMsg), 200))
	switch {
	case len(fits) == 0:
		dg.verdict(SeverityWarning, RulePodPending, "Pending: there are no nodes to schedule it on%s", said)
	case len(roomy) == 0:
		dg.verdict(SeverityCritical, RulePodPendingResources, "Pending: no node has room for its requests (%s): %s%s", req, mostFree(fits), said)
	case len(fitting) == 0 && allTainted(roomy):
		dg.verdict(SeverityCritical, RulePodPendingTaint, "Pending: the nodes with room for it have taints it does not tolerate: %s%s", taintsOf(roomy), said)
	case len(fitting) == 0:
		dg.verdict(SeverityCritical, RulePodUnschedulable, "Pending: the nodes with room for it are excluded: %s%s", excludedText(roomy), said)
	case schedMsg != "" || failed > 0:
		dg.verdict(SeverityCritical, RulePodUnschedulable, "Pending: the scheduler cannot place it although %d nodes have room for its requests and accept it (%s), so the cause is elsewhere (pod affinity, volumes, ports)%s",
			len(fitting), namesOf(fitting, 5), said)
	default:
		dg.verdict(SeverityWarning, RulePodPending, "Pending: not scheduled yet; %d nodes have room for it (%s)", len(fitting), namesOf(fitting, 5))
	}
	return true
}

// withoutPreemption drops the scheduler's note on preemption, which
// repeats the node count and rarely helps a reader.
func withoutPreemption(msg string) string {
	if i := strings.Index(msg, " preemption: "); i > 0 {
		return strings.TrimSpace(msg[:i])
	}
	return msg
}

func orEmpty(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}

func requestOf(p *corev1.Pod) podRequest {
	rl := resourcehelper.PodRequests(p, resourcehelper.PodResourcesOptions{})
	r := podRequest{cpu: rl.Cpu().MilliValue(), memory: rl.Memory().Value()}
	if q, ok := rl[state.ResourceGPU]; ok {
		r.gpus = int(q.Value())
	}
	return r
}

// nodeFits checks every node of the snapshot, in name order.
func (d *Diagnoser) nodeFits(f *podFacts, req podRequest) []nodeFit {
	requested := requestedByNode(f.snap)
	affinity := nodeaffinity.GetRequiredNodeAffinity(f.obj)
	noSchedule := func(t *corev1.Taint) bool {
		return t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute
	}
	out := make([]nodeFit, 0, len(f.snap.NodeMetrics))
	for name, n := range f.snap.NodeMetrics {
		if n == nil {
			continue
		}
		r := requested[name]
		nf := nodeFit{name: name, allocCPU: n.CPUAllocatable, allocMemory: n.MemoryAllocatable,
			freeCPU: n.CPUAllocatable - r.cpu, freeMem: n.MemoryAllocatable - r.memory,
			freeGPU: n.GPUAllocatable - gpusHeld(n), cordoned: n.Unschedulable, notReady: containsString(n.Conditions, "NotReady")}
		nf.lackCPU = req.cpu > 0 && req.cpu > nf.freeCPU
		nf.lackMem = req.memory > 0 && req.memory > nf.freeMem
		nf.lackGPU = req.gpus > 0 && req.gpus > nf.freeGPU
		if d.opts.Objects != nil {
			if obj := d.opts.Objects.Node(name); obj != nil {
				if t, bad := corev1helpers.FindMatchingUntoleratedTaint(klog.Background(), obj.Spec.Taints, f.obj.Spec.Tolerations, noSchedule, false); bad {
					nf.taint = taintText(&t)
				}
				if ok, err := affinity.Match(obj); err != nil || !ok {
					nf.affinity = true
				}
			}
		}
		out = append(out, nf)
	}
	slices.SortFunc(out, func(a, b nodeFit) int { return cmp.Compare(a.name, b.name) })
	return out
}

type requests struct{ cpu, memory int64 }

// requestedByNode sums the requests of the pods bound to each node that
// still hold them (not Succeeded or Failed), as the snapshot has them.
func requestedByNode(s *model.MetricsSnapshot) map[string]requests {
	out := map[string]requests{}
	for _, p := range s.PodMetrics {
		if p == nil || p.NodeName == "" || p.Phase == string(corev1.PodSucceeded) || p.Phase == string(corev1.PodFailed) {
			continue
		}
		r := out[p.NodeName]
		r.cpu += p.CPURequest
		r.memory += p.MemoryRequest
		out[p.NodeName] = r
	}
	return out
}

// gpusHeld counts the node's GPUs that pods hold.
func gpusHeld(n *model.NodeMetrics) int {
	held := 0
	for _, g := range n.GPUs {
		if len(g.Pods) > 0 {
			held++
		}
	}
	return held
}

func taintText(t *corev1.Taint) string {
	s := t.Key
	if t.Value != "" {
		s += "=" + t.Value
	}
	return s + ":" + string(t.Effect)
}

// addFits adds the scheduling evidence: a summary, then the nodes that
// fit and the closest ones that do not.
func (d *Diagnoser) addFits(dg *Diagnosis, f *podFacts, req podRequest, fits []nodeFit, fitting []*nodeFit) {
	dg.add(rankCause, EvidenceScheduling, fmt.Sprintf("requests %s; fits on %d of %d nodes by requests, taints, selectors and readiness%s",
		req, len(fitting), len(fits), orEmpty(": ", namesOf(fitting, 10))), f.now,
		map[string]any{"cpuRequest": req.cpu, "memoryRequest": req.memory, "gpuRequest": req.gpus, "nodes": len(fits), "fitting": len(fitting)})
	// The nodes closest to fitting first: fewest reasons, then most free memory.
	others := make([]*nodeFit, 0, len(fits))
	for i := range fits {
		if !fits[i].fits() {
			others = append(others, &fits[i])
		}
	}
	slices.SortStableFunc(others, func(a, b *nodeFit) int {
		return cmp.Or(cmp.Compare(len(a.reasons()), len(b.reasons())), cmp.Compare(b.freeMem, a.freeMem))
	})
	for i, n := range others {
		if i == maxNodeLines {
			break
		}
		dg.add(rankSupport, EvidenceScheduling, fmt.Sprintf("node %s does not fit: %s (allocatable cpu %s, memory %s)",
			n.name, strings.Join(n.reasons(), ", "), cpuText(n.allocCPU), bytesText(n.allocMemory)), f.now,
			map[string]any{"node": n.name, "freeCpu": n.freeCPU, "freeMemory": n.freeMem, "taint": n.taint})
	}
	if len(others) > maxNodeLines {
		dg.add(rankSupport, EvidenceScheduling, fmt.Sprintf("%d more nodes do not fit", len(others)-maxNodeLines), f.now, nil)
	}
}

// mostFree names the nodes with the most free cpu and memory.
func mostFree(fits []nodeFit) string {
	var cpu, mem *nodeFit
	for i := range fits {
		n := &fits[i]
		if cpu == nil || n.freeCPU > cpu.freeCPU {
			cpu = n
		}
		if mem == nil || n.freeMem > mem.freeMem {
			mem = n
		}
	}
	return fmt.Sprintf("the most free cpu is %s on %s, the most free memory %s on %s",
		cpuText(max(cpu.freeCPU, 0)), cpu.name, bytesText(max(mem.freeMem, 0)), mem.name)
}

func allTainted(nodes []*nodeFit) bool {
	for _, n := range nodes {
		if n.taint == "" {
			return false
		}
	}
	return true
}

func taintsOf(nodes []*nodeFit) string {
	var parts []string
	for i, n := range nodes {
		if i == 5 {
			parts = append(parts, fmt.Sprintf("and %d more", len(nodes)-5))
			break
		}
		parts = append(parts, n.name+" ("+n.taint+")")
	}
	return strings.Join(parts, ", ")
}

func excludedText(nodes []*nodeFit) string {
	var parts []string
	for i, n := range nodes {
		if i == 5 {
			parts = append(parts, fmt.Sprintf("and %d more", len(nodes)-5))
			break
		}
		parts = append(parts, n.name+" ("+strings.Join(n.reasons(), ", ")+")")
	}
	return strings.Join(parts, ", ")
}

func namesOf(nodes []*nodeFit, limit int) string {
	var parts []string
	for i, n := range nodes {
		if i == limit {
			parts = append(parts, fmt.Sprintf("and %d more", len(nodes)-limit))
			break
		}
		parts = append(parts, n.name)
	}
	return strings.Join(parts, ", ")
}
