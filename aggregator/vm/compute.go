package vm

import (
	"cmp"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/state"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// nsName identifies a pod or PVC; a struct key, not a joined string, so
// that indexing tens of thousands of pods allocates no keys.
type nsName struct{ ns, name string }

// entry is an Object with what merging found: the UID of the VMI behind
// it (what launcher pods point to) and the namespace to look in.
type entry struct {
	Object
	vmiUID string
	vmiNS  string
}

// Compute builds the VM views from parsed objects, the informers' pods,
// metrics-server pod usage ("namespace/name" keys, nil when absent) and
// the agents' latest reports. It is pure and batch: every lookup goes
// through indexes built once, so n VMs among p pods cost O(n + p) and no
// API call. A VM whose pod or numbers are missing gets nil Metrics; it
// never drops the others. The result is sorted by namespace and name.
func Compute(objs []Object, pods []*corev1.Pod, podUsage map[string]state.Usage, reports map[string]state.ReportEntry, now time.Time) []*model.VMMetrics {
	entries := merge(objs)
	idx := indexPods(pods)
	now = now.UTC()

	// First pass: find each VM's launcher pod and note which pods need
	// kubelet stats and which PVCs need volume stats, so the reports are
	// read once and only what is needed is kept.
	launchers := make([]*corev1.Pod, len(entries))
	needPods := map[nsName]struct{}{}
	needNodes := map[string]struct{}{}
	needPVCs := map[nsName]struct{}{}
	for i := range entries {
		e := &entries[i]
		p := idx.launcher(e)
		launchers[i] = p
		if p == nil {
			continue
		}
		if e.vmiNS == "" {
			e.vmiNS = p.Namespace
		}
		if !isRunning(e.Phase) {
			continue
		}
		if _, ok := podUsage[key(p.Namespace, p.Name)]; !ok && p.Spec.NodeName != "" {
			needPods[nsName{p.Namespace, p.Name}] = struct{}{}
			needNodes[p.Spec.NodeName] = struct{}{}
		}
		for _, c := range e.PVCs {
			needPVCs[nsName{e.vmiNS, c.Name}] = struct{}{}
		}
	}
	kstats := kubeletPods(reports, needNodes, needPods)
	vols := volumes(reports, needPVCs)

	out := make([]*model.VMMetrics, 0, len(entries))
	for i := range entries {
		e := &entries[i]
		p := launchers[i]
		m := view(e, p, now)
		if p != nil && isRunning(e.Phase) {
			m.Metrics = usage(e, p, m.Detail, podUsage, kstats, vols)
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b *model.VMMetrics) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name),
			cmp.Compare(a.Source, b.Source), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// merge joins a custom resource with the VMI it manages (same namespace,
// VMI name = the resource's vmName) into one VM, so a VM is listed and
// counted once when both sources are on. The custom resource keeps its
// identity (what its users created and know); the VMI adds its UID for
// pod matching and, like the seed's GetVMStatus, its live phase and node.
func merge(objs []Object) []entry {
	vmis := map[nsName]int{}
	vmiByName := map[string][]int{}
	for i := range objs {
		if objs[i].Source == SourceKubeVirt && objs[i].Name != "" {
			vmis[nsName{objs[i].Namespace, objs[i].Name}] = i
			vmiByName[objs[i].Name] = append(vmiByName[objs[i].Name], i)
		}
	}
	claimed := make([]bool, len(objs))
	out := make([]entry, 0, len(objs))
	for i := range objs {
		o := objs[i]
		if o.Source == SourceKubeVirt || o.Name == "" {
			continue
		}
		e := entry{Object: o, vmiNS: o.Namespace}
		j, ok := vmis[nsName{o.Namespace, o.VMName}]
		if !ok && o.Namespace == "" && len(vmiByName[o.VMName]) == 1 {
			// A cluster-scoped resource names its VMI without a
			// namespace; take it only when that is unambiguous.
			j, ok = vmiByName[o.VMName][0], true
		}
		if ok && !claimed[j] {
			claimed[j] = true
			enrich(&e, objs[j])
		}
		out = append(out, e)
	}
	for i := range objs {
		o := objs[i]
		if o.Source != SourceKubeVirt || o.Name == "" || claimed[i] {
			continue
		}
		out = append(out, entry{Object: o, vmiUID: o.UID, vmiNS: o.Namespace})
	}
	return out
}

func enrich(e *entry, vmi Object) {
	e.vmiUID = vmi.UID
	e.vmiNS = vmi.Namespace
	if e.Namespace == "" {
		e.Namespace = vmi.Namespace
	}
	if vmi.Phase != "" && vmi.Phase != phaseUnknown {
		e.Phase = vmi.Phase
	}
	if vmi.Node != "" {
		e.Node = vmi.Node
	}
	if e.CPU == 0 {
		e.CPU = vmi.CPU
	}
	if e.Memory == 0 && e.MemoryQuantity == "" {
		e.Memory, e.MemoryQuantity = vmi.Memory, vmi.MemoryQuantity
	}
	if len(e.Interfaces) == 0 {
		e.Interfaces = vmi.Interfaces
	}
	// The resource's volumes carry capacities; the VMI may list more
	// disks. Copy before appending: the slices are shared.
	var extra []PVC
	for _, c := range vmi.PVCs {
		if !slices.ContainsFunc(e.PVCs, func(p PVC) bool { return p.Name == c.Name }) {
			extra = append(extra, c)
		}
	}
	if len(extra) > 0 {
		e.PVCs = append(slices.Clip(e.PVCs), extra...)
	}
}

// podIndex holds the pods that could be launchers, by each link KubeVirt
// puts on them.
type podIndex struct {
	byLabel  map[string][]*corev1.Pod    // kubevirt.io/created-by = VMI UID
	byOwner  map[types.UID][]*corev1.Pod // owner reference to a VMI
	byDomain map[string][]*corev1.Pod    // kubevirt.io/domain = VMI name
	byName   map[string][]*corev1.Pod    // virt-launcher-{vmName}-{hash}
}

func indexPods(pods []*corev1.Pod) *podIndex {
	idx := &podIndex{
		byLabel:  map[string][]*corev1.Pod{},
		byOwner:  map[types.UID][]*corev1.Pod{},
		byDomain: map[string][]*corev1.Pod{},
		byName:   map[string][]*corev1.Pod{},
	}
	for _, p := range pods {
		if p == nil {
			continue
		}
		if v := p.Labels[LabelCreatedBy]; v != "" {
			idx.byLabel[v] = append(idx.byLabel[v], p)
		}
		for _, r := range p.OwnerReferences {
			if r.Kind == KindVMI && r.UID != "" {
				idx.byOwner[r.UID] = append(idx.byOwner[r.UID], p)
			}
		}
		if v := p.Annotations[AnnotationDomain]; v != "" {
			idx.byDomain[v] = append(idx.byDomain[v], p)
		}
		if vm, ok := launcherVMName(p.Name); ok {
			idx.byName[vm] = append(idx.byName[vm], p)
		}
	}
	return idx
}

// launcherVMName reads vmName from virt-launcher-{vmName}-{hash}. The
// hash is the last dash-separated part; vmName may hold dashes itself.
func launcherVMName(pod string) (string, bool) {
	rest, ok := strings.CutPrefix(pod, LauncherPrefix)
	if !ok {
		return "", false
	}
	i := strings.LastIndexByte(rest, '-')
	if i <= 0 || i == len(rest)-1 {
		return "", false
	}
	return rest[:i], true
}

// launcher applies KubeVirt's links in order of strength: the UID label and
// owner reference cannot name another VM; the domain annotation and the
// seed's name pattern are checked against the namespace.
func (idx *podIndex) launcher(e *entry) *corev1.Pod {
	if e.vmiUID != "" {
		if p := pick(idx.byLabel[e.vmiUID], "", e.Node); p != nil {
			return p
		}
		if p := pick(idx.byOwner[types.UID(e.vmiUID)], "", e.Node); p != nil {
			return p
		}
	}
	if p := pick(idx.byDomain[e.VMName], e.vmiNS, e.Node); p != nil {
		return p
	}
	return pick(idx.byName[e.VMName], e.vmiNS, e.Node)
}

// pick chooses among candidate pods (several during a live migration or
// after a restart): a live pod before a finished one, then the one on the
// VM's node, then a running one, then the newest.
func pick(cands []*corev1.Pod, ns, node string) *corev1.Pod {
	var best *corev1.Pod
	for _, p := range cands {
		if ns != "" && p.Namespace != ns {
			continue
		}
		if best == nil || podBefore(p, best, node) {
			best = p
		}
	}
	return best
}

func podBefore(a, b *corev1.Pod, node string) bool {
	rank := func(p *corev1.Pod) [3]bool {
		done := p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed || p.DeletionTimestamp != nil
		return [3]bool{!done, node != "" && p.Spec.NodeName == node, p.Status.Phase == corev1.PodRunning}
	}
	ra, rb := rank(a), rank(b)
	for i := range ra {
		if ra[i] != rb[i] {
			return ra[i]
		}
	}
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return b.CreationTimestamp.Before(&a.CreationTimestamp)
	}
	return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name)) < 0
}

// kubeletPods finds the needed pods' kubelet stats in their nodes' reports.
func kubeletPods(reports map[string]state.ReportEntry, nodes map[string]struct{}, need map[nsName]struct{}) map[nsName]*model.PodStats {
	out := make(map[nsName]*model.PodStats, len(need))
	for node := range nodes {
		r := reports[node].Report
		if r == nil || r.Kubelet == nil {
			continue
		}
		for i := range r.Kubelet.Pods {
			ps := &r.Kubelet.Pods[i]
			k := nsName{ps.Namespace, ps.Name}
			if _, ok := need[k]; ok {
				out[k] = ps
			}
		}
	}
	return out
}

// vol is the volume stats chosen for one PVC.
type vol struct {
	stats *model.VolumeStats
	node  string
	at    time.Time
}

// volumes finds the needed PVCs in any node's kubelet volume stats: the
// PVC is mounted by the launcher pod, but during a migration by two, and
// the pod list may lag the reports. Known usage wins over unknown, then
// the newer report, then the node name, so the choice is stable.
func volumes(reports map[string]state.ReportEntry, need map[nsName]struct{}) map[nsName]vol {
	out := make(map[nsName]vol, len(need))
	if len(need) == 0 {
		return out
	}
	for node, re := range reports {
		if re.Report == nil || re.Report.Kubelet == nil {
			continue
		}
		for i := range re.Report.Kubelet.Pods {
			ps := &re.Report.Kubelet.Pods[i]
			for j := range ps.Volumes {
				v := &ps.Volumes[j]
				if v.PVCName == "" {
					continue
				}
				k := nsName{v.PVCNamespace, v.PVCName}
				if _, ok := need[k]; !ok {
					continue
				}
				cand := vol{stats: v, node: node, at: re.ReceivedAt}
				if old, ok := out[k]; !ok || volBefore(cand, old) {
					out[k] = cand
				}
			}
		}
	}
	return out
}

func volBefore(a, b vol) bool {
	if ak, bk := a.stats.UsedBytes != nil, b.stats.UsedBytes != nil; ak != bk {
		return ak
	}
	if !a.at.Equal(b.at) {
		return a.at.After(b.at)
	}
	return a.node < b.node
}

// view is the VM without usage.
func view(e *entry, p *corev1.Pod, now time.Time) *model.VMMetrics {
	m := &model.VMMetrics{
		ID:        e.UID,
		Name:      e.Name,
		Namespace: e.Namespace,
		Status:    e.Phase,
		CPU:       cores(e.CPU),
		Memory:    e.MemoryQuantity,
		Node:      e.Node,
		Source:    e.Source,
		Timestamp: now,
		Detail: &model.VMDetail{
			AllocatedCPU:    e.CPU,
			AllocatedMemory: e.Memory,
			Interfaces:      interfaceStrings(e.Interfaces),
		},
	}
	if m.Memory == "" && e.Memory > 0 {
		m.Memory = formatBytes(e.Memory)
	}
	if m.Namespace == "" {
		m.Namespace = e.vmiNS
	}
	if p != nil {
		m.Detail.LauncherPod = p.Name
		if m.Node == "" {
			m.Node = p.Spec.NodeName
		}
	}
	if len(e.PVCs) > 0 {
		m.Detail.PVCs = make([]string, len(e.PVCs))
		for i, c := range e.PVCs {
			m.Detail.PVCs[i] = c.Name
			m.Detail.DiskCapacity = model.AddSaturating(m.Detail.DiskCapacity, c.Capacity)
		}
	}
	return m
}

// usage turns the launcher pod's numbers into percentages of what the VM
// was allocated, and fills the disk part of d. It returns nil when the pod
// has no numbers or an allocation is unknown: a share of an unknown size
// would be made up.
func usage(e *entry, p *corev1.Pod, d *model.VMDetail, podUsage map[string]state.Usage, kstats map[nsName]*model.PodStats, vols map[nsName]vol) *model.VMUsage {
	var cpu, mem int64
	if u, ok := podUsage[key(p.Namespace, p.Name)]; ok {
		cpu, mem = u.CPU, u.Memory
	} else if ps := kstats[nsName{p.Namespace, p.Name}]; ps != nil && (ps.UID == "" || ps.UID == string(p.UID)) {
		cpu, mem = ps.CPUUsage, ps.MemoryWorkingSet
	} else {
		return nil
	}
	if e.CPU <= 0 || e.Memory <= 0 {
		return nil
	}
	u := &model.VMUsage{
		CPUUsage:    model.Rate(cpu, e.CPU),
		MemoryUsage: model.Rate(mem, e.Memory),
	}
	disk(e, d, u, vols)
	return u
}

// disk sums the VM's PVCs. Capacity counts every PVC whose size is known;
// usage only those whose used bytes are known too (block-mode volumes
// report none), so a VM with one filesystem and one block disk shows the
// filesystem's usage and diskUsage stays nil only when nothing is known.
func disk(e *entry, d *model.VMDetail, u *model.VMUsage, vols map[nsName]vol) {
	var capTotal, usedTotal, measuredCap int64
	known := false
	for _, c := range e.PVCs {
		capacity := c.Capacity
		var used *int64
		if v, ok := vols[nsName{e.vmiNS, c.Name}]; ok {
			if v.stats.CapacityBytes != nil && *v.stats.CapacityBytes > 0 {
				capacity = *v.stats.CapacityBytes
			}
			used = v.stats.UsedBytes
		}
		// Saturating: agents' volume sizes are only non-negative (a
		// network filesystem reports 8 EiB), so two could wrap a sum.
		capTotal = model.AddSaturating(capTotal, capacity)
		if used != nil && capacity > 0 {
			known = true
			usedTotal = model.AddSaturating(usedTotal, *used)
			measuredCap = model.AddSaturating(measuredCap, capacity)
		}
	}
	d.DiskCapacity = capTotal
	if !known {
		return
	}
	d.DiskUsed = &usedTotal
	r := model.Rate(usedTotal, measuredCap)
	u.DiskUsage = &r
}

func isRunning(phase string) bool {
	return strings.EqualFold(phase, PhaseRunning)
}
