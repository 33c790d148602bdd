package diagnose

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/mcp"
)

// TestAnswerSizes measures the fixture cluster's diagnoses in tokens
// (bytes ÷ 4): the JSON answer, and the text at the default budget.
// docs/llm.md shows the table it prints:
//
//	go test -run TestAnswerSizes -v ./aggregator/diagnose/
func TestAnswerSizes(t *testing.T) {
	h := newHarness(t)
	var b strings.Builder
	b.WriteString("\n| diagnosis | rule | evidence items | JSON tokens | text tokens |\n|---|---|---|---|---|\n")
	row := func(what string, dg *Diagnosis) {
		js, err := json.Marshal(dg)
		require.NoError(t, err)
		text := dg.Text(mcp.MaxBytes(mcp.DefaultMaxTokens))
		require.LessOrEqual(t, mcp.EstimateTokens(len(text)), mcp.DefaultMaxTokens)
		fmt.Fprintf(&b, "| %s | `%s` | %d | %d | %d |\n", what, dg.Rule, len(dg.Evidence), mcp.EstimateTokens(len(js)), mcp.EstimateTokens(len(text)))
	}
	for _, pod := range []string{"shop/api-7d9f-oom", "shop/worker-exit", "shop/batch-137", "shop/web-live", "shop/big", "shop/trainer", "shop/frontend"} {
		ns, name, _ := strings.Cut(pod, "/")
		dg, err := h.d.Pod(ns, name)
		require.NoError(t, err)
		row("pod "+pod, dg)
	}
	for _, node := range []string{"node-a", "gpu-node"} {
		dg, err := h.d.Node(node)
		require.NoError(t, err)
		row("node "+node, dg)
	}
	t.Log(b.String())
	doc, err := os.ReadFile("../../docs/llm.md")
	require.NoError(t, err)
	assert.True(t, strings.Contains(string(doc), strings.TrimPrefix(b.String(), "\n")), "docs/llm.md's table of diagnosis sizes is out of date: paste the one above")
}
