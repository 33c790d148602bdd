package kubelet

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	statsv1alpha1 "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// Fixtures: two /stats/summary answers of node worker-1, 15 s apart. The
// first has a batch job pod that is gone from the second; the second has a
// new replica of the web deployment. The pod and container order differs
// between the two, as it does from a real kubelet.
const (
	fixture1 = "summary-1.json"
	fixture2 = "summary-2.json"
)

func fixture(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(tb, err)
	return b
}

func decodeFixture(tb testing.TB, name string) *Summary {
	tb.Helper()
	s, err := DecodeSummary(fixture(tb, name))
	require.NoError(tb, err)
	return s
}

// local turns an upstream summary into the agent's own types through its
// JSON, as the agent receives it: the tests build upstream values, so a
// field the agent's types name differently fails them.
func local(tb testing.TB, s *statsv1alpha1.Summary) *Summary {
	tb.Helper()
	out, err := toLocal(s)
	require.NoError(tb, err)
	return out
}

func toLocal(s *statsv1alpha1.Summary) (*Summary, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	var out Summary
	return &out, json.Unmarshal(b, &out)
}

// transportFunc adapts a function to Transport.
type transportFunc func(ctx context.Context) ([]byte, error)

func (f transportFunc) FetchSummary(ctx context.Context) ([]byte, error) { return f(ctx) }

var t0 = time.Date(2026, 3, 10, 8, 0, 0, 0, time.UTC)

func at(sec int) metav1.Time { return metav1.NewTime(t0.Add(time.Duration(sec) * time.Second)) }

func u64(v uint64) *uint64 { return &v }

// cpuPod builds a pod that started at t0+start with one container "c"
// started at t0+cstart; both report their CPU counters at t0+now.
func cpuPod(uid string, start, now int, podNs uint64, cstart int, ctrNs uint64) statsv1alpha1.PodStats {
	return statsv1alpha1.PodStats{
		PodRef:    statsv1alpha1.PodReference{Namespace: "ns", Name: "pod-" + uid, UID: uid},
		StartTime: at(start),
		CPU:       &statsv1alpha1.CPUStats{Time: at(now), UsageCoreNanoSeconds: u64(podNs)},
		Containers: []statsv1alpha1.ContainerStats{{
			Name:      "c",
			StartTime: at(cstart),
			CPU:       &statsv1alpha1.CPUStats{Time: at(now), UsageCoreNanoSeconds: u64(ctrNs)},
		}},
	}
}

// withNanoCores sets the pod's and container "c"'s usageNanoCores.
func withNanoCores(p statsv1alpha1.PodStats, pod, ctr uint64) statsv1alpha1.PodStats {
	p.CPU.UsageNanoCores = u64(pod)
	p.Containers[0].CPU.UsageNanoCores = u64(ctr)
	return p
}

func summaryOf(pods ...statsv1alpha1.PodStats) *Summary {
	s, err := toLocal(&statsv1alpha1.Summary{Node: statsv1alpha1.NodeStats{NodeName: "worker-1"}, Pods: pods})
	if err != nil {
		panic(err)
	}
	return s
}
