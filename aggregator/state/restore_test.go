package state

import (
	"fmt"
	"sort"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// arrivals is what two agents sent over 6 minutes, each every 15 s at its
// own offset, with changing usage and one kubelet pod each, in the order
// received.
func arrivals() []ReportEntry {
	var out []ReportEntry
	for i := range 24 {
		for j, name := range []string{"node-a", "node-b"} {
			at := t0.Add(time.Duration(i)*15*time.Second + time.Duration(1+6*j)*time.Second)
			cpu := float64((i*7+j*13)%90 + 5)
			e := agentReport(name, withUsage(cpu, 40+float64(i%5), 30), withKubeletPod("default", fmt.Sprintf("web-%d", j), int64(i*10), int64(i)*mib))
			e.Report.Timestamp, e.Report.Node.Timestamp = at, at
			e.ReceivedAt = at.Add(200 * time.Millisecond)
			out = append(out, e)
		}
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].ReceivedAt.Before(out[b].ReceivedAt) })
	return out
}

// live records history the way the manager does: a snapshot of the latest
// reports every 5 s, from the first tick after every node has reported
// (before that, a Node object without a report has a placeholder reading
// no report can restore).
func live(h *History, received []ReportEntry, nodes []*corev1.Node, pods []*corev1.Pod, until time.Time) {
	latest := map[string]ReportEntry{}
	next := 0
	for tick := t0.Add(10 * time.Second); !tick.After(until); tick = tick.Add(5 * time.Second) {
		for next < len(received) && !received[next].ReceivedAt.After(tick) {
			latest[received[next].Report.NodeName] = received[next]
			next++
		}
		reps := make(map[string]ReportEntry, len(latest))
		for k, v := range latest {
			reps[k] = v
		}
		h.Record(Build(Inputs{Now: tick, Reports: reps, Nodes: nodes, Pods: pods, StaleIntervals: 3}))
	}
}

func TestRestoredHistoryEqualsTheLiveOne(t *testing.T) {
	received := arrivals()
	end := received[len(received)-1].ReceivedAt.Add(4 * time.Second)
	cluster := struct {
		nodes []*corev1.Node
		pods  []*corev1.Pod
	}{
		nodes: []*corev1.Node{kubeNode("node-a"), kubeNode("node-b")},
		pods:  []*corev1.Pod{kubePod("default", "web-0", "node-a"), kubePod("default", "web-1", "node-b")},
	}
	tests := []struct {
		name      string
		retention time.Duration
		points    int
		nodes     []*corev1.Node
		pods      []*corev1.Pod
	}{
		{name: "standalone, every reading", retention: 2 * time.Minute, points: 1200},
		{name: "standalone, thinned to 5 points", retention: 2 * time.Minute, points: 5},
		{name: "with Node and Pod objects", retention: 10 * time.Minute, points: 1200, nodes: cluster.nodes, pods: cluster.pods},
		{name: "latest reading only", retention: 0, points: 1200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := NewHistory(tt.retention, tt.points)
			live(want, received, tt.nodes, tt.pods, end)

			got := NewHistory(tt.retention, tt.points)
			r := NewRestorer(RestoreOptions{History: got, Nodes: tt.nodes, Pods: tt.pods, StaleIntervals: 3})
			for _, e := range received {
				r.Add(e)
			}
			// The first live snapshot after the restore trims as the
			// live history's last one did.
			latest := map[string]ReportEntry{}
			for _, e := range received {
				latest[e.Report.NodeName] = e
			}
			got.Record(Build(Inputs{Now: end, Reports: latest, Nodes: tt.nodes, Pods: tt.pods, StaleIntervals: 3}))

			for _, node := range []string{"node-a", "node-b"} {
				w, ok := want.NodeHistory(node)
				require.True(t, ok)
				g, ok := got.NodeHistory(node)
				require.True(t, ok)
				require.NotEmpty(t, w)
				assert.Equal(t, w, g, node)
			}
			for _, pod := range []string{"web-0", "web-1"} {
				w, ok := want.PodHistory("default", pod)
				require.True(t, ok)
				g, ok := got.PodHistory("default", pod)
				require.True(t, ok)
				assert.Equal(t, w, g, pod)
			}
			wn, wp := want.Len()
			gn, gp := got.Len()
			assert.Equal(t, [2]int{wn, wp}, [2]int{gn, gp})
		})
	}
}

func TestRestoreIgnoresAReadingTwice(t *testing.T) {
	h := NewHistory(time.Hour, 1200)
	r := NewRestorer(RestoreOptions{History: h})
	e := agentReport("node-a")
	r.Add(e)
	r.Add(e) // a duplicate delivered again
	points, ok := h.NodeHistory("node-a")
	require.True(t, ok)
	assert.Len(t, points, 1)
}
