package main

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/config"
)

// TestMetricsExposition: the agent's /metrics, after one cycle on this
// machine, passes the Prometheus naming lint (the checks of promtool check
// metrics), and its sources are split into up and unavailable. With
// $K8SMON_EXPOSITION_DIR set (make metrics-check) it also writes the
// exposition there for promtool itself.
func TestMetricsExposition(t *testing.T) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true})
	require.NoError(t, err)
	ns.Start()
	t.Cleanup(ns.Shutdown)
	require.True(t, ns.ReadyForConnections(10*time.Second))

	cfg, err := config.Load(nil)
	require.NoError(t, err)
	cfg.Agent.NodeName = "test-node"
	cfg.Agent.Kubelet.Enabled = false
	cfg.NATS.URL = ns.ClientURL()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	sources := buildSources(cfg, logger)
	t.Cleanup(func() { closeSources(sources, logger) })
	reg, rep, pub, err := instrumented(cfg, sources, logger)
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close(time.Second) })

	report, _ := rep.Cycle(context.Background())
	require.NoError(t, pub.PublishReport(report))
	rec := httptest.NewRecorder()
	rep.Handler(pub, reg).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()

	problems, err := promlint.New(strings.NewReader(body)).Lint()
	require.NoError(t, err)
	assert.Empty(t, problems)
	assert.Contains(t, body, `k8smon_agent_source_up{source="cpu"} 1`)
	assert.Contains(t, body, `k8smon_agent_source_unavailable{source="kubelet"} 1`)
	assert.NotContains(t, body, `k8smon_agent_source_up{source="kubelet"}`, "a disabled source is not down")
	if dir := os.Getenv("K8SMON_EXPOSITION_DIR"); dir != "" {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "agent.prom"), []byte(body), 0o644))
	}
}
