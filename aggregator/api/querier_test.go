package api

import (
	"cmp"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/state"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

func nodeNames(items []*model.NodeMetrics) []string {
	out := make([]string, len(items))
	for i, n := range items {
		out[i] = n.NodeName
	}
	return out
}

func TestQuerierNodes(t *testing.T) {
	q := NewQuerier(fixtureStore(t), model.Thresholds{})
	byMemory := func(a, b *model.NodeMetrics) int { return cmp.Compare(b.MemoryUsageRate, a.MemoryUsageRate) }
	tests := []struct {
		name  string
		query url.Values
		rank  func(a, b *model.NodeMetrics) int
		max   int
		want  []string
		total int
	}{
		{"name order without rank", nil, nil, 0, []string{"gpu-1", "node-1", "node-2", "node-3", "node-4"}, 5},
		{"rank without sort", nil, byMemory, 0, []string{"node-2", "node-3", "node-1", "gpu-1", "node-4"}, 5},
		{"rank capped", nil, byMemory, 2, []string{"node-2", "node-3"}, 5},
		{"sort wins over rank", url.Values{"sort": {"cpu"}}, byMemory, 2, []string{"node-3", "node-2"}, 5},
		{"order alone keeps name order", url.Values{"order": {"desc"}}, byMemory, 0, []string{"node-4", "node-3", "node-2", "node-1", "gpu-1"}, 5},
		{"query limit below cap", url.Values{"limit": {"1"}}, byMemory, 3, []string{"node-2"}, 5},
		{"filter", url.Values{"pressure": {"true"}}, nil, 0, []string{"node-2"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			items, total, err := q.Nodes(tt.query, tt.rank, tt.max)
			require.NoError(t, err)
			assert.Equal(t, tt.want, nodeNames(items))
			assert.Equal(t, tt.total, total)
		})
	}
}

func TestQuerierPods(t *testing.T) {
	q := NewQuerier(fixtureStore(t), model.Thresholds{})
	byRestarts := func(a, b *model.PodMetrics) int { return cmp.Compare(b.Restarts, a.Restarts) }
	items, total, err := q.Pods(url.Values{"namespace": {"default"}}, byRestarts, 2)
	require.NoError(t, err)
	assert.Equal(t, 6, total)
	require.Len(t, items, 2)
	assert.Equal(t, "default/my-pod", items[0].Key())
	assert.Equal(t, "default/batch-1", items[1].Key(), "ties in namespace/name order")
}

func TestQuerierErrors(t *testing.T) {
	q := NewQuerier(fixtureStore(t), model.Thresholds{})
	_, _, err := q.Pods(url.Values{"phase": {"Sleeping"}}, nil, 0)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `phase="Sleeping"`)
	_, _, err = q.Nodes(url.Values{"colour": {"red"}}, nil, 0)
	assert.ErrorContains(t, err, `unknown query parameter "colour"`)

	empty := NewQuerier(state.NewStore(state.StoreOptions{}), model.Thresholds{})
	_, _, err = empty.Nodes(nil, nil, 0)
	assert.ErrorIs(t, err, errNoSnapshot)
}
