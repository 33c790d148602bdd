package events

import (
	"strings"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// maxClockSkew is how far ahead of the aggregator's clock an agent's event
// time may be; a later time is replaced by the time it arrived, so a wrong
// clock cannot keep an event past its retention.
const maxClockSkew = 5 * time.Minute

// AddKube folds a Kubernetes Event into the store. Its count is the API
// server's cumulative count, so an update of the same Event object adds
// only the increase. It reports whether the store changed.
func (s *Store) AddKube(k *corev1.Event) bool {
	if k == nil {
		return false
	}
	ev := Event{
		Time:      kubeTime(k),
		Source:    SourceKubernetes,
		Type:      bounded(k.Type),
		Severity:  model.SeverityInfo,
		Namespace: bounded(k.InvolvedObject.Namespace),
		Object:    objectRef(k.InvolvedObject.Kind, k.InvolvedObject.Name),
		Reason:    bounded(k.Reason),
		Message:   truncate(k.Message, MaxMessage),
		Count:     int(max(k.Count, 1)),
	}
	if ev.Type != TypeWarning {
		ev.Type = TypeNormal
	} else {
		ev.Severity = model.SeverityWarning
	}
	if k.Series != nil && int(k.Series.Count) > ev.Count {
		ev.Count = int(k.Series.Count)
	}
	if ev.Namespace == "" && k.InvolvedObject.Kind != "Node" {
		ev.Namespace = bounded(k.Namespace)
	}
	switch k.InvolvedObject.Kind {
	case "Node":
		ev.Node = bounded(k.InvolvedObject.Name)
		ev.Namespace = ""
	case "Pod":
		ev.Pod = bounded(k.InvolvedObject.Name)
		ev.Node = bounded(k.Source.Host) // the reporting kubelet's node
	default:
		ev.Node = bounded(k.Source.Host)
	}
	uid := string(k.UID)
	if uid == "" {
		uid = k.Namespace + "/" + k.Name
	}
	return s.add(ev, key(&ev, ""), uid)
}

// kubeTime is when the event last happened, from whichever of its time
// fields the reporting component filled.
func kubeTime(k *corev1.Event) time.Time {
	t := k.LastTimestamp.Time
	if k.Series != nil && k.Series.LastObservedTime.After(t) {
		t = k.Series.LastObservedTime.Time
	}
	for _, c := range []time.Time{k.EventTime.Time, k.FirstTimestamp.Time, k.CreationTimestamp.Time} {
		if t.IsZero() {
			t = c
		}
	}
	return t.UTC()
}

// AddModel folds an agent's node event or the aggregator's cluster event
// into the store; source is SourceAgent or SourceAggregator. It reports
// whether the store changed.
func (s *Store) AddModel(e *model.Event, source string) bool {
	if e == nil || e.Type == "" {
		return false
	}
	now := s.opts.Now()
	ev := Event{
		Time:      e.Timestamp.UTC(),
		Source:    source,
		Severity:  e.Severity,
		Node:      bounded(e.Node),
		Namespace: bounded(e.Namespace),
		Reason:    bounded(string(e.Type)),
		Message:   truncate(e.Message, MaxMessage),
		Count:     1,
	}
	if ev.Time.IsZero() || ev.Time.After(now.Add(maxClockSkew)) {
		ev.Time = now.UTC()
	}
	switch ev.Severity {
	case model.SeverityInfo:
		ev.Type = TypeNormal
	case model.SeverityWarning, model.SeverityCritical:
		ev.Type = TypeWarning
	default:
		ev.Severity, ev.Type = model.SeverityWarning, TypeWarning
	}
	ev.Object = modelObject(e)
	if ev.Object != nil && ev.Object.Kind == "Pod" {
		ev.Pod = ev.Object.Name
	}
	return s.add(ev, key(&ev, bounded(e.Source)), "")
}

// objectRef names an object; nil unless both kind and name are known.
func objectRef(kind, name string) *ObjectRef {
	if kind == "" || name == "" {
		return nil
	}
	return &ObjectRef{Kind: bounded(kind), Name: bounded(name)}
}

// modelObject names what a node or cluster event is about: its pod or VM,
// the GPU a gpu:<index> source names, else its node; nil for the cluster.
func modelObject(e *model.Event) *ObjectRef {
	switch {
	case strings.HasPrefix(string(e.Type), "VM") && e.Name != "":
		return objectRef("VirtualMachine", e.Name)
	case e.Name != "":
		return objectRef("Pod", e.Name)
	case strings.HasPrefix(e.Source, "gpu:"):
		gpu := e.Source
		if i := strings.IndexByte(gpu[len("gpu:"):], ':'); i >= 0 {
			gpu = gpu[:len("gpu:")+i] // gpu:0:temperature is about gpu:0
		}
		return objectRef("GPU", gpu)
	case e.Node != "":
		return objectRef("Node", e.Node)
	}
	return nil
}

// key is what makes two events one: the same source, object, reason and
// severity (and, for node and cluster events, the same data source:
// cpu, disk:/var, gpu:0).
func key(e *Event, detail string) string {
	kind, name := "", ""
	if e.Object != nil {
		kind, name = e.Object.Kind, e.Object.Name
	}
	return strings.Join([]string{e.Source, e.Node, e.Namespace, kind, name, e.Reason, e.Severity, detail}, "\x00")
}

func bounded(s string) string { return truncate(s, maxField) }

// truncate cuts s to at most n bytes on a rune boundary, marking the cut
// with "…" (counted in n).
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "…"
	if n < len(mark) {
		return ""
	}
	cut := n - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}
