package state

import (
	"fmt"
	"math"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// Health rules (docs/health.md says the same for users). The cluster is
//
//   - critical when no node is known, when no node is healthy, when at least
//     CriticalUnhealthyRatio of the nodes are unhealthy, or when the cluster's
//     CPU or memory usage rate is at least CriticalClusterRate;
//   - warning, otherwise, when any node is unhealthy (not Ready, stale, or
//     under pressure per Inputs.Thresholds), any GPU is at or above the
//     temperature threshold or has uncorrected ECC errors, any pod has failed,
//     is in CrashLoopBackOff or restarted within RecentRestartWindow, any
//     container cannot start (image pull or config errors), any of the
//     aggregator's own sources failed, or the cluster's CPU or memory usage
//     rate is at least WarningClusterRate;
//   - healthy otherwise.
//
// Every rule that fires adds one plain-language issue naming the node or pod.
const (
	CriticalUnhealthyRatio = 0.5
	CriticalClusterRate    = 95.0
	WarningClusterRate     = 80.0
)

// MaxIssuesPerKind caps node issues and pod issues separately, so that a
// broken 5000-node cluster yields a readable list and cluster-wide issues
// are never crowded out; a last line says how many were left out.
const MaxIssuesPerKind = 50

// issue is one finding and how bad it is.
type issue struct {
	severity string
	text     string
}

func (b *builder) buildCluster(nodes map[string]*model.NodeMetrics, pods map[string]*model.PodMetrics) *model.ClusterMetrics {
	c := &model.ClusterMetrics{
		Timestamp:   b.now,
		TotalNodes:  len(nodes),
		TotalPods:   len(pods),
		PodsByPhase: map[string]int{},
		Sources:     b.in.Sources,
	}
	var nodeIssues []issue
	for name, n := range nodes {
		info := b.nodeInfo[name]
		if n.Healthy {
			c.HealthyNodes++
		}
		if n.Stale {
			c.StaleNodes++
		}
		if len(info.pressure) > 0 {
			c.NodesUnderPressure++
		}
		// Totals saturate: agents' numbers are bounded, but a Node
		// object's are not, and a wrapped total would turn negative.
		c.TotalCPU = model.AddSaturating(c.TotalCPU, n.CPUCapacity)
		c.UsedCPU = model.AddSaturating(c.UsedCPU, n.CPUUsage)
		c.TotalMemory = model.AddSaturating(c.TotalMemory, n.MemoryCapacity)
		c.UsedMemory = model.AddSaturating(c.UsedMemory, n.MemoryUsage)
		total, avail := b.nodeGPUs(n)
		c.TotalGPUs = addInts(c.TotalGPUs, total)
		c.AvailableGPUs = addInts(c.AvailableGPUs, avail)
		nodeIssues = b.checkNode(nodeIssues, n, info)
	}
	// A cluster cannot use more than all of its CPU or memory; usage
	// above capacity is counter noise or a saturated total.
	c.CPUUsageRate = model.ClampRate(model.Rate(c.UsedCPU, c.TotalCPU))
	c.MemoryUsageRate = model.ClampRate(model.Rate(c.UsedMemory, c.TotalMemory))
	for _, p := range pods {
		phase := p.Phase
		if phase == "" {
			phase = string(corev1.PodUnknown)
		}
		c.PodsByPhase[phase]++
		if p.Phase == string(corev1.PodRunning) {
			c.RunningPods++
		}
	}
	for _, vm := range b.in.VMs {
		if vm == nil {
			continue
		}
		c.TotalVMs++
		if vm.Status != "Running" {
			continue
		}
		// Only running VMs hold CPU and memory on a node.
		c.RunningVMs++
		cpu, mem := vmAllocation(vm)
		c.VMAllocatedCPU = model.AddSaturating(c.VMAllocatedCPU, cpu)
		c.VMAllocatedMemory = model.AddSaturating(c.VMAllocatedMemory, mem)
	}
	c.HealthStatus, c.Issues = b.assessHealth(c, nodeIssues)
	return c
}

// nodeGPUs counts a node's GPUs and those free. NVML detail wins: a GPU is
// free when no pod holds it or one of its MIG devices. Without it, the
// device plugin's allocatable count minus what non-terminated pods on the
// node request.
func (b *builder) nodeGPUs(n *model.NodeMetrics) (total, available int) {
	if len(n.GPUs) > 0 {
		for _, g := range n.GPUs {
			if len(g.Pods) == 0 {
				available++
			}
		}
		return len(n.GPUs), available
	}
	total = n.GPUAllocatable
	if total == 0 {
		total = n.GPUCount
	}
	return total, max(total-b.gpuRequested[n.NodeName], 0)
}

// addInts is AddSaturating for counts.
func addInts(a, b int) int { return int(model.AddSaturating(int64(a), int64(b))) }

func vmAllocation(vm *model.VMMetrics) (cpu, mem int64) {
	if vm.Detail != nil {
		return vm.Detail.AllocatedCPU, vm.Detail.AllocatedMemory
	}
	cpu = model.MulSaturating(vm.CPU, 1000)
	if q, err := resource.ParseQuantity(vm.Memory); err == nil {
		mem = q.Value()
	}
	return cpu, mem
}

func (b *builder) checkNode(out []issue, n *model.NodeMetrics, info nodeInfo) []issue {
	name := n.NodeName
	if info.hasObject && !info.ready {
		out = append(out, issue{model.HealthWarning, "node " + name + " is not ready"})
	}
	if n.Stale {
		out = append(out, issue{model.HealthWarning, fmt.Sprintf(
			"node %s is stale: last agent report %s ago, expected every %s",
			name, roundSeconds(n.ReportAgeSeconds), info.interval)})
	}
	if len(info.pressure) > 0 {
		out = append(out, issue{model.HealthWarning, "node " + name + " is under pressure: " + strings.Join(info.pressure, ", ")})
	}
	for _, g := range n.GPUs {
		if g.TemperatureC >= b.thresholds.GPUTempC {
			out = append(out, issue{model.HealthWarning, fmt.Sprintf(
				"node %s gpu %d (%s) is hot: %d°C >= %d°C", name, g.Index, g.Model, g.TemperatureC, b.thresholds.GPUTempC)})
		}
		if g.ECCUncorrected != nil && *g.ECCUncorrected > 0 {
			out = append(out, issue{model.HealthWarning, fmt.Sprintf(
				"node %s gpu %d (%s) has %d uncorrected ECC errors", name, g.Index, g.Model, *g.ECCUncorrected)})
		}
	}
	return out
}

func roundSeconds(s float64) string {
	if math.IsNaN(s) || math.IsInf(s, 0) {
		return "?"
	}
	return fmt.Sprintf("%.0fs", s)
}

// assessHealth applies the rules documented above and returns the status
// with its issues: cluster-wide first, then nodes, then pods, each sorted.
func (b *builder) assessHealth(c *model.ClusterMetrics, nodeIssues []issue) (string, []string) {
	var cluster []issue
	unhealthy := c.TotalNodes - c.HealthyNodes
	switch {
	case c.TotalNodes == 0:
		cluster = append(cluster, issue{model.HealthCritical, "no nodes known: no Node objects and no agent reports"})
	case c.HealthyNodes == 0:
		cluster = append(cluster, issue{model.HealthCritical, fmt.Sprintf("no healthy node: all %d nodes are unhealthy", c.TotalNodes)})
	case float64(unhealthy) >= CriticalUnhealthyRatio*float64(c.TotalNodes):
		cluster = append(cluster, issue{model.HealthCritical, fmt.Sprintf(
			"%d of %d nodes are unhealthy (%.0f%%, critical at %.0f%%)",
			unhealthy, c.TotalNodes, model.Rate(int64(unhealthy), int64(c.TotalNodes)), CriticalUnhealthyRatio*100)})
	}
	for _, r := range []struct {
		what string
		rate float64
	}{{"cpu", c.CPUUsageRate}, {"memory", c.MemoryUsageRate}} {
		switch {
		case r.rate >= CriticalClusterRate:
			cluster = append(cluster, issue{model.HealthCritical, fmt.Sprintf("cluster %s usage %.1f%% >= %.1f%%", r.what, r.rate, CriticalClusterRate)})
		case r.rate >= WarningClusterRate:
			cluster = append(cluster, issue{model.HealthWarning, fmt.Sprintf("cluster %s usage %.1f%% >= %.1f%%", r.what, r.rate, WarningClusterRate)})
		}
	}
	for name, s := range c.Sources {
		if s.Status == model.SourceFailed {
			msg := "source " + name + " failed"
			if s.Reason != "" {
				msg += ": " + s.Reason
			}
			cluster = append(cluster, issue{model.HealthWarning, msg})
		}
	}

	status := model.HealthHealthy
	all := [][]issue{cluster, nodeIssues, b.podIssues}
	for _, group := range all {
		for _, is := range group {
			status = worse(status, is.severity)
		}
	}
	issues := make([]string, 0, len(cluster)+min(len(nodeIssues), MaxIssuesPerKind+1)+min(len(b.podIssues), MaxIssuesPerKind+1))
	issues = appendSorted(issues, cluster, len(cluster), "")
	issues = appendSorted(issues, nodeIssues, MaxIssuesPerKind, "node")
	issues = appendSorted(issues, b.podIssues, MaxIssuesPerKind, "pod")
	return status, issues
}

func appendSorted(dst []string, group []issue, limit int, kind string) []string {
	texts := make([]string, len(group))
	for i, is := range group {
		texts[i] = is.text
	}
	slices.Sort(texts)
	if len(texts) <= limit {
		return append(dst, texts...)
	}
	dst = append(dst, texts[:limit]...)
	return append(dst, fmt.Sprintf("%d more %s issues not listed", len(texts)-limit, kind))
}

var severityRank = map[string]int{model.HealthHealthy: 0, model.HealthWarning: 1, model.HealthCritical: 2}

func worse(a, b string) string {
	if severityRank[b] > severityRank[a] {
		return b
	}
	return a
}
