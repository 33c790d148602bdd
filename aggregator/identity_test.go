package main

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"testing"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/config"
)

// The binary refuses an embedded NATS server open beyond loopback.
func TestRefusesAnonymousNATSBeyondLoopback(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run([]string{"--nats-listen", ":0", "--http-addr", "127.0.0.1:0"}, &out, &errOut)
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut.String(), "nats.listen")
	assert.Contains(t, errOut.String(), "--nats-allow-anonymous")
}

// Kubernetes modes without a cluster fail at start, naming what is missing.
func TestKubernetesModesNeedACluster(t *testing.T) {
	t.Setenv("KUBECONFIG", "/nonexistent")
	t.Setenv("HOME", t.TempDir())
	for _, args := range [][]string{
		{"--nats-auth-mode", "kubernetes", "--agent-service-account", "mon/agent"},
		{"--http-auth", "kubernetes"},
	} {
		fs := pflag.NewFlagSet("aggregator", pflag.ContinueOnError)
		config.RegisterAggregatorFlags(fs)
		require.NoError(t, fs.Parse(append(args, "--http-addr", "127.0.0.1:0", "--nats-listen", "127.0.0.1:-1")))
		cfg, err := config.Load(fs)
		require.NoError(t, err)
		require.Empty(t, cfg.ValidateAggregator())
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		err = serve(context.Background(), cfg, slog.New(slog.DiscardHandler), ln, nil)
		require.Error(t, err, args)
		assert.Contains(t, err.Error(), "needs the API server", args)
	}
}
