package mcp

import (
	"fmt"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTranscriptsDocumented: the example transcripts in docs/llm.md are
// what the tools answer on the fixture, sizes included.
func TestTranscriptsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/llm.md")
	require.NoError(t, err)
	cs := connect(t, newFixtureServer(t, fixtureStore(t)))
	for _, c := range []struct {
		title, tool string
		args        map[string]any
	}{
		{"`cluster_overview`", "cluster_overview", nil},
		{"`get_pod namespace=default name=my-pod`", "get_pod", map[string]any{"namespace": "default", "name": "my-pod"}},
		{"`gpu_overview`", "gpu_overview", nil},
	} {
		res := call(t, cs, c.tool, c.args)
		want := fmt.Sprintf("%s (%d tokens):\n\n```\n%s\n```\n", c.title, EstimateTokens(wireSize(t, res)), text(t, res))
		assert.Contains(t, string(doc), want, "docs/llm.md's transcript of %s is out of date", c.tool)
	}
	for _, c := range []struct {
		call, tool string
		args       map[string]any
	}{
		{"list_pods phase=Sleeping", "list_pods", map[string]any{"phase": "Sleeping"}},
		{"get_node name=nope", "get_node", map[string]any{"name": "nope"}},
	} {
		res := call(t, cs, c.tool, c.args)
		assert.Contains(t, string(doc), "> "+c.call+"\n"+text(t, res)+"\n")
	}
}
