package diagnose

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/terminations"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// Pod rule ids, in the order the rules are tried (docs/llm.md, "Diagnosis").
const (
	RulePodEvicted          = "pod-evicted"
	RulePodPendingResources = "pod-pending-resources"
	RulePodPendingTaint     = "pod-pending-taint"
	RulePodUnschedulable    = "pod-pending-unschedulable"
	RulePodPending          = "pod-pending"
	RulePodImagePull        = "pod-image-pull"
	RulePodConfigError      = "pod-config-error"
	RulePodCrashLoopOOM     = "pod-crashloop-oom"
	RulePodLiveness         = "pod-crashloop-liveness"
	RulePodCrashLoopExit    = "pod-crashloop-exit"
	RulePodRestartCompleted = "pod-restart-completed"
	RulePodRestarting       = "pod-restarting"
	RulePodFailed           = "pod-failed"
	RulePodOOMNoRestart     = "pod-oom-kill-no-restart"
	RulePodNotReady         = "pod-not-ready"
	RulePodMemoryNearLimit  = "pod-memory-near-limit"
	RulePodNodeUnhealthy    = "pod-node-unhealthy"
	RulePodCompleted        = "pod-completed"
	RulePodHealthy          = "pod-healthy"
)

// Waiting reasons that need someone to fix the pod.
var (
	imagePullReasons   = map[string]bool{"ErrImagePull": true, "ImagePullBackOff": true, "InvalidImageName": true, "ErrImageNeverPull": true}
	configErrorReasons = map[string]bool{"CreateContainerConfigError": true, "CreateContainerError": true, "RunContainerError": true}
)

// MemoryNearLimitRate is the share of its memory limit (percent) a pod's
// working set must reach in the memory window for pod-memory-near-limit.
const MemoryNearLimitRate = model.DefaultOverLimitRate

// Pod diagnoses one pod. The error matches ErrNotFound for a pod neither
// the snapshot nor the API server's cache holds.
func (d *Diagnoser) Pod(namespace, name string) (*Diagnosis, error) {
	if d.opts.State.Snapshot() == nil {
		return nil, ErrNoSnapshot
	}
	f, ok := d.podFacts(namespace, name)
	if !ok {
		return nil, fmt.Errorf("%w: pod %s/%s", ErrNotFound, namespace, name)
	}
	dg := &Diagnosis{Kind: KindPod, Namespace: namespace, Name: name}
	d.podContext(dg, f)
	crashing := crashingContainer(f)
	for _, rule := range []func(*Diagnosis, *podFacts, *containerFacts) bool{
		d.ruleEvicted, d.rulePending, ruleImagePull, ruleConfigError, ruleCrashLoop,
		ruleFailed, ruleOOMNoRestart, ruleNotReady, ruleMemoryNearLimit, d.ruleNodeUnhealthy, ruleHealthy,
	} {
		if rule(dg, f, crashing) {
			break
		}
	}
	d.podEvidence(dg, f, crashing)
	if vm := launcherOf(f.snap, namespace, name); vm != nil {
		dg.Verdict += fmt.Sprintf(" (this is the virt-launcher pod of VM %s/%s)", vm.Namespace, vm.Name)
		dg.add(rankCause, EvidenceVM, fmt.Sprintf("runs VM %s/%s: status %s on node %s; diagnose the VM through this pod", vm.Namespace, vm.Name, vm.Status, vm.Node),
			vm.Timestamp, map[string]any{"name": vm.Name, "namespace": vm.Namespace, "status": vm.Status, "source": vm.Source})
	}
	return d.finish(dg), nil
}

// podContext adds the one-line state of the pod.
func (d *Diagnoser) podContext(dg *Diagnosis, f *podFacts) {
	var b strings.Builder
	fmt.Fprintf(&b, "phase %s", cmpOrString(f.phase, "unknown"))
	if f.node != "" {
		b.WriteString(" on node " + f.node)
	}
	restarts, ready := int32(0), false
	if f.m != nil {
		restarts, ready = f.m.Restarts, f.m.Ready
	}
	if f.obj != nil {
		ready = podReady(f.obj)
		restarts = 0
		for _, c := range f.containers {
			restarts += c.restarts
		}
		if f.obj.Status.QOSClass != "" {
			b.WriteString(", QoS " + string(f.obj.Status.QOSClass))
		}
	}
	fmt.Fprintf(&b, ", ready %t, %d restarts", ready, restarts)
	for _, c := range f.containers {
		fmt.Fprintf(&b, "; %s %s", c.name, cmpOrString(c.state, "unknown"))
		if c.reason != "" {
			b.WriteString(" (" + c.reason + ")")
		}
	}
	data := map[string]any{"phase": f.phase, "node": f.node, "ready": ready, "restarts": restarts}
	if f.m != nil {
		data["memoryUsage"], data["memoryLimit"], data["cpuUsage"], data["cpuLimit"] = f.m.MemoryUsage, f.m.MemoryLimit, f.m.CPUUsage, f.m.CPULimit
	}
	dg.add(rankContext, EvidencePod, b.String(), timeOrZero(f.m), data)
}

func timeOrZero(m *model.PodMetrics) (t time.Time) {
	if m != nil {
		return m.Timestamp
	}
	return t
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// crashingContainer is the container restarting the most that is in
// CrashLoopBackOff or ended within the recent-restart window; nil if none.
func crashingContainer(f *podFacts) *containerFacts {
	var best *containerFacts
	for i := range f.containers {
		c := &f.containers[i]
		crashing := c.state == "waiting" && c.reason == "CrashLoopBackOff"
		if t := c.last(); t != nil && c.restarts > 0 && !t.FinishedAt.IsZero() && f.now.Sub(t.FinishedAt) <= recentRestarts {
			crashing = true
		}
		if crashing && (best == nil || c.restarts > best.restarts) {
			best = c
		}
	}
	return best
}

func (d *Diagnoser) ruleEvicted(dg *Diagnosis, f *podFacts, _ *containerFacts) bool {
	if f.obj == nil || f.obj.Status.Reason != "Evicted" {
		return false
	}
	dg.verdict(SeverityCritical, RulePodEvicted, "Evicted from node %s: %s", cmpOrString(f.node, "(unknown)"),
		terminations.Truncate(oneLine(cmpOrString(f.obj.Status.Message, "no message")), 200))
	return true
}

func ruleImagePull(dg *Diagnosis, f *podFacts, _ *containerFacts) bool {
	for _, c := range f.containers {
		if c.state == "waiting" && imagePullReasons[c.reason] {
			dg.verdict(SeverityCritical, RulePodImagePull, "Cannot start: the image %q of container %s cannot be pulled (%s): %s",
				c.image, c.name, c.reason, terminations.Truncate(oneLine(cmpOrString(c.message, "no message")), 200))
			return true
		}
	}
	return false
}

func ruleConfigError(dg *Diagnosis, f *podFacts, _ *containerFacts) bool {
	for _, c := range f.containers {
		if c.state == "waiting" && configErrorReasons[c.reason] {
			dg.verdict(SeverityCritical, RulePodConfigError, "Cannot start container %s (%s): %s",
				c.name, c.reason, terminations.Truncate(oneLine(cmpOrString(c.message, "no message")), 200))
			return true
		}
	}
	return false
}

// oomEvidence says whether a termination was an OOM kill and by what
// evidence: the reason OOMKilled, or exit code 137 with an OOM kill
// counted by the cgroup. A SIGKILL alone (137) is not enough.
func oomEvidence(f *podFacts, c *containerFacts, t *terminations.Termination) (bool, string) {
	if t == nil {
		return false, ""
	}
	if t.Reason == "OOMKilled" {
		return true, "reason OOMKilled"
	}
	if t.ExitCode != 137 {
		return false, ""
	}
	if c.cgroup != nil && c.cgroup.Memory.OOMKill > 0 {
		return true, fmt.Sprintf("exit code 137 and its cgroup counted %d OOM kills", c.cgroup.Memory.OOMKill)
	}
	if f.cgroup != nil && f.cgroup.Memory.OOMKill > 0 && f.cgroupVer == 2 {
		return true, fmt.Sprintf("exit code 137 and the pod's cgroup counted %d OOM kills", f.cgroup.Memory.OOMKill)
	}
	return false, ""
}

func ruleCrashLoop(dg *Diagnosis, f *podFacts, c *containerFacts) bool {
	if c == nil {
		return false
	}
	t := c.last()
	if oom, why := oomEvidence(f, c, t); oom {
		ooms := 0
		for i := range c.history {
			if ok, _ := oomEvidence(f, c, &c.history[i]); ok {
				ooms++
			}
		}
		limit := "it has no memory limit, so the node itself ran out of memory"
		if c.memLimit > 0 {
			limit = "its memory limit is " + bytesText(c.memLimit)
		}
		dg.verdict(SeverityCritical, RulePodCrashLoopOOM, "Crash loop from OOM: container %s was OOM-killed (%s), %d of its last %d terminations; %s; %d restarts",
			c.name, why, ooms, len(c.history), limit, c.restarts)
		return true
	}
	if n, last := f.probeFailures("Liveness"); n > 0 && c.restarts > 0 {
		dg.verdict(SeverityCritical, RulePodLiveness, "Restarting because its liveness probe fails: %d probe failures, the latest %s: %s; the kubelet restarted container %s %d times",
			n, ago(f.now, last.Time), terminations.Truncate(oneLine(last.Message), 160), c.name, c.restarts)
		return true
	}
	if t == nil {
		dg.verdict(SeverityWarning, RulePodRestarting, "Restarting: container %s restarted %d times (%s); no termination recorded yet",
			c.name, c.restarts, cmpOrString(c.reason, c.state))
		return true
	}
	if t.ExitCode == 0 {
		dg.verdict(SeverityWarning, RulePodRestartCompleted, "Restarting: container %s exits with code 0 (%s) and is started again by restartPolicy; %d restarts",
			c.name, cmpOrString(t.Reason, "Completed"), c.restarts)
		return true
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Crash loop: container %s exits with code %d (%s)", c.name, t.ExitCode, cmpOrString(t.Reason, "Error"))
	if t.Signal != 0 {
		fmt.Fprintf(&b, ", signal %d", t.Signal)
		if n := terminations.SignalName(t.Signal); n != "" {
			b.WriteString(" " + n)
		}
	}
	if t.ExitCode == 137 {
		b.WriteString("; not an OOM kill by the evidence (the reason is not OOMKilled and no cgroup counted an OOM kill), so something else sent SIGKILL")
	}
	fmt.Fprintf(&b, "; %d restarts", c.restarts)
	if t.Message != "" {
		b.WriteString("; last message: " + terminations.Truncate(oneLine(t.Message), 160))
	}
	dg.verdict(SeverityCritical, RulePodCrashLoopExit, "%s", b.String())
	return true
}

func ruleFailed(dg *Diagnosis, f *podFacts, _ *containerFacts) bool {
	if f.phase != string(corev1.PodFailed) {
		return false
	}
	why := "no reason given"
	if f.obj != nil {
		why = strings.TrimSpace(f.obj.Status.Reason + " " + f.obj.Status.Message)
	}
	for _, c := range f.containers {
		if t := c.last(); t != nil && t.ExitCode != 0 {
			why = terminationText(t, f.now)
			break
		}
	}
	dg.verdict(SeverityWarning, RulePodFailed, "Failed: %s", terminations.Truncate(oneLine(why), 240))
	return true
}

func ruleOOMNoRestart(dg *Diagnosis, f *podFacts, _ *containerFacts) bool {
	if f.cgroup == nil {
		return false
	}
	kills := f.cgroup.Memory.OOMKill
	for _, c := range f.containers {
		if c.cgroup != nil && c.cgroup.Memory.OOMKill > kills {
			kills = c.cgroup.Memory.OOMKill
		}
	}
	if kills == 0 {
		return false
	}
	dg.verdict(SeverityWarning, RulePodOOMNoRestart, "OOM kills inside the pod without a container restart: its cgroup counted %d OOM kills, so a child process was killed while the container lived on", kills)
	return true
}

func ruleNotReady(dg *Diagnosis, f *podFacts, _ *containerFacts) bool {
	if f.phase != string(corev1.PodRunning) || f.obj == nil || podReady(f.obj) {
		return false
	}
	if n, last := f.probeFailures("Readiness"); n > 0 {
		dg.verdict(SeverityWarning, RulePodNotReady, "Running but not ready: its readiness probe fails (%d failures, the latest %s: %s)",
			n, ago(f.now, last.Time), terminations.Truncate(oneLine(last.Message), 160))
		return true
	}
	var waiting []string
	for _, c := range f.containers {
		if !c.ready {
			waiting = append(waiting, c.name)
		}
	}
	dg.verdict(SeverityWarning, RulePodNotReady, "Running but not ready: containers not ready: %s", strings.Join(waiting, ", "))
	return true
}

func ruleMemoryNearLimit(dg *Diagnosis, f *podFacts, _ *containerFacts) bool {
	w := f.memory
	if w == nil || w.limit <= 0 || w.peakRate < MemoryNearLimitRate {
		return false
	}
	dg.verdict(SeverityWarning, RulePodMemoryNearLimit, "Close to its memory limit: the working set reached %s, %s of the %s limit, in the last %s; at the limit it will be OOM-killed",
		bytesText(w.peak), pct(w.peakRate), bytesText(w.limit), w.window)
	return true
}

func (d *Diagnoser) ruleNodeUnhealthy(dg *Diagnosis, f *podFacts, _ *containerFacts) bool {
	if f.snap == nil || f.node == "" {
		return false
	}
	n := f.snap.NodeMetrics[f.node]
	if n == nil || (n.Healthy && !n.Stale) {
		return false
	}
	why := strings.Join(n.PressureReasons(d.opts.Thresholds), ", ")
	if n.Stale {
		why = strings.TrimPrefix(why+", its agent's data is stale", ", ")
	}
	if containsString(n.Conditions, "NotReady") {
		why = strings.TrimPrefix(why+", node NotReady", ", ")
	}
	dg.verdict(SeverityWarning, RulePodNodeUnhealthy, "The pod looks fine but its node %s is not: %s", f.node, cmpOrString(why, "unhealthy"))
	dg.add(rankCause, EvidenceCondition, fmt.Sprintf("node %s: healthy %t, stale %t, conditions %s", f.node, n.Healthy, n.Stale, strings.Join(n.Conditions, ", ")), n.Timestamp, nil)
	return true
}

func ruleHealthy(dg *Diagnosis, f *podFacts, _ *containerFacts) bool {
	if f.phase == string(corev1.PodSucceeded) {
		dg.verdict(SeverityOK, RulePodCompleted, "Completed: every container exited successfully")
		return true
	}
	restarts := int32(0)
	var last *terminations.Termination
	for i := range f.containers {
		c := &f.containers[i]
		restarts += c.restarts
		if t := c.last(); t != nil && (last == nil || t.FinishedAt.After(last.FinishedAt)) {
			last = t
		}
	}
	msg := fmt.Sprintf("Healthy: %s", cmpOrString(f.phase, "phase unknown"))
	if f.node != "" {
		msg += " on node " + f.node
	}
	msg += fmt.Sprintf(", %d restarts", restarts)
	if restarts > 0 && last != nil && !last.FinishedAt.IsZero() {
		msg += fmt.Sprintf(", the last %s (%s, exit code %d)", ago(f.now, last.FinishedAt), cmpOrString(last.Reason, "terminated"), last.ExitCode)
	}
	dg.verdict(SeverityOK, RulePodHealthy, "%s", msg)
	return true
}

// podEvidence adds the termination history, OOM counters, memory against
// the limit and events, ranked by what the verdict rests on.
func (d *Diagnoser) podEvidence(dg *Diagnosis, f *podFacts, crashing *containerFacts) {
	oomRule := dg.Rule == RulePodCrashLoopOOM || dg.Rule == RulePodOOMNoRestart || dg.Rule == RulePodMemoryNearLimit
	for i := range f.containers {
		c := &f.containers[i]
		for j := range c.history {
			t := &c.history[j]
			rank := rankSupport
			if c == crashing || dg.Rule == RulePodFailed {
				rank = rankCause
			}
			dg.add(rank, EvidenceTermination, terminationText(t, f.now), t.FinishedAt, *t)
		}
	}
	if f.cgroup != nil {
		rank := rankSupport
		if oomRule {
			rank = rankCause
		}
		dg.add(rank, EvidenceOOM, "pod cgroup"+cgroupText(f.cgroupVer, f.cgroup.Memory), time.Time{}, f.cgroup.Memory)
		for i := range f.containers {
			if c := &f.containers[i]; c.cgroup != nil && (c.cgroup.Memory.OOMKill > 0 || c.cgroup.Memory.OOM > 0 || c.cgroup.Memory.FailCount > 0 || c.cgroup.Memory.Max > 0) {
				dg.add(rank, EvidenceOOM, "container "+c.name+" cgroup"+cgroupText(f.cgroupVer, c.cgroup.Memory), time.Time{}, c.cgroup.Memory)
			}
		}
	}
	if w := f.memory; w != nil {
		rank := rankSupport
		if oomRule {
			rank = rankCause
		}
		s := fmt.Sprintf("memory working set over the last %s (%s): peak %s", w.window, plural(w.points, "reading"), bytesText(w.peak))
		if w.limit > 0 {
			s += fmt.Sprintf(" = %s of the %s limit", pct(w.peakRate), bytesText(w.limit))
		} else {
			s += ", no memory limit"
		}
		s += ", now " + bytesText(w.now)
		dg.add(rank, EvidenceMetric, s, w.peakAt, map[string]any{"peakBytes": w.peak, "limitBytes": w.limit, "peakRate": w.peakRate, "nowBytes": w.now, "points": w.points})
	}
	if f.obj != nil {
		for _, c := range f.obj.Status.Conditions {
			if c.Type == corev1.PodScheduled {
				continue // the pending rules quote it already
			}
			if c.Status != corev1.ConditionTrue && c.Message != "" {
				dg.add(rankSupport, EvidenceCondition, fmt.Sprintf("%s %s (%s): %s", c.Type, c.Status, c.Reason, oneLine(c.Message)), c.LastTransitionTime.UTC(), nil)
			}
		}
	}
	addEvents(dg, f.events, f.now, causeReasons(dg.Rule)...)
}

// causeReasons are the event reasons a rule's verdict rests on.
func causeReasons(rule string) []string {
	switch rule {
	case RulePodLiveness, RulePodNotReady:
		return []string{"Unhealthy", "Killing"}
	case RulePodCrashLoopOOM, RulePodCrashLoopExit, RulePodRestartCompleted, RulePodRestarting:
		return []string{"BackOff"}
	case RulePodImagePull:
		return []string{"Failed", "BackOff"}
	case RulePodEvicted:
		return []string{"Evicted"}
	case RulePodPendingResources, RulePodPendingTaint, RulePodUnschedulable, RulePodPending:
		return []string{"FailedScheduling"}
	}
	return nil
}

// cgroupText writes a cgroup's memory counters.
func cgroupText(version int, m model.MemoryCgroup) string {
	var b strings.Builder
	fmt.Fprintf(&b, " (cgroup v%d): oom_kill %d", version, m.OOMKill)
	if version == 2 {
		fmt.Fprintf(&b, ", oom %d, limit reached %d times", m.OOM, m.Max)
	} else {
		fmt.Fprintf(&b, ", failcnt %d", m.FailCount)
	}
	if m.PeakBytes > 0 {
		b.WriteString(", peak " + bytesText(m.PeakBytes))
	}
	if m.LimitBytes > 0 {
		b.WriteString(" of limit " + bytesText(m.LimitBytes))
	}
	return b.String()
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
