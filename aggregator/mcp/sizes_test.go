package mcp

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/api"
)

// sizeQuestions are the seed's questions (docs/questions.md) asked of
// bigSnapshot's cluster, each as the MCP tool call and the HTTP request
// that answer it.
var sizeQuestions = []struct {
	question, tool string
	args           map[string]any
	http           string
}{
	{"1. What is node-00003's CPU usage rate?", "get_node", map[string]any{"name": "node-00003"}, "/api/v1/metrics/nodes/node-00003"},
	{"2. Which nodes are the most loaded?", "list_nodes", map[string]any{"sort": "cpu", "limit": 3}, "/api/v1/metrics/nodes?sort=cpu&limit=3"},
	{"3. Is node-00002 under resource pressure?", "get_node", map[string]any{"name": "node-00002"}, "/api/v1/metrics/nodes?pressure=true"},
	{"4. How many healthy nodes does the cluster have?", "cluster_overview", nil, "/api/v1/metrics/cluster"},
	{"5. Which pods use more than 90% of their memory limit?", "list_pods", map[string]any{"minMemoryLimitRate": 90, "sort": "memoryRate"}, "/api/v1/metrics/pods?minMemoryLimitRate=90&sort=memoryRate"},
	{"6. How many pods are running in namespace ns-0?", "list_pods", map[string]any{"namespace": "ns-0", "phase": "Running"}, "/api/v1/metrics/pods?namespace=ns-0&phase=Running"},
	{"7. Why does pod-00002-29 keep restarting? (get_pod)", "get_pod", map[string]any{"namespace": "ns-11", "name": "pod-00002-29"}, "/api/v1/metrics/pods/ns-11/pod-00002-29"},
	{"8. Which node is pod-00007-03 on, and what does it use?", "list_pods", map[string]any{"name": "pod-00007-03"}, "/api/v1/metrics/pods?name=pod-00007-03"},
	{"9. What is the cluster's overall CPU usage rate?", "cluster_overview", nil, "/api/v1/metrics/cluster"},
	{"10. How healthy is the cluster, and what are its issues?", "cluster_overview", nil, "/api/v1/metrics/cluster"},
	{"11. How much capacity is left in the cluster?", "cluster_overview", nil, "/api/v1/metrics/cluster"},
	{"12. How many pods are not Running?", "list_pods", map[string]any{"phase": "!Running"}, "/api/v1/metrics/pods?phase=!Running"},
	{"Are the GPUs healthy?", "gpu_overview", nil, "/api/v1/metrics/nodes?sort=gpu"},
	{"Has pod-00002-29's memory grown?", "metric_history", map[string]any{"kind": "pod", "namespace": "ns-11", "name": "pod-00002-29"}, "/api/v1/metrics/pods/ns-11/pod-00002-29/history"},
}

// TestAnswerSizes measures the answer to each seed question at 300 and
// 5,000 nodes (30 pods each), in tokens (bytes ÷ 4): the MCP tool's answer
// at the default max_tokens as the client receives it, and the HTTP API's
// JSON for the same question. docs/llm.md shows the table it prints:
//
//	go test -run TestAnswerSizes -v ./aggregator/mcp/
func TestAnswerSizes(t *testing.T) {
	sizes := []int{300, 5000}
	rows := make([][]string, len(sizeQuestions))
	for i, q := range sizeQuestions {
		rows[i] = []string{q.question, "`" + q.tool + argText(q.args) + "`"}
	}
	for _, n := range sizes {
		st := bigStore(n)
		q := api.NewQuerier(st, api.Options{}.Thresholds)
		s, err := New(Options{Provider: st, Querier: q})
		require.NoError(t, err)
		cs := connect(t, s)
		h := api.New(st, api.Options{Querier: q})
		for i, sq := range sizeQuestions {
			res := call(t, cs, sq.tool, sq.args)
			require.False(t, res.IsError, "%s: %s", sq.question, text(t, res))
			mcpTokens := EstimateTokens(wireSize(t, res))
			require.LessOrEqual(t, mcpTokens, DefaultMaxTokens, sq.question)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, sq.http, nil))
			require.Equal(t, http.StatusOK, rec.Code, sq.http)
			rows[i] = append(rows[i], fmt.Sprint(mcpTokens), fmt.Sprint(EstimateTokens(rec.Body.Len())))
		}
	}
	var b strings.Builder
	b.WriteString("\n| question | MCP tool call | MCP, 300 nodes | HTTP JSON, 300 nodes | MCP, 5,000 nodes | HTTP JSON, 5,000 nodes |\n|---|---|---|---|---|---|\n")
	for _, r := range rows {
		b.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
	t.Log(b.String())
	doc, err := os.ReadFile("../../docs/llm.md")
	require.NoError(t, err)
	assert.Contains(t, string(doc), strings.TrimPrefix(b.String(), "\n"), "docs/llm.md's table of answer sizes is out of date: paste the one above")
}

func argText(args map[string]any) string {
	if len(args) == 0 {
		return ""
	}
	var parts []string
	for _, k := range sortedKeys(args) {
		parts = append(parts, fmt.Sprintf("%s=%v", k, args[k]))
	}
	return " " + strings.Join(parts, " ")
}
