package mcp

import (
	"cmp"
	"context"
	"net/url"
	"strconv"
	"strings"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// ListPodsInput are list_pods' arguments: the query parameters of
// GET /api/v1/metrics/pods.
type ListPodsInput struct {
	Namespace          string   `json:"namespace,omitempty" jsonschema:"only pods of this namespace"`
	Node               string   `json:"node,omitempty" jsonschema:"only pods on this node"`
	Name               string   `json:"name,omitempty" jsonschema:"only pods of this name, in any namespace"`
	Phase              string   `json:"phase,omitempty" jsonschema:"only pods in this phase: Pending, Running, Succeeded, Failed, Unknown; !Running for every other phase"`
	Sort               string   `json:"sort,omitempty" jsonschema:"order, highest first: cpu or memory (usage), restarts, cpuRate or memoryRate (usage against the limit); without sort and order the most relevant come first (failing, then most restarts, then highest usage against the limit)"`
	Order              string   `json:"order,omitempty" jsonschema:"asc or desc; desc by default with sort, namespace/name order without"`
	Limit              int      `json:"limit,omitempty" jsonschema:"at most this many pods"`
	MinMemoryLimitRate *float64 `json:"minMemoryLimitRate,omitempty" jsonschema:"only pods with a memory limit using at least this percentage of it, e.g. 90"`
	MinCPULimitRate    *float64 `json:"minCpuLimitRate,omitempty" jsonschema:"only pods with a CPU limit using at least this percentage of it"`
	Budget
}

// GetPodInput are get_pod's arguments.
type GetPodInput struct {
	Namespace string `json:"namespace" jsonschema:"the pod's namespace"`
	Name      string `json:"name" jsonschema:"the pod's name"`
	Budget
}

// podRow is a pod in list_pods' and get_node's structured content.
type podRow struct {
	Pod        string   `json:"pod"`
	Phase      string   `json:"phase"`
	Ready      string   `json:"ready"`
	Restarts   int32    `json:"restarts"`
	CPU        *int64   `json:"cpuUsage"`
	CPURate    *float64 `json:"cpuLimitRate,omitempty"`
	Memory     *int64   `json:"memoryUsage"`
	MemoryRate *float64 `json:"memoryLimitRate,omitempty"`
	Node       string   `json:"node,omitempty"`
	Notes      []string `json:"notes,omitempty"`
}

func newPodRow(p *model.PodMetrics) podRow {
	r := podRow{Pod: p.Key(), Phase: p.Phase, Ready: readyText(p), Restarts: p.Restarts, Node: p.NodeName, Notes: podNotes(p)}
	if p.UsageSource != "" {
		r.CPU, r.Memory = new(p.CPUUsage), new(p.MemoryUsage)
		if p.CPULimit > 0 {
			r.CPURate = new(round1(p.CPUUsageRate))
		}
		if p.MemoryLimit > 0 {
			r.MemoryRate = new(round1(p.MemoryUsageRate))
		}
	}
	return r
}

func podLine(r podRow) string {
	cpu, mem := "-", "-"
	if r.CPU != nil {
		cpu = cpuText(*r.CPU)
		if r.CPURate != nil {
			cpu += "(" + pctText(*r.CPURate) + ")"
		}
	}
	if r.Memory != nil {
		mem = bytesText(*r.Memory)
		if r.MemoryRate != nil {
			mem += "(" + pctText(*r.MemoryRate) + ")"
		}
	}
	line := strings.Join([]string{r.Pod, orDash(r.Phase), r.Ready, strconv.Itoa(int(r.Restarts)), cpu, mem, orDash(r.Node)}, " ")
	if len(r.Notes) > 0 {
		line += " " + strings.Join(r.Notes, "; ")
	}
	return line
}

// readyText is "ready/total" containers.
func readyText(p *model.PodMetrics) string {
	ready := 0
	for _, c := range p.Containers {
		if c.Ready {
			ready++
		}
	}
	return strconv.Itoa(ready) + "/" + strconv.Itoa(len(p.Containers))
}

// podNotes says what is wrong with a pod in the kubelet's words: each
// container's waiting or terminated reason and its last termination.
func podNotes(p *model.PodMetrics) []string {
	var notes []string
	for _, c := range p.Containers {
		var parts []string
		if c.Reason != "" {
			parts = append(parts, c.Reason)
		}
		if c.LastTerminationReason != "" {
			parts = append(parts, "last "+c.LastTerminationReason+" exit "+strconv.Itoa(int(c.LastExitCode)))
		}
		if len(parts) > 0 {
			notes = append(notes, c.Name+": "+strings.Join(parts, ", "))
		}
	}
	return notes
}

// podFailing reports a pod that needs attention now: failed or unknown,
// pending, or running but not Ready (the pod's condition: a container is
// not ready). It reads no container, as ranking calls it for every pod.
func podFailing(p *model.PodMetrics) bool {
	switch p.Phase {
	case "Succeeded":
		return false
	case "Running":
		return !p.Ready
	}
	return true
}

// podTier ranks pods: failing first, then restarted, then the rest.
func podTier(p *model.PodMetrics) int {
	switch {
	case podFailing(p):
		return 0
	case p.Restarts > 0:
		return 1
	}
	return 2
}

// podPeak is the pod's highest usage against its limits.
func podPeak(p *model.PodMetrics) float64 {
	if p.UsageSource == "" {
		return 0
	}
	return max(p.CPUUsageRate, p.MemoryUsageRate)
}

// podRank orders pods most relevant first: failing, then most restarts,
// then highest usage against the limit.
func podRank(a, b *model.PodMetrics) int {
	if ta, tb := podTier(a), podTier(b); ta != tb {
		return cmp.Compare(ta, tb)
	}
	if a.Restarts != b.Restarts {
		return cmp.Compare(b.Restarts, a.Restarts)
	}
	return cmp.Compare(podPeak(b), podPeak(a))
}

func (s *Server) listPods(_ context.Context, in ListPodsInput) (fitter, error) {
	if _, err := s.snapshot(); err != nil {
		return nil, err
	}
	q := url.Values{}
	setString(q, "namespace", in.Namespace)
	setString(q, "node", in.Node)
	setString(q, "name", in.Name)
	setString(q, "phase", in.Phase)
	setString(q, "sort", in.Sort)
	setString(q, "order", in.Order)
	setInt(q, "limit", in.Limit)
	setRate(q, "minMemoryLimitRate", in.MinMemoryLimitRate)
	setRate(q, "minCpuLimitRate", in.MinCPULimitRate)
	items, total, err := s.q.Pods(q, podRank, rowCap(in.MaxTokens))
	if err != nil {
		return nil, invalidf("%v", err)
	}
	failing, restarted := 0, 0
	for _, p := range items {
		if podFailing(p) {
			failing++
		}
		if p.Restarts > 0 {
			restarted++
		}
	}
	verdict := plural(total, "pod") + " match"
	if total == 1 {
		verdict = "1 pod matches"
	}
	if in.Sort == "" && in.Order == "" && len(items) > 0 {
		verdict += ", most relevant first"
		if len(items) == total {
			verdict += "; " + strconv.Itoa(failing) + " failing, " + strconv.Itoa(restarted) + " restarted"
		}
	}
	a := newAnswer(verdict)
	a.data["total"] = total
	a.narrow = narrowWith(q, "namespace", "node", "phase", "minMemoryLimitRate", "minCpuLimitRate", "sort", "limit")
	sec := a.section("pods", "pods", "pod phase ready restarts cpu mem node notes")
	sec.total = total
	for _, p := range items {
		r := newPodRow(p)
		sec.add(podLine(r), r)
	}
	return a, nil
}

// containerRow is one container in get_pod's structured content.
type containerRow struct {
	Name                  string `json:"name"`
	Ready                 bool   `json:"ready"`
	Restarts              int32  `json:"restarts"`
	State                 string `json:"state,omitempty"`
	Reason                string `json:"reason,omitempty"`
	LastTerminationReason string `json:"lastTerminationReason,omitempty"`
	LastExitCode          int32  `json:"lastExitCode,omitempty"`
	CPUUsage              int64  `json:"cpuUsage"`
	CPULimit              int64  `json:"cpuLimit,omitempty"`
	MemoryUsage           int64  `json:"memoryUsage"`
	MemoryLimit           int64  `json:"memoryLimit,omitempty"`
}

func (s *Server) getPod(_ context.Context, in GetPodInput) (fitter, error) {
	snap, err := s.snapshot()
	if err != nil {
		return nil, err
	}
	if in.Namespace == "" || in.Name == "" {
		return nil, invalidf("namespace and name: both required (list_pods name=%q finds a pod in any namespace)", in.Name)
	}
	p := snap.PodMetrics[model.PodKey(in.Namespace, in.Name)]
	if p == nil {
		return nil, notFoundf("pod %s/%s not found; list_pods name=%s finds it in any namespace", in.Namespace, in.Name, in.Name)
	}
	row := newPodRow(p)
	verdict := "pod " + p.Key() + ": " + orDash(p.Phase) + ", " + row.Ready + " ready, " + plural(int(p.Restarts), "restart")
	if notes := podNotes(p); len(notes) > 0 {
		verdict += "; " + strings.Join(notes, "; ")
	}
	a := newAnswer(verdict)
	a.fact("node", "%s", orDash(p.NodeName))
	if p.UsageSource != "" {
		a.fact("cpu", "%s used, request %s, limit %s%s", cpuText(p.CPUUsage), cpuText(p.CPURequest), limitText(p.CPULimit, cpuText), rateSuffix(p.CPULimit, p.CPUUsageRate))
		a.fact("memory", "%s used, request %s, limit %s%s", bytesText(p.MemoryUsage), bytesText(p.MemoryRequest), limitText(p.MemoryLimit, bytesText), rateSuffix(p.MemoryLimit, p.MemoryUsageRate))
	} else {
		a.fact("usage", "unknown (no metrics-server or kubelet reading)")
	}
	a.fact("started", "%s", timeText(p.StartTime))
	if p.OwnerKind != "" {
		a.fact("owner", "%s/%s", p.OwnerKind, p.OwnerName)
	}
	if len(p.GPUs) > 0 {
		a.fact("gpus", "%s", strings.Join(p.GPUs, ", "))
	}
	if vm := launcherOf(snap, p); vm != nil {
		a.fact("vm", "this pod runs VM %s/%s (get_vm name=%s namespace=%s)", vm.Namespace, vm.Name, vm.Name, vm.Namespace)
	}
	if podFailing(p) || p.Restarts > 0 {
		a.fact("next", "diagnose_pod namespace=%s name=%s gives the verdict and its evidence", p.Namespace, p.PodName)
	}
	a.data["pod"] = row
	sec := a.section("containers", "containers", "containers: name ready restarts state reason last-termination")
	for _, c := range p.Containers {
		line := strings.Join([]string{c.Name, strconv.FormatBool(c.Ready), strconv.Itoa(int(c.Restarts)), orDash(c.State), orDash(c.Reason)}, " ")
		if c.LastTerminationReason != "" {
			line += " " + c.LastTerminationReason + " exit " + strconv.Itoa(int(c.LastExitCode))
		}
		sec.add(line, containerRow{Name: c.Name, Ready: c.Ready, Restarts: c.Restarts, State: c.State, Reason: c.Reason,
			LastTerminationReason: c.LastTerminationReason, LastExitCode: c.LastExitCode,
			CPUUsage: c.CPUUsage, CPULimit: c.CPULimit, MemoryUsage: c.MemoryUsage, MemoryLimit: c.MemoryLimit})
	}
	return a, nil
}

func limitText(limit int64, f func(int64) string) string {
	if limit <= 0 {
		return "none"
	}
	return f(limit)
}

func rateSuffix(limit int64, rate float64) string {
	if limit <= 0 {
		return ""
	}
	return " (" + pctText(rate) + " of limit)"
}

// launcherOf returns the VM whose launcher pod p is, nil for other pods.
func launcherOf(snap *model.MetricsSnapshot, p *model.PodMetrics) *model.VMMetrics {
	for _, vm := range snap.VMs {
		if vm != nil && vm.Namespace == p.Namespace && vm.Detail != nil && vm.Detail.LauncherPod == p.PodName {
			return vm
		}
	}
	return nil
}
