package mcp

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestInvalidArguments: every bad argument is a tool error (the model
// reads it and can retry) that says what is wrong, never a panic or a
// protocol error; refusals are counted.
func TestInvalidArguments(t *testing.T) {
	s := newFixtureServer(t, fixtureStore(t))
	cs := connect(t, s)
	tests := []struct {
		name, tool string
		args       map[string]any
		want       string
		outcome    string
	}{
		{"max_tokens too small", "list_nodes", map[string]any{"max_tokens": 50}, "max_tokens", outcomeInvalid},
		{"max_tokens too large", "cluster_overview", map[string]any{"max_tokens": 50001}, "max_tokens", outcomeInvalid},
		{"unknown argument", "list_nodes", map[string]any{"colour": "red"}, `arguments: json: unknown field "colour"`, outcomeInvalid},
		{"unknown sort", "list_nodes", map[string]any{"sort": "temperature"}, "sort", outcomeInvalid},
		{"wrong type", "list_nodes", map[string]any{"healthy": "yes"}, "healthy", outcomeInvalid},
		{"bad label", "list_nodes", map[string]any{"label": []string{"=x"}}, `label="=x"`, outcomeInvalid},
		{"too many labels", "list_nodes", map[string]any{"label": make([]string, 21)}, "label", outcomeInvalid},
		{"bad phase", "list_pods", map[string]any{"phase": "Sleeping"}, `phase="Sleeping": want one of Pending, Running, Succeeded, Failed, Unknown`, outcomeInvalid},
		{"negative rate", "list_pods", map[string]any{"minMemoryLimitRate": -1}, "minMemoryLimitRate", outcomeInvalid},
		{"limit zero", "list_pods", map[string]any{"limit": 0}, "limit: minimum", outcomeInvalid},
		{"limit too large", "list_pods", map[string]any{"limit": 10001}, "limit", outcomeInvalid},
		{"long name", "get_node", map[string]any{"name": strings.Repeat("x", 1<<20)}, "maxLength", outcomeInvalid},
		{"unknown node", "get_node", map[string]any{"name": "nope"}, `node "nope" not found; list_nodes lists the nodes`, outcomeNotFound},
		{"missing name", "get_node", map[string]any{}, "name", outcomeInvalid},
		{"unknown pod", "get_pod", map[string]any{"namespace": "default", "name": "nope"}, "pod default/nope not found", outcomeNotFound},
		{"empty pod name", "get_pod", map[string]any{"namespace": "default", "name": ""}, "namespace and name: both required", outcomeInvalid},
		{"unknown vm", "get_vm", map[string]any{"name": "nope"}, `vm "nope" not found`, outcomeNotFound},
		{"bad vm sort", "list_vms", map[string]any{"sort": "age"}, "sort", outcomeInvalid},
		{"gpu of unknown node", "gpu_overview", map[string]any{"node": "nope"}, `node "nope" not found`, outcomeNotFound},
		{"history kind", "metric_history", map[string]any{"kind": "vm", "name": "x"}, "kind", outcomeInvalid},
		{"history pod without namespace", "metric_history", map[string]any{"kind": "pod", "name": "my-pod"}, "namespace: required with kind=pod", outcomeInvalid},
		{"history points", "metric_history", map[string]any{"kind": "node", "name": "node-1", "points": 1}, "points", outcomeInvalid},
		{"history unknown node", "metric_history", map[string]any{"kind": "node", "name": "nope"}, `node "nope" not found`, outcomeNotFound},
		{"diagnose unknown pod", "diagnose_pod", map[string]any{"namespace": "default", "name": "nope"}, "pod default/nope: not found", outcomeNotFound},
		{"diagnose unknown node", "diagnose_node", map[string]any{"name": "nope"}, "node nope: not found", outcomeNotFound},
		{"events since", "recent_events", map[string]any{"since": "yesterday"}, `since="yesterday": want an RFC 3339 time`, outcomeInvalid},
		{"events since too far", "recent_events", map[string]any{"since": "10000h"}, "since", outcomeInvalid},
		{"events limit", "recent_events", map[string]any{"limit": 5000}, "limit=5000: want 1 to 1000", outcomeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before float64
			if tt.outcome != "" {
				before = testutil.ToFloat64(s.calls.WithLabelValues(tt.tool, tt.outcome))
			}
			res := call(t, cs, tt.tool, tt.args)
			got := text(t, res)
			assert.Less(t, len(got), 1000, "refusals are short: %.200s", got)
			if tt.want == "" {
				assert.False(t, res.IsError, got)
				return
			}
			require.True(t, res.IsError, got)
			assert.Contains(t, got, tt.want)
			if tt.outcome != "" {
				assert.Equal(t, before+1, testutil.ToFloat64(s.calls.WithLabelValues(tt.tool, tt.outcome)))
			}
		})
	}
}
