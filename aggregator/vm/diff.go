package vm

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// vmKey identifies a VM across snapshots as users see it.
type vmKey struct{ source, ns, name string }

// Diff returns the VM events between two consecutive VM lists: VMStarted
// when a VM became Running, VMStopped when a running VM stopped or
// disappeared, VMMoved when a running VM's node changed (a live
// migration). A running VM replaced by a new one of the same name (a new
// UID: KubeVirt recreates the VMI on restart) stopped and started, it did
// not move. Callers skip the first list after start-up, which has nothing
// to compare with. Events are sorted by type, namespace and name.
func Diff(prev, next []*model.VMMetrics, now time.Time) []model.Event {
	now = now.UTC()
	before := make(map[vmKey]*model.VMMetrics, len(prev))
	for _, vm := range prev {
		if vm != nil {
			before[vmKey{vm.Source, vm.Namespace, vm.Name}] = vm
		}
	}
	var out []model.Event
	seen := make(map[vmKey]struct{}, len(next))
	for _, n := range next {
		if n == nil {
			continue
		}
		k := vmKey{n.Source, n.Namespace, n.Name}
		seen[k] = struct{}{}
		p := before[k]
		wasRunning := p != nil && isRunning(p.Status)
		nowRunning := isRunning(n.Status)
		replaced := p != nil && p.ID != "" && n.ID != "" && p.ID != n.ID
		switch {
		case wasRunning && nowRunning && replaced:
			out = append(out, stopped(p, n.Status, "replaced by a new instance", now), started(n, now))
		case wasRunning && nowRunning && p.Node != n.Node:
			out = append(out, moved(p, n, now))
		case nowRunning && !wasRunning:
			out = append(out, started(n, now))
		case wasRunning && !nowRunning:
			out = append(out, stopped(p, n.Status, "status "+statusText(n.Status), now))
		}
	}
	for k, p := range before {
		if _, ok := seen[k]; !ok && isRunning(p.Status) {
			out = append(out, stopped(p, "", "it is gone", now))
		}
	}
	slices.SortFunc(out, func(a, b model.Event) int {
		return cmp.Or(cmp.Compare(a.Type, b.Type), cmp.Compare(a.Namespace, b.Namespace),
			cmp.Compare(a.Name, b.Name), cmp.Compare(a.Timestamp.UnixNano(), b.Timestamp.UnixNano()))
	})
	return out
}

func statusText(s string) string {
	if s == "" {
		return phaseUnknown
	}
	return s
}

func vmDetails(vm *model.VMMetrics) map[string]string {
	d := map[string]string{"status": vm.Status}
	if vm.Source != "" {
		d["source"] = vm.Source
	}
	if vm.ID != "" {
		d["id"] = vm.ID
	}
	return d
}

func started(vm *model.VMMetrics, now time.Time) model.Event {
	msg := fmt.Sprintf("VM %s/%s started", vm.Namespace, vm.Name)
	if vm.Node != "" {
		msg += " on node " + vm.Node
	}
	return model.Event{
		Type: model.EventVMStarted, Severity: model.SeverityInfo, Timestamp: now,
		Node: vm.Node, Namespace: vm.Namespace, Name: vm.Name, Source: vm.Source,
		Message: msg, Details: vmDetails(vm),
	}
}

// stopped describes the VM as it was last seen running, with its new
// status ("" when it is gone); a VM that failed is a warning, a shutdown
// is not.
func stopped(was *model.VMMetrics, status, why string, now time.Time) model.Event {
	msg := fmt.Sprintf("VM %s/%s stopped: %s", was.Namespace, was.Name, why)
	if was.Node != "" {
		msg += " (was running on node " + was.Node + ")"
	}
	sev := model.SeverityInfo
	if strings.EqualFold(status, "failed") || strings.EqualFold(status, "error") {
		sev = model.SeverityWarning
	}
	d := vmDetails(was)
	d["status"] = status
	if status == "" {
		delete(d, "status")
	}
	return model.Event{
		Type: model.EventVMStopped, Severity: sev, Timestamp: now,
		Node: was.Node, Namespace: was.Namespace, Name: was.Name, Source: was.Source,
		Message: msg, Details: d,
	}
}

func moved(from, to *model.VMMetrics, now time.Time) model.Event {
	d := vmDetails(to)
	d["fromNode"], d["toNode"] = from.Node, to.Node
	return model.Event{
		Type: model.EventVMMoved, Severity: model.SeverityInfo, Timestamp: now,
		Node: to.Node, Namespace: to.Namespace, Name: to.Name, Source: to.Source,
		Message: fmt.Sprintf("VM %s/%s moved from node %s to node %s", to.Namespace, to.Name, orNone(from.Node), orNone(to.Node)),
		Details: d,
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
