package diagnose

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/state"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// evidenceText joins the evidence the way a reader sees it.
func evidenceText(dg *Diagnosis) string {
	var b strings.Builder
	for _, e := range dg.Evidence {
		b.WriteString(e.Kind + ": " + e.Summary + "\n")
	}
	return b.String()
}

func TestPodRules(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		pod      string
		rule     string
		severity string
		verdict  []string // substrings of the verdict
		notIn    []string // must not be in the verdict
		evidence []string // substrings of the evidence
		first    string   // kind of the first evidence item
	}{
		{"shop/api-7d9f-oom", RulePodCrashLoopOOM, SeverityCritical,
			[]string{"Crash loop from OOM", "container api", "reason OOMKilled", "3 of its last 3", "256Mi"}, nil,
			[]string{"OOMKilled, exit code 137 (signal 9 SIGKILL)", "oom_kill 3", "= 98.0% of the 256Mi limit", "BackOff ×10"}, EvidenceTermination},
		{"shop/worker-exit", RulePodCrashLoopExit, SeverityCritical,
			[]string{"exits with code 1 (Error)", "5 restarts", "DATABASE_URL missing"}, []string{"OOM"},
			[]string{"Error, exit code 1"}, EvidenceTermination},
		{"shop/batch-137", RulePodCrashLoopExit, SeverityCritical,
			[]string{"exits with code 137", "SIGKILL", "not an OOM kill by the evidence"}, []string{"OOM-killed"},
			[]string{"oom_kill 0"}, EvidenceTermination},
		{"shop/cache-137", RulePodCrashLoopOOM, SeverityCritical,
			[]string{"Crash loop from OOM", "exit code 137 and the pod's cgroup counted 2 OOM kills", "192Mi"}, nil,
			[]string{"pod cgroup (cgroup v2): oom_kill 2"}, EvidenceTermination},
		{"shop/web-live", RulePodLiveness, SeverityCritical,
			[]string{"liveness probe fails", "12 probe failures", "statuscode: 500", "restarted container web 4 times"}, nil,
			[]string{"Killing ×4", "failed liveness probe"}, EvidenceTermination},
		{"shop/big", RulePodPendingResources, SeverityCritical,
			[]string{"no node has room for its requests (cpu 32 cores, memory 1Gi)", "the most free cpu is 27800m on gpu-node", "Insufficient cpu"}, nil,
			[]string{"PodScheduled False (Unschedulable)", "fits on 0 of 3 nodes", "FailedScheduling ×5", "node gpu-node does not fit: free cpu"}, EvidenceScheduling},
		{"shop/trainer", RulePodPendingTaint, SeverityCritical,
			[]string{"taints it does not tolerate", "gpu-node (nvidia.com/gpu=present:NoSchedule)"}, nil,
			[]string{"node node-a does not fit: free cpu", "fits on 0 of 3 nodes"}, EvidenceScheduling},
		{"shop/pull", RulePodImagePull, SeverityCritical,
			[]string{`"shop/api:9.9"`, "ImagePullBackOff", "not found"}, nil,
			[]string{"Failed ×6"}, EvidenceEvent},
		{"shop/evicted", RulePodEvicted, SeverityCritical,
			[]string{"Evicted from node node-a", "low on resource: memory"}, nil,
			[]string{"Evicted"}, EvidenceEvent},
		{"shop/frontend", RulePodHealthy, SeverityOK,
			[]string{"Healthy: Running on node node-b, 0 restarts"}, nil,
			[]string{"memory working set over the last 15m0s (6 readings): peak 90Mi = 35.2% of the 256Mi limit"}, ""},
		{"vms/virt-launcher-db-1-x7k2p", RulePodHealthy, SeverityOK,
			[]string{"virt-launcher pod of VM vms/db-1"}, nil,
			[]string{"runs VM vms/db-1: status Running on node node-b"}, EvidenceVM},
		{"shop/hog", RulePodNodeUnhealthy, SeverityWarning,
			[]string{"node node-a is not", "condition MemoryPressure"}, nil,
			[]string{"node node-a: healthy false"}, EvidenceCondition},
	}
	for _, tt := range tests {
		t.Run(tt.pod, func(t *testing.T) {
			ns, name, _ := strings.Cut(tt.pod, "/")
			dg, err := h.d.Pod(ns, name)
			require.NoError(t, err)
			assert.Equal(t, KindPod, dg.Kind)
			assert.Equal(t, tt.rule, dg.Rule, dg.Verdict)
			assert.Equal(t, tt.severity, dg.Severity)
			for _, s := range tt.verdict {
				assert.Contains(t, dg.Verdict, s)
			}
			for _, s := range tt.notIn {
				assert.NotContains(t, dg.Verdict, s)
			}
			ev := evidenceText(dg)
			for _, s := range tt.evidence {
				assert.Contains(t, ev, s)
			}
			if tt.first != "" {
				require.NotEmpty(t, dg.Evidence)
				assert.Equal(t, tt.first, dg.Evidence[0].Kind, ev)
			}
			assert.Equal(t, now, dg.GeneratedAt)
		})
	}
}

func TestNodeRules(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		node     string
		rule     string
		severity string
		verdict  []string
		evidence []string
	}{
		{"node-a", RuleNodeMemoryPressure, SeverityCritical,
			[]string{"Memory pressure", "kubelet reports MemoryPressure (kubelet has insufficient memory available) and evicts pods", "shop/hog 9Gi"},
			[]string{"MemoryPressure True (KubeletHasInsufficientMemory)", "requests against allocatable: cpu 500m of 3800m", "EvictionThresholdMet ×3", "Evicted ×1", "PressureRaised"}},
		{"gpu-node", RuleNodeGPUXid, SeverityCritical,
			[]string{"XID 79", "fallen off the bus", "pods using gpu:0: ml/train-gpu-0"},
			[]string{"GPU 0 NVIDIA A100-SXM4-80GB", "used by ml/train-gpu-0", "GPU 1 NVIDIA A100-SXM4-80GB", "; free"}},
		{"node-b", RuleNodeHealthy, SeverityOK,
			[]string{"Healthy: Ready, no pressure"},
			[]string{"warning events of its pods: BackOff ×32"}},
	}
	for _, tt := range tests {
		t.Run(tt.node, func(t *testing.T) {
			dg, err := h.d.Node(tt.node)
			require.NoError(t, err)
			assert.Equal(t, KindNode, dg.Kind)
			assert.Empty(t, dg.Namespace)
			assert.Equal(t, tt.rule, dg.Rule, dg.Verdict)
			assert.Equal(t, tt.severity, dg.Severity)
			for _, s := range tt.verdict {
				assert.Contains(t, dg.Verdict, s)
			}
			ev := evidenceText(dg)
			for _, s := range tt.evidence {
				assert.Contains(t, ev, s)
			}
		})
	}
}

func TestNotFound(t *testing.T) {
	h := newHarness(t)
	_, err := h.d.Pod("shop", "nope")
	assert.ErrorIs(t, err, ErrNotFound)
	_, err = h.d.Node("nope")
	assert.ErrorIs(t, err, ErrNotFound)

	empty := New(Options{State: state.NewStore(state.StoreOptions{})})
	_, err = empty.Pod("shop", "api")
	assert.ErrorIs(t, err, ErrNoSnapshot)
	_, err = empty.Node("n")
	assert.ErrorIs(t, err, ErrNoSnapshot)
}

// TestStandalone diagnoses from the snapshot alone: no Pod objects, no
// termination or events store, as in standalone mode.
func TestStandalone(t *testing.T) {
	h := newHarness(t)
	d := New(Options{State: h.store, Now: func() time.Time { return now }})
	dg, err := d.Pod("shop", "api-7d9f-oom")
	require.NoError(t, err)
	assert.Equal(t, RulePodCrashLoopOOM, dg.Rule, dg.Verdict)
	dg, err = d.Pod("shop", "batch-137")
	require.NoError(t, err)
	assert.Equal(t, RulePodCrashLoopExit, dg.Rule, "137 alone is not an OOM kill")
	dg, err = d.Node("node-a")
	require.NoError(t, err)
	assert.Equal(t, RuleNodeMemoryPressure, dg.Rule)
}

// TestMemoryNearLimit and the OOM kill without restart need their own
// pods: a healthy-looking container close to its limit, or one whose
// child process was killed.
func TestMemoryNearLimitAndHiddenOOM(t *testing.T) {
	h := newHarness(t)
	// frontend's history peaks at 90Mi of 256Mi; give it a 96Mi limit.
	st := h.store.Snapshot()
	next := *st
	next.PodMetrics = map[string]*model.PodMetrics{}
	for k, v := range st.PodMetrics {
		next.PodMetrics[k] = v
	}
	fe := *st.PodMetrics["shop/frontend"]
	fe.MemoryLimit = 96 << 20
	next.PodMetrics["shop/frontend"] = &fe
	h.store.Publish(&next)
	h.d.opts.State = &historyOverride{State: h.store, rate: 93.75}
	dg, err := h.d.Pod("shop", "frontend")
	require.NoError(t, err)
	assert.Equal(t, RulePodMemoryNearLimit, dg.Rule, dg.Verdict)
	assert.Contains(t, dg.Verdict, "93.8% of the 96Mi limit")

	// The kernel killed a child of frontend's container: the cgroup shows
	// it, no restart does.
	h.reports["node-b"].Cgroups.Pods = append(h.reports["node-b"].Cgroups.Pods, model.PodCgroupStats{
		UID: "0b6a1c3e-8f7d-4a52-9a0e-000000000008", Memory: model.MemoryCgroup{OOM: 1, OOMKill: 1}})
	dg, err = h.d.Pod("shop", "frontend")
	require.NoError(t, err)
	assert.Equal(t, RulePodOOMNoRestart, dg.Rule, dg.Verdict)
	assert.Equal(t, EvidenceOOM, dg.Evidence[0].Kind)
}

// historyOverride reports every pod's memory rate as rate.
type historyOverride struct {
	State
	rate float64
}

func (o *historyOverride) PodHistory(ns, name string) ([]state.PodPoint, bool) {
	pts, ok := o.State.PodHistory(ns, name)
	out := make([]state.PodPoint, len(pts))
	for i, p := range pts {
		p.MemoryUsageRate = o.rate
		out[i] = p
	}
	return out, ok
}

func TestNodeStaleAndNotReady(t *testing.T) {
	h := newHarness(t)
	snap := h.store.Snapshot()
	n := *snap.NodeMetrics["node-b"]
	n.Stale, n.ReportAgeSeconds = true, 95
	next := *snap
	next.NodeMetrics = map[string]*model.NodeMetrics{"node-b": &n}
	h.store.Publish(&next)
	dg, err := h.d.Node("node-b")
	require.NoError(t, err)
	assert.Equal(t, RuleNodeStale, dg.Rule)
	assert.Contains(t, dg.Verdict, "1m35s")

	n.Conditions = []string{state.ConditionNotReady}
	h.objs.nodes["node-b"].Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionUnknown, Reason: "NodeStatusUnknown", Message: "Kubelet stopped posting node status."}}
	dg, err = h.d.Node("node-b")
	require.NoError(t, err)
	assert.Equal(t, RuleNodeNotReady, dg.Rule)
	assert.Contains(t, dg.Verdict, "Kubelet stopped posting node status")
	assert.Contains(t, dg.Verdict, "has not reported for 1m35s")
}

func TestDiagnosisJSON(t *testing.T) {
	h := newHarness(t)
	dg, err := h.d.Pod("shop", "api-7d9f-oom")
	require.NoError(t, err)
	b, err := json.Marshal(dg)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	assert.ElementsMatch(t, []string{"kind", "namespace", "name", "verdict", "severity", "rule", "evidence", "generatedAt"}, keysOf(m))
	for _, e := range m["evidence"].([]any) {
		for k := range e.(map[string]any) {
			assert.Contains(t, []string{"kind", "summary", "time", "data"}, k)
		}
		if d, ok := e.(map[string]any)["data"]; ok {
			assert.IsType(t, map[string]any{}, d, "data is an object")
		}
	}
	node, err := h.d.Node("gpu-node")
	require.NoError(t, err)
	b, err = json.Marshal(node)
	require.NoError(t, err)
	m = nil
	require.NoError(t, json.Unmarshal(b, &m))
	assert.NotContains(t, keysOf(m), "namespace", "nodes have none")
}

func keysOf(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
