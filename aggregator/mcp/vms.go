package mcp

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"strings"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/vm"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// ListVMsInput are list_vms' arguments: the query parameters of GET /api/vms.
type ListVMsInput struct {
	Namespace string `json:"namespace,omitempty" jsonschema:"only VMs of this namespace"`
	Status    string `json:"status,omitempty" jsonschema:"only VMs in this status, e.g. Running (case-insensitive)"`
	Sort      string `json:"sort,omitempty" jsonschema:"order by name, or by cpu, memory or disk usage; without sort and order the most relevant come first (not running, then highest usage)"`
	Order     string `json:"order,omitempty" jsonschema:"asc or desc"`
	Budget
}

// GetVMInput are get_vm's arguments: GET /api/vms/{name}'s.
type GetVMInput struct {
	Name      string `json:"name" jsonschema:"the VM's name"`
	Namespace string `json:"namespace,omitempty" jsonschema:"the VM's namespace, needed when the name exists in several"`
	Source    string `json:"source,omitempty" jsonschema:"kubevirt or the custom resource's name, needed when the name exists in several sources"`
	Budget
}

// vmRow is a VM in list_vms' structured content.
type vmRow struct {
	VM          string   `json:"vm"`
	Status      string   `json:"status"`
	Node        string   `json:"node,omitempty"`
	CPU         int64    `json:"cpu"`
	Memory      string   `json:"memory"`
	CPUUsage    *float64 `json:"cpuUsage"`
	MemoryUsage *float64 `json:"memoryUsage"`
	DiskUsage   *float64 `json:"diskUsage"`
	Source      string   `json:"source,omitempty"`
	LauncherPod string   `json:"launcherPod,omitempty"`
}

func newVMRow(v *model.VMMetrics) vmRow {
	r := vmRow{VM: v.Namespace + "/" + v.Name, Status: v.Status, Node: v.Node, CPU: v.CPU, Memory: v.Memory, Source: v.Source}
	if v.Metrics != nil {
		r.CPUUsage, r.MemoryUsage = new(round1(v.Metrics.CPUUsage)), new(round1(v.Metrics.MemoryUsage))
		if v.Metrics.DiskUsage != nil {
			r.DiskUsage = new(round1(*v.Metrics.DiskUsage))
		}
	}
	if v.Detail != nil {
		r.LauncherPod = v.Detail.LauncherPod
	}
	return r
}

func vmLine(r vmRow) string {
	return strings.Join([]string{r.VM, orDash(r.Status), orDash(r.Node), strconv.FormatInt(r.CPU, 10) + "cpu/" + orDash(r.Memory),
		rateCell(r.CPUUsage), rateCell(r.MemoryUsage), rateCell(r.DiskUsage)}, " ")
}

// vmRank orders VMs most relevant first: not running, then highest usage.
func vmRank(a, b *model.VMMetrics) int {
	peak := func(v *model.VMMetrics) float64 {
		if v.Metrics == nil {
			return -1
		}
		p := max(v.Metrics.CPUUsage, v.Metrics.MemoryUsage)
		if v.Metrics.DiskUsage != nil {
			p = max(p, *v.Metrics.DiskUsage)
		}
		return p
	}
	running := func(v *model.VMMetrics) int {
		if strings.EqualFold(v.Status, "Running") {
			return 1
		}
		return 0
	}
	return cmp.Or(cmp.Compare(running(a), running(b)), cmp.Compare(peak(b), peak(a)),
		cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
}

func (s *Server) listVMs(_ context.Context, in ListVMsInput) (fitter, error) {
	snap, err := s.snapshot()
	if err != nil {
		return nil, err
	}
	vms, err := vm.Select(snap.VMs, in.Namespace, in.Status, in.Sort, in.Order)
	if err != nil {
		return nil, invalidf("%v", err)
	}
	if in.Sort == "" && in.Order == "" {
		slices.SortStableFunc(vms, vmRank)
	}
	running := 0
	for _, v := range vms {
		if strings.EqualFold(v.Status, "Running") {
			running++
		}
	}
	verdict := plural(len(vms), "VM") + " match, " + strconv.Itoa(running) + " running"
	if len(snap.VMs) == 0 {
		verdict = "no VMs: no KubeVirt VMs or custom VM resources are watched or none exist"
	}
	a := newAnswer(verdict)
	a.data["total"] = len(vms)
	a.narrow = "namespace, status, sort"
	sec := a.section("vms", "VMs", "vm status node allocated cpu% mem% disk%")
	for _, v := range vms {
		r := newVMRow(v)
		sec.add(vmLine(r), r)
	}
	return a, nil
}

func (s *Server) getVM(_ context.Context, in GetVMInput) (fitter, error) {
	snap, err := s.snapshot()
	if err != nil {
		return nil, err
	}
	if in.Name == "" {
		return nil, invalidf("name: required (list_vms lists the VMs)")
	}
	found := vm.Find(snap.VMs, in.Name, in.Namespace, in.Source)
	switch {
	case len(found) == 0:
		return nil, notFoundf("vm %q not found; list_vms lists the VMs", in.Name)
	case len(found) > 1:
		var where []string
		for _, v := range found {
			where = append(where, "namespace="+v.Namespace+" source="+orDash(v.Source))
		}
		return nil, invalidf("vm %q exists %d times (%s): add namespace or source", in.Name, len(found), strings.Join(where, "; "))
	}
	v := found[0]
	r := newVMRow(v)
	verdict := "vm " + r.VM + ": " + orDash(v.Status)
	if v.Node != "" {
		verdict += " on " + v.Node
	}
	if v.Metrics == nil {
		verdict += ", usage unavailable"
	} else {
		verdict += ", cpu " + rateCell(r.CPUUsage) + ", memory " + rateCell(r.MemoryUsage) + ", disk " + rateCell(r.DiskUsage) + " of allocated"
	}
	a := newAnswer(verdict)
	a.fact("allocated", "%d cpu, %s memory", v.CPU, orDash(v.Memory))
	a.fact("source", "%s", orDash(v.Source))
	if d := v.Detail; d != nil {
		if d.LauncherPod != "" {
			a.fact("launcher pod", "%s/%s (diagnose_pod namespace=%s name=%s diagnoses it)", v.Namespace, d.LauncherPod, v.Namespace, d.LauncherPod)
		}
		if len(d.PVCs) > 0 {
			a.fact("pvcs", "%s", strings.Join(d.PVCs, ", "))
		}
		if d.DiskCapacity > 0 && d.DiskUsed != nil {
			a.fact("disk", "%s of %s used", bytesText(*d.DiskUsed), bytesText(d.DiskCapacity))
		}
		if len(d.Interfaces) > 0 {
			a.fact("interfaces", "%s", strings.Join(d.Interfaces, ", "))
		}
	}
	a.fact("as of", "%s", timeText(v.Timestamp))
	a.data["vm"] = r
	return a, nil
}
