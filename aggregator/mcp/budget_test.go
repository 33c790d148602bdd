package mcp

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/state"
)

func TestEstimateTokens(t *testing.T) {
	for _, tt := range []struct{ bytes, tokens int }{{0, 0}, {1, 1}, {4, 1}, {5, 2}, {8000, 2000}, {8001, 2001}} {
		assert.Equal(t, tt.tokens, EstimateTokens(tt.bytes), "%d bytes", tt.bytes)
	}
	assert.Equal(t, 8000, MaxBytes(2000))
	assert.Equal(t, 2000, EstimateTokens(MaxBytes(2000)))
}

// budgetCalls are calls of every tool, with arguments that make their
// answers long, for the fixture cluster and for bigSnapshot's.
func budgetCalls(big bool) []struct {
	tool string
	args map[string]any
} {
	node, ns, pod := "node-2", "default", "my-pod"
	if big {
		node, ns, pod = "node-00000", "ns-0", "pod-00000-00"
	}
	return []struct {
		tool string
		args map[string]any
	}{
		{"cluster_overview", nil},
		{"list_nodes", nil},
		{"list_nodes", map[string]any{"sort": "memory"}},
		{"get_node", map[string]any{"name": node}},
		{"list_pods", nil},
		{"list_pods", map[string]any{"namespace": ns, "sort": "restarts"}},
		{"get_pod", map[string]any{"namespace": ns, "name": pod}},
		{"list_vms", nil},
		{"gpu_overview", nil},
		{"metric_history", map[string]any{"kind": "node", "name": node, "points": 200}},
		{"metric_history", map[string]any{"kind": "pod", "namespace": ns, "name": pod}},
		{"diagnose_pod", map[string]any{"namespace": "default", "name": "my-pod"}},
		{"diagnose_node", map[string]any{"name": "node-2"}},
		{"recent_events", nil},
		{"get_node", map[string]any{"name": strings.Repeat("n", maxNameLen)}}, // a not-found error
	}
}

// TestBudgetNeverExceeded is a property test: whatever the cluster and
// whatever max_tokens in its range, no answer (text plus structured
// content, as serialized) is larger than its budget. Budgets are the
// bounds, round numbers and random values.
func TestBudgetNeverExceeded(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	budgets := []int{MinMaxTokens, MinMaxTokens + 1, 150, 250, 500, 1000, DefaultMaxTokens, 5000, MaxMaxTokens}
	for range 8 {
		budgets = append(budgets, MinMaxTokens+rng.IntN(4000))
	}
	clusters := []struct {
		name  string
		store func() *state.Store
		big   bool
		every int // test every n-th budget, to bound the run time
	}{
		{"fixture", func() *state.Store { return fixtureStore(t) }, false, 1},
		{"30 nodes", func() *state.Store { return bigStore(30) }, true, 1},
		{"300 nodes", func() *state.Store { return bigStore(300) }, true, 1},
		{"5000 nodes", func() *state.Store { return bigStore(5000) }, true, 3},
	}
	for _, c := range clusters {
		t.Run(c.name, func(t *testing.T) {
			if c.every > 1 && testing.Short() {
				t.Skip("large cluster: skipped with -short")
			}
			cs := connect(t, newFixtureServer(t, c.store()))
			for i, mt := range budgets {
				if i%c.every != 0 && mt != MinMaxTokens && mt != DefaultMaxTokens {
					continue
				}
				for _, bc := range budgetCalls(c.big) {
					args := map[string]any{"max_tokens": mt}
					for k, v := range bc.args {
						args[k] = v
					}
					res := call(t, cs, bc.tool, args)
					size := wireSize(t, res)
					require.LessOrEqual(t, size, MaxBytes(mt), "%s %v: %d bytes for max_tokens=%d", bc.tool, bc.args, size, mt)
					if !res.IsError {
						assert.NotEmpty(t, firstLine(text(t, res)), "%s at %d tokens has a verdict", bc.tool, mt)
					}
				}
			}
		})
	}
}

// TestCutAnswers: a cut list says how many items it left out, of how
// many, and which arguments narrow the question; what it shows plus what
// it left out is what matched.
func TestCutAnswers(t *testing.T) {
	cs := connect(t, newFixtureServer(t, bigStore(300)))
	tests := []struct {
		tool, section, noun, narrow string
		args                        map[string]any
	}{
		{"list_nodes", "nodes", "nodes", "narrow with healthy, pressure, stale, label, sort, limit", nil},
		{"list_pods", "pods", "pods", "narrow with namespace, node, phase, minMemoryLimitRate, minCpuLimitRate, sort, limit", nil},
		{"list_pods", "pods", "pods", "narrow with node, phase, minMemoryLimitRate, minCpuLimitRate, sort, limit", map[string]any{"namespace": "ns-3"}},
		{"gpu_overview", "gpus", "GPUs", "narrow with node", nil},
		{"list_vms", "vms", "VMs", "narrow with namespace, status, sort", map[string]any{"max_tokens": 300}},
		{"recent_events", "events", "events", "narrow with node, namespace, pod, type, since", map[string]any{"max_tokens": 300}},
	}
	for _, tt := range tests {
		t.Run(tt.tool+fmt.Sprint(tt.args), func(t *testing.T) {
			res := call(t, cs, tt.tool, tt.args)
			got := text(t, res)
			require.False(t, res.IsError, got)
			s := structured(t, res)
			total := int(s["total"].(float64))
			shown := len(s[tt.section].([]any))
			left := int(s["leftOut"].(map[string]any)[tt.section].(float64))
			require.Positive(t, left, got)
			assert.Equal(t, total, shown+left)
			lines := strings.Split(got, "\n")
			last := lines[len(lines)-1]
			assert.Equal(t, fmt.Sprintf("left out: %d of %d %s; raise max_tokens, or %s", left, total, tt.noun, tt.narrow), last)
		})
	}
}

// TestRanking: without sort, lists put the most relevant first.
func TestRanking(t *testing.T) {
	st := bigStore(300)
	cs := connect(t, newFixtureServer(t, st))
	snap := st.Snapshot()

	nodes := structured(t, call(t, cs, "list_nodes", map[string]any{"max_tokens": 50000}))["nodes"].([]any)
	require.Len(t, nodes, 300)
	tier := func(status string) int {
		switch {
		case strings.Contains(status, "unhealthy") || strings.Contains(status, "stale"):
			return 0
		case strings.Contains(status, "pressure"):
			return 1
		}
		return 2
	}
	for i := 1; i < len(nodes); i++ {
		prev, cur := nodes[i-1].(map[string]any)["status"].(string), nodes[i].(map[string]any)["status"].(string)
		require.LessOrEqual(t, tier(prev), tier(cur), "%s after %s", cur, prev)
	}
	first := nodes[0].(map[string]any)
	assert.Equal(t, "unhealthy", first["status"].(string)[:9])

	pods := structured(t, call(t, cs, "list_pods", map[string]any{"max_tokens": 5000}))["pods"].([]any)
	var restarts []float64
	for _, p := range pods {
		m := p.(map[string]any)
		pm := snap.PodMetrics[m["pod"].(string)]
		if !podFailing(pm) {
			break
		}
		restarts = append(restarts, m["restarts"].(float64))
	}
	require.NotEmpty(t, restarts, "failing pods come first")
	for i := 1; i < len(restarts); i++ {
		assert.GreaterOrEqual(t, restarts[i-1], restarts[i], "failing pods by restarts, most first")
	}

	gpus := structured(t, call(t, cs, "gpu_overview", nil))["gpus"].([]any)
	assert.NotEmpty(t, gpus[0].(map[string]any)["problems"], "hot or erroring GPUs first")
}

// TestSqueeze: an answer whose verdict and facts alone exceed the budget
// is cut, never sent whole.
func TestSqueeze(t *testing.T) {
	a := newAnswer(strings.Repeat("verdict ", 200))
	for range 10 {
		a.fact("fact", "%s", strings.Repeat("é<>", 100))
	}
	a.section("rows", "rows", "rows:").add("row", map[string]int{"x": 1})
	for _, maxBytes := range []int{MaxBytes(MinMaxTokens), 1000, 3000} {
		res := a.fit(maxBytes)
		assert.LessOrEqual(t, resultSize(res), maxBytes)
		assert.NotEmpty(t, res.Content[0].(*sdk.TextContent).Text)
	}
}

// TestDiagnosisFit: a diagnosis keeps its verdict and document and cuts
// evidence to fit, saying how much it left out.
func TestDiagnosisFit(t *testing.T) {
	cs := connect(t, newFixtureServer(t, fixtureStore(t)))
	full := structured(t, call(t, cs, "diagnose_pod", map[string]any{"namespace": "default", "name": "my-pod", "max_tokens": 50000}))
	assert.Len(t, full["evidence"], 30)
	assert.NotContains(t, full, "evidenceLeftOut")

	res := call(t, cs, "diagnose_pod", map[string]any{"namespace": "default", "name": "my-pod", "max_tokens": 300})
	s := structured(t, res)
	assert.Equal(t, "crashloop-oom", s["rule"])
	assert.Equal(t, 30, len(s["evidence"].([]any))+int(s["evidenceLeftOut"].(float64)))
	got := text(t, res)
	assert.True(t, strings.HasPrefix(got, "my-pod is crash-looping"), got)
	assert.Contains(t, got, "more evidence items left out")
	assert.LessOrEqual(t, wireSize(t, res), MaxBytes(300))
}
