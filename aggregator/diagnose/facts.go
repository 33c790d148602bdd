package diagnose

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/events"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/state"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/terminations"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// Bounds of what one diagnosis reads.
const (
	maxPodEvents   = 100
	maxEventLines  = 10
	recentRestarts = state.RecentRestartWindow
)

// podFacts is what the pod rules read.
type podFacts struct {
	ns, name string
	snap     *model.MetricsSnapshot
	obj      *corev1.Pod       // nil in standalone mode
	m        *model.PodMetrics // nil before the pod is in a snapshot
	node     string
	phase    string

	containers []containerFacts
	events     []events.Event // about the pod, latest change first
	cgroup     *model.PodCgroupStats
	cgroupVer  int
	memory     *memoryWindow
	now        time.Time
}

// containerFacts is one container's status with its history.
type containerFacts struct {
	name     string
	init     bool
	restarts int32
	ready    bool
	state    string // running, waiting, terminated
	reason   string // of the waiting or terminated state
	message  string
	image    string
	id       string // runtime ID, without the "containerd://" prefix
	memLimit int64
	history  []terminations.Termination // newest first
	cgroup   *model.ContainerCgroupStats
}

// last is the container's latest termination, nil when it never ended.
func (c *containerFacts) last() *terminations.Termination {
	if len(c.history) == 0 {
		return nil
	}
	return &c.history[0]
}

// memoryWindow is the pod's working set over the recent history.
type memoryWindow struct {
	points    int
	peak, now int64
	peakRate  float64 // against the limit, percent; 0 without a limit
	limit     int64
	window    time.Duration
	peakAt    time.Time
}

// podFacts gathers everything about one pod; false when neither the
// snapshot nor the API server knows it.
func (d *Diagnoser) podFacts(namespace, name string) (*podFacts, bool) {
	f := &podFacts{ns: namespace, name: name, snap: d.opts.State.Snapshot(), now: d.opts.Now()}
	if f.snap != nil {
		f.m = f.snap.PodMetrics[model.PodKey(namespace, name)]
	}
	if d.opts.Objects != nil {
		f.obj = d.opts.Objects.Pod(namespace, name)
	}
	if f.m == nil && f.obj == nil {
		return nil, false
	}
	switch {
	case f.obj != nil:
		f.node, f.phase = f.obj.Spec.NodeName, string(f.obj.Status.Phase)
	default:
		f.node, f.phase = f.m.NodeName, f.m.Phase
	}
	var hist []terminations.ContainerHistory
	if d.opts.Terminations != nil {
		hist = d.opts.Terminations.Pod(namespace, name)
	}
	f.containers = containersOf(f.obj, f.m, hist)
	f.cgroupVer, f.cgroup = d.podCgroup(f)
	for i := range f.containers {
		c := &f.containers[i]
		if f.cgroup == nil || c.id == "" {
			continue
		}
		for j := range f.cgroup.Containers {
			if f.cgroup.Containers[j].ID == c.id {
				c.cgroup = &f.cgroup.Containers[j]
			}
		}
	}
	if d.opts.Events != nil {
		if p, err := d.opts.Events.List(events.Filter{Namespace: namespace, Pod: name, Limit: maxPodEvents}); err == nil {
			f.events = p.Items
		}
	}
	f.memory = d.memoryWindow(f)
	return f, true
}

// containersOf merges the pod's container statuses (or, in standalone
// mode, the snapshot's) with the termination history.
func containersOf(obj *corev1.Pod, m *model.PodMetrics, hist []terminations.ContainerHistory) []containerFacts {
	var out []containerFacts
	if obj != nil {
		limits := map[string]int64{}
		images := map[string]string{}
		for _, list := range [][]corev1.Container{obj.Spec.InitContainers, obj.Spec.Containers} {
			for i := range list {
				if q, ok := list[i].Resources.Limits[corev1.ResourceMemory]; ok {
					limits[list[i].Name] = q.Value()
				}
				images[list[i].Name] = list[i].Image
			}
		}
		add := func(st *corev1.ContainerStatus, init bool) {
			c := containerFacts{name: st.Name, init: init, restarts: st.RestartCount, ready: st.Ready,
				image: images[st.Name], memLimit: limits[st.Name], id: runtimeID(st.ContainerID)}
			switch {
			case st.State.Waiting != nil:
				c.state, c.reason, c.message = "waiting", st.State.Waiting.Reason, st.State.Waiting.Message
			case st.State.Terminated != nil:
				c.state, c.reason, c.message = "terminated", st.State.Terminated.Reason, st.State.Terminated.Message
			case st.State.Running != nil:
				c.state = "running"
			}
			c.history = historyOf(hist, st, init)
			out = append(out, c)
		}
		for i := range obj.Status.InitContainerStatuses {
			add(&obj.Status.InitContainerStatuses[i], true)
		}
		for i := range obj.Status.ContainerStatuses {
			add(&obj.Status.ContainerStatuses[i], false)
		}
		return out
	}
	for _, cm := range m.Containers {
		c := containerFacts{name: cm.Name, restarts: cm.Restarts, ready: cm.Ready, state: cm.State, reason: cm.Reason, memLimit: cm.MemoryLimit}
		for _, h := range hist {
			if h.Container == cm.Name {
				c.history = h.Terminations
			}
		}
		if len(c.history) == 0 && (cm.LastTerminationReason != "" || cm.LastExitCode != 0) {
			c.history = []terminations.Termination{{Container: cm.Name, Reason: cm.LastTerminationReason, ExitCode: cm.LastExitCode, Signal: signalOf(cm.LastExitCode)}}
		}
		out = append(out, c)
	}
	return out
}

// historyOf is the container's kept history, or what its status shows when
// the store has none yet (the aggregator just started).
func historyOf(hist []terminations.ContainerHistory, st *corev1.ContainerStatus, init bool) []terminations.Termination {
	for _, h := range hist {
		if h.Container == st.Name && h.Init == init {
			return h.Terminations
		}
	}
	var out []terminations.Termination
	for _, t := range []*corev1.ContainerStateTerminated{st.State.Terminated, st.LastTerminationState.Terminated} {
		if t != nil {
			out = append(out, terminations.Termination{Container: st.Name, Init: init, ContainerID: t.ContainerID,
				Reason: t.Reason, ExitCode: t.ExitCode, Signal: cmpOr(t.Signal, signalOf(t.ExitCode)),
				StartedAt: t.StartedAt.UTC(), FinishedAt: t.FinishedAt.UTC(), Message: terminations.Truncate(t.Message, terminations.MaxMessage)})
		}
	}
	return out
}

func cmpOr(a, b int32) int32 {
	if a != 0 {
		return a
	}
	return b
}

// signalOf reads a signal from an exit code by the shell's convention.
func signalOf(exit int32) int32 {
	if exit > 128 && exit <= 128+64 {
		return exit - 128
	}
	return 0
}

// runtimeID strips the runtime scheme: "containerd://abc" is "abc".
func runtimeID(id string) string {
	if _, rest, ok := strings.Cut(id, "://"); ok {
		return rest
	}
	return id
}

// podCgroup finds the pod's cgroup counters in its node's latest report.
func (d *Diagnoser) podCgroup(f *podFacts) (int, *model.PodCgroupStats) {
	if d.opts.Reports == nil || f.node == "" {
		return 0, nil
	}
	r := d.opts.Reports(f.node)
	if r == nil || r.Cgroups == nil {
		return 0, nil
	}
	uid := ""
	switch {
	case f.obj != nil:
		uid = string(f.obj.UID)
	case f.m != nil:
		uid = f.m.UID
	}
	if uid == "" {
		return 0, nil
	}
	for i := range r.Cgroups.Pods {
		if r.Cgroups.Pods[i].UID == uid {
			return r.Cgroups.Version, &r.Cgroups.Pods[i]
		}
	}
	return r.Cgroups.Version, nil
}

// memoryWindow reads the pod's working set over the recent history.
func (d *Diagnoser) memoryWindow(f *podFacts) *memoryWindow {
	points, ok := d.opts.State.PodHistory(f.ns, f.name)
	if !ok || len(points) == 0 {
		return nil
	}
	w := &memoryWindow{window: d.opts.MemoryWindow}
	if f.m != nil {
		w.limit = f.m.MemoryLimit
	}
	from := f.now.Add(-d.opts.MemoryWindow)
	for _, p := range points {
		if p.Timestamp.Before(from) {
			continue
		}
		w.points++
		w.now = p.MemoryUsage
		if p.MemoryUsage >= w.peak {
			w.peak, w.peakAt, w.peakRate = p.MemoryUsage, p.Timestamp, p.MemoryUsageRate
		}
	}
	if w.points == 0 || w.peak == 0 {
		return nil // no usage known: nothing to compare with the limit
	}
	return w
}

// liveProbeFailures counts liveness probe failures in the pod's events and
// returns the latest message.
func (f *podFacts) probeFailures(probe string) (count int, last *events.Event) {
	prefix := probe + " probe"
	for i := range f.events {
		e := &f.events[i]
		if e.Reason == "Unhealthy" && strings.HasPrefix(e.Message, prefix) {
			count += e.Count
			if last == nil || e.Time.After(last.Time) {
				last = e
			}
		}
	}
	return count, last
}

// eventCount sums the counts of the pod's events with reason.
func (f *podFacts) eventCount(reason string) (int, *events.Event) {
	n := 0
	var last *events.Event
	for i := range f.events {
		if e := &f.events[i]; e.Reason == reason {
			n += e.Count
			if last == nil || e.Time.After(last.Time) {
				last = e
			}
		}
	}
	return n, last
}

// launcherOf returns the VM whose virt-launcher pod this is.
func launcherOf(snap *model.MetricsSnapshot, ns, name string) *model.VMMetrics {
	if snap == nil {
		return nil
	}
	for _, vm := range snap.VMs {
		if vm != nil && vm.Namespace == ns && vm.Detail != nil && vm.Detail.LauncherPod == name {
			return vm
		}
	}
	return nil
}

// Formatting.

// bytesText writes a byte count the way people read memory: 256Mi, 1.5Gi.
func bytesText(b int64) string {
	const ki, mi, gi = 1 << 10, 1 << 20, 1 << 30
	switch {
	case b >= gi:
		return trimFloat(float64(b)/gi) + "Gi"
	case b >= mi:
		return trimFloat(float64(b)/mi) + "Mi"
	case b >= ki:
		return trimFloat(float64(b)/ki) + "Ki"
	}
	return strconv.FormatInt(b, 10) + "B"
}

// cpuText writes millicores: 250m, 4 cores.
func cpuText(m int64) string {
	if m == 1000 {
		return "1 core"
	}
	if m%1000 == 0 && m != 0 {
		return strconv.FormatInt(m/1000, 10) + " cores"
	}
	return strconv.FormatInt(m, 10) + "m"
}

func trimFloat(f float64) string {
	s := strconv.FormatFloat(f, 'f', 1, 64)
	return strings.TrimSuffix(s, ".0")
}

// plural writes "1 reading", "6 readings".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

func pct(r float64) string { return strconv.FormatFloat(r, 'f', 1, 64) + "%" }

// ago writes how long before now t was, rounded for reading.
func ago(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s ago"
	case d < time.Hour:
		return strconv.Itoa(int(d.Minutes())) + "m ago"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d.Hours())) + "h ago"
	}
	return strconv.Itoa(int(d.Hours()/24)) + "d ago"
}

// terminationText is one termination in words.
func terminationText(t *terminations.Termination, now time.Time) string {
	var b strings.Builder
	b.WriteString("container " + t.Container)
	if t.Init {
		b.WriteString(" (init)")
	}
	b.WriteString(": ")
	b.WriteString(cmpOrString(t.Reason, "terminated"))
	fmt.Fprintf(&b, ", exit code %d", t.ExitCode)
	if t.Signal != 0 {
		fmt.Fprintf(&b, " (signal %d", t.Signal)
		if n := terminations.SignalName(t.Signal); n != "" {
			b.WriteString(" " + n)
		}
		b.WriteString(")")
	}
	if !t.StartedAt.IsZero() && !t.FinishedAt.IsZero() && t.FinishedAt.After(t.StartedAt) {
		b.WriteString(", ran " + t.FinishedAt.Sub(t.StartedAt).Round(time.Second).String())
	}
	if !t.FinishedAt.IsZero() {
		b.WriteString(", " + ago(now, t.FinishedAt))
	}
	if t.Message != "" {
		b.WriteString(": " + strconv.Quote(terminations.Truncate(oneLine(t.Message), 120)))
	}
	return b.String()
}

func cmpOrString(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// oneLine folds a multi-line message (a stack trace) into one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// eventText is one event in words.
func eventText(e *events.Event, now time.Time) string {
	var b strings.Builder
	b.WriteString(e.Type + " " + e.Reason)
	if e.Count > 1 {
		b.WriteString(" ×" + strconv.Itoa(e.Count))
	}
	if e.Object != nil && e.Object.Kind != "" && e.Object.Kind != "Pod" {
		b.WriteString(" on " + e.Object.Kind + " " + e.Object.Name)
	}
	b.WriteString(", last " + ago(now, e.Time))
	if e.Message != "" {
		b.WriteString(": " + terminations.Truncate(oneLine(e.Message), 160))
	}
	return b.String()
}

// addEvents adds up to maxEventLines events, warnings first, then the
// latest. Events whose reason is in cause rank as causes.
func addEvents(dg *Diagnosis, evs []events.Event, now time.Time, cause ...string) {
	sorted := slices.Clone(evs)
	slices.SortStableFunc(sorted, func(a, b events.Event) int {
		aw, bw := a.Type == events.TypeWarning, b.Type == events.TypeWarning
		if aw != bw {
			if aw {
				return -1
			}
			return 1
		}
		return b.Time.Compare(a.Time)
	})
	for i := range sorted {
		if i == maxEventLines {
			break
		}
		e := &sorted[i]
		rank := rankContext
		switch {
		case slices.Contains(cause, e.Reason):
			rank = rankCause
		case e.Type == events.TypeWarning:
			rank = rankSupport
		}
		dg.add(rank, EvidenceEvent, eventText(e, now), e.Time, map[string]any{
			"source": e.Source, "type": e.Type, "reason": e.Reason, "count": e.Count,
		})
	}
}
