package diagnose

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/events"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/state"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/terminations"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// now is when the fixtures were "recorded": every time in testdata is
// shortly before it.
var now = time.Date(2026, 3, 1, 12, 10, 0, 0, time.UTC)

// objects serves the fixtures' Pods and Nodes as the informers would.
type objects struct {
	pods  map[string]*corev1.Pod
	nodes map[string]*corev1.Node
}

func (o *objects) Pod(namespace, name string) *corev1.Pod { return o.pods[namespace+"/"+name] }
func (o *objects) Node(name string) *corev1.Node          { return o.nodes[name] }

// harness is a small cluster built from testdata through the real parts:
// state.Build and a state.Store with history, the terminations store fed
// with the pods' statuses, and the events store fed with Kubernetes and
// agent events.
type harness struct {
	objs    *objects
	store   *state.Store
	terms   *terminations.Store
	events  *events.Store
	reports map[string]*model.NodeReport
	d       *Diagnoser
}

func readJSON(t testing.TB, name string, into any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, into), name)
}

// memoryRamp is the OOM-looping pod's working set in the last ten
// minutes: it climbs to its 256Mi limit before each kill.
var memoryRamp = []int64{120 << 20, 180 << 20, 230 << 20, 250 << 20, 200 << 20, 251 << 20}

func newHarness(t testing.TB) *harness {
	t.Helper()
	var nodes corev1.NodeList
	var pods corev1.PodList
	var kubeEvents corev1.EventList
	var agentEvents []model.Event
	reports := map[string]*model.NodeReport{}
	readJSON(t, "nodes.json", &nodes)
	readJSON(t, "pods.json", &pods)
	readJSON(t, "events.json", &kubeEvents)
	readJSON(t, "agent-events.json", &agentEvents)
	readJSON(t, "reports.json", &reports)

	h := &harness{
		objs:    &objects{pods: map[string]*corev1.Pod{}, nodes: map[string]*corev1.Node{}},
		terms:   terminations.New(terminations.Options{Now: func() time.Time { return now }}),
		events:  events.NewStore(events.Options{Now: func() time.Time { return now }}),
		reports: reports,
	}
	in := state.Inputs{StaleIntervals: 3, PodUsage: map[string]state.Usage{}}
	for i := range nodes.Items {
		n := &nodes.Items[i]
		h.objs.nodes[n.Name] = n
		in.Nodes = append(in.Nodes, n)
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		h.objs.pods[p.Namespace+"/"+p.Name] = p
		in.Pods = append(in.Pods, p)
		h.terms.Observe(p)
	}
	h.olderOOMs(t)
	for i := range kubeEvents.Items {
		h.events.AddKube(&kubeEvents.Items[i])
	}
	for i := range agentEvents {
		h.events.AddModel(&agentEvents[i], events.SourceAgent)
	}
	in.VMs = []*model.VMMetrics{{ID: "vmi-db-1-uid", Name: "db-1", Namespace: "vms", Status: "Running", CPU: 2, Memory: "4Gi",
		Node: "node-b", Source: "kubevirt", Detail: &model.VMDetail{LauncherPod: "virt-launcher-db-1-x7k2p"}}}

	h.store = state.NewStore(state.StoreOptions{History: state.NewHistory(time.Hour, 100)})
	for i, mem := range memoryRamp {
		at := now.Add(time.Duration(i-len(memoryRamp)+1) * 2 * time.Minute)
		in.Now = at
		in.Reports = map[string]state.ReportEntry{}
		for name, r := range reports {
			in.Reports[name] = state.ReportEntry{Report: r, ReceivedAt: at}
		}
		in.PodUsage["shop/api-7d9f-oom"] = state.Usage{CPU: 50, Memory: mem, Timestamp: at}
		in.PodUsage["shop/hog"] = state.Usage{CPU: 400, Memory: 9 << 30, Timestamp: at}
		in.PodUsage["shop/frontend"] = state.Usage{CPU: 20, Memory: 90 << 20, Timestamp: at}
		h.store.Publish(state.Build(in))
	}
	h.d = New(Options{
		State: h.store, Objects: h.objs, Terminations: h.terms, Events: h.events,
		Reports: func(node string) *model.NodeReport { return h.reports[node] },
		Now:     func() time.Time { return now },
	})
	return h
}

// olderOOMs replays the OOM-looping pod's two earlier crashes as the
// informer delivered them: lastState shows one termination at a time.
func (h *harness) olderOOMs(t testing.TB) {
	t.Helper()
	p := h.objs.pods["shop/api-7d9f-oom"]
	require.NotNil(t, p)
	for i, end := range []time.Time{now.Add(-6 * time.Minute), now.Add(-4 * time.Minute)} {
		old := p.DeepCopy()
		st := &old.Status.ContainerStatuses[0]
		st.RestartCount = int32(i + 1)
		st.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{
			Reason: "OOMKilled", ExitCode: 137, ContainerID: "containerd://old" + string(rune('0'+i)),
			StartedAt: metav1.NewTime(end.Add(-40 * time.Second)), FinishedAt: metav1.NewTime(end),
		}
		h.terms.Observe(old)
	}
}
