package main

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/agent/collector"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/agent/reporter"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/config"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/wire"
)

// BenchmarkAgentCycle is one full cycle of the agent as its binary builds
// it, on this machine: every source (kubelet off; GPU and pod-resources as
// this machine has them), health and events, and encoding the report.
func BenchmarkAgentCycle(b *testing.B) {
	fs := pflag.NewFlagSet("agent", pflag.ContinueOnError)
	config.RegisterAgentFlags(fs)
	require.NoError(b, fs.Parse([]string{"--disable-kubelet", "--node-name", "bench"}))
	cfg, err := config.Load(fs)
	require.NoError(b, err)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	sources := buildSources(cfg, logger)
	defer closeSources(sources, logger)
	runner := collector.NewRunner(sources, cfg.Agent.SourceTimeout, logger, nil)
	rep := reporter.New("bench", cfg.Metrics.CollectInterval, runner, cfg.Agent.Thresholds, logger, nil)
	b.ReportAllocs()
	for b.Loop() {
		r, _ := rep.Cycle(context.Background())
		if _, err := wire.EncodeReport(r); err != nil {
			b.Fatal(err)
		}
	}
}
