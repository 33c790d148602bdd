package mcp

import (
	"context"
	"testing"
)

// BenchmarkTools measures whole tool answers at 5,000 nodes and 150,000
// pods, from arguments to the fitted result, without the transport.
func BenchmarkTools(b *testing.B) {
	s, err := New(Options{Provider: bigStore(5000)})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	benches := []struct {
		name string
		run  func() (fitter, error)
	}{
		{"cluster_overview", func() (fitter, error) { return s.clusterOverview(ctx, ClusterOverviewInput{}) }},
		{"list_nodes", func() (fitter, error) { return s.listNodes(ctx, ListNodesInput{}) }},
		{"list_pods", func() (fitter, error) { return s.listPods(ctx, ListPodsInput{}) }},
		{"list_pods_namespace", func() (fitter, error) { return s.listPods(ctx, ListPodsInput{Namespace: "ns-3"}) }},
		{"get_node", func() (fitter, error) { return s.getNode(ctx, GetNodeInput{Name: "node-00003"}) }},
		{"gpu_overview", func() (fitter, error) { return s.gpuOverview(ctx, GPUOverviewInput{}) }},
	}
	for _, bb := range benches {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				a, err := bb.run()
				if err != nil {
					b.Fatal(err)
				}
				a.fit(MaxBytes(DefaultMaxTokens))
			}
		})
	}
}
