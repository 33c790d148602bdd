// Package pressure turns an agent's readings into the node's health and into
// events when a threshold is crossed or cleared, pressure is raised or
// cleared, or a source starts or stops failing.
package pressure

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// Hysteresis is how far (in percentage points, or °C for GPU temperature)
// a reading must fall below its threshold before the crossing clears, so a
// value hovering at the threshold does not flood subscribers with events.
const Hysteresis = 2.0

// Tracker remembers what was crossed in the previous report.
type Tracker struct {
	thresholds model.Thresholds
	crossed    map[string]bool // by metric key: cpu, memory, disk:/var, gpu:0:temperature
	pressured  bool
	failing    map[string]bool // by source name
}

// NewTracker returns a tracker for thresholds.
func NewTracker(t model.Thresholds) *Tracker {
	return &Tracker{thresholds: t, crossed: map[string]bool{}, failing: map[string]bool{}}
}

type reading struct {
	key       string
	value     float64
	threshold float64
	unit      string
}

// Observe sets r.Node.Healthy and returns the events that r causes compared
// with the previous report, in a stable order.
func (t *Tracker) Observe(r *model.NodeReport) []model.Event {
	n := &r.Node
	now := r.Timestamp
	var events []model.Event
	event := func(typ model.EventType, sev, source, msg string, details map[string]string) {
		events = append(events, model.Event{Type: typ, Severity: sev, Timestamp: now, Node: r.NodeName, Source: source, Message: msg, Details: details})
	}

	for _, rd := range t.readings(n) {
		was := t.crossed[rd.key]
		is := rd.value >= rd.threshold || (was && rd.value > rd.threshold-Hysteresis)
		details := map[string]string{"value": format(rd.value), "threshold": format(rd.threshold)}
		switch {
		case is && !was:
			event(model.EventThresholdCrossed, model.SeverityWarning, rd.key,
				fmt.Sprintf("%s on node %s is %s%s, at or above the threshold of %s%s", rd.key, r.NodeName, format(rd.value), rd.unit, format(rd.threshold), rd.unit), details)
		case !is && was:
			event(model.EventThresholdCleared, model.SeverityInfo, rd.key,
				fmt.Sprintf("%s on node %s is back to %s%s, below the threshold of %s%s", rd.key, r.NodeName, format(rd.value), rd.unit, format(rd.threshold), rd.unit), details)
		}
		if is {
			t.crossed[rd.key] = true
		} else {
			delete(t.crossed, rd.key)
		}
	}

	reasons := n.PressureReasons(t.thresholds)
	n.Healthy = len(reasons) == 0
	switch pressured := !n.Healthy; {
	case pressured && !t.pressured:
		event(model.EventPressureRaised, model.SeverityWarning, "node",
			fmt.Sprintf("node %s is under pressure: %s", r.NodeName, strings.Join(reasons, "; ")), nil)
	case !pressured && t.pressured:
		event(model.EventPressureCleared, model.SeverityInfo, "node",
			fmt.Sprintf("node %s is no longer under pressure", r.NodeName), nil)
	}
	t.pressured = !n.Healthy

	for _, s := range r.Sources {
		switch {
		case s.Status == model.SourceFailed && !t.failing[s.Name]:
			t.failing[s.Name] = true
			event(model.EventSourceFailing, model.SeverityWarning, s.Name,
				fmt.Sprintf("source %s on node %s is failing: %s", s.Name, r.NodeName, s.Reason), nil)
		case s.Status != model.SourceFailed && t.failing[s.Name]:
			delete(t.failing, s.Name)
			event(model.EventSourceRecovered, model.SeverityInfo, s.Name,
				fmt.Sprintf("source %s on node %s recovered", s.Name, r.NodeName), nil)
		}
	}
	return events
}

// readings lists the values that have thresholds, for the sources that
// produced data in this report.
func (t *Tracker) readings(n *model.NodeMetrics) []reading {
	var out []reading
	if n.CPUCapacity > 0 {
		out = append(out, reading{"cpu", n.CPUUsageRate, t.thresholds.CPURate, "%"})
	}
	if n.MemoryCapacity > 0 {
		out = append(out, reading{"memory", n.MemoryUsageRate, t.thresholds.MemoryRate, "%"})
	}
	disks := make([]model.DiskMetrics, 0, len(n.Disks))
	for _, d := range n.Disks {
		if d.Available && d.Capacity > 0 {
			disks = append(disks, d)
		}
	}
	sort.Slice(disks, func(i, j int) bool { return disks[i].MountPoint < disks[j].MountPoint })
	for _, d := range disks {
		out = append(out, reading{"disk:" + d.MountPoint, d.UsageRate, t.thresholds.DiskRate, "%"})
	}
	if t.thresholds.GPUTempC > 0 {
		for _, g := range n.GPUs {
			out = append(out, reading{"gpu:" + strconv.Itoa(g.Index) + ":temperature", float64(g.TemperatureC), float64(t.thresholds.GPUTempC), "°C"})
		}
	}
	return out
}

// Lifecycle returns the agent started or stopping event.
func Lifecycle(typ model.EventType, node, version string, at time.Time) model.Event {
	verb := map[model.EventType]string{model.EventAgentStarted: "started", model.EventAgentStopping: "is stopping"}[typ]
	return model.Event{
		Type: typ, Severity: model.SeverityInfo, Timestamp: at, Node: node, Source: "agent",
		Message: fmt.Sprintf("agent %s on node %s %s", version, node, verb),
		Details: map[string]string{"version": version},
	}
}

func format(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
