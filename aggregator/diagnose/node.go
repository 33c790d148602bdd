package diagnose

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/events"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/state"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// Node rule ids, in the order the rules are tried (docs/llm.md, "Diagnosis").
const (
	RuleNodeNotReady         = "node-not-ready"
	RuleNodeGPUXid           = "node-gpu-xid"
	RuleNodeMemoryPressure   = "node-memory-pressure"
	RuleNodeDiskPressure     = "node-disk-pressure"
	RuleNodePIDPressure      = "node-pid-pressure"
	RuleNodeNetwork          = "node-network-unavailable"
	RuleNodeCPUPressure      = "node-cpu-pressure"
	RuleNodeStale            = "node-stale"
	RuleNodeCordoned         = "node-cordoned"
	RuleNodeHealthy          = "node-healthy"
	maxTopPods               = 5
	maxNodeEvents            = 200
	gpuEventsWindow          = 24 * time.Hour
	nodeEventReasonSummaries = 6
)

// nodeFacts is what the node rules read.
type nodeFacts struct {
	n      *model.NodeMetrics
	obj    *corev1.Node
	snap   *model.MetricsSnapshot
	pods   []*model.PodMetrics // on this node
	events []events.Event      // about the node, its GPUs and its pods
	gpuEvs []events.Event      // GPUXid and GPUECC within gpuEventsWindow
	now    time.Time
}

// Node diagnoses one node. The error matches ErrNotFound for a node that
// is not in the snapshot.
func (d *Diagnoser) Node(name string) (*Diagnosis, error) {
	f := &nodeFacts{snap: d.opts.State.Snapshot(), now: d.opts.Now()}
	if f.snap == nil {
		return nil, ErrNoSnapshot
	}
	if f.n = f.snap.NodeMetrics[name]; f.n == nil {
		return nil, fmt.Errorf("%w: node %s", ErrNotFound, name)
	}
	if d.opts.Objects != nil {
		f.obj = d.opts.Objects.Node(name)
	}
	for _, p := range f.snap.PodMetrics {
		if p != nil && p.NodeName == name && p.Phase != string(corev1.PodSucceeded) && p.Phase != string(corev1.PodFailed) {
			f.pods = append(f.pods, p)
		}
	}
	if d.opts.Events != nil {
		if p, err := d.opts.Events.List(events.Filter{Node: name, Limit: maxNodeEvents}); err == nil {
			f.events = p.Items
		}
	}
	for _, e := range f.events {
		if (e.Reason == string(model.EventGPUXid) || e.Reason == string(model.EventGPUECC)) && f.now.Sub(e.Time) <= gpuEventsWindow {
			f.gpuEvs = append(f.gpuEvs, e)
		}
	}
	dg := &Diagnosis{Kind: KindNode, Name: name}
	for _, rule := range []func(*Diagnosis, *nodeFacts) bool{
		ruleNodeNotReady, criticalGPU, d.rulePressure, warningGPU, ruleNodeStale, ruleNodeCordoned, ruleNodeHealthy,
	} {
		if rule(dg, f) {
			break
		}
	}
	d.nodeEvidence(dg, f)
	return d.finish(dg), nil
}

func ruleNodeNotReady(dg *Diagnosis, f *nodeFacts) bool {
	if !containsString(f.n.Conditions, state.ConditionNotReady) {
		return false
	}
	why := "the kubelet does not report Ready"
	if c := nodeCondition(f.obj, corev1.NodeReady); c != nil && c.Message != "" {
		why = fmt.Sprintf("Ready is %s (%s): %s", c.Status, c.Reason, oneLine(c.Message))
	}
	if f.n.Stale {
		why += "; its agent has not reported for " + ageText(f.n.ReportAgeSeconds)
	}
	dg.verdict(SeverityCritical, RuleNodeNotReady, "NotReady: %s; %s on it", why, plural(len(f.pods), "pod"))
	return true
}

func criticalGPU(dg *Diagnosis, f *nodeFacts) bool { return gpuRule(dg, f, true) }
func warningGPU(dg *Diagnosis, f *nodeFacts) bool  { return gpuRule(dg, f, false) }

// gpuRule reports GPU XID and ECC events of the last 24 hours: critical
// ones (the GPU needs a reset) before any pressure, the others after.
func gpuRule(dg *Diagnosis, f *nodeFacts, critical bool) bool {
	var worst *events.Event
	for i := range f.gpuEvs {
		e := &f.gpuEvs[i]
		if (e.Severity == model.SeverityCritical) != critical {
			continue
		}
		if worst == nil || e.Time.After(worst.Time) {
			worst = e
		}
	}
	if worst == nil {
		return false
	}
	gpu := ""
	if worst.Object != nil {
		gpu = worst.Object.Name
	}
	users := gpuUsers(f.n, gpu)
	sev := SeverityWarning
	if critical {
		sev = SeverityCritical
	}
	dg.verdict(sev, RuleNodeGPUXid, "GPU errors: %s (%s ×%d, last %s)%s",
		oneLine(worst.Message), worst.Reason, worst.Count, ago(f.now, worst.Time), orEmpty("; pods using "+gpu+": ", users))
	return true
}

// gpuUsers names the pods holding the GPU named "gpu:<index>".
func gpuUsers(n *model.NodeMetrics, gpu string) string {
	idx, err := strconv.Atoi(strings.TrimPrefix(gpu, "gpu:"))
	if err != nil {
		return ""
	}
	var out []string
	for _, g := range n.GPUs {
		if g.Index != idx {
			continue
		}
		for _, p := range g.Pods {
			out = append(out, p.Namespace+"/"+p.Pod)
		}
	}
	return strings.Join(out, ", ")
}

// rulePressure reports the node's pressure: a kubelet condition
// (critical: the kubelet evicts pods) or usage at or above the agents'
// threshold (warning).
func (d *Diagnoser) rulePressure(dg *Diagnosis, f *nodeFacts) bool {
	n, t := f.n, d.opts.Thresholds
	checks := []struct {
		cond      corev1.NodeConditionType
		rule      string
		what      string
		rate, max float64
		usage     string
	}{
		{corev1.NodeMemoryPressure, RuleNodeMemoryPressure, "Memory pressure", n.MemoryUsageRate, t.MemoryRate,
			fmt.Sprintf("memory %s used of %s (%s)", bytesText(n.MemoryUsage), bytesText(n.MemoryCapacity), pct(n.MemoryUsageRate))},
		{corev1.NodeDiskPressure, RuleNodeDiskPressure, "Disk pressure", n.DiskUsageRate, t.DiskRate,
			fmt.Sprintf("disk %s used of %s (%s)", bytesText(n.DiskUsage), bytesText(n.DiskCapacity), pct(n.DiskUsageRate))},
		{corev1.NodePIDPressure, RuleNodePIDPressure, "PID pressure", 0, 0, ""},
		{corev1.NodeNetworkUnavailable, RuleNodeNetwork, "Network unavailable", 0, 0, ""},
	}
	for _, c := range checks {
		condition := containsString(n.Conditions, string(c.cond))
		overThreshold := c.max > 0 && c.rate >= c.max
		if !condition && !overThreshold {
			continue
		}
		sev, why := SeverityWarning, fmt.Sprintf("usage at or above the %s threshold", pct(c.max))
		if condition {
			sev, why = SeverityCritical, "the kubelet reports "+string(c.cond)
			if oc := nodeCondition(f.obj, c.cond); oc != nil && oc.Message != "" {
				why += " (" + oneLine(oc.Message) + ")"
			}
			if c.cond == corev1.NodeMemoryPressure || c.cond == corev1.NodeDiskPressure {
				why += " and evicts pods"
			}
		}
		top := ""
		if c.cond == corev1.NodeMemoryPressure {
			top = "; the top pods by memory: " + topPodsText(f.pods, byMemory, 3)
		}
		dg.verdict(sev, c.rule, "%s: %s%s%s", c.what, why, orEmpty("; ", c.usage), top)
		return true
	}
	if n.CPUCapacity > 0 && n.CPUUsageRate >= t.CPURate {
		dg.verdict(SeverityWarning, RuleNodeCPUPressure, "CPU saturated: %s used of %s (%s, threshold %s); the top pods by CPU: %s",
			cpuText(n.CPUUsage), cpuText(n.CPUCapacity), pct(n.CPUUsageRate), pct(t.CPURate), topPodsText(f.pods, byCPU, 3))
		return true
	}
	return false
}

func ruleNodeStale(dg *Diagnosis, f *nodeFacts) bool {
	if !f.n.Stale {
		return false
	}
	dg.verdict(SeverityWarning, RuleNodeStale, "Stale: its agent has not reported for %s, so its usage numbers are old; the API server still lists it Ready", ageText(f.n.ReportAgeSeconds))
	return true
}

func ruleNodeCordoned(dg *Diagnosis, f *nodeFacts) bool {
	if !f.n.Unschedulable {
		return false
	}
	dg.verdict(SeverityWarning, RuleNodeCordoned, "Cordoned: no new pods are scheduled on it; %s still run there", plural(len(f.pods), "pod"))
	return true
}

func ruleNodeHealthy(dg *Diagnosis, f *nodeFacts) bool {
	n := f.n
	dg.verdict(SeverityOK, RuleNodeHealthy, "Healthy: Ready, no pressure; cpu %s, memory %s, disk %s used; %s",
		pct(n.CPUUsageRate), pct(n.MemoryUsageRate), pct(n.DiskUsageRate), plural(len(f.pods), "pod"))
	return true
}

// nodeEvidence adds conditions, usage, requests against allocatable, the
// top pods, GPUs and recent events.
func (d *Diagnoser) nodeEvidence(dg *Diagnosis, f *nodeFacts) {
	n := f.n
	pressureRule := dg.Rule == RuleNodeMemoryPressure || dg.Rule == RuleNodeDiskPressure || dg.Rule == RuleNodeCPUPressure || dg.Rule == RuleNodePIDPressure
	condRank := rankSupport
	if dg.Rule == RuleNodeNotReady || pressureRule || dg.Rule == RuleNodeNetwork {
		condRank = rankCause
	}
	dg.add(condRank, EvidenceCondition, fmt.Sprintf("conditions: %s; healthy %t, stale %t, cordoned %t",
		cmpOrString(strings.Join(n.Conditions, ", "), "none abnormal"), n.Healthy, n.Stale, n.Unschedulable), n.Timestamp,
		map[string]any{"conditions": n.Conditions, "healthy": n.Healthy, "stale": n.Stale, "unschedulable": n.Unschedulable})
	if f.obj != nil {
		for _, c := range f.obj.Status.Conditions {
			abnormal := (c.Type == corev1.NodeReady) != (c.Status == corev1.ConditionTrue)
			if abnormal && c.Message != "" {
				dg.add(condRank, EvidenceCondition, fmt.Sprintf("%s %s (%s): %s", c.Type, c.Status, c.Reason, oneLine(c.Message)), c.LastTransitionTime.UTC(), nil)
			}
		}
	}
	usageRank := rankContext
	if pressureRule {
		usageRank = rankCause
	}
	dg.add(usageRank, EvidenceMetric, fmt.Sprintf("usage: cpu %s of %s (%s), memory %s of %s (%s), disk %s (%s)%s",
		cpuText(n.CPUUsage), cpuText(n.CPUCapacity), pct(n.CPUUsageRate), bytesText(n.MemoryUsage), bytesText(n.MemoryCapacity), pct(n.MemoryUsageRate),
		bytesText(n.DiskUsage), pct(n.DiskUsageRate), orEmpty("; pressure: ", strings.Join(n.PressureReasons(d.opts.Thresholds), ", "))), n.Timestamp,
		map[string]any{"cpuUsageRate": n.CPUUsageRate, "memoryUsageRate": n.MemoryUsageRate, "diskUsageRate": n.DiskUsageRate})
	if n.Stale {
		dg.add(rankSupport, EvidenceMetric, "agent report age "+ageText(n.ReportAgeSeconds)+": its readings are that old", n.Timestamp, nil)
	}
	d.nodeTrend(dg, f, pressureRule)
	var reqCPU, reqMem int64
	for _, p := range f.pods {
		reqCPU += p.CPURequest
		reqMem += p.MemoryRequest
	}
	if n.CPUAllocatable > 0 || n.MemoryAllocatable > 0 {
		dg.add(rankSupport, EvidenceMetric, fmt.Sprintf("requests against allocatable: cpu %s of %s (%s), memory %s of %s (%s); %s",
			cpuText(reqCPU), cpuText(n.CPUAllocatable), pct(model.Rate(reqCPU, n.CPUAllocatable)),
			bytesText(reqMem), bytesText(n.MemoryAllocatable), pct(model.Rate(reqMem, n.MemoryAllocatable)), plural(len(f.pods), "pod")), n.Timestamp,
			map[string]any{"cpuRequested": reqCPU, "cpuAllocatable": n.CPUAllocatable, "memoryRequested": reqMem, "memoryAllocatable": n.MemoryAllocatable, "pods": len(f.pods)})
	}
	if len(f.pods) > 0 {
		memRank, cpuRank := rankContext, rankContext
		switch dg.Rule {
		case RuleNodeMemoryPressure:
			memRank = rankCause
		case RuleNodeCPUPressure:
			cpuRank = rankCause
		}
		dg.add(memRank, EvidencePod, "top pods by memory: "+topPodsText(f.pods, byMemory, maxTopPods), n.Timestamp, nil)
		dg.add(cpuRank, EvidencePod, "top pods by cpu: "+topPodsText(f.pods, byCPU, maxTopPods), n.Timestamp, nil)
	}
	gpuRank := rankContext
	if dg.Rule == RuleNodeGPUXid {
		gpuRank = rankCause
	}
	for i := range f.gpuEvs {
		if i == maxEventLines {
			break
		}
		e := &f.gpuEvs[i]
		dg.add(gpuRank, EvidenceGPU, eventText(e, f.now), e.Time, map[string]any{"reason": e.Reason, "severity": e.Severity, "count": e.Count})
	}
	for _, g := range n.GPUs {
		dg.add(gpuRank, EvidenceGPU, gpuText(&g), n.Timestamp, map[string]any{"index": g.Index, "uuid": g.UUID, "model": g.Model, "pods": g.Pods})
	}
	nodeEvents, podReasons := splitNodeEvents(f.events)
	addEvents(dg, nodeEvents, f.now)
	if s := podReasons.text(); s != "" {
		dg.add(rankSupport, EvidenceEvent, "warning events of its pods: "+s, time.Time{}, nil)
	}
}

// nodeTrend adds the node's memory over the recent history.
func (d *Diagnoser) nodeTrend(dg *Diagnosis, f *nodeFacts, pressure bool) {
	points, ok := d.opts.State.NodeHistory(f.n.NodeName)
	if !ok {
		return
	}
	from := f.now.Add(-d.opts.MemoryWindow)
	count := 0
	var lo, hi float64
	for _, p := range points {
		if p.Timestamp.Before(from) {
			continue
		}
		if count == 0 || p.MemoryUsageRate < lo {
			lo = p.MemoryUsageRate
		}
		if count == 0 || p.MemoryUsageRate > hi {
			hi = p.MemoryUsageRate
		}
		count++
	}
	if count == 0 {
		return
	}
	rank := rankContext
	if pressure {
		rank = rankSupport
	}
	dg.add(rank, EvidenceMetric, fmt.Sprintf("memory usage over the last %s (%s): %s to %s", d.opts.MemoryWindow, plural(count, "reading"), pct(lo), pct(hi)), time.Time{},
		map[string]any{"minRate": lo, "maxRate": hi, "points": count})
}

// splitNodeEvents keeps the events about the node itself (and its GPUs),
// and tallies its pods' warnings by reason.
func splitNodeEvents(evs []events.Event) ([]events.Event, reasonTally) {
	var own []events.Event
	tally := reasonTally{}
	for _, e := range evs {
		if e.Object != nil && (e.Object.Kind == "Node" || e.Object.Kind == "GPU") {
			if e.Reason != string(model.EventGPUXid) && e.Reason != string(model.EventGPUECC) {
				own = append(own, e)
			}
			continue
		}
		if e.Pod != "" && e.Type == events.TypeWarning {
			tally[e.Reason] += e.Count
		}
	}
	return own, tally
}

type reasonTally map[string]int

func (t reasonTally) text() string {
	type rc struct {
		reason string
		n      int
	}
	var list []rc
	for r, n := range t {
		list = append(list, rc{r, n})
	}
	slices.SortFunc(list, func(a, b rc) int { return cmp.Or(cmp.Compare(b.n, a.n), cmp.Compare(a.reason, b.reason)) })
	var parts []string
	for i, x := range list {
		if i == nodeEventReasonSummaries {
			break
		}
		parts = append(parts, fmt.Sprintf("%s ×%d", x.reason, x.n))
	}
	return strings.Join(parts, ", ")
}

func gpuText(g *model.GPUMetrics) string {
	s := fmt.Sprintf("GPU %d %s (%s): utilization %s, memory %s of %s, %d°C", g.Index, g.Model, g.UUID,
		pct(g.UtilizationRate), bytesText(g.MemoryUsed), bytesText(g.MemoryTotal), g.TemperatureC)
	if g.ECCUncorrected != nil {
		s += fmt.Sprintf(", uncorrected ECC %d", *g.ECCUncorrected)
	}
	if len(g.Pods) > 0 {
		var pods []string
		for _, p := range g.Pods {
			pods = append(pods, p.Namespace+"/"+p.Pod)
		}
		s += "; used by " + strings.Join(pods, ", ")
	} else {
		s += "; free"
	}
	return s
}

const (
	byMemory = iota
	byCPU
)

// topPodsText names the pods using the most memory or CPU.
func topPodsText(pods []*model.PodMetrics, by int, n int) string {
	sorted := slices.Clone(pods)
	slices.SortFunc(sorted, func(a, b *model.PodMetrics) int {
		if by == byCPU {
			return cmp.Or(cmp.Compare(b.CPUUsage, a.CPUUsage), cmp.Compare(a.Key(), b.Key()))
		}
		return cmp.Or(cmp.Compare(b.MemoryUsage, a.MemoryUsage), cmp.Compare(a.Key(), b.Key()))
	})
	var parts []string
	for i, p := range sorted {
		if i == n {
			break
		}
		if by == byCPU {
			parts = append(parts, fmt.Sprintf("%s %s", p.Key(), cpuText(p.CPUUsage)))
			continue
		}
		s := p.Key() + " " + bytesText(p.MemoryUsage)
		if p.MemoryLimit > 0 {
			s += " (limit " + bytesText(p.MemoryLimit) + ")"
		}
		parts = append(parts, s)
	}
	return cmpOrString(strings.Join(parts, ", "), "none")
}

func nodeCondition(n *corev1.Node, t corev1.NodeConditionType) *corev1.NodeCondition {
	if n == nil {
		return nil
	}
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == t {
			return &n.Status.Conditions[i]
		}
	}
	return nil
}

func ageText(seconds float64) string {
	return (time.Duration(seconds) * time.Second).Round(time.Second).String()
}
