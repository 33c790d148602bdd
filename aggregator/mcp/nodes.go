package mcp

import (
	"cmp"
	"context"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// ListNodesInput are list_nodes' arguments: the query parameters of
// GET /api/v1/metrics/nodes.
type ListNodesInput struct {
	Sort     string   `json:"sort,omitempty" jsonschema:"order by usage rate, highest first: cpu, memory, disk or gpu; without sort and order the most relevant come first (unhealthy, under pressure, then highest usage)"`
	Order    string   `json:"order,omitempty" jsonschema:"asc or desc; desc by default with sort, name order without"`
	Limit    int      `json:"limit,omitempty" jsonschema:"at most this many nodes"`
	Pressure *bool    `json:"pressure,omitempty" jsonschema:"only nodes under resource pressure (true) or not (false)"`
	Healthy  *bool    `json:"healthy,omitempty" jsonschema:"only healthy (true) or unhealthy (false) nodes"`
	Stale    *bool    `json:"stale,omitempty" jsonschema:"only nodes whose agent missed its reports (true) or not (false)"`
	Label    []string `json:"label,omitempty" jsonschema:"label selectors, all must match: key=value, or key alone for existence"`
	Budget
}

// GetNodeInput are get_node's arguments.
type GetNodeInput struct {
	Name string `json:"name" jsonschema:"the node's name"`
	Budget
}

// nodeRow is a node in list_nodes' structured content.
type nodeRow struct {
	Name     string   `json:"name"`
	Status   string   `json:"status"`
	CPU      *float64 `json:"cpuUsageRate"`
	Memory   *float64 `json:"memoryUsageRate"`
	Disk     *float64 `json:"diskUsageRate"`
	GPU      *float64 `json:"gpuUsageRate,omitempty"`
	GPUs     int      `json:"gpuCount,omitempty"`
	Pressure []string `json:"pressure,omitempty"`
}

// nodeStatus says in words how a node is: healthy or not, and stale,
// cordoned, under pressure.
func nodeStatus(n *model.NodeMetrics, pressure []string) string {
	parts := []string{"healthy"}
	if !n.Healthy {
		parts[0] = "unhealthy"
	}
	if n.Stale {
		parts = append(parts, "stale")
	}
	if n.Unschedulable {
		parts = append(parts, "cordoned")
	}
	if len(pressure) > 0 {
		parts = append(parts, "pressure")
	}
	return strings.Join(parts, ",")
}

// nodeRates are the node's usage rates, nil where unknown (no usage
// source, no capacity, no GPU): unknown is not zero.
func nodeRates(n *model.NodeMetrics) (cpu, mem, disk, gpu *float64) {
	if n.UsageSource != "" && n.CPUCapacity > 0 {
		cpu = new(round1(n.CPUUsageRate))
	}
	if n.UsageSource != "" && n.MemoryCapacity > 0 {
		mem = new(round1(n.MemoryUsageRate))
	}
	if n.DiskCapacity > 0 {
		disk = new(round1(n.DiskUsageRate))
	}
	if g, ok := n.GPUUtilization(); ok {
		gpu = new(round1(g))
	}
	return cpu, mem, disk, gpu
}

func rateCell(r *float64) string {
	if r == nil {
		return "-"
	}
	return pctText(*r)
}

// nodeTier ranks nodes: unhealthy or stale first, then under pressure,
// then the rest.
func nodeTier(n *model.NodeMetrics, t model.Thresholds) int {
	switch {
	case !n.Healthy || n.Stale:
		return 0
	case len(n.PressureReasons(t)) > 0:
		return 1
	}
	return 2
}

// peakRate is the node's highest known usage rate.
func peakRate(n *model.NodeMetrics) float64 {
	peak := 0.0
	if n.UsageSource != "" {
		peak = max(n.CPUUsageRate, n.MemoryUsageRate)
	}
	if g, ok := n.GPUUtilization(); ok {
		peak = max(peak, g)
	}
	return max(peak, n.DiskUsageRate)
}

// nodeRank returns an order of nodes, most relevant first, for one list:
// it remembers each node's tier, whose pressure check formats strings.
func (s *Server) nodeRank() func(a, b *model.NodeMetrics) int {
	t := s.q.Thresholds()
	tiers := map[*model.NodeMetrics]int{}
	tier := func(n *model.NodeMetrics) int {
		v, ok := tiers[n]
		if !ok {
			v = nodeTier(n, t)
			tiers[n] = v
		}
		return v
	}
	return func(a, b *model.NodeMetrics) int {
		if ta, tb := tier(a), tier(b); ta != tb {
			return cmp.Compare(ta, tb)
		}
		return cmp.Compare(peakRate(b), peakRate(a))
	}
}

// rowCap bounds the items a list builds: no answer holds more rows than
// its bytes allow at the smallest row size.
func rowCap(maxTokens int) int {
	const minRowBytes = 40
	return MaxBytes(max(maxTokens, DefaultMaxTokens))/minRowBytes + 1
}

func (s *Server) listNodes(_ context.Context, in ListNodesInput) (fitter, error) {
	if _, err := s.snapshot(); err != nil {
		return nil, err
	}
	if len(in.Label) > maxLabels {
		return nil, invalidf("label: %d selectors, at most %d", len(in.Label), maxLabels)
	}
	q := url.Values{}
	setString(q, "sort", in.Sort)
	setString(q, "order", in.Order)
	setInt(q, "limit", in.Limit)
	setBool(q, "pressure", in.Pressure)
	setBool(q, "healthy", in.Healthy)
	setBool(q, "stale", in.Stale)
	if len(in.Label) > 0 {
		q["label"] = in.Label
	}
	items, total, err := s.q.Nodes(q, s.nodeRank(), rowCap(in.MaxTokens))
	if err != nil {
		return nil, invalidf("%v", err)
	}
	t := s.q.Thresholds()
	unhealthy, pressured := 0, 0
	for _, n := range items {
		if !n.Healthy || n.Stale {
			unhealthy++
		}
		if len(n.PressureReasons(t)) > 0 {
			pressured++
		}
	}
	verdict := plural(total, "node") + " match"
	if total == 1 {
		verdict = "1 node matches"
	}
	if in.Sort == "" && in.Order == "" && len(items) > 0 {
		verdict += ", most relevant first"
		if len(items) == total {
			verdict += "; " + strconv.Itoa(unhealthy) + " unhealthy or stale, " + strconv.Itoa(pressured) + " under pressure"
		}
	}
	a := newAnswer(verdict)
	a.data["total"] = total
	a.narrow = narrowWith(q, "healthy", "pressure", "stale", "label", "sort", "limit")
	sec := a.section("nodes", "nodes", "name status cpu mem disk gpu notes")
	sec.total = total
	for _, n := range items {
		pressure := n.PressureReasons(t)
		cpu, mem, disk, gpu := nodeRates(n)
		st := nodeStatus(n, pressure)
		line := strings.Join([]string{n.NodeName, st, rateCell(cpu), rateCell(mem), rateCell(disk), rateCell(gpu)}, " ")
		if len(pressure) > 0 {
			line += " " + strings.Join(pressure, "; ")
		}
		sec.add(line, nodeRow{Name: n.NodeName, Status: st, CPU: cpu, Memory: mem, Disk: disk, GPU: gpu, GPUs: n.GPUCount, Pressure: pressure})
	}
	return a, nil
}

// nodeDetail is get_node's structured content besides its lists.
type nodeDetail struct {
	Name              string   `json:"name"`
	Status            string   `json:"status"`
	CPUUsage          int64    `json:"cpuUsage"`
	CPUCapacity       int64    `json:"cpuCapacity"`
	CPUAllocatable    int64    `json:"cpuAllocatable,omitempty"`
	CPUUsageRate      *float64 `json:"cpuUsageRate"`
	MemoryUsage       int64    `json:"memoryUsage"`
	MemoryCapacity    int64    `json:"memoryCapacity"`
	MemoryAllocatable int64    `json:"memoryAllocatable,omitempty"`
	MemoryUsageRate   *float64 `json:"memoryUsageRate"`
	DiskUsageRate     *float64 `json:"diskUsageRate"`
	Pressure          []string `json:"pressure,omitempty"`
	Conditions        []string `json:"conditions,omitempty"`
	Taints            []string `json:"taints,omitempty"`
	UsageSource       string   `json:"usageSource,omitempty"`
	ReportAgeSeconds  float64  `json:"reportAgeSeconds,omitempty"`
	Pods              int      `json:"pods"`
}

// gpuRow is one GPU in get_node and gpu_overview.
type gpuRow struct {
	Node        string   `json:"node"`
	Index       int      `json:"index"`
	Model       string   `json:"model"`
	Utilization float64  `json:"utilizationRate"`
	MemoryRate  float64  `json:"memoryUsageRate"`
	MemoryUsed  int64    `json:"memoryUsed"`
	MemoryTotal int64    `json:"memoryTotal"`
	Temperature int      `json:"temperatureC"`
	PowerWatts  float64  `json:"powerWatts"`
	ECCErrors   *uint64  `json:"eccUncorrected,omitempty"`
	Pods        []string `json:"pods,omitempty"`
	Problems    []string `json:"problems,omitempty"`
}

func (s *Server) getNode(_ context.Context, in GetNodeInput) (fitter, error) {
	snap, err := s.snapshot()
	if err != nil {
		return nil, err
	}
	if in.Name == "" {
		return nil, invalidf("name: required (a node's name; list_nodes lists them)")
	}
	n := snap.NodeMetrics[in.Name]
	if n == nil {
		return nil, notFoundf("node %q not found; list_nodes lists the nodes", in.Name)
	}
	t := s.q.Thresholds()
	pressure := n.PressureReasons(t)
	status := nodeStatus(n, pressure)
	cpu, mem, disk, _ := nodeRates(n)
	verdict := "node " + n.NodeName + ": " + status
	if len(pressure) > 0 {
		verdict += " (" + strings.Join(pressure, "; ") + ")"
	}
	a := newAnswer(verdict)
	a.fact("cpu", "%s of %s used (%s), %s allocatable", cpuText(n.CPUUsage), cpuText(n.CPUCapacity), rateCell(cpu), cpuText(n.CPUAllocatable))
	a.fact("memory", "%s of %s used (%s), %s allocatable", bytesText(n.MemoryUsage), bytesText(n.MemoryCapacity), rateCell(mem), bytesText(n.MemoryAllocatable))
	a.fact("disk", "%s of %s used (%s)", bytesText(n.DiskUsage), bytesText(n.DiskCapacity), rateCell(disk))
	if n.Load != nil {
		a.fact("load", "%.2f %.2f %.2f", n.Load.Load1, n.Load.Load5, n.Load.Load15)
	}
	if len(n.Conditions) > 0 {
		a.fact("conditions", "%s", strings.Join(n.Conditions, ", "))
	}
	if len(n.Taints) > 0 {
		a.fact("taints", "%s", strings.Join(n.Taints, ", "))
	}
	a.fact("usage source", "%s", orDash(n.UsageSource))
	if n.Stale {
		a.fact("report age", "%.0fs (agent missed its reports; data is old)", n.ReportAgeSeconds)
	}
	for _, src := range sortedSources(n.Sources) {
		if src.Status != model.SourceOK {
			a.fact("source "+src.Name, "%s %s", src.Status, src.Reason)
		}
	}

	// The node's pods, most relevant first, and its labels: a few, more
	// with a larger budget, so that "how is this node" stays short.
	budget := cmp.Or(in.MaxTokens, DefaultMaxTokens)
	pods, podTotal, err := s.q.Pods(url.Values{"node": {n.NodeName}}, podRank, max(5, budget/400))
	if err != nil {
		return nil, err
	}
	detail := nodeDetail{
		Name: n.NodeName, Status: status, CPUUsage: n.CPUUsage, CPUCapacity: n.CPUCapacity, CPUAllocatable: n.CPUAllocatable,
		CPUUsageRate: cpu, MemoryUsage: n.MemoryUsage, MemoryCapacity: n.MemoryCapacity, MemoryAllocatable: n.MemoryAllocatable,
		MemoryUsageRate: mem, DiskUsageRate: disk, Pressure: pressure, Conditions: n.Conditions, Taints: n.Taints,
		UsageSource: n.UsageSource, ReportAgeSeconds: n.ReportAgeSeconds, Pods: podTotal,
	}
	a.data["node"] = detail
	if n.GPUCount > 0 || len(n.GPUs) > 0 {
		gpus := a.section("gpus", "GPUs", "GPUs: index model util mem temp power pods problems")
		for _, g := range n.GPUs {
			r := newGPURow(n.NodeName, g, t)
			gpus.add(gpuLine(r, false), r)
		}
		if len(n.GPUs) == 0 {
			a.fact("gpus", "%d (%s), no per-GPU readings from the agent", n.GPUCount, strings.Join(slices.Compact(slices.Clone(n.GPUModels)), ", "))
		}
	}
	sec := a.section("pods", "pods", "pods, most relevant first: pod phase ready restarts cpu mem node notes")
	sec.total = podTotal
	for _, p := range pods {
		r := newPodRow(p)
		sec.add(podLine(r), r)
	}
	labels := a.section("labels", "labels", "labels:")
	for _, k := range sortedKeys(n.Labels)[:min(len(n.Labels), max(10, budget/200))] {
		labels.add(k+"="+n.Labels[k], k+"="+n.Labels[k])
	}
	labels.total = len(n.Labels)
	a.narrow = "list_pods node=" + n.NodeName + " for its pods"
	return a, nil
}

// newGPURow describes one GPU and what is wrong with it.
func newGPURow(node string, g model.GPUMetrics, t model.Thresholds) gpuRow {
	r := gpuRow{
		Node: node, Index: g.Index, Model: g.Model, Utilization: round1(g.UtilizationRate), MemoryRate: round1(g.MemoryUsageRate),
		MemoryUsed: g.MemoryUsed, MemoryTotal: g.MemoryTotal, Temperature: g.TemperatureC, PowerWatts: round1(g.PowerWatts),
		ECCErrors: g.ECCUncorrected,
	}
	for _, p := range g.Pods {
		r.Pods = append(r.Pods, model.PodKey(p.Namespace, p.Pod))
	}
	r.Pods = slices.Compact(r.Pods)
	if t.GPUTempC > 0 && g.TemperatureC >= t.GPUTempC {
		r.Problems = append(r.Problems, "hot: "+strconv.Itoa(g.TemperatureC)+"°C >= "+strconv.Itoa(t.GPUTempC)+"°C")
	}
	if g.ECCUncorrected != nil && *g.ECCUncorrected > 0 {
		r.Problems = append(r.Problems, strconv.FormatUint(*g.ECCUncorrected, 10)+" uncorrected ECC errors")
	}
	return r
}

func gpuLine(r gpuRow, withNode bool) string {
	cells := []string{strconv.Itoa(r.Index), strings.ReplaceAll(orDash(r.Model), " ", "_"), pctText(r.Utilization),
		pctText(r.MemoryRate), strconv.Itoa(r.Temperature) + "°C", strconv.FormatFloat(r.PowerWatts, 'f', 0, 64) + "W",
		orDash(strings.Join(r.Pods, ",")), strings.Join(r.Problems, "; ")}
	if withNode {
		cells = append([]string{r.Node}, cells...)
	}
	return strings.TrimRight(strings.Join(cells, " "), " ")
}

func sortedSources(m map[string]model.SourceStatus) []model.SourceStatus {
	out := make([]model.SourceStatus, 0, len(m))
	for _, k := range sortedKeys(m) {
		out = append(out, m[k])
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// narrowWith lists the filters not used yet, for a cut answer.
func narrowWith(q url.Values, names ...string) string {
	var out []string
	for _, n := range names {
		if !q.Has(n) {
			out = append(out, n)
		}
	}
	return strings.Join(out, ", ")
}

// Query building from typed arguments; empty arguments are left out so
// the HTTP API's defaults apply.

func setString(q url.Values, key, v string) {
	if v != "" {
		q.Set(key, v)
	}
}

func setInt(q url.Values, key string, v int) {
	if v != 0 {
		q.Set(key, strconv.Itoa(v))
	}
}

func setBool(q url.Values, key string, v *bool) {
	if v != nil {
		q.Set(key, strconv.FormatBool(*v))
	}
}

func setRate(q url.Values, key string, v *float64) {
	if v != nil {
		q.Set(key, strconv.FormatFloat(*v, 'g', -1, 64))
	}
}
