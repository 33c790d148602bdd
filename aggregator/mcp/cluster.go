package mcp

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// ClusterOverviewInput are cluster_overview's arguments.
type ClusterOverviewInput struct {
	Budget
}

// GPUOverviewInput are gpu_overview's arguments.
type GPUOverviewInput struct {
	Node string `json:"node,omitempty" jsonschema:"only the GPUs of this node"`
	Budget
}

// clusterSummary is cluster_overview's structured content besides issues.
type clusterSummary struct {
	HealthStatus       string         `json:"healthStatus"`
	TotalNodes         int            `json:"totalNodes"`
	HealthyNodes       int            `json:"healthyNodes"`
	StaleNodes         int            `json:"staleNodes"`
	NodesUnderPressure int            `json:"nodesUnderPressure"`
	TotalPods          int            `json:"totalPods"`
	RunningPods        int            `json:"runningPods"`
	PodsByPhase        map[string]int `json:"podsByPhase,omitempty"`
	UsedCPU            int64          `json:"usedCPU"`
	TotalCPU           int64          `json:"totalCPU"`
	CPUUsageRate       float64        `json:"cpuUsageRate"`
	UsedMemory         int64          `json:"usedMemory"`
	TotalMemory        int64          `json:"totalMemory"`
	MemoryUsageRate    float64        `json:"memoryUsageRate"`
	TotalGPUs          int            `json:"totalGPUs"`
	AvailableGPUs      int            `json:"availableGPUs"`
	TotalVMs           int            `json:"totalVMs"`
	RunningVMs         int            `json:"runningVMs"`
	Timestamp          string         `json:"timestamp"`
}

func (s *Server) clusterOverview(_ context.Context, _ ClusterOverviewInput) (fitter, error) {
	snap, err := s.snapshot()
	if err != nil {
		return nil, err
	}
	c := snap.ClusterMetrics
	if c == nil {
		return nil, errNoSnapshot
	}
	a := newAnswer(fmt.Sprintf("cluster %s: %d of %d nodes healthy, %d under pressure, %d stale; %d of %d pods running",
		orDash(c.HealthStatus), c.HealthyNodes, c.TotalNodes, c.NodesUnderPressure, c.StaleNodes, c.RunningPods, c.TotalPods))
	a.fact("cpu", "%s of %s used (%s), %s free", cpuText(c.UsedCPU), cpuText(c.TotalCPU), pctText(c.CPUUsageRate), cpuText(max(c.TotalCPU-c.UsedCPU, 0)))
	a.fact("memory", "%s of %s used (%s), %s free", bytesText(c.UsedMemory), bytesText(c.TotalMemory), pctText(c.MemoryUsageRate), bytesText(max(c.TotalMemory-c.UsedMemory, 0)))
	if c.TotalGPUs > 0 {
		a.fact("gpus", "%d of %d free", c.AvailableGPUs, c.TotalGPUs)
	}
	if len(c.PodsByPhase) > 0 {
		var phases []string
		for _, ph := range sortedKeys(c.PodsByPhase) {
			phases = append(phases, ph+" "+strconv.Itoa(c.PodsByPhase[ph]))
		}
		a.fact("pods by phase", "%s", strings.Join(phases, ", "))
	}
	if c.TotalVMs > 0 {
		a.fact("vms", "%d of %d running", c.RunningVMs, c.TotalVMs)
	}
	for _, src := range sortedSources(c.Sources) {
		if src.Status != model.SourceOK {
			a.fact("source "+src.Name, "%s %s", src.Status, src.Reason)
		}
	}
	a.fact("as of", "%s", timeText(c.Timestamp))
	a.data["cluster"] = clusterSummary{
		HealthStatus: c.HealthStatus, TotalNodes: c.TotalNodes, HealthyNodes: c.HealthyNodes, StaleNodes: c.StaleNodes,
		NodesUnderPressure: c.NodesUnderPressure, TotalPods: c.TotalPods, RunningPods: c.RunningPods, PodsByPhase: c.PodsByPhase,
		UsedCPU: c.UsedCPU, TotalCPU: c.TotalCPU, CPUUsageRate: round1(c.CPUUsageRate),
		UsedMemory: c.UsedMemory, TotalMemory: c.TotalMemory, MemoryUsageRate: round1(c.MemoryUsageRate),
		TotalGPUs: c.TotalGPUs, AvailableGPUs: c.AvailableGPUs, TotalVMs: c.TotalVMs, RunningVMs: c.RunningVMs,
		Timestamp: timeText(c.Timestamp),
	}
	// The snapshot's issues come cluster-wide first, then nodes, then pods,
	// each kind capped by the builder: already ranked.
	issues := a.section("issues", "issues", "issues:")
	for _, is := range c.Issues {
		issues.add("- "+is, is)
	}
	a.narrow = "list_nodes healthy=false or pressure=true, list_pods phase=!Running or sort=restarts"
	return a, nil
}

// gpuCounts sums up GPUs for gpu_overview's verdict.
type gpuCounts struct {
	GPUs     int            `json:"gpus"`
	Nodes    int            `json:"nodes"`
	InUse    int            `json:"inUse"`
	Free     int            `json:"free"`
	Hot      int            `json:"hot"`
	ECC      int            `json:"withUncorrectedECC"`
	MeanUtil float64        `json:"meanUtilizationRate"`
	Models   map[string]int `json:"models"`
}

func (s *Server) gpuOverview(_ context.Context, in GPUOverviewInput) (fitter, error) {
	snap, err := s.snapshot()
	if err != nil {
		return nil, err
	}
	if in.Node != "" && snap.NodeMetrics[in.Node] == nil {
		return nil, notFoundf("node %q not found; list_nodes sort=gpu lists the nodes with GPUs", in.Node)
	}
	t := s.q.Thresholds()
	var rows []gpuRow
	var bare []*model.NodeMetrics // GPUs known only from the Node object
	counts := gpuCounts{Models: map[string]int{}}
	var utilSum float64
	for _, name := range sortedKeys(snap.NodeMetrics) {
		n := snap.NodeMetrics[name]
		if n == nil || (in.Node != "" && name != in.Node) || (n.GPUCount == 0 && len(n.GPUs) == 0) {
			continue
		}
		counts.Nodes++
		if len(n.GPUs) == 0 {
			bare = append(bare, n)
			counts.GPUs += n.GPUCount
			for _, m := range n.GPUModels {
				counts.Models[m]++
			}
			continue
		}
		for _, g := range n.GPUs {
			r := newGPURow(name, g, t)
			rows = append(rows, r)
			counts.GPUs++
			counts.Models[g.Model]++
			utilSum += g.UtilizationRate
			if len(g.Pods) > 0 {
				counts.InUse++
			} else {
				counts.Free++
			}
			if t.GPUTempC > 0 && g.TemperatureC >= t.GPUTempC {
				counts.Hot++
			}
			if g.ECCUncorrected != nil && *g.ECCUncorrected > 0 {
				counts.ECC++
			}
		}
	}
	if len(rows) > 0 {
		counts.MeanUtil = round1(utilSum / float64(len(rows)))
	}
	// Problems first, then the busiest.
	slices.SortStableFunc(rows, func(a, b gpuRow) int {
		return cmp.Or(cmp.Compare(len(b.Problems), len(a.Problems)), cmp.Compare(b.Utilization, a.Utilization),
			cmp.Compare(b.MemoryRate, a.MemoryRate))
	})
	var verdict string
	switch {
	case counts.GPUs == 0:
		verdict = "no GPUs in the cluster"
		if in.Node != "" {
			verdict = "no GPUs on node " + in.Node
		}
	case counts.Hot+counts.ECC > 0:
		verdict = fmt.Sprintf("attention: %d hot and %d with uncorrected ECC errors among %d GPUs on %s",
			counts.Hot, counts.ECC, counts.GPUs, plural(counts.Nodes, "node"))
	default:
		verdict = fmt.Sprintf("%d GPUs on %s look healthy: none hot (>= %d°C), no uncorrected ECC errors", counts.GPUs, plural(counts.Nodes, "node"), t.GPUTempC)
	}
	a := newAnswer(verdict)
	if len(rows) > 0 {
		a.fact("in use", "%d held by pods, %d free, mean utilization %s", counts.InUse, counts.Free, pctText(counts.MeanUtil))
	}
	var models []string
	for _, m := range sortedKeys(counts.Models) {
		models = append(models, fmt.Sprintf("%s x%d", m, counts.Models[m]))
	}
	if len(models) > 0 {
		a.fact("models", "%s", strings.Join(models, ", "))
	}
	a.data["summary"] = counts
	a.data["total"] = len(rows)
	sec := a.section("gpus", "GPUs", "node index model util mem temp power pods problems")
	for _, r := range rows[:min(len(rows), rowCap(in.MaxTokens))] {
		sec.add(gpuLine(r, true), r)
	}
	sec.total = len(rows)
	noDetail := a.section("nodesWithoutReadings", "nodes without GPU readings", "nodes with GPUs but no readings from the agent (NVML): node gpus")
	for _, n := range bare {
		noDetail.add(n.NodeName+" "+strconv.Itoa(n.GPUCount), map[string]any{"node": n.NodeName, "gpus": n.GPUCount})
	}
	a.narrow = "node"
	return a, nil
}
