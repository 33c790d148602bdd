package state

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// MaxNodeEvents is how many NodeStale, and how many NodeRecovered, events
// one snapshot brings one by one. Beyond it they become one summary event
// naming the count and the first few nodes: thousands of invented names
// falling silent, or a NATS outage, is one event rather than a flood.
const MaxNodeEvents = 20

// summaryExamples is how many node names a summary event lists.
const summaryExamples = 5

// Diff returns the cluster events between two consecutive snapshots:
// NodeStale when a node's agent stops reporting, NodeRecovered when a stale
// node reports again (each summed up in one event beyond MaxNodeEvents),
// ClusterHealthChanged, and PodRestarting when a pod's restart count rose.
// With no previous snapshot (start-up) there is nothing to compare and no
// event. Events are sorted by type, node, namespace, name.
func Diff(prev, next *model.MetricsSnapshot) []model.Event {
	if prev == nil || next == nil {
		return nil
	}
	ts := next.Timestamp
	var out []model.Event
	for name, n := range next.NodeMetrics {
		if n == nil {
			continue
		}
		p := prev.NodeMetrics[name]
		wasStale := p != nil && p.Stale
		switch {
		case n.Stale && !wasStale:
			out = append(out, model.Event{
				Type: model.EventNodeStale, Severity: model.SeverityWarning, Timestamp: ts, Node: name,
				Message: fmt.Sprintf("node %s is stale: last agent report %s ago", name, roundSeconds(n.ReportAgeSeconds)),
				Details: map[string]string{"reportAgeSeconds": strconv.FormatFloat(n.ReportAgeSeconds, 'f', 0, 64)},
			})
		case !n.Stale && wasStale:
			out = append(out, model.Event{
				Type: model.EventNodeRecovered, Severity: model.SeverityInfo, Timestamp: ts, Node: name,
				Message: fmt.Sprintf("node %s recovered: its agent reports again", name),
			})
		}
	}
	out = summarizeNodeEvents(out, model.EventNodeStale, "are stale", ts)
	out = summarizeNodeEvents(out, model.EventNodeRecovered, "recovered", ts)
	if e, ok := healthChange(prev.ClusterMetrics, next.ClusterMetrics, ts); ok {
		out = append(out, e)
	}
	for key, n := range next.PodMetrics {
		p := prev.PodMetrics[key]
		if n == nil || p == nil || n.Restarts <= p.Restarts {
			continue
		}
		// Same name, different UID: a new pod whose count started over.
		if n.UID != "" && p.UID != "" && n.UID != p.UID {
			continue
		}
		out = append(out, podRestarting(key, p, n, ts))
	}
	slices.SortFunc(out, func(a, b model.Event) int {
		return cmp.Or(cmp.Compare(a.Type, b.Type), cmp.Compare(a.Node, b.Node),
			cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	// Messages quote Kubernetes' own text (a pod's status reason); they are
	// cut here so that every log line and message carrying them is bounded.
	for i := range out {
		out[i].Message = model.TruncateMessage(out[i].Message)
	}
	return out
}

// summarizeNodeEvents replaces the events of type typ in events, when there
// are more than MaxNodeEvents, by one event that counts them and names the
// first summaryExamples nodes in name order.
func summarizeNodeEvents(events []model.Event, typ model.EventType, verb string, ts time.Time) []model.Event {
	var names []string
	severity := ""
	for _, e := range events {
		if e.Type == typ {
			names = append(names, e.Node)
			severity = e.Severity
		}
	}
	if len(names) <= MaxNodeEvents {
		return events
	}
	events = slices.DeleteFunc(events, func(e model.Event) bool { return e.Type == typ })
	slices.Sort(names)
	examples := names[:summaryExamples]
	return append(events, model.Event{
		Type: typ, Severity: severity, Timestamp: ts,
		Message: fmt.Sprintf("%d nodes %s: %s and %d more", len(names), verb, strings.Join(examples, ", "), len(names)-len(examples)),
		Details: map[string]string{"count": strconv.Itoa(len(names)), "nodes": strings.Join(examples, ",")},
	})
}

func healthChange(prev, next *model.ClusterMetrics, ts time.Time) (model.Event, bool) {
	if prev == nil || next == nil || prev.HealthStatus == next.HealthStatus {
		return model.Event{}, false
	}
	severity := model.SeverityInfo
	switch next.HealthStatus {
	case model.HealthWarning:
		severity = model.SeverityWarning
	case model.HealthCritical:
		severity = model.SeverityCritical
	}
	msg := fmt.Sprintf("cluster health changed from %s to %s", prev.HealthStatus, next.HealthStatus)
	switch len(next.Issues) {
	case 0:
	case 1:
		msg += ": " + next.Issues[0]
	default:
		msg += fmt.Sprintf(": %s (and %d more issues)", next.Issues[0], len(next.Issues)-1)
	}
	return model.Event{
		Type: model.EventClusterHealthChanged, Severity: severity, Timestamp: ts, Message: msg,
		Details: map[string]string{"old": prev.HealthStatus, "new": next.HealthStatus, "issues": strconv.Itoa(len(next.Issues))},
	}, true
}

func podRestarting(key string, p, n *model.PodMetrics, ts time.Time) model.Event {
	details := map[string]string{
		"restarts":         strconv.Itoa(int(n.Restarts)),
		"previousRestarts": strconv.Itoa(int(p.Restarts)),
	}
	msg := fmt.Sprintf("pod %s is restarting: %d restarts (+%d)", key, n.Restarts, n.Restarts-p.Restarts)
	// Name the container whose count rose: its last termination is why.
	for _, c := range n.Containers {
		var before int32
		for _, pc := range p.Containers {
			if pc.Name == c.Name {
				before = pc.Restarts
			}
		}
		if c.Restarts <= before {
			continue
		}
		details["container"] = c.Name
		if c.LastTerminationReason != "" {
			details["lastTerminationReason"] = c.LastTerminationReason
			msg += ", last terminated " + c.LastTerminationReason
		}
		if c.LastExitCode != 0 {
			details["lastExitCode"] = strconv.Itoa(int(c.LastExitCode))
		}
		break
	}
	return model.Event{
		Type: model.EventPodRestarting, Severity: model.SeverityWarning, Timestamp: ts,
		Node: n.NodeName, Namespace: n.Namespace, Name: n.PodName, Message: msg, Details: details,
	}
}
