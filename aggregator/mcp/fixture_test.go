package mcp

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/state"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// The fixture cluster is the HTTP API's (aggregator/api/fixture_test.go),
// read from its golden snapshot: five nodes (node-2 under memory
// pressure, node-4 NotReady, gpu-1 with four A100s), eight pods (my-pod
// OOMKilled and crash-looping, batch-1 Failed, pending-1 Pending), one VM.
const fixturePath = "../api/testdata/snapshot.golden"

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fixtureSnapshot decodes the golden snapshot, shifted by cycle (0 is the
// latest; -1 is 15 s earlier with one restart less on my-pod), with the
// VM's launcher pod added.
func fixtureSnapshot(t testing.TB, cycle int) *model.MetricsSnapshot {
	t.Helper()
	b, err := os.ReadFile(fixturePath)
	require.NoError(t, err)
	var s model.MetricsSnapshot
	require.NoError(t, json.Unmarshal(b, &s))
	shift := time.Duration(cycle) * 15 * time.Second
	s.Timestamp = s.Timestamp.Add(shift)
	for _, n := range s.NodeMetrics {
		n.Timestamp = n.Timestamp.Add(shift)
		n.MemoryUsageRate += float64(cycle) // a little lower in the past
	}
	for _, p := range s.PodMetrics {
		p.Timestamp = p.Timestamp.Add(shift)
		if p.Restarts > 0 {
			p.Restarts += int32(cycle)
		}
		p.MemoryUsage += int64(cycle) * 10 * mib
	}
	// The launcher pod below is not counted in ClusterMetrics: the
	// cluster's numbers stay the HTTP API's.
	vm := s.VMs[0]
	vm.Detail = &model.VMDetail{AllocatedCPU: 2000, AllocatedMemory: 4 * gib, LauncherPod: "virt-launcher-vm-1-x7k2p", PVCs: []string{"vm-1-root"}}
	launcher := &model.PodMetrics{PodName: "virt-launcher-vm-1-x7k2p", Namespace: "vms", NodeName: "node-1", Timestamp: s.Timestamp,
		Phase: "Running", Ready: true, UsageSource: "metrics-server", CPUUsage: 500, MemoryUsage: 2 * gib,
		Containers: []model.ContainerMetrics{{Name: "compute", Ready: true, State: "running", CPUUsage: 500, MemoryUsage: 2 * gib}}}
	s.PodMetrics[launcher.Key()] = launcher
	return &s
}

// fixtureStore has published three cycles of the fixture, so histories
// hold three readings.
func fixtureStore(t testing.TB) *state.Store {
	t.Helper()
	st := state.NewStore(state.StoreOptions{History: state.NewHistory(5*time.Minute, 100)})
	for c := -2; c <= 0; c++ {
		st.Publish(fixtureSnapshot(t, c))
	}
	return st
}

// fakeDiagnosis stands in for *diagnose.Diagnosis: the contract's JSON
// and a Text that keeps within maxBytes.
type fakeDiagnosis struct {
	Kind        string         `json:"kind"`
	Namespace   string         `json:"namespace,omitempty"`
	Name        string         `json:"name"`
	Verdict     string         `json:"verdict"`
	Severity    string         `json:"severity"`
	Rule        string         `json:"rule"`
	Evidence    []fakeEvidence `json:"evidence"`
	GeneratedAt time.Time      `json:"generatedAt"`
}

type fakeEvidence struct {
	Kind    string `json:"kind"`
	Summary string `json:"summary"`
}

// Text writes the verdict, then evidence lines while they fit, then how
// many were left out, as the contract asks.
func (d *fakeDiagnosis) Text(maxBytes int) string {
	var b strings.Builder
	b.WriteString(d.Verdict)
	for i, e := range d.Evidence {
		line := "\n- " + e.Kind + ": " + e.Summary
		rest := fmt.Sprintf("\n(%d more evidence items left out)", len(d.Evidence)-i)
		if b.Len()+len(line)+len(rest) > maxBytes {
			if b.Len()+len(rest) <= maxBytes {
				b.WriteString(rest)
			}
			break
		}
		b.WriteString(line)
	}
	return truncate(b.String(), maxBytes)
}

func fakeDiagnosePod(_ context.Context, ns, name string) (Diagnosis, error) {
	if ns != "default" || name != "my-pod" {
		return nil, fmt.Errorf("pod %s/%s: %w", ns, name, ErrNotFound)
	}
	d := &fakeDiagnosis{Kind: "pod", Namespace: ns, Name: name, Severity: "critical", Rule: "crashloop-oom", GeneratedAt: t0,
		Verdict: "my-pod is crash-looping: container app was OOM-killed 7 times; memory reaches its 512Mi limit"}
	for i := range 30 {
		d.Evidence = append(d.Evidence, fakeEvidence{Kind: "termination",
			Summary: fmt.Sprintf("app terminated OOMKilled exit 137 at 11:%02d:00Z after 4m running", 59-i)})
	}
	return d, nil
}

func fakeDiagnoseNode(_ context.Context, name string) (Diagnosis, error) {
	if name != "node-2" {
		return nil, fmt.Errorf("node %s: %w", name, ErrNotFound)
	}
	return &fakeDiagnosis{Kind: "node", Name: name, Severity: "warning", Rule: "memory-pressure", GeneratedAt: t0,
		Verdict:  "node-2 is under memory pressure: 93.1% used",
		Evidence: []fakeEvidence{{Kind: "metric", Summary: "memory 93.1% >= 90%"}, {Kind: "pod", Summary: "default/my-pod uses 500Mi"}}}, nil
}

// fakeEvents is an events store answering the contract's page JSON.
type fakeEvents struct {
	items []Event
	got   EventFilter
}

func (f *fakeEvents) list(_ context.Context, filter EventFilter) (any, error) {
	f.got = filter
	var items []Event
	for _, e := range f.items {
		if (filter.Namespace == "" || e.Namespace == filter.Namespace) && (filter.Pod == "" || e.Pod == filter.Pod) &&
			(filter.Node == "" || e.Node == filter.Node) && (filter.Type == "" || e.Type == filter.Type) &&
			!e.Time.Before(filter.Since) {
			items = append(items, e)
		}
	}
	total := len(items)
	items = items[:min(len(items), filter.Limit)]
	return map[string]any{"count": len(items), "total": total, "items": items}, nil
}

func fixtureEvents() *fakeEvents {
	f := &fakeEvents{}
	for i := range 40 {
		f.items = append(f.items, Event{ID: fmt.Sprint(i), Time: t0.Add(-time.Duration(i) * time.Minute), Source: "kubernetes",
			Type: "BackOff", Severity: "warning", Node: "node-2", Namespace: "default", Pod: "my-pod",
			Reason: "BackOff", Message: "Back-off restarting failed container app", Count: i + 1})
	}
	f.items = append(f.items, Event{ID: "oom", Time: t0.Add(-30 * time.Minute), Source: "agent", Type: "OOMKilled",
		Severity: "critical", Node: "node-2", Namespace: "default", Pod: "my-pod", Reason: "OOMKilled", Message: "oom_kill 1 in container app"})
	return f
}

// newFixtureServer serves the fixture with every dependency present.
func newFixtureServer(t testing.TB, st *state.Store) *Server {
	t.Helper()
	s, err := New(Options{Provider: st, DiagnosePod: fakeDiagnosePod, DiagnoseNode: fakeDiagnoseNode, RecentEvents: fixtureEvents().list})
	require.NoError(t, err)
	return s
}

// connect returns a client session talking to s in memory.
func connect(t testing.TB, s *Server) *sdk.ClientSession {
	t.Helper()
	ctx := context.Background()
	st, ct := sdk.NewInMemoryTransports()
	ss, err := s.sdk.Connect(ctx, st, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ss.Close() })
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "test", Version: "v0"}, nil).Connect(ctx, ct, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

// call calls a tool and returns its result.
func call(t testing.TB, cs *sdk.ClientSession, tool string, args map[string]any) *sdk.CallToolResult {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: tool, Arguments: args})
	require.NoError(t, err)
	return res
}

// text is the result's text content.
func text(t testing.TB, res *sdk.CallToolResult) string {
	t.Helper()
	require.Len(t, res.Content, 1)
	tc, ok := res.Content[0].(*sdk.TextContent)
	require.True(t, ok, "content is %T", res.Content[0])
	return tc.Text
}

// wireSize is the size of a result the client received, as the server
// sent it (the client keeps every field, the result type included).
func wireSize(t testing.TB, res *sdk.CallToolResult) int {
	t.Helper()
	b, err := json.Marshal(res)
	require.NoError(t, err)
	return len(b)
}

// structured decodes the result's structured content.
func structured(t testing.TB, res *sdk.CallToolResult) map[string]any {
	t.Helper()
	b, err := json.Marshal(res.StructuredContent)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m), string(b))
	return m
}

// bigSnapshot is a cluster of n nodes with 30 pods each and the troubles
// a real one has, spread over it: unhealthy and stale nodes, pressure,
// GPUs (one node in ten, some hot, some with ECC errors), failing and
// restarting pods, VMs, and issues.
func bigSnapshot(n int) *model.MetricsSnapshot {
	s := &model.MetricsSnapshot{
		Timestamp: t0, NodeMetrics: make(map[string]*model.NodeMetrics, n), PodMetrics: make(map[string]*model.PodMetrics, n*30),
		ClusterMetrics: &model.ClusterMetrics{Timestamp: t0, TotalNodes: n, HealthStatus: model.HealthWarning, PodsByPhase: map[string]int{}},
	}
	c := s.ClusterMetrics
	for i := range n {
		name := fmt.Sprintf("node-%05d", i)
		cpu, mem := float64(i%97), float64((i*7)%101)
		node := &model.NodeMetrics{
			NodeName: name, Timestamp: t0, CPUCapacity: 8000, CPUUsage: int64(cpu * 80), CPUUsageRate: cpu,
			MemoryCapacity: 32 * gib, MemoryUsage: int64(mem / 100 * float64(32*gib)), MemoryUsageRate: mem,
			DiskCapacity: 100 * gib, DiskUsage: 40 * gib, DiskUsageRate: 40, Healthy: i%53 != 0, Stale: i%211 == 0,
			UsageSource: state.UsageAgent, Conditions: []string{"Ready"}, Taints: []string{},
			Labels: map[string]string{"kubernetes.io/hostname": name, "topology.kubernetes.io/zone": fmt.Sprintf("zone-%c", 'a'+i%3)},
		}
		if i%10 == 0 {
			for g := range 8 {
				gm := model.GPUMetrics{Index: g, UUID: fmt.Sprintf("GPU-%d-%d", i, g), Model: "NVIDIA H100 80GB HBM3",
					UtilizationRate: float64((i + g*13) % 100), MemoryTotal: 80 * gib, MemoryUsed: int64(g) * 8 * gib,
					MemoryUsageRate: float64(g * 10), TemperatureC: 40 + (i+g)%50, PowerWatts: 300}
				if (i+g)%37 == 0 {
					gm.ECCUncorrected = new(uint64(2))
				}
				if g%2 == 0 {
					gm.Pods = []model.GPUPodRef{{Namespace: "ml", Pod: fmt.Sprintf("train-%d", i), Container: "main", DeviceID: gm.UUID}}
				}
				node.GPUs = append(node.GPUs, gm)
				node.GPUCount++
				c.TotalGPUs++
			}
		}
		s.NodeMetrics[name] = node
		if node.Healthy {
			c.HealthyNodes++
		}
		for p := range 30 {
			ns, pod := fmt.Sprintf("ns-%d", (i+p)%20), fmt.Sprintf("pod-%05d-%02d", i, p)
			m := &model.PodMetrics{PodName: pod, Namespace: ns, NodeName: name, Timestamp: t0, Phase: "Running", Ready: true,
				CPUUsage: int64(10 + p), MemoryUsage: int64((i+p)%100+1) * 5 * mib, CPULimit: 500, MemoryLimit: 500 * mib, CPULimited: true, MemoryLimited: true,
				CPUUsageRate: model.Rate(int64(10+p), 500), MemoryUsageRate: float64((i+p)%100 + 1), UsageSource: state.UsageMetricsServer,
				Containers: []model.ContainerMetrics{{Name: "app", Ready: true, State: "running"}}, OwnerKind: "ReplicaSet", OwnerName: "rs"}
			switch {
			case (i+p)%97 == 0:
				m.Phase, m.Ready, m.NodeName, m.UsageSource = "Pending", false, "", ""
				m.Containers[0] = model.ContainerMetrics{Name: "app", State: "waiting", Reason: "ContainerCreating"}
			case (i+p)%31 == 0:
				m.Restarts = int32((i + p) % 40)
				m.Ready = false
				m.Containers[0] = model.ContainerMetrics{Name: "app", State: "waiting", Reason: "CrashLoopBackOff", Restarts: m.Restarts,
					LastTerminationReason: "OOMKilled", LastExitCode: 137}
			}
			s.PodMetrics[m.Key()] = m
			c.TotalPods++
			c.PodsByPhase[m.Phase]++
			if m.Phase == "Running" {
				c.RunningPods++
			}
		}
		if i%25 == 0 {
			vm := &model.VMMetrics{ID: fmt.Sprint(i), Name: fmt.Sprintf("vm-%d", i), Namespace: "vms", Status: "Running", CPU: 4, Memory: "8Gi", Node: name,
				Metrics: &model.VMUsage{CPUUsage: float64(i % 100), MemoryUsage: 50}, Detail: &model.VMDetail{LauncherPod: fmt.Sprintf("virt-launcher-vm-%d-abcde", i)}}
			if i%75 == 0 {
				vm.Status, vm.Metrics = "Stopped", nil
			}
			s.VMs = append(s.VMs, vm)
		}
	}
	for i := range state.MaxIssuesPerKind {
		c.Issues = append(c.Issues, fmt.Sprintf("node node-%05d is not ready", i*53))
	}
	c.TotalCPU, c.UsedCPU, c.TotalMemory, c.UsedMemory = int64(n)*8000, int64(n)*3800, int64(n)*32*gib, int64(n)*15*gib
	return s
}

// bigStores caches the stores of bigStore by size: building 5,000 nodes
// takes seconds, and tests only read them.
var bigStores sync.Map

// bigStore publishes bigSnapshot(n) with three readings of history, once
// per size.
func bigStore(n int) *state.Store {
	if st, ok := bigStores.Load(n); ok {
		return st.(*state.Store)
	}
	st, _ := bigStores.LoadOrStore(n, newBigStore(n))
	return st.(*state.Store)
}

func newBigStore(n int) *state.Store {
	st := state.NewStore(state.StoreOptions{History: state.NewHistory(5*time.Minute, 100)})
	for c := -2; c <= 0; c++ {
		s := bigSnapshot(n)
		s.Timestamp = s.Timestamp.Add(time.Duration(c) * 15 * time.Second)
		for _, node := range s.NodeMetrics {
			node.Timestamp = s.Timestamp
		}
		for _, p := range s.PodMetrics {
			p.Timestamp = s.Timestamp
		}
		st.Publish(s)
	}
	return st
}
